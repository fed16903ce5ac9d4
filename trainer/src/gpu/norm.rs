//! BatchNorm over NHWC activations (`shaders/batchnorm.wgsl`), with optional fused epilogues.
//!
//! # API (build once per tensor set, replay every step with `op.record(&mut rec)`)
//! - [`BnShape`]`{ rows, channels }` with `rows = N·H·W` ([`BnShape::nhwc`]).
//! - [`batchnorm_train_forward`]`(gpu, &shape, x, gamma, beta, running_mean, running_var, y,
//!   saved_mean, saved_invstd, epilogue) -> Result<Op>`: batch mean and biased variance over the
//!   rows, `y = epilogue(γ·(x−mean)·invstd + β)`, running stats updated with momentum 0.1 and
//!   the unbiased variance, mean and `invstd = 1/sqrt(var + 1e-5)` saved for the backward.
//!   3 dispatches: stats partials, finalize (tiny), apply.
//! - [`batchnorm_infer_forward`]`(gpu, &shape, x, gamma, beta, running_mean, running_var, y,
//!   epilogue) -> Result<Op>`: the same with the running statistics (2 dispatches).
//! - [`batchnorm_backward`]`(gpu, &shape, dy, x, gamma, beta, saved_mean, saved_invstd, dx,
//!   dgamma, dbeta, grad) -> Result<Op>`: `dy` is the gradient of the forward's output `y`
//!   (after its epilogue); writes (overwrites) `dx`, `dgamma`, `dbeta` and, for the residual
//!   epilogue, `dΔt` and the shortcut's gradient. 3 dispatches.
//!
//! Epilogues ([`Epilogue`]) save full memory passes:
//! - `None`: `y = bn(x)`; `Relu`: `y = ReLU(bn(x))` (stem, first half of a block);
//! - `ResidualRelu { dt, shortcut }`: `y = ReLU(shortcut + Δt ⊗ bn(x))`, the whole tail of a
//!   basic block (BN2, step scale, add, ReLU) in one pass.
//!
//! The backward takes the matching [`BnGrad`]: `Plain`, `Relu { y }` (y = the forward output,
//! its sign is the ReLU mask), `ResidualRelu { y, dt, ddt, dshortcut }` (`ddt` gets
//! `Σ g·bn(x)` per channel with `g = dy·[y > 0]`, `dshortcut` gets `g`; for an identity shortcut
//! add it to the block input's gradient, for option A pass it to
//! `elementwise::shortcut_a_backward`).

use super::reduce::{chunking, dummy, kernel, params, KernelSpec, Op, WG};
use super::texture::mirror;
use super::{grid_1d, Dispatch, Gpu, Res, Slot, Tensor, TexMirror};
use anyhow::{ensure, Result};
use std::sync::Arc;

/// BatchNorm ε (docs/DESIGN.md).
pub const BN_EPS: f32 = 1e-5;
/// Running-statistics momentum (docs/DESIGN.md).
pub const BN_MOMENTUM: f32 = 0.1;

/// The `[rows][channels]` view of an NHWC activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnShape {
    pub rows: usize,
    pub channels: usize,
}

impl BnShape {
    pub fn nhwc(n: usize, h: usize, w: usize, c: usize) -> BnShape {
        BnShape {
            rows: n * h * w,
            channels: c,
        }
    }
    /// Number of activation elements.
    pub fn len(&self) -> usize {
        self.rows * self.channels
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What follows the normalisation in the same pass.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    Relu,
    /// `y = ReLU(shortcut + dt[c] · bn(x))`, `dt` of length C, `shortcut` shaped like `x`.
    ResidualRelu {
        dt: &'a Tensor,
        shortcut: &'a Tensor,
    },
}

/// The backward counterpart of the forward's [`Epilogue`].
#[derive(Clone, Copy)]
pub enum BnGrad<'a> {
    None,
    Relu {
        y: &'a Tensor,
    },
    ResidualRelu {
        y: &'a Tensor,
        dt: &'a Tensor,
        ddt: &'a Tensor,
        dshortcut: &'a Tensor,
    },
}

const SRC: &str = concat!(
    include_str!("../../../shaders/texture.wgsl"),
    include_str!("../../../shaders/batchnorm.wgsl")
);
use Slot::{Read as R, ReadWrite as W, Texture as T, Uniform as U};

