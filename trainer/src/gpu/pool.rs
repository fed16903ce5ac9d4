//! Pooling over NHWC: global average (`shaders/pool.wgsl`) and max pooling
//! (`shaders/maxpool.wgsl`).
//!
//! # API
//! - [`gap_forward`]`(gpu, x, y)`: `x` `[N][H][W][C]` → `y` `[N][C]`, mean over H·W.
//! - [`gap_backward`]`(gpu, dy, dx, accumulate)`: `dx[n][h][w][c] (+)= dy[n][c] / (H·W)`;
//!   `accumulate` adds onto `dx` (a squeeze-excitation unit's pooled-input gradient onto its
//!   branch's, `gpu::se`).
//! - [`Pool2d`]`{k, stride, pad}`: a k×k window geometry; [`Pool2d::out_shape`] checks it
//!   against an input and gives `[N][Ho][Wo][C]`, `Ho = (H + 2·pad − k)/stride + 1`.
//! - [`maxpool_forward`]`(gpu, x, y, argmax, pool)`: `y` = each window's max (padding never
//!   wins), `argmax` (a u32 tensor shaped like `y`, e.g. `gpu.zeros(&y.shape)`) = the flat index
//!   into `x` of the winner, ties to the first in row-major window order.
//! - [`maxpool_backward`]`(gpu, dy, argmax, dx, pool, accumulate)`: `dx[j] (+)= Σ dy[o]` over
//!   the outputs `o` with `argmax[o] = j`, as a deterministic gather (one invocation per `dx`
//!   element), so overlapping windows (`stride < k`) do not race.

use super::reduce::{kernel, params, KernelSpec, Op, WG};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/pool.wgsl");
const SRC_MAX: &str = include_str!("../../../shaders/maxpool.wgsl");
/// Every kernel of `pool.wgsl` and `maxpool.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "pool",
        source: SRC,
        entry: "gap_fwd",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "pool",
        source: SRC,
        entry: "gap_bwd",
        modes: &[0, 1],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "maxpool",
        source: SRC_MAX,
        entry: "max_fwd",
        modes: &[0],
        slots: &[R, W, W, U],
    },
    KernelSpec {
        file: "maxpool",
        source: SRC_MAX,
        entry: "max_bwd",
        modes: &[0, 1],
        slots: &[R, R, W, U],
    },
];

fn gap_params(x: &[usize], y: &[usize]) -> Result<[u32; 8]> {
    ensure!(x.len() == 4, "gap: input must be NHWC, got {x:?}");
    let (n, hw, c) = (x[0], x[1] * x[2], x[3]);
    ensure!(
        y.iter().product::<usize>() == n * c && y[0] == n && *y.last().unwrap_or(&0) == c,
        "gap: output shape {y:?} must be [{n}, {c}]"
    );
    Ok([
        n as u32,
        hw as u32,
        c as u32,
        (n * hw * c) as u32,
        0,
        0,
        0,
        0,
    ])
}

