//! `trainer grad CHECKPOINT --out GRADS.tscm`: the loss and the gradient of every parameter
//! for one training batch, computed on the GPU by the training graph's forward and backward
//! (no optimizer step), written in core's model format under the checkpoint's tensor names.
//!
//! The batch is the one training draws: batch `--step K` of epoch `--epoch E` in the seed's
//! shuffled order, augmented as the run's config says; with `--no-shuffle`, batch K in dataset
//! order without augmentation (K = 0: the first N images of the training split). BatchNorm
//! uses the batch's statistics, as a training step does.
//!
//! What the file holds, per tensor of the checkpoint:
//! - parameters: dL/dw of the batch's mean cross-entropy, weight decay not included (the
//!   optimizer adds `wd·w`; see `gpu/optim.rs`);
//! - BN running mean and variance: zeros. They are buffers, not parameters: the training loss
//!   does not depend on them, so zero is their exact gradient. The step's update of them
//!   happens on the GPU copy only; the checkpoint file is only read.
//! - `meta.loss`: the batch's mean loss (f32), also printed.

use crate::config::TrainConfig;
use crate::data::{self, Batch, Dataset, Loader, LoaderConfig, Normalization};
use crate::gpu::Gpu;
use crate::model::{check_out, HostModel, HostTensor};
use crate::net::{GpuModel, Graph, Mode};
use crate::train::{check_fits, run_images};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Which batch `grad` differentiates.
#[derive(Clone, Copy, Debug)]
pub struct GradOptions {
    /// Images per batch (as training, at most the training split's size).
    pub batch: usize,
    /// The run's seed: shuffling and augmentation derive from it.
    pub seed: u64,
    pub epoch: u64,
    /// Batch index within the epoch.
    pub step: usize,
    /// false: dataset order, no augmentation.
    pub shuffle: bool,
}

/// The loss of one batch and the gradient of every checkpoint tensor.
pub struct Gradients {
    /// Mean cross-entropy of the batch as the GPU summed it (f32 sum, divided in f64).
    pub loss: f64,
    /// Dataset indices of the batch's images, in batch order.
    pub indices: Vec<usize>,
    /// The checkpoint's tensors, holding gradients (see the module docs).
    pub model: HostModel,
}

/// The batch training draws at (`epoch`, `step`), or batch `step` in dataset order.
pub fn training_batch(
    ds: Dataset,
    norm: Normalization,
    cfg: &TrainConfig,
    o: &GradOptions,
) -> Result<Batch> {
    let n = ds.len();
    let mut lc = LoaderConfig::train(o.batch.min(n), o.seed, o.shuffle && cfg.augment_on());
    lc.shuffle = o.shuffle;
    lc.threads = 0;
    let loader = Loader::new(Arc::new(ds), norm, lc)?;
    let batches = loader.batches_per_epoch();
    if o.step >= batches {
        bail!(
            "--step {}: an epoch of the {n} training images has {batches} batches of {} (steps 0..={})",
            o.step,
            o.batch.min(n),
            batches - 1
        );
    }
    Ok(loader.batch(o.epoch, o.step))
}

/// Forward and backward of the training graph on `b`; `images` is the run length that picks
/// the kernels (`train::run_images`), so the gradient is the one the run's step computed.
pub fn gradients(gpu: &Gpu, host: &HostModel, b: &Batch, images: u64) -> Result<Gradients> {
    gpu.set_expected_images(images);
    let m = GpuModel::new(gpu, host, 0.0, 0.0)?;
    let g = Graph::new(gpu, &m, b.len(), Mode::Train)?;
    gpu.prepare()?;
    g.load(gpu, &b.images, &b.labels)?;
    g.reset_metrics(gpu);
    let mut rec = gpu.recorder();
    g.record_gradients(&m, &mut rec);
    rec.submit();
    let (loss, _, _) = g.read_metrics(gpu)?;
    if !loss.is_finite() {
        bail!("the loss of this batch is {loss}: no gradient to write");
    }
    let mut out = host.clone();
    out.extras.clear();
    for t in out.tensors.iter_mut() {
        t.data = if m.buffers.contains_key(&t.name) {
            vec![0.0; t.data.len()]
        } else {
            let p = m.params.iter().find(|p| p.name == t.name);
            let p = p.with_context(|| format!("the GPU model has no parameter {}", t.name))?;
            gpu.download(&p.grad)?
        };
    }
    out.extras.push(HostTensor {
        name: "meta.loss".into(),
        shape: vec![1],
        data: vec![loss as f32],
    });
    Ok(Gradients {
        loss,
        indices: b.indices.clone(),
        model: out,
    })
}

/// `trainer grad`: check the paths, draw the batch, differentiate, write `out` atomically.
pub fn command(
    gpu: &Gpu,
    checkpoint: &Path,
    cfg: &TrainConfig,
    o: &GradOptions,
    out: &Path,
) -> Result<Gradients> {
    check_out(checkpoint, out)?;
    let host = HostModel::load(checkpoint)?;
    let (train_ds, _) = data::load(&cfg.dataset_spec()?)?;
    check_fits(&host.arch, &host.class_names, &train_ds, "the checkpoint")?;
    let a = &host.arch;
    let norm = Normalization {
        mean: a.mean[..a.input.c].to_vec(),
        std: a.std[..a.input.c].to_vec(),
    };
    let n = train_ds.len();
    let batch = training_batch(train_ds, norm, cfg, o)?;
    let per_epoch = n / batch.len();
    let g = gradients(gpu, &host, &batch, run_images(cfg, per_epoch, batch.len()))?;
    g.model.save(out)?;
    Ok(g)
}
