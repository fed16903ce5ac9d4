//! Softmax cross-entropy with u32 labels (`shaders/softmax_ce.wgsl`).
//!
//! # API
//! - [`softmax_ce`]`(gpu, logits [N][K], labels [N] u32, dlogits [N][K], loss [1], correct [1]
//!   u32, metrics: Option<&Tensor> [4]) -> Result<Op>`: `loss[0]` = mean over the batch of
//!   `logsumexp(z) − z[label]`, `dlogits` = its gradient `(softmax − onehot) / N`, `correct[0]` =
//!   number of samples whose top-1 (ties: lowest index) equals the label. With `metrics`, also
//!   `metrics += [Σ loss_n, #correct, N, 1]` (f32) so the loop reads back once per epoch; zero
//!   it with `gpu.fill(&metrics, 0.0)` at the start of an epoch. Labels must be `< K`.

use super::reduce::{dummy, kernel, params, KernelSpec, Op, WG};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/softmax_ce.wgsl");
/// Every kernel of `softmax_ce.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "softmax_ce",
        source: SRC,
        entry: "per_sample",
        modes: &[0],
        slots: &[R, R, W, W, U],
    },
    KernelSpec {
        file: "softmax_ce",
        source: SRC,
        entry: "finish",
        modes: &[0, 1],
        slots: &[R, W, W, W, U],
    },
];

/// Mean loss, dlogits and correct count of one batch; see the module docs.
pub fn softmax_ce(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    dlogits: &Tensor,
    loss: &Tensor,
    correct: &Tensor,
    metrics: Option<&Tensor>,
) -> Result<Op> {
    let n = labels.len();
    ensure!(
        n > 0 && logits.len().is_multiple_of(n),
        "softmax_ce: logits {:?} vs {n} labels",
        logits.shape
    );
    let k = logits.len() / n;
    ensure!(
        k > 0 && dlogits.len() == logits.len(),
        "softmax_ce: dlogits size"
    );
    ensure!(
        !loss.is_empty() && !correct.is_empty(),
        "softmax_ce: loss/correct need 1 element"
    );
    if let Some(m) = metrics {
        ensure!(m.len() >= 4, "softmax_ce: metrics needs 4 elements");
    }
    let p = params(gpu, [n as u32, k as u32, 0, 0, 0, 0, 0, 0]);
    let stats = gpu.zeros(&[2 * n]).buf;
    let dm = dummy(gpu);
    let k1 = kernel(gpu, KERNELS, "per_sample", 0)?;
    let k2 = kernel(gpu, KERNELS, "finish", metrics.is_some() as u32)?;
    let d1 = Dispatch::new(
        gpu,
        &k1,
        &[&logits.buf, &labels.buf, &dlogits.buf, &stats, &p],
        grid_1d(n, WG),
    )?;
    let d2 = Dispatch::new(
        gpu,
        &k2,
        &[
            &stats,
            &loss.buf,
            &correct.buf,
            metrics.map(|m| &m.buf).unwrap_or(&dm),
            &p,
        ],
        [1, 1, 1],
    )?;
    Ok(Op {
        dispatches: vec![d1, d2],
        scratch: vec![p, stats, dm],
    })
}
