//! Elementwise kernels (`shaders/elementwise.wgsl`), the per-channel step scale
//! (`shaders/step_scale.wgsl`) and the option-A shortcut (`shaders/shortcut.wgsl`).
//!
//! # API (build once, replay with `op.record(&mut rec)`)
//! - [`relu_forward`]`(gpu, x, y)`, [`relu_backward`]`(gpu, dy, y, dx)` (`dx = dy·[y > 0]`).
//! - [`add`]`(gpu, a, b, z)` (`z = a + b`), [`add_inplace`]`(gpu, acc, b)` (`acc += b`, e.g. the
//!   shortcut's gradient onto the block input's).
//! - [`step_scale_forward`]`(gpu, f, dt, y)`: `y = F ⊗ Δt` over NHWC, `C = dt.len()`.
//! - [`step_scale_backward`]`(gpu, dy, f, dt, df, ddt)`: `dF = dy·Δt`, `dΔt[c] = Σ dy·F` (one
//!   pass writing dF and per-chunk partials, then a tiny deterministic finalize).
//! - [`shortcut_a_forward`]`(gpu, x, y, stride)`: `x` `[N][H][W][C_in]` → `y`
//!   `[N][⌈H/s⌉][⌈W/s⌉][C_out]`, `y[n][yo][xo][c] = x[n][s·yo][s·xo][c]` for `c < C_in`, else 0
//!   (the CIFAR ResNets use `s = 2`).
//! - [`shortcut_a_backward`]`(gpu, dy, dx, stride, accumulate)`: scatter back; `accumulate` adds
//!   to `dx`.
//!   On CPU adapters with channel counts that are multiples of 4 both run 4 channels per
//!   invocation and read through texture mirrors (`fwd4`/`bwd4`; ResNet-20 step on lavapipe:
//!   64 -> 21–29 ms for the two shortcuts' forward and backward).
//!
//! The block tail `ReLU(shortcut + Δt ⊗ BN2(·))` also exists fused into BatchNorm:
//! `norm::Epilogue::ResidualRelu`.

use super::conv::vec_width;
use super::reduce::{chunking, kernel, params, KernelSpec, Op, WG};
use super::texture::mirror;
use super::{grid_1d, Dispatch, Gpu, Res, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Texture as T, Uniform as U};

const SRC_EW: &str = include_str!("../../../shaders/elementwise.wgsl");
const SRC_SS: &str = include_str!("../../../shaders/step_scale.wgsl");
const SRC_SC: &str = concat!(
    include_str!("../../../shaders/texture.wgsl"),
    include_str!("../../../shaders/shortcut.wgsl")
);

/// Every kernel of `elementwise.wgsl`, `step_scale.wgsl` and `shortcut.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "elementwise",
        source: SRC_EW,
        entry: "relu_fwd",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "elementwise",
        source: SRC_EW,
        entry: "relu_bwd",
        modes: &[0],
        slots: &[R, R, W, U],
    },
    KernelSpec {
        file: "elementwise",
        source: SRC_EW,
        entry: "add",
        modes: &[0],
        slots: &[R, R, W, U],
    },
    KernelSpec {
        file: "elementwise",
        source: SRC_EW,
        entry: "add_inplace",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "elementwise",
        source: SRC_EW,
        entry: "add_inplace4",
        modes: &[0],
        slots: &[R, W, U],
    },
];
/// `step_scale.wgsl`.
pub const STEP_KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "step_scale",
        source: SRC_SS,
        entry: "fwd",
        modes: &[0],
        slots: &[R, R, W, U],
    },
    KernelSpec {
        file: "step_scale",
        source: SRC_SS,
        entry: "bwd_partial",
        modes: &[0],
        slots: &[R, R, R, W, W, U],
    },
    KernelSpec {
        file: "step_scale",
        source: SRC_SS,
        entry: "bwd_finalize",
        modes: &[0],
        slots: &[R, W, U],
    },
];
/// `shortcut.wgsl`.
pub const SHORTCUT_KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "shortcut",
        source: SRC_SC,
        entry: "fwd",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "shortcut",
        source: SRC_SC,
        entry: "bwd",
        modes: &[0, 1],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "shortcut",
        source: SRC_SC,
        entry: "fwd4",
        modes: &[0],
        slots: &[T, W, U],
    },
    KernelSpec {
        file: "shortcut",
        source: SRC_SC,
        entry: "bwd4",
        modes: &[0, 1],
        slots: &[T, W, U, T],
    },
];

