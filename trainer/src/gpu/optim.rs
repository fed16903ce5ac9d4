//! SGD with momentum, Nesterov and weight decay (`shaders/sgd.wgsl`), PyTorch semantics:
//! `g = grad + wd·w; v = μ·v + g; w -= lr·(g + μ·v)` (Nesterov) or `w -= lr·v`.
//!
//! # API
//! - [`sgd_step`]`(gpu, w, grad, v, lr, momentum, weight_decay, nesterov) -> Result<Op>`:
//!   updates `w` and the velocity `v` (same length, zero-initialised) in place. `lr` is a
//!   one-element f32 tensor the training loop rewrites (`gpu.write(&lr, &[value])`) whenever the
//!   schedule changes it; one `lr` tensor can serve every parameter.

use super::reduce::{kernel, params, KernelSpec, Op, WG};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/sgd.wgsl");
/// Every kernel of `sgd.wgsl`.
pub const KERNELS: &[KernelSpec] = &[KernelSpec {
    file: "sgd",
    source: SRC,
    entry: "step",
    modes: &[0, 1],
    slots: &[R, W, W, R, U],
}];

/// One optimizer step for one parameter tensor; see the module docs.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    gpu: &Gpu,
    w: &Tensor,
    grad: &Tensor,
    v: &Tensor,
    lr: &Tensor,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
) -> Result<Op> {
    let n = w.len();
    ensure!(
        grad.len() == n && v.len() == n,
        "sgd_step: w, grad, v lengths differ"
    );
    ensure!(!lr.is_empty(), "sgd_step: lr needs one element");
    let p = params(
        gpu,
        [
            n as u32,
            momentum.to_bits(),
            weight_decay.to_bits(),
            0,
            0,
            0,
            0,
            0,
        ],
    );
    let k = kernel(gpu, KERNELS, "step", nesterov as u32)?;
    let d = Dispatch::new(
        gpu,
        &k,
        &[&grad.buf, &w.buf, &v.buf, &lr.buf, &p],
        grid_1d(n, WG),
    )?;
    Ok(Op {
        dispatches: vec![d],
        scratch: vec![p],
    })
}