/// `y[n][c] = mean_{h,w} x[n][h][w][c]`.
pub fn gap_forward(gpu: &Gpu, x: &Tensor, y: &Tensor) -> Result<Op> {
    let words = gap_params(&x.shape, &y.shape)?;
    let p = params(gpu, words);
    let k = kernel(gpu, KERNELS, "gap_fwd", 0)?;
    let d = Dispatch::new(gpu, &k, &[&x.buf, &y.buf, &p], grid_1d(y.len(), WG))?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// `dx[n][h][w][c] = dy[n][c] / (H·W)`; added to `dx` when `accumulate`.
pub fn gap_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor, accumulate: bool) -> Result<Op> {
    let words = gap_params(&dx.shape, &dy.shape)?;
    let p = params(gpu, words);
    let k = kernel(gpu, KERNELS, "gap_bwd", accumulate as u32)?;
    let d = Dispatch::new(gpu, &k, &[&dy.buf, &dx.buf, &p], grid_1d(dx.len(), WG))?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// A k×k pooling window moved by `stride`, over an input padded by `pad` on every side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Pool2d {
    pub fn new(k: usize, stride: usize, pad: usize) -> Self {
        Pool2d { k, stride, pad }
    }

    /// The output shape `[N][Ho][Wo][C]` for NHWC input shape `x`,
    /// `Ho = (H + 2·pad − k)/stride + 1` (`Wo` alike). Errors for k = 0, stride = 0, a non-4-D
    /// or empty input, a window larger than the padded input, or one lying entirely in padding
    /// (pad ≥ k, where max pooling is undefined).
    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4]> {
        let Pool2d { k, stride, pad } = *self;
        ensure!(x.len() == 4, "max pool: input must be NHWC, got {x:?}");
        ensure!(k > 0, "max pool: kernel size must be at least 1");
        ensure!(stride > 0, "max pool: stride must be at least 1");
        ensure!(
            x.iter().all(|&d| d > 0),
            "max pool: input shape {x:?} has an empty dimension"
        );
        let (n, h, w, c) = (x[0], x[1], x[2], x[3]);
        ensure!(
            h + 2 * pad >= k && w + 2 * pad >= k,
            "max pool: {k}×{k} window larger than the padded input {}×{} (input {x:?}, pad {pad})",
            h + 2 * pad,
            w + 2 * pad
        );
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (w + 2 * pad - k) / stride + 1,
        );
        // Window starts run from −pad to (Ho−1)·stride − pad ≤ H + pad − k: with pad < k the
        // first window ends at k − 1 − pad ≥ 0 and the last starts at ≤ H − 1, so every window
        // (all of them lie in between) overlaps the input.
        ensure!(
            pad < k,
            "max pool: padding {pad} ≥ kernel size {k} puts windows entirely in padding"
        );
        ensure!(
            x.iter().product::<usize>() <= u32::MAX as usize,
            "max pool: input {x:?} too large for u32 argmax indices"
        );
        Ok([n, ho, wo, c])
    }
}

/// Checks `x`/`y`/`argmax` against `pool`; the uniform words of `maxpool.wgsl`.
fn max_params(pool: &Pool2d, x: &[usize], y: &[usize], argmax: &Tensor) -> Result<[u32; 12]> {
    let o = pool.out_shape(x)?;
    ensure!(
        y == o,
        "max pool: output shape {y:?} does not match input {x:?} with {pool:?} (expected {o:?})"
    );
    let out_len: usize = o.iter().product();
    ensure!(
        argmax.len() == out_len,
        "max pool: argmax has {} elements, the output {out_len}",
        argmax.len()
    );
    let in_len: usize = x.iter().product();
    Ok([
        x[0],
        x[1],
        x[2],
        x[3],
        o[1],
        o[2],
        pool.k,
        pool.stride,
        pool.pad,
        out_len,
        in_len,
        0,
    ]
    .map(|v| v as u32))
}

/// Max pool forward: `y` = each window's max, `argmax` (u32, shaped like `y`) = the flat index
/// into `x` of the element that won.
pub fn maxpool_forward(
    gpu: &Gpu,
    x: &Tensor,
    y: &Tensor,
    argmax: &Tensor,
    pool: Pool2d,
) -> Result<Op> {
    let words = max_params(&pool, &x.shape, &y.shape, argmax)?;
    let p = gpu.uniform(&words);
    let k = kernel(gpu, KERNELS, "max_fwd", 0)?;
    let d = Dispatch::new(
        gpu,
        &k,
        &[&x.buf, &y.buf, &argmax.buf, &p],
        grid_1d(y.len(), WG),
    )?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// Max pool backward: `dx[j] = Σ_{o: argmax[o] = j} dy[o]` (`dx` shaped like the forward's
/// `x`, `argmax` as the forward saved it); added to `dx` when `accumulate`.
pub fn maxpool_backward(
    gpu: &Gpu,
    dy: &Tensor,
    argmax: &Tensor,
    dx: &Tensor,
    pool: Pool2d,
    accumulate: bool,
) -> Result<Op> {
    let words = max_params(&pool, &dx.shape, &dy.shape, argmax)?;
    let p = gpu.uniform(&words);
    let k = kernel(gpu, KERNELS, "max_bwd", accumulate as u32)?;
    let d = Dispatch::new(
        gpu,
        &k,
        &[&dy.buf, &argmax.buf, &dx.buf, &p],
        grid_1d(dx.len(), WG),
    )?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}
