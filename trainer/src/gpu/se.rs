//! Squeeze-excitation (SE) on a residual branch's tail (`shaders/squeeze_excite.wgsl`, with
//! `shaders/activation.wgsl`'s accurate sigmoid prepended). The SE's squeeze (global average
//! pool) and its two fully connected layers are `pool` and `linear`; this module is the gate
//! and the block tail it scales.
//!
//! # API (build once, replay with `op.record(&mut rec)`)
//! Shapes: `z`, `sc`, `y` (and their gradients) NHWC `[N][H][W][C]`, `P = H·W`; the gate `g`
//! and its pre-activation `a` `[N][C]` (any shape with `N·C` elements, first dimension `N`,
//! last `C`, e.g. `[N][1][1][C]`); `dt` `[C]`. Every output is overwritten and must be a buffer
//! of its own (not one of the op's inputs).
//! - [`se_gate_forward`]`(gpu, a, g)`: `g = σ(a)` elementwise.
//! - [`se_residual_forward`]`(gpu, z, g, dt, sc, y)`:
//!   `y[n,p,c] = max(0, sc[n,p,c] + Δt[c] · z[n,p,c] · g[n,c])`.
//! - [`se_residual_backward`]`(gpu, dy, y, z, g, dt, dsc, dz, da, ddt)`: with `m = dy·[y > 0]`,
//!   `dsc = m`, `dz = m · Δt[c] · g[n,c]`, `q[n,c] = Σ_p m · z`,
//!   `da[n,c] = Δt[c] · q · g · (1 − g)` (the gradient w.r.t. the gate's pre-activation `a`),
//!   `ddt[c] = Σ_n g · q`. Two dispatches: one pass over `dy`, `y`, `z` writing `dsc`, `dz` and
//!   per-(n, pixel chunk, channel) partials of `q` (one chunk when `N·C` alone gives about 16K
//!   invocations), then one invocation per channel adding the chunks in order. Deterministic.
//!
//! The SE's pooled-input gradient adds onto `dz` with
//! `pool::gap_backward(gpu, d_pooled, dz, true)` (accumulate).

use super::reduce::{chunking, kernel, params, KernelSpec, Op, WG};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = concat!(
    include_str!("../../../shaders/activation.wgsl"),
    include_str!("../../../shaders/squeeze_excite.wgsl")
);

/// Every kernel of `squeeze_excite.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "squeeze_excite",
        source: SRC,
        entry: "gate_fwd",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "squeeze_excite",
        source: SRC,
        entry: "fwd",
        modes: &[0],
        slots: &[R, R, R, R, W, U],
    },
    KernelSpec {
        file: "squeeze_excite",
        source: SRC,
        entry: "bwd_partial",
        modes: &[0],
        slots: &[R, R, R, R, R, W, W, W, U],
    },
    KernelSpec {
        file: "squeeze_excite",
        source: SRC,
        entry: "bwd_finalize",
        modes: &[0],
        slots: &[R, R, R, W, W, U],
    },
];

/// `(N, P, C)` of the NHWC activation `z`, checked against `[N][C]` gate-shaped `g` and `dt`.
fn dims(op: &str, z: &Tensor, g: &Tensor, dt: &Tensor) -> Result<(usize, usize, usize)> {
    ensure!(
        z.shape.len() == 4,
        "{op}: activations must be NHWC (4-D), got {:?}",
        z.shape
    );
    let (n, p, c) = (z.shape[0], z.shape[1] * z.shape[2], z.shape[3]);
    ensure!(
        n > 0 && p > 0 && c > 0,
        "{op}: activation shape {:?} has an empty dimension",
        z.shape
    );
    ensure!(
        n * p * c <= u32::MAX as usize,
        "{op}: {:?} has more elements than u32 indices reach",
        z.shape
    );
    gate_shaped(op, "g", g, n, c)?;
    ensure!(
        dt.len() == c,
        "{op}: dt has {} elements, C = {c} (activation {:?})",
        dt.len(),
        z.shape
    );
    Ok((n, p, c))
}

/// `t` holds `N·C` elements, first dimension `N`, last `C`.
fn gate_shaped(op: &str, name: &str, t: &Tensor, n: usize, c: usize) -> Result<()> {
    let s = &t.shape;
    ensure!(
        t.len() == n * c && s.first() == Some(&n) && s.last() == Some(&c),
        "{op}: {name} has shape {s:?}, expected [{n}, {c}]"
    );
    Ok(())
}

