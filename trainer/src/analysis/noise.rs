//! `trainer noise-eval`: accuracy and loss of checkpoints when Gaussian noise of standard
//! deviation σ is added to the *normalised* test inputs (the paper's Fig. 4).
//!
//! Noise is `σ·z` with `z ~ N(0, 1)` drawn per test image from `(seed, image index)` only, so
//! every σ and every checkpoint sees the same noise direction on the same image (and the
//! result does not depend on the batch size). σ = 0 is exactly `trainer eval`. Checkpoints run
//! on the GPU eval graph (BN in inference form, Δt from the controller).

use super::plot::{self, Panel, Series};
use super::table::{num, Cell, Table};
use crate::data::{self, Batch, Dataset, Loader, LoaderConfig, Normalization};
use crate::gpu::Gpu;
use crate::model::HostModel;
use crate::net::{GpuModel, Graph, Mode};
use crate::rng::Rng;
use crate::train::check_fits;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tsc_core::arch::ModelKind;

/// Stream id of the noise draws (`Rng::from_parts(seed, &[NOISE, image])`).
const NOISE: u64 = 0x6e6f_6973;

#[derive(Clone, Debug)]
pub struct NoiseOptions {
    /// Noise standard deviations, in units of the normalised inputs.
    pub sigmas: Vec<f32>,
    pub seed: u64,
    pub batch: usize,
    /// Use only the first `images` test images (0: all).
    pub images: usize,
}

