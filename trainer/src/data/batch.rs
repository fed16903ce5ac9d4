//! Batches: normalisation, augmentation, shuffling, and the background [`Loader`].
//!
//! A batch is `n` images as NHWC `f32` plus their labels. Each pixel `v` (a stored `u8`) of
//! channel `c` becomes `(v * scale - mean[c]) / std[c]`, with `mean`/`std` the per-channel
//! statistics of the training set ([`Normalization::from_dataset`]).
//!
//! Augmentation (He et al. 2016, CIFAR): pad 4 pixels of zeros (black, i.e. stored value 0,
//! before normalisation, as torchvision's `RandomCrop(32, padding=4)`), take a random crop of
//! the original size, flip it horizontally with probability 1/2.
//!
//! Reproducibility: the sample order of epoch `e` comes from
//! `Rng::from_parts(seed, &[SHUFFLE_STREAM, e])`, and the augmentation of batch `b` of epoch `e`
//! from `Rng::from_parts(seed, &[AUGMENT_STREAM, e, b])`. No generator is shared between
//! threads, so the batches are the same whatever the number of threads and their timing.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Result};

use super::Dataset;
use crate::rng::Rng;

/// Stream id for the per-epoch permutation.
pub const SHUFFLE_STREAM: u64 = 0x5348_5546;
/// Stream id for per-batch augmentation.
pub const AUGMENT_STREAM: u64 = 0x4155_474D;

/// Per-channel mean and standard deviation of intensities in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// Mean and (population) standard deviation per channel over every pixel of `ds`,
    /// computed exactly from a histogram of the `u8` values. A channel with (near) zero spread
    /// gets `std = 1`.
    pub fn from_dataset(ds: &Dataset) -> Self {
        let c = ds.channels();
        let mut hist = vec![[0u64; 256]; c];
        for px in ds.images.chunks_exact(c) {
            for (h, &v) in hist.iter_mut().zip(px) {
                h[v as usize] += 1;
            }
        }
        let scale = ds.scale as f64;
        let mut mean = Vec::with_capacity(c);
        let mut std = Vec::with_capacity(c);
        for h in &hist {
            let n: u64 = h.iter().sum();
            if n == 0 {
                mean.push(0.0);
                std.push(1.0);
                continue;
            }
            let (mut s, mut s2) = (0f64, 0f64);
            for (v, &k) in h.iter().enumerate() {
                let x = v as f64 * scale;
                s += x * k as f64;
                s2 += x * x * k as f64;
            }
            let m = s / n as f64;
            let var = (s2 / n as f64 - m * m).max(0.0);
            let sd = var.sqrt();
            mean.push(m as f32);
            std.push(if sd < 1e-6 { 1.0 } else { sd as f32 });
        }
        Normalization { mean, std }
    }

    /// Mean 0, std 1: intensities pass through unchanged.
    pub fn identity(channels: usize) -> Self {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Lookup table `[c][v]` -> normalised value of stored pixel `v` in channel `c`.
    pub fn table(&self, scale: f32) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| {
                let mut t = [0f32; 256];
                for (v, o) in t.iter_mut().enumerate() {
                    *o = (v as f32 * scale - m) / s;
                }
                t
            })
            .collect()
    }

    /// Normalises one HWC image of stored `u8` pixels (with the dataset's `scale`) into `out`.
    pub fn normalize_into(&self, img: &[u8], scale: f32, out: &mut [f32]) {
        let c = self.channels();
        for (i, (o, &v)) in out.iter_mut().zip(img).enumerate() {
            let ch = i % c;
            *o = (v as f32 * scale - self.mean[ch]) / self.std[ch];
        }
    }
}

/// The paper's augmentation of one HWC image `src` of `shape = (h, w, c)`: conceptually pad
/// `pad` pixels of zeros on each side, crop `h x w` at offset `(oy, ox)` of the padded image
/// (`0 ..= 2*pad` each; `(pad, pad)` is the original), then mirror left-right if `flip`.
/// Writes the result (same shape) into `dst`.
#[allow(clippy::too_many_arguments)]
pub fn augment_into(
    src: &[u8],
    shape: (usize, usize, usize),
    pad: usize,
    oy: usize,
    ox: usize,
    flip: bool,
    dst: &mut [u8],
) {
    let (h, w, c) = shape;
    for y in 0..h {
        let sy = (y + oy) as isize - pad as isize;
        for x in 0..w {
            let cx = if flip { w - 1 - x } else { x };
            let sx = (cx + ox) as isize - pad as isize;
            let o = (y * w + x) * c;
            if sy >= 0 && (sy as usize) < h && sx >= 0 && (sx as usize) < w {
                let s = (sy as usize * w + sx as usize) * c;
                dst[o..o + c].copy_from_slice(&src[s..s + c]);
            } else {
                dst[o..o + c].fill(0);
            }
        }
    }
}