/// Whether the shortcut takes its vec4 texture entries: CPU adapters (see `shortcut.wgsl`),
/// channel counts that are multiples of 4.
fn shortcut_vec4(gpu: &Gpu, cin: u32, cout: u32) -> bool {
    gpu.is_cpu() && vec_width(cin as usize) == 4 && vec_width(cout as usize) == 4
}

fn same_len(names: &str, ts: &[&Tensor]) -> Result<usize> {
    let n = ts[0].len();
    for t in ts {
        ensure!(t.len() == n, "{names}: lengths differ ({} vs {n})", t.len());
    }
    Ok(n)
}

fn simple(gpu: &Gpu, entry: &str, bufs: &[&wgpu::Buffer], n: usize, _c: usize) -> Result<Op> {
    // Rows of WG elements, `chunk` rows per workgroup: a few hundred workgroups on CPU
    // adapters (two-ish threads), short loops on real GPUs.
    let rows = n.div_ceil(WG as usize).max(1);
    let chunk = if gpu.is_cpu() { rows.div_ceil(256) } else { 4 }.max(1);
    let groups = rows.div_ceil(chunk);
    let p = params(gpu, [n as u32, chunk as u32, 0, 0, 0, 0, 0, 0]);
    let k = kernel(gpu, KERNELS, entry, 0)?;
    let mut all: Vec<&wgpu::Buffer> = bufs.to_vec();
    all.push(&p);
    let d = Dispatch::new(gpu, &k, &all, grid_1d(groups * WG as usize, WG))?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// `y = max(x, 0)`.
pub fn relu_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Op> {
    let n = same_len("relu_forward", &[x, y])?;
    simple(gpu, "relu_fwd", &[&x.buf, &y.buf], n, 1)
}

/// `dx = dy · [y > 0]` with `y` the forward output.
pub fn relu_backward(gpu: &Gpu, dy: &Tensor, y: &Tensor, dx: &Tensor) -> Result<Op> {
    let n = same_len("relu_backward", &[dy, y, dx])?;
    simple(gpu, "relu_bwd", &[&dy.buf, &y.buf, &dx.buf], n, 1)
}

/// `z = a + b`.
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, z: &Tensor) -> Result<Op> {
    let n = same_len("add", &[a, b, z])?;
    simple(gpu, "add", &[&a.buf, &b.buf, &z.buf], n, 1)
}

/// `acc += b`.
pub fn add_inplace(gpu: &Gpu, acc: &Tensor, b: &Tensor) -> Result<Op> {
    let n = same_len("add_inplace", &[acc, b])?;
    if super::conv::vec_width(n) == 4 {
        return simple(gpu, "add_inplace4", &[&b.buf, &acc.buf], n / 4, 1);
    }
    simple(gpu, "add_inplace", &[&b.buf, &acc.buf], n, 1)
}