/// One checkpoint's curve.
#[derive(Clone, Debug)]
pub struct NoiseCurve {
    pub path: PathBuf,
    pub label: String,
    pub points: Vec<NoisePoint>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoisePoint {
    pub sigma: f32,
    pub loss: f64,
    pub accuracy: f64,
    pub samples: u64,
}

/// Reject an empty list and negative or non-finite levels.
pub fn check_sigmas(sigmas: &[f32]) -> Result<()> {
    if sigmas.is_empty() {
        bail!("empty --sigma list: give the noise levels, e.g. --sigma 0,0.1,0.2,0.5,1");
    }
    if let Some(s) = sigmas.iter().find(|s| !s.is_finite() || **s < 0.0) {
        bail!("noise level {s} is not a standard deviation (must be finite and ≥ 0)");
    }
    Ok(())
}

/// Read checkpoints and check that they are training checkpoints (not folded models).
pub fn read_checkpoints(paths: &[PathBuf]) -> Result<Vec<HostModel>> {
    if paths.is_empty() {
        bail!("no checkpoint given");
    }
    paths
        .iter()
        .map(|p| {
            let bytes = crate::tools::read_model(p)?;
            let m = tsc_core::Model::parse(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            if m.kind() != ModelKind::Checkpoint {
                bail!(
                    "{} is a folded (exported) model: give the training checkpoint",
                    p.display()
                );
            }
            HostModel::decode(&bytes).with_context(|| format!("invalid checkpoint {}", p.display()))
        })
        .collect()
}

/// Standard normal noise of every image of `batch`, from `(seed, dataset index)`.
fn noise_of(batch: &Batch, seed: u64) -> Vec<f32> {
    let per = batch.images.len() / batch.len().max(1);
    let mut z = Vec::with_capacity(batch.images.len());
    for &i in &batch.indices {
        let mut r = Rng::from_parts(seed, &[NOISE, i as u64]);
        z.extend((0..per).map(|_| r.normal()));
    }
    z
}

/// The noisy inputs of `batch` at `sigma`: its normalised images plus `sigma ·` the
/// standard normal noise of [`noise_of`] (so the same image gets the same noise direction at
/// every σ and for every checkpoint).
pub fn add_noise(batch: &Batch, seed: u64, sigma: f32) -> Vec<f32> {
    let z = noise_of(batch, seed);
    batch
        .images
        .iter()
        .zip(z)
        .map(|(x, z)| x + sigma * z)
        .collect()
}

/// Evaluate every checkpoint at every σ on `test`.
pub fn noise_eval(
    gpu: &Gpu,
    paths: &[PathBuf],
    models: &[HostModel],
    test: &Dataset,
    opts: &NoiseOptions,
) -> Result<Vec<NoiseCurve>> {
    check_sigmas(&opts.sigmas)?;
    let test = if opts.images > 0 && opts.images < test.len() {
        test.subset(&(0..opts.images).collect::<Vec<_>>())
    } else {
        test.clone()
    };
    let n = test.len();
    if n == 0 {
        bail!("the test split is empty");
    }
    let test = Arc::new(test);
    let batch = opts.batch.clamp(1, n);
    // Each checkpoint sees the split once per σ: a short run's cheap-to-compile kernels.
    gpu.set_expected_images((n * opts.sigmas.len().max(1)) as u64);
    let mut curves = Vec::new();
    for (path, host) in paths.iter().zip(models) {
        check_fits(
            &host.arch,
            &host.class_names,
            &test,
            &format!("checkpoint {}", path.display()),
        )?;
        let a = &host.arch;
        let norm = Normalization {
            mean: a.mean[..a.input.c].to_vec(),
            std: a.std[..a.input.c].to_vec(),
        };
        let loader = Loader::new(test.clone(), norm, LoaderConfig::eval(batch))?;
        let batches: Vec<Batch> = loader.epoch(0).collect();
        let m = GpuModel::new(gpu, host, 0.0, 0.0)?;
        let full = Graph::new(gpu, &m, batch, Mode::Eval)?;
        let rest = if n % batch > 0 {
            Some(Graph::new(gpu, &m, n % batch, Mode::Eval)?)
        } else {
            None
        };
        gpu.prepare()?;
        let mut points = Vec::new();
        for &sigma in &opts.sigmas {
            full.reset_metrics(gpu);
            if let Some(r) = &rest {
                r.reset_metrics(gpu);
            }
            for b in &batches {
                let g = if b.len() == batch {
                    &full
                } else {
                    rest.as_ref()
                        .ok_or_else(|| anyhow!("unexpected partial batch"))?
                };
                let noisy = add_noise(b, opts.seed, sigma);
                g.load(gpu, &noisy, &b.labels)?;
                g.run(gpu, &m);
            }
            let (l1, c1, n1) = full.read_metrics(gpu)?;
            let (l2, c2, n2) = match &rest {
                Some(r) => r.read_metrics(gpu)?,
                None => (0.0, 0, 0),
            };
            let total = (n1 + n2).max(1);
            points.push(NoisePoint {
                sigma,
                loss: (l1 * n1 as f64 + l2 * n2 as f64) / total as f64,
                accuracy: (c1 + c2) as f64 / total as f64,
                samples: n1 + n2,
            });
        }
        curves.push(NoiseCurve {
            path: path.clone(),
            label: super::checkpoint_label(path, &host.arch),
            points,
        });
    }
    Ok(curves)
}

/// One row per (checkpoint, σ).
pub fn table(curves: &[NoiseCurve]) -> Table {
    let mut t = Table::new(vec![
        super::table::col("checkpoint", "checkpoint"),
        num("σ", "sigma", 2),
        super::table::col("images", "images"),
        num("accuracy %", "accuracy", 2),
        num("loss", "loss", 4),
    ]);
    for c in curves {
        for p in &c.points {
            t.push(vec![
                Cell::from(c.label.clone()),
                p.sigma.into(),
                p.samples.into(),
                Cell::Num(100.0 * p.accuracy),
                p.loss.into(),
            ]);
        }
    }
    t
}

/// Accuracy and loss against σ, one curve per checkpoint.
pub fn plot(curves: &[NoiseCurve], path: &Path) -> Result<()> {
    let series = |f: fn(&NoisePoint) -> f64| {
        curves
            .iter()
            .map(|c| Series {
                label: c.label.clone(),
                points: c.points.iter().map(|p| (p.sigma as f64, f(p))).collect(),
                band: None,
            })
            .collect::<Vec<_>>()
    };
    let acc = Panel {
        title: "Test accuracy under input noise".into(),
        x_label: "noise σ (normalised input units)".into(),
        y_label: "accuracy (%)".into(),
        series: series(|p| 100.0 * p.accuracy),
    };
    let loss = Panel {
        title: "Test loss under input noise".into(),
        x_label: "noise σ (normalised input units)".into(),
        y_label: "cross-entropy loss".into(),
        series: series(|p| p.loss),
    };
    plot::write_png(path, &[acc, loss], 640, 480)
}

/// The whole command: check the input, evaluate, print the table, write `noise.csv` and
/// `noise.png` into `out`.
pub fn command(
    make_gpu: impl FnOnce() -> Result<Gpu>,
    paths: &[PathBuf],
    cfg: &crate::config::TrainConfig,
    opts: &NoiseOptions,
    out: &Path,
) -> Result<Vec<NoiseCurve>> {
    check_sigmas(&opts.sigmas)?;
    let models = read_checkpoints(paths)?;
    let test = data::load_split(&cfg.dataset_spec()?, data::Split::Test)?;
    for (p, m) in paths.iter().zip(&models) {
        check_fits(
            &m.arch,
            &m.class_names,
            &test,
            &format!("checkpoint {}", p.display()),
        )?;
    }
    let gpu = make_gpu()?;
    let curves = noise_eval(&gpu, paths, &models, &test, opts)?;
    let t = table(&curves);
    print!("{}", t.render());
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (csv, png) = (out.join("noise.csv"), out.join("noise.png"));
    t.write_csv(&csv)?;
    plot(&curves, &png)?;
    println!("wrote {} and {}", csv.display(), png.display());
    Ok(curves)
}