/// [`augment_into`] returning a new image.
pub fn augment_image(
    src: &[u8],
    shape: (usize, usize, usize),
    pad: usize,
    oy: usize,
    ox: usize,
    flip: bool,
) -> Vec<u8> {
    let mut dst = vec![0u8; shape.0 * shape.1 * shape.2];
    augment_into(src, shape, pad, oy, ox, flip, &mut dst);
    dst
}

/// How a [`Loader`] makes batches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Visit the samples in a new seeded random order every epoch (else in dataset order).
    pub shuffle: bool,
    /// Random crop of the zero-padded image and random horizontal flip.
    pub augment: bool,
    /// Padding of the random crop (the paper: 4).
    pub pad: usize,
    /// Leave out the last batch when it would be smaller than `batch_size` (training); when
    /// false the last batch may be partial (evaluation).
    pub drop_last: bool,
    /// The run's seed (`--seed`).
    pub seed: u64,
    /// CPU threads preparing batches in the background; 0 prepares each batch on the calling
    /// thread when the iterator is advanced.
    pub threads: usize,
    /// Finished batches each worker may hold ahead of the consumer (at least 1).
    pub queue: usize,
}

impl LoaderConfig {
    /// Training: shuffled, `drop_last`, 2 worker threads, augmentation as given (see
    /// [`super::DatasetKind::default_augment`]).
    pub fn train(batch_size: usize, seed: u64, augment: bool) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: true,
            augment,
            pad: 4,
            drop_last: true,
            seed,
            threads: 2,
            queue: 2,
        }
    }

    /// Evaluation: dataset order, no augmentation, final partial batch kept, 1 worker thread.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig {
            batch_size,
            shuffle: false,
            augment: false,
            pad: 4,
            drop_last: false,
            seed: 0,
            threads: 1,
            queue: 2,
        }
    }
}

/// One batch: `labels.len()` images, NHWC `f32`, normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Position of the batch in its epoch.
    pub index: usize,
    /// `len() * h * w * c` values, NHWC.
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Dataset indices of the images, in batch order.
    pub indices: Vec<usize>,
    /// `(h, w, c)` of each image.
    pub shape: (usize, usize, usize),
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

struct Inner {
    data: Arc<Dataset>,
    table: Vec<[f32; 256]>,
    cfg: LoaderConfig,
}

impl Inner {
    fn batches(&self) -> usize {
        let (n, b) = (self.data.len(), self.cfg.batch_size);
        if self.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let n = self.data.len();
        if self.cfg.shuffle {
            Rng::from_parts(self.cfg.seed, &[SHUFFLE_STREAM, epoch]).permutation(n)
        } else {
            (0..n).collect()
        }
    }

    fn make(&self, order: &[usize], epoch: u64, index: usize) -> Batch {
        let bs = self.cfg.batch_size;
        let start = index * bs;
        let end = (start + bs).min(order.len());
        let indices = order[start..end].to_vec();
        let ds = &self.data;
        let per = ds.image_len();
        let c = ds.channels();
        let mut images = vec![0f32; indices.len() * per];
        let mut labels = Vec::with_capacity(indices.len());
        let mut rng = Rng::from_parts(self.cfg.seed, &[AUGMENT_STREAM, epoch, index as u64]);
        let mut scratch = vec![0u8; per];
        let span = 2 * self.cfg.pad as u64 + 1;
        for (&i, out) in indices.iter().zip(images.chunks_exact_mut(per)) {
            labels.push(ds.labels[i]);
            let src = if self.cfg.augment {
                let oy = rng.below(span) as usize;
                let ox = rng.below(span) as usize;
                let flip = rng.coin();
                augment_into(
                    ds.image(i),
                    ds.shape,
                    self.cfg.pad,
                    oy,
                    ox,
                    flip,
                    &mut scratch,
                );
                &scratch[..]
            } else {
                ds.image(i)
            };
            for (px_out, px_in) in out.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
                for ((o, &v), t) in px_out.iter_mut().zip(px_in).zip(&self.table) {
                    *o = t[v as usize];
                }
            }
        }
        Batch {
            index,
            images,
            labels,
            indices,
            shape: ds.shape,
        }
    }
}

