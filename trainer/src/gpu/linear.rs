//! Fully connected layer `y = x · Wᵀ + b` (`shaders/linear.wgsl`); W is `[out][in]` row-major.
//! Sized for the head (batch × 64 → 10): one invocation per output, plain loops.
//!
//! # API
//! - [`linear_forward`]`(gpu, x [N][IN], w [OUT][IN], b [OUT], y [N][OUT])`.
//! - [`linear_backward`]`(gpu, dy, x, w, dx: Option<&Tensor>, dw, db)`: overwrites `dw`, `db`
//!   and, when given, `dx`.

use super::reduce::{kernel, params, KernelSpec, Op, WG};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/linear.wgsl");
/// Every kernel of `linear.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "linear",
        source: SRC,
        entry: "fwd",
        modes: &[0],
        slots: &[R, R, R, W, U],
    },
    KernelSpec {
        file: "linear",
        source: SRC,
        entry: "bwd_x",
        modes: &[0],
        slots: &[R, R, W, U],
    },
    KernelSpec {
        file: "linear",
        source: SRC,
        entry: "bwd_w",
        modes: &[0],
        slots: &[R, R, W, W, U],
    },
];

fn dims(x: &Tensor, w: &Tensor) -> Result<(usize, usize, usize)> {
    ensure!(
        w.shape.len() == 2,
        "linear: weight must be [out][in], got {:?}",
        w.shape
    );
    let (fout, fin) = (w.shape[0], w.shape[1]);
    ensure!(
        fin > 0 && x.len().is_multiple_of(fin),
        "linear: x {:?} is not [N][{fin}]",
        x.shape
    );
    Ok((x.len() / fin, fin, fout))
}

/// `y = x · Wᵀ + b`.
pub fn linear_forward(gpu: &Gpu, x: &Tensor, w: &Tensor, b: &Tensor, y: &Tensor) -> Result<Op> {
    let (n, fin, fout) = dims(x, w)?;
    ensure!(
        b.len() == fout && y.len() == n * fout,
        "linear_forward: b/y sizes"
    );
    let p = params(gpu, [n as u32, fin as u32, fout as u32, 0, 0, 0, 0, 0]);
    let k = kernel(gpu, KERNELS, "fwd", 0)?;
    let d = Dispatch::new(
        gpu,
        &k,
        &[&x.buf, &w.buf, &b.buf, &y.buf, &p],
        grid_1d(n * fout, WG),
    )?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}

/// `dx = dy · W`, `dW = dyᵀ · x`, `db = Σ_n dy`.
pub fn linear_backward(
    gpu: &Gpu,
    dy: &Tensor,
    x: &Tensor,
    w: &Tensor,
    dx: Option<&Tensor>,
    dw: &Tensor,
    db: &Tensor,
) -> Result<Op> {
    let (n, fin, fout) = dims(x, w)?;
    ensure!(
        dy.len() == n * fout && dw.len() == w.len() && db.len() == fout,
        "linear_backward: sizes"
    );
    let p = params(gpu, [n as u32, fin as u32, fout as u32, 0, 0, 0, 0, 0]);
    let mut dispatches = Vec::new();
    let kw = kernel(gpu, KERNELS, "bwd_w", 0)?;
    dispatches.push(Dispatch::new(
        gpu,
        &kw,
        &[&dy.buf, &x.buf, &dw.buf, &db.buf, &p],
        grid_1d(fout * fin, WG),
    )?);
    if let Some(dx) = dx {
        ensure!(dx.len() == x.len(), "linear_backward: dx size");
        let kx = kernel(gpu, KERNELS, "bwd_x", 0)?;
        dispatches.push(Dispatch::new(
            gpu,
            &kx,
            &[&dy.buf, &w.buf, &dx.buf, &p],
            grid_1d(n * fin, WG),
        )?);
    }
    Ok(Op {
        dispatches,
        scratch: vec![p],
    })
}