/// Every kernel of `batchnorm.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "stats_partial",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "stats_finalize",
        modes: &[0],
        slots: &[R, R, R, R, W, W, W, W, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "infer_affine",
        modes: &[0],
        slots: &[R, R, R, R, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "apply",
        modes: &[0, 1, 2],
        slots: &[R, R, R, R, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "bwd_partial",
        modes: &[0, 1, 2],
        slots: &[R, R, R, R, R, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "bwd_finalize",
        modes: &[0, 2],
        slots: &[R, R, R, R, R, W, W, W, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "bwd_apply",
        modes: &[0, 1, 2],
        slots: &[R, R, R, R, R, R, W, W, U],
    },
    // vec4 variants reading the activations through texture mirrors (`vec4_path`)
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "stats_partial4",
        modes: &[0],
        slots: &[T, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "apply4",
        modes: &[0, 1, 2],
        slots: &[T, R, R, T, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "bwd_partial4",
        modes: &[0, 1, 2],
        slots: &[T, T, R, R, T, W, U],
    },
    KernelSpec {
        file: "batchnorm",
        source: SRC,
        entry: "bwd_apply4",
        modes: &[0, 1, 2],
        slots: &[T, T, R, R, T, R, W, W, U],
    },
];

/// Whether `s` takes the vec4 entries that read activations through texture mirrors: on CPU
/// adapters (where that is the fast load path) when the channels fill whole vec4s.
fn vec4_path(gpu: &Gpu, s: &BnShape) -> bool {
    gpu.is_cpu() && super::conv::vec_width(s.channels) == 4
}

/// A 4-float placeholder for unused vec4 bindings (a vec4 array needs 16 bytes).
fn dummy4(gpu: &Gpu) -> wgpu::Buffer {
    gpu.zeros(&[4]).buf
}

fn check(name: &str, t: &Tensor, want: usize) -> Result<()> {
    ensure!(
        t.len() == want,
        "{name}: {} elements (shape {:?}), expected {want}",
        t.len(),
        t.shape
    );
    Ok(())
}

fn bn_params(s: &BnShape) -> (u32, u32, [u32; 8]) {
    let (chunk, nchunks) = chunking(s.rows, s.channels);
    let words = [
        s.rows as u32,
        s.channels as u32,
        chunk,
        nchunks,
        BN_EPS.to_bits(),
        BN_MOMENTUM.to_bits(),
        s.len() as u32,
        0,
    ];
    (chunk, nchunks, words)
}

/// The `apply` dispatch shared by the training and inference forwards; `xm` is x's texture
/// mirror when an earlier dispatch of the op already refreshes one.
#[allow(clippy::too_many_arguments)]
fn apply(
    gpu: &Gpu,
    s: &BnShape,
    x: &Tensor,
    xm: Option<Arc<TexMirror>>,
    affine: &wgpu::Buffer,
    y: &Tensor,
    epi: Epilogue,
    p: &wgpu::Buffer,
    scratch: &mut Vec<wgpu::Buffer>,
) -> Result<Dispatch> {
    let (mode, dt, sc) = match epi {
        Epilogue::None => (0, None, None),
        Epilogue::Relu => (1, None, None),
        Epilogue::ResidualRelu { dt, shortcut } => {
            check("bn epilogue dt", dt, s.channels)?;
            check("bn epilogue shortcut", shortcut, s.len())?;
            (2, Some(&dt.buf), Some(&shortcut.buf))
        }
    };
    if vec4_path(gpu, s) {
        let mut uploads = Vec::new();
        let xm = match xm {
            Some(m) => m,
            None => mirror(gpu, x, &mut uploads)?,
        };
        let scm = match epi {
            Epilogue::ResidualRelu { shortcut, .. } => mirror(gpu, shortcut, &mut uploads)?,
            _ => xm.clone(),
        };
        let d1 = dummy4(gpu);
        let k = kernel(gpu, KERNELS, "apply4", mode)?;
        let disp = Dispatch::with_uploads(
            gpu,
            &k,
            &[
                Res::Tex(&xm.view),
                Res::Buf(affine),
                Res::Buf(dt.unwrap_or(&d1)),
                Res::Tex(&scm.view),
                Res::Buf(&y.buf),
                Res::Buf(p),
            ],
            grid_1d(chunking(s.rows, s.channels).1 as usize * s.channels / 4, WG),
            uploads,
        )?;
        scratch.push(d1);
        return Ok(disp);
    }
    let d1 = dummy(gpu);
    let d2 = dummy(gpu);
    let k = kernel(gpu, KERNELS, "apply", mode)?;
    let disp = Dispatch::new(
        gpu,
        &k,
        &[
            &x.buf,
            affine,
            dt.unwrap_or(&d1),
            sc.unwrap_or(&d2),
            &y.buf,
            p,
        ],
        grid_1d(chunking(s.rows, s.channels).1 as usize * s.channels, WG),
    )?;
    scratch.push(d1);
    scratch.push(d2);
    Ok(disp)
}

/// Training-mode forward; see the module docs.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_train_forward(
    gpu: &Gpu,
    s: &BnShape,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    y: &Tensor,
    saved_mean: &Tensor,
    saved_invstd: &Tensor,
    epi: Epilogue,
) -> Result<Op> {
    ensure!(s.rows > 0 && s.channels > 0, "batchnorm: empty shape {s:?}");
    check("bn x", x, s.len())?;
    check("bn y", y, s.len())?;
    for (n, t) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("saved_mean", saved_mean),
        ("saved_invstd", saved_invstd),
    ] {
        check(n, t, s.channels)?;
    }
    let c = s.channels;
    let (_, nchunks, words) = bn_params(s);
    let p = params(gpu, words);
    let part = gpu.zeros(&[nchunks as usize * 2 * c]).buf;
    let affine = gpu.zeros(&[2 * c]).buf;
    let k2 = kernel(gpu, KERNELS, "stats_finalize", 0)?;
    let mut xm = None;
    let d1 = if vec4_path(gpu, s) {
        let mut uploads = Vec::new();
        let m = mirror(gpu, x, &mut uploads)?;
        let k1 = kernel(gpu, KERNELS, "stats_partial4", 0)?;
        let d = Dispatch::with_uploads(
            gpu,
            &k1,
            &[Res::Tex(&m.view), Res::Buf(&part), Res::Buf(&p)],
            grid_1d(nchunks as usize * c / 4, WG),
            uploads,
        )?;
        xm = Some(m);
        d
    } else {
        let k1 = kernel(gpu, KERNELS, "stats_partial", 0)?;
        Dispatch::new(
            gpu,
            &k1,
            &[&x.buf, &part, &p],
            grid_1d(nchunks as usize * c, WG),
        )?
    };
    let d2 = Dispatch::new(
        gpu,
        &k2,
        &[
            &x.buf,
            &part,
            &gamma.buf,
            &beta.buf,
            &running_mean.buf,
            &running_var.buf,
            &saved_mean.buf,
            &saved_invstd.buf,
            &affine,
            &p,
        ],
        grid_1d(c, WG),
    )?;
    let mut scratch = Vec::new();
    let d3 = apply(gpu, s, x, xm, &affine, y, epi, &p, &mut scratch)?;
    scratch.extend([p, part, affine]);
    Ok(Op {
        dispatches: vec![d1, d2, d3],
        scratch,
    })
}

/// Inference-mode forward with the running statistics; see the module docs.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_infer_forward(
    gpu: &Gpu,
    s: &BnShape,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    y: &Tensor,
    epi: Epilogue,
) -> Result<Op> {
    ensure!(s.rows > 0 && s.channels > 0, "batchnorm: empty shape {s:?}");
    check("bn x", x, s.len())?;
    check("bn y", y, s.len())?;
    for (n, t) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ] {
        check(n, t, s.channels)?;
    }
    let c = s.channels;
    let (_, _, words) = bn_params(s);
    let p = params(gpu, words);
    let affine = gpu.zeros(&[2 * c]).buf;
    let k1 = kernel(gpu, KERNELS, "infer_affine", 0)?;
    let d1 = Dispatch::new(
        gpu,
        &k1,
        &[
            &gamma.buf,
            &beta.buf,
            &running_mean.buf,
            &running_var.buf,
            &affine,
            &p,
        ],
        grid_1d(c, WG),
    )?;
    let mut scratch = Vec::new();
    let d2 = apply(gpu, s, x, None, &affine, y, epi, &p, &mut scratch)?;
    scratch.extend([p, affine]);
    Ok(Op {
        dispatches: vec![d1, d2],
        scratch,
    })
}