/// Makes the batches of a dataset, epoch after epoch, on background CPU threads.
///
/// ```ignore
/// let norm = Normalization::from_dataset(&train);
/// let loader = Loader::new(Arc::new(train), norm, LoaderConfig::train(128, seed, true))?;
/// for epoch in 0..epochs {
///     for batch in loader.epoch(epoch) { /* upload batch.images, batch.labels */ }
/// }
/// ```
pub struct Loader {
    inner: Arc<Inner>,
    norm: Normalization,
}

impl Loader {
    /// Checks the configuration against the dataset.
    pub fn new(data: Arc<Dataset>, norm: Normalization, cfg: LoaderConfig) -> Result<Self> {
        if cfg.batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        if norm.channels() != data.channels() {
            bail!(
                "normalisation has {} channels, the dataset {}",
                norm.channels(),
                data.channels()
            );
        }
        if norm.std.iter().any(|&s| !(s > 0.0 && s.is_finite()))
            || norm.mean.iter().any(|m| !m.is_finite())
        {
            bail!("normalisation std must be positive and finite: {norm:?}");
        }
        if cfg.drop_last && data.len() < cfg.batch_size {
            bail!(
                "batch size {} is larger than the {} training images (no full batch)",
                cfg.batch_size,
                data.len()
            );
        }
        let table = norm.table(data.scale);
        Ok(Loader {
            inner: Arc::new(Inner { data, table, cfg }),
            norm,
        })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.inner.data
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    pub fn normalization(&self) -> &Normalization {
        &self.norm
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.inner.batches()
    }

    /// Images per epoch (those in dropped partial batches not counted).
    pub fn images_per_epoch(&self) -> usize {
        if self.inner.cfg.drop_last {
            self.inner.batches() * self.inner.cfg.batch_size
        } else {
            self.inner.data.len()
        }
    }

    /// The order in which epoch `epoch` visits the dataset.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        self.inner.order(epoch)
    }

    /// Batch `index` of epoch `epoch`, made on the calling thread (the same batch the
    /// iterator yields). Panics if `index >= batches_per_epoch()`.
    pub fn batch(&self, epoch: u64, index: usize) -> Batch {
        assert!(index < self.batches_per_epoch(), "batch index out of range");
        self.inner.make(&self.inner.order(epoch), epoch, index)
    }

    /// The batches of epoch `epoch`, in order. With `threads > 0` they are prepared ahead by
    /// worker threads (batch `b` by worker `b % threads`, each holding at most `queue` finished
    /// batches); dropping the iterator stops the workers.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let total = self.inner.batches();
        let order = Arc::new(self.inner.order(epoch));
        let threads = self.inner.cfg.threads.min(total);
        if threads == 0 {
            return EpochIter {
                next: 0,
                total,
                work: Work::Inline {
                    inner: self.inner.clone(),
                    order,
                    epoch,
                },
            };
        }
        let mut rx = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (tx, r) = sync_channel(self.inner.cfg.queue.max(1));
            let inner = self.inner.clone();
            let order = order.clone();
            let h = std::thread::Builder::new()
                .name(format!("data-{t}"))
                .spawn(move || {
                    for b in (t..total).step_by(threads) {
                        if tx.send(inner.make(&order, epoch, b)).is_err() {
                            return; // the consumer went away
                        }
                    }
                })
                .expect("cannot spawn a data loader thread");
            rx.push(r);
            handles.push(h);
        }
        EpochIter {
            next: 0,
            total,
            work: Work::Threads { rx, handles },
        }
    }
}

enum Work {
    Inline {
        inner: Arc<Inner>,
        order: Arc<Vec<usize>>,
        epoch: u64,
    },
    Threads {
        rx: Vec<Receiver<Batch>>,
        handles: Vec<JoinHandle<()>>,
    },
}

/// The batches of one epoch, in order; see [`Loader::epoch`].
pub struct EpochIter {
    next: usize,
    total: usize,
    work: Work,
}

impl Iterator for EpochIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.total {
            return None;
        }
        let b = self.next;
        self.next += 1;
        Some(match &self.work {
            Work::Inline {
                inner,
                order,
                epoch,
            } => inner.make(order, *epoch, b),
            Work::Threads { rx, .. } => rx[b % rx.len()]
                .recv()
                .expect("a data loader thread stopped unexpectedly"),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochIter {}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Work::Threads { rx, handles } = &mut self.work {
            // Closing the receivers makes blocked senders fail, so the workers return.
            rx.clear();
            for h in handles.drain(..) {
                let _ = h.join();
            }
        }
    }
}
