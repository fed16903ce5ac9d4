//! Global average pooling over NHWC (`shaders/pool.wgsl`).
//!
//! # API
//! - [`gap_forward`]`(gpu, x, y)`: `x` `[N][H][W][C]` → `y` `[N][C]`, mean over H·W.
//! - [`gap_backward`]`(gpu, dy, dx)`: `dx[n][h][w][c] = dy[n][c] / (H·W)` (overwrites).

use super::reduce::{kernel, params, KernelSpec, Op, WG};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/pool.wgsl");
/// Every kernel of `pool.wgsl`.
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
        modes: &[0],
        slots: &[R, W, U],
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

/// `dx[n][h][w][c] = dy[n][c] / (H·W)`.
pub fn gap_backward(gpu: &Gpu, dy: &Tensor, dx: &Tensor) -> Result<Op> {
    let words = gap_params(&dx.shape, &dy.shape)?;
    let p = params(gpu, words);
    let k = kernel(gpu, KERNELS, "gap_bwd", 0)?;
    let d = Dispatch::new(gpu, &k, &[&dy.buf, &dx.buf, &p], grid_1d(dx.len(), WG))?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}