/// Backward of the training forward (with the matching epilogue); see the module docs.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    gpu: &Gpu,
    s: &BnShape,
    dy: &Tensor,
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    saved_mean: &Tensor,
    saved_invstd: &Tensor,
    dx: &Tensor,
    dgamma: &Tensor,
    dbeta: &Tensor,
    grad: BnGrad,
) -> Result<Op> {
    ensure!(s.rows > 0 && s.channels > 0, "batchnorm: empty shape {s:?}");
    for (n, t) in [("dy", dy), ("x", x), ("dx", dx)] {
        check(n, t, s.len())?;
    }
    for (n, t) in [
        ("gamma", gamma),
        ("beta", beta),
        ("saved_mean", saved_mean),
        ("saved_invstd", saved_invstd),
        ("dgamma", dgamma),
        ("dbeta", dbeta),
    ] {
        check(n, t, s.channels)?;
    }
    let c = s.channels;
    let dm = dummy(gpu);
    let ddt_dummy = dummy(gpu);
    let dres_dummy = dummy(gpu);
    let dt_dummy = dummy(gpu);
    let (mode, ymask, dt, ddt, dres) = match grad {
        BnGrad::None => (0, &dm, &dt_dummy, &ddt_dummy, &dres_dummy),
        BnGrad::Relu { y } => {
            check("bn y", y, s.len())?;
            (1, &y.buf, &dt_dummy, &ddt_dummy, &dres_dummy)
        }
        BnGrad::ResidualRelu {
            y,
            dt,
            ddt,
            dshortcut,
        } => {
            check("bn y", y, s.len())?;
            check("bn dt", dt, c)?;
            check("bn ddt", ddt, c)?;
            check("bn dshortcut", dshortcut, s.len())?;
            (2, &y.buf, &dt.buf, &ddt.buf, &dshortcut.buf)
        }
    };
    let (_, nchunks, words) = bn_params(s);
    let p = params(gpu, words);
    let part = gpu.zeros(&[nchunks as usize * 2 * c]).buf;
    let coef = gpu.zeros(&[3 * c]).buf;
    let k2 = kernel(gpu, KERNELS, "bwd_finalize", if mode == 2 { 2 } else { 0 })?;
    let d2 = Dispatch::new(
        gpu,
        &k2,
        &[
            &part,
            &gamma.buf,
            &beta.buf,
            dt,
            &saved_invstd.buf,
            &dgamma.buf,
            &dbeta.buf,
            ddt,
            &coef,
            &p,
        ],
        grid_1d(c, WG),
    )?;
    if vec4_path(gpu, s) {
        let mut uploads = Vec::new();
        let dym = mirror(gpu, dy, &mut uploads)?;
        let xm = mirror(gpu, x, &mut uploads)?;
        let ym = match grad {
            BnGrad::Relu { y } | BnGrad::ResidualRelu { y, .. } => mirror(gpu, y, &mut uploads)?,
            BnGrad::None => dym.clone(),
        };
        let dres4 = dummy4(gpu);
        let dres = if mode == 2 { dres } else { &dres4 };
        let k1 = kernel(gpu, KERNELS, "bwd_partial4", mode)?;
        let k3 = kernel(gpu, KERNELS, "bwd_apply4", mode)?;
        let d1 = Dispatch::with_uploads(
            gpu,
            &k1,
            &[
                Res::Tex(&dym.view),
                Res::Tex(&xm.view),
                Res::Buf(&saved_mean.buf),
                Res::Buf(&saved_invstd.buf),
                Res::Tex(&ym.view),
                Res::Buf(&part),
                Res::Buf(&p),
            ],
            grid_1d(nchunks as usize * c / 4, WG),
            uploads,
        )?;
        let d3 = Dispatch::with_uploads(
            gpu,
            &k3,
            &[
                Res::Tex(&dym.view),
                Res::Tex(&xm.view),
                Res::Buf(&saved_mean.buf),
                Res::Buf(&saved_invstd.buf),
                Res::Tex(&ym.view),
                Res::Buf(&coef),
                Res::Buf(&dx.buf),
                Res::Buf(dres),
                Res::Buf(&p),
            ],
            grid_1d(chunking(s.rows, s.channels).1 as usize * c / 4, WG),
            Vec::new(),
        )?;
        return Ok(Op {
            dispatches: vec![d1, d2, d3],
            scratch: vec![p, part, coef, dm, ddt_dummy, dres_dummy, dt_dummy, dres4],
        });
    }
    let k1 = kernel(gpu, KERNELS, "bwd_partial", mode)?;
    let k3 = kernel(gpu, KERNELS, "bwd_apply", mode)?;
    let d1 = Dispatch::new(
        gpu,
        &k1,
        &[
            &dy.buf,
            &x.buf,
            &saved_mean.buf,
            &saved_invstd.buf,
            ymask,
            &part,
            &p,
        ],
        grid_1d(nchunks as usize * c, WG),
    )?;
    let d3 = Dispatch::new(
        gpu,
        &k3,
        &[
            &dy.buf,
            &x.buf,
            &saved_mean.buf,
            &saved_invstd.buf,
            ymask,
            &coef,
            &dx.buf,
            dres,
            &p,
        ],
        grid_1d(chunking(s.rows, s.channels).1 as usize * s.channels, WG),
    )?;
    Ok(Op {
        dispatches: vec![d1, d2, d3],
        scratch: vec![p, part, coef, dm, ddt_dummy, dres_dummy, dt_dummy],
    })
}