/// `t` has exactly `shape` (`what` names the tensor it must match).
fn same_shape(op: &str, name: &str, t: &Tensor, shape: &[usize], what: &str) -> Result<()> {
    ensure!(
        t.shape == shape,
        "{op}: {name} has shape {:?}, {what} {shape:?}",
        t.shape
    );
    Ok(())
}

/// `g = σ(a)` elementwise (activation.wgsl's sigmoid, accurate to a few ulp over all of f32).
pub fn se_gate_forward(gpu: &Gpu, a: &Tensor, g: &Tensor) -> Result<Op> {
    ensure!(
        a.shape == g.shape,
        "se_gate_forward: a has shape {:?}, g {:?} (must match)",
        a.shape,
        g.shape
    );
    let len = a.len();
    ensure!(len > 0, "se_gate_forward: empty gate");
    ensure!(
        len <= u32::MAX as usize,
        "se_gate_forward: {len} elements exceed u32 indices"
    );
    // The kernel covers n·C elements: n = len, C = 1.
    let p = params(gpu, [len as u32, 1, 1, 0, 0, 0, 0, 0]);
    let k = kernel(gpu, KERNELS, "gate_fwd", 0)?;
    let d = Dispatch::new(gpu, &k, &[&a.buf, &g.buf, &p], grid_1d(len, WG))?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// `y[n,p,c] = max(0, sc[n,p,c] + Δt[c] · z[n,p,c] · g[n,c])`.
pub fn se_residual_forward(
    gpu: &Gpu,
    z: &Tensor,
    g: &Tensor,
    dt: &Tensor,
    sc: &Tensor,
    y: &Tensor,
) -> Result<Op> {
    const OP: &str = "se_residual_forward";
    let (n, hw, c) = dims(OP, z, g, dt)?;
    same_shape(OP, "sc", sc, &z.shape, "z")?;
    same_shape(OP, "y", y, &z.shape, "z")?;
    let total = n * hw * c;
    let p = params(
        gpu,
        [n as u32, hw as u32, c as u32, 0, 0, total as u32, 0, 0],
    );
    let k = kernel(gpu, KERNELS, "fwd", 0)?;
    let d = Dispatch::new(
        gpu,
        &k,
        &[&z.buf, &g.buf, &dt.buf, &sc.buf, &y.buf, &p],
        grid_1d(total, WG),
    )?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// Backward of [`se_residual_forward`] given the forward's `y`, `z`, `g`, `dt`: overwrites
/// `dsc` and `dz` (shaped like `z`), `da` (shaped like `g`: the gradient w.r.t. the gate's
/// pre-activation) and `ddt` (`[C]`).
#[allow(clippy::too_many_arguments)]
pub fn se_residual_backward(
    gpu: &Gpu,
    dy: &Tensor,
    y: &Tensor,
    z: &Tensor,
    g: &Tensor,
    dt: &Tensor,
    dsc: &Tensor,
    dz: &Tensor,
    da: &Tensor,
    ddt: &Tensor,
) -> Result<Op> {
    const OP: &str = "se_residual_backward";
    let (n, hw, c) = dims(OP, z, g, dt)?;
    for (name, t) in [("dy", dy), ("y", y), ("dsc", dsc), ("dz", dz)] {
        same_shape(OP, name, t, &z.shape, "z")?;
    }
    gate_shaped(OP, "da", da, n, c)?;
    ensure!(
        ddt.len() == c,
        "{OP}: ddt has {} elements, C = {c}",
        ddt.len()
    );
    // Pixel chunks per image: about 16K stage-one invocations over N·C columns.
    let (chunk, nchunks) = chunking(hw, n * c);
    let p = params(
        gpu,
        [
            n as u32,
            hw as u32,
            c as u32,
            chunk,
            nchunks,
            (n * hw * c) as u32,
            0,
            0,
        ],
    );
    let parts = n * nchunks as usize * c;
    let part = gpu.zeros(&[parts]).buf;
    let k1 = kernel(gpu, KERNELS, "bwd_partial", 0)?;
    let k2 = kernel(gpu, KERNELS, "bwd_finalize", 0)?;
    let d1 = Dispatch::new(
        gpu,
        &k1,
        &[
            &dy.buf, &y.buf, &z.buf, &g.buf, &dt.buf, &dsc.buf, &dz.buf, &part, &p,
        ],
        grid_1d(parts, WG),
    )?;
    let d2 = Dispatch::new(
        gpu,
        &k2,
        &[&part, &g.buf, &dt.buf, &da.buf, &ddt.buf, &p],
        grid_1d(c, WG),
    )?;
    Ok(Op {
        dispatches: vec![d1, d2],
        scratch: vec![p, part],
    })
}