/// `y = F ⊗ Δt` (per channel, NHWC, `C = dt.len()`).
pub fn step_scale_forward(gpu: &Gpu, f: &Tensor, dt: &Tensor, y: &Tensor) -> Result<Op> {
    let n = same_len("step_scale_forward", &[f, y])?;
    let c = dt.len();
    ensure!(
        c > 0 && n % c == 0,
        "step_scale_forward: {n} elements not a multiple of C = {c}"
    );
    let p = params(gpu, [(n / c) as u32, c as u32, 0, 0, n as u32, 0, 0, 0]);
    let k = kernel(gpu, STEP_KERNELS, "fwd", 0)?;
    let d = Dispatch::new(gpu, &k, &[&f.buf, &dt.buf, &y.buf, &p], grid_1d(n, WG))?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// `dF = dy · Δt`, `dΔt[c] = Σ_{n,h,w} dy · F` (overwrites `ddt`).
pub fn step_scale_backward(
    gpu: &Gpu,
    dy: &Tensor,
    f: &Tensor,
    dt: &Tensor,
    df: &Tensor,
    ddt: &Tensor,
) -> Result<Op> {
    let n = same_len("step_scale_backward", &[dy, f, df])?;
    let c = dt.len();
    ensure!(
        c > 0 && n % c == 0,
        "step_scale_backward: {n} elements not a multiple of C = {c}"
    );
    ensure!(
        ddt.len() == c,
        "step_scale_backward: ddt has {} elements, C = {c}",
        ddt.len()
    );
    let rows = n / c;
    let (chunk, nchunks) = chunking(rows, c);
    let p = params(
        gpu,
        [rows as u32, c as u32, chunk, nchunks, n as u32, 0, 0, 0],
    );
    let part = gpu.zeros(&[nchunks as usize * c]).buf;
    let k1 = kernel(gpu, STEP_KERNELS, "bwd_partial", 0)?;
    let k2 = kernel(gpu, STEP_KERNELS, "bwd_finalize", 0)?;
    let d1 = Dispatch::new(
        gpu,
        &k1,
        &[&dy.buf, &f.buf, &dt.buf, &df.buf, &part, &p],
        grid_1d(nchunks as usize * c, WG),
    )?;
    let d2 = Dispatch::new(gpu, &k2, &[&part, &ddt.buf, &p], grid_1d(c, WG))?;
    Ok(Op {
        dispatches: vec![d1, d2],
        scratch: vec![p, part],
    })
}

fn shortcut_params(x: &[usize], y: &[usize], stride: usize) -> Result<[u32; 8]> {
    ensure!(
        x.len() == 4 && y.len() == 4,
        "shortcut: tensors must be NHWC (4-D)"
    );
    ensure!(stride >= 1, "shortcut: stride must be at least 1");
    let (n, h, w, cin) = (x[0], x[1], x[2], x[3]);
    let (ho, wo, cout) = (h.div_ceil(stride), w.div_ceil(stride), y[3]);
    ensure!(
        y[0] == n && y[1] == ho && y[2] == wo && cout >= cin,
        "shortcut: output shape {y:?} does not match input {x:?} at stride {stride} \
         (expected [{n}, {ho}, {wo}, ≥{cin}])"
    );
    Ok([n, h, w, cin, ho, wo, cout, stride].map(|v| v as u32))
}

/// Option-A shortcut forward: subsample every `stride`-th row and column, zero channels
/// appended.
pub fn shortcut_a_forward(gpu: &Gpu, x: &Tensor, y: &Tensor, stride: usize) -> Result<Op> {
    let words = shortcut_params(&x.shape, &y.shape, stride)?;
    let p = params(gpu, words);
    let d = if shortcut_vec4(gpu, words[3], words[6]) {
        let k = kernel(gpu, SHORTCUT_KERNELS, "fwd4", 0)?;
        let mut uploads = Vec::new();
        let mx = mirror(gpu, x, &mut uploads)?;
        let res = [Res::Tex(&mx.view), Res::Buf(&y.buf), Res::Buf(&p)];
        Dispatch::with_uploads(gpu, &k, &res, grid_1d(y.len() / 4, WG), uploads)?
    } else {
        let k = kernel(gpu, SHORTCUT_KERNELS, "fwd", 0)?;
        Dispatch::new(gpu, &k, &[&x.buf, &y.buf, &p], grid_1d(y.len(), WG))?
    };
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// Option-A shortcut backward: `dx` (shaped like the forward's `x`) gets `dy`'s first `C_in`
/// channels on the rows/columns that are multiples of `stride` and 0 elsewhere; added when
/// `accumulate`.
pub fn shortcut_a_backward(
    gpu: &Gpu,
    dy: &Tensor,
    dx: &Tensor,
    stride: usize,
    accumulate: bool,
) -> Result<Op> {
    let words = shortcut_params(&dx.shape, &dy.shape, stride)?;
    let p = params(gpu, words);
    let d = if shortcut_vec4(gpu, words[3], words[6]) {
        let k = kernel(gpu, SHORTCUT_KERNELS, "bwd4", accumulate as u32)?;
        let mut uploads = Vec::new();
        let mdy = mirror(gpu, dy, &mut uploads)?;
        // Overwriting reads no old dx: dy's mirror stands in for the unread binding.
        let mold = if accumulate {
            mirror(gpu, dx, &mut uploads)?
        } else {
            mdy.clone()
        };
        let res = [
            Res::Tex(&mdy.view),
            Res::Buf(&dx.buf),
            Res::Buf(&p),
            Res::Tex(&mold.view),
        ];
        Dispatch::with_uploads(gpu, &k, &res, grid_1d(dx.len() / 4, WG), uploads)?
    } else {
        let k = kernel(gpu, SHORTCUT_KERNELS, "bwd", accumulate as u32)?;
        Dispatch::new(gpu, &k, &[&dy.buf, &dx.buf, &p], grid_1d(dx.len(), WG))?
    };
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}
