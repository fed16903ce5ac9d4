//! `trainer train` and `trainer eval`: the training loop, evaluation, run folders.
//!
//! A run folder holds `config.toml` (the configuration actually used), `checkpoint.tscm`
//! (core's format, rewritten atomically after every epoch, with SGD momentum as `opt.*` and
//! the number of finished epochs as `meta.epoch`), `metrics.csv` (one row per epoch) and, with
//! `--save-init`, `init.tscm` (the initialised model, written before the first step).
//! `--resume RUN` reloads all three and continues exactly where the run stopped: batches
//! depend only on (seed, epoch, batch index), so a resumed run repeats the same steps.

use crate::config::TrainConfig;
use crate::data::{self, Dataset, Loader, LoaderConfig, Normalization};
use crate::gpu::Gpu;
use crate::model::{arch_for, describe_arch, write_atomic, HostModel, HostTensor};
use crate::net::{GpuModel, Graph, Mode};
use crate::report::{csv_field, json_num, json_str, Format};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tsc_core::arch::{Arch, ModelKind, Shape3};

/// Progress output of a run: best effort, so a closed terminal or pipe (`train … | head`)
/// never stops training or checkpointing.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

pub const CHECKPOINT: &str = "checkpoint.tscm";
/// The initialised model before the first step (`train --save-init`), in the checkpoint format.
pub const INIT_CHECKPOINT: &str = "init.tscm";
pub const CONFIG: &str = "config.toml";
pub const METRICS: &str = "metrics.csv";
const METRICS_HEADER: &str =
    "epoch,train_loss,train_err,test_loss,test_err,lr,images_per_s,seconds\n";

/// One epoch's numbers.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_err: f64,
    pub test_loss: f64,
    pub test_err: f64,
    pub lr: f32,
    pub images_per_s: f64,
    pub seconds: f64,
}

/// Loss and top-1 error over a dataset.
#[derive(Clone, Copy, Debug)]
pub struct EvalStats {
    pub loss: f64,
    pub err: f64,
    pub samples: u64,
}

/// Check that a model fits a dataset: input shape, number of classes, and class names
/// (`names`, the model's), so a cat/dog model is not scored on an apple/banana folder.
/// A name that is just its index (`"3"`, what loaders use without a names file) matches
/// anything.
pub fn check_fits(arch: &Arch, names: &[String], ds: &Dataset, what: &str) -> Result<()> {
    let (h, w, c) = ds.shape;
    if arch.input != Shape3::new(h, w, c) || arch.classes != ds.classes {
        bail!(
            "{what} expects {}x{}x{} inputs and {} classes, but the dataset has {h}x{w}x{c} images and {} classes \
             (a checkpoint of another architecture or dataset?)",
            arch.input.h,
            arch.input.w,
            arch.input.c,
            arch.classes,
            ds.classes
        );
    }
    let placeholder = |i: usize, n: &str| n.is_empty() || n == i.to_string();
    let differ: Vec<String> = names
        .iter()
        .zip(&ds.class_names)
        .enumerate()
        .filter(|(i, (a, b))| a != b && !placeholder(*i, a) && !placeholder(*i, b))
        .map(|(i, (a, b))| format!("#{i} {a:?} vs {b:?}"))
        .collect();
    if !differ.is_empty() {
        let more = if differ.len() > 3 {
            format!(" and {} more", differ.len() - 3)
        } else {
            String::new()
        };
        bail!(
            "{what}'s classes are not the dataset's: {}{more} (a model of another dataset?)",
            differ[..differ.len().min(3)].join(", ")
        );
    }
    Ok(())
}

/// Evaluation graphs for a batch size and, when the dataset does not divide, its remainder.
pub struct Evaluator {
    full: Graph,
    rest: Option<Graph>,
    batch: usize,
}

impl Evaluator {
    pub fn new(gpu: &Gpu, m: &GpuModel, batch: usize, samples: usize) -> Result<Evaluator> {
        let full = Graph::new(gpu, m, batch, Mode::Eval)?;
        let r = samples % batch;
        let rest = if r > 0 {
            Some(Graph::new(gpu, m, r, Mode::Eval)?)
        } else {
            None
        };
        Ok(Evaluator { full, rest, batch })
    }

    /// Loss and error of `m` on every image of `loader`'s dataset (BN in inference form).
    pub fn run(&self, gpu: &Gpu, m: &GpuModel, loader: &Loader) -> Result<EvalStats> {
        self.full.reset_metrics(gpu);
        if let Some(r) = &self.rest {
            r.reset_metrics(gpu);
        }
        for b in loader.epoch(0) {
            let g = if b.len() == self.batch {
                &self.full
            } else {
                self.rest
                    .as_ref()
                    .ok_or_else(|| anyhow!("unexpected partial batch"))?
            };
            g.load(gpu, &b.images, &b.labels)?;
            g.run(gpu, m);
        }
        let (l1, c1, n1) = self.full.read_metrics(gpu)?;
        let (l2, c2, n2) = match &self.rest {
            Some(r) => r.read_metrics(gpu)?,
            None => (0.0, 0, 0),
        };
        let n = (n1 + n2).max(1);
        Ok(EvalStats {
            loss: (l1 * n1 as f64 + l2 * n2 as f64) / n as f64,
            err: 1.0 - (c1 + c2) as f64 / n as f64,
            samples: n1 + n2,
        })
    }
}

impl EvalStats {
    /// What `trainer eval` prints: the table line (4 decimals) or, as JSON or CSV, loss and
    /// error at full precision.
    pub fn render(&self, model: &Path, dataset: &str, format: Format) -> String {
        let m = model.to_string_lossy();
        match format {
            Format::Text => format!(
                "{}: {} test images, loss {:.4}, top-1 error {:.2}% (accuracy {:.2}%)\n",
                model.display(),
                self.samples,
                self.loss,
                100.0 * self.err,
                100.0 * (1.0 - self.err)
            ),
            Format::Json => format!(
                "{{\"model\": {}, \"dataset\": {}, \"split\": \"test\", \"samples\": {}, \"loss\": {}, \"error\": {}, \"accuracy\": {}}}\n",
                json_str(&m),
                json_str(dataset),
                self.samples,
                json_num(self.loss),
                json_num(self.err),
                json_num(1.0 - self.err)
            ),
            Format::Csv => format!(
                "model,dataset,split,samples,loss,error,accuracy\n{},{},test,{},{},{},{}\n",
                csv_field(&m),
                csv_field(dataset),
                self.samples,
                self.loss,
                self.err,
                1.0 - self.err
            ),
        }
    }
}

fn progress(len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("{}/{}", epoch + 1, epochs));
    pb
}

/// Options of one `train` call besides the config.
pub struct TrainRun<'a> {
    pub gpu: &'a Gpu,
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` from its checkpoint.
    pub resume: bool,
    /// Print a line per epoch (the progress bar shows itself only on a terminal).
    pub quiet: bool,
    /// Stop after this many finished epochs, as an interruption would (the schedule still
    /// spans `cfg.epochs`). `None`: run to the end.
    pub stop_after: Option<usize>,
    /// Write the initialised model to `run_dir/init.tscm` before the first step (new runs).
    pub save_init: bool,
}

/// Train (or resume) a run; returns the per-epoch statistics of this call.
pub fn train(cfg: &TrainConfig, run: &TrainRun) -> Result<Vec<EpochStats>> {
    cfg.validate()?;
    if run.resume && run.save_init {
        bail!("--save-init applies to a new run, not to --resume (its initial state was gone after its first step)");
    }
    let gpu = run.gpu;
    let (train_ds, test_ds) = data::load(&cfg.dataset_spec()?)?;
    if train_ds.is_empty() || test_ds.is_empty() {
        bail!("the dataset has an empty training or test split");
    }
    let norm = Normalization::from_dataset(&train_ds);
    let (h, w, c) = train_ds.shape;
    let ck_path = run.run_dir.join(CHECKPOINT);

    let mut host = if run.resume {
        let host = HostModel::load(&ck_path)?;
        check_fits(&host.arch, &host.class_names, &train_ds, "the checkpoint")?;
        check_optimizer_state(&host, &ck_path)?;
        host
    } else {
        let arch = arch_for(
            cfg,
            Shape3::new(h, w, c),
            train_ds.classes,
            &norm.mean,
            &norm.std,
        )?;
        HostModel::init(arch, train_ds.class_names.clone(), cfg.seed)?
    };
    // Before the run folder is touched: a batch the device cannot hold.
    crate::net::check_batch_fits(gpu, &host.arch, cfg.batch.min(train_ds.len()))?;
    let start_epoch = host
        .extra("meta.epoch")
        .and_then(|t| t.data.first())
        .map_or(0, |&e| e as usize);
    std::fs::create_dir_all(&run.run_dir)
        .with_context(|| format!("cannot create run folder {}", run.run_dir.display()))?;
    remove_stale_temporaries(&run.run_dir);
    write_atomic(&run.run_dir.join(CONFIG), cfg.to_toml().as_bytes())?;
    if run.save_init {
        let p = run.run_dir.join(INIT_CHECKPOINT);
        host.save(&p)?;
        if !run.quiet {
            say!("initial state: {}", p.display());
        }
    }
    let metrics_path = run.run_dir.join(METRICS);
    if !run.resume || !metrics_path.exists() {
        write_atomic(&metrics_path, METRICS_HEADER.as_bytes())?;
    } else {
        reconcile_metrics(&metrics_path, start_epoch)?;
    }
    if !run.quiet {
        say!("device: {}", gpu.describe());
        say!("model: {}", describe_arch(&host.arch));
        say!(
            "data: {} train / {} test images of {h}x{w}x{c}, {} classes; run folder {}",
            train_ds.len(),
            test_ds.len(),
            train_ds.classes,
            run.run_dir.display()
        );
        if start_epoch > 0 {
            say!("resuming after epoch {start_epoch}");
        }
    }
    if start_epoch >= cfg.epochs {
        say!("the run already has {start_epoch} of {} epochs", cfg.epochs);
        return Ok(Vec::new());
    }

    let batch = cfg.batch.min(train_ds.len());
    let test_n = test_ds.len();
    let mut lcfg = LoaderConfig::train(batch, cfg.seed, cfg.augment_on());
    lcfg.threads = cfg.workers;
    let train_loader = Loader::new(Arc::new(train_ds), norm.clone(), lcfg)?;
    let test_loader = Loader::new(
        Arc::new(test_ds),
        norm,
        LoaderConfig::eval(batch.min(test_n)),
    )?;
    let steps = steps_per_epoch(cfg, train_loader.batches_per_epoch());
    // The whole run's steps (not what is left of it), so a resumed run picks the kernels the
    // interrupted one had.
    gpu.set_expected_images(run_images(cfg, train_loader.batches_per_epoch(), batch));
    let m = GpuModel::new(gpu, &host, cfg.momentum, cfg.weight_decay)?;
    let g = Graph::new(gpu, &m, batch, Mode::Train)?;
    let eval = Evaluator::new(gpu, &m, batch.min(test_n), test_n)?;
    // Every pipeline of both graphs, compiled on all cores before the first step.
    let prepared = gpu.prepare_with(!run.quiet)?;
    if !run.quiet && prepared.kernels > 0 {
        say!("kernels: {prepared}");
    }

    let mut out = Vec::new();
    let end = run.stop_after.map_or(cfg.epochs, |e| e.min(cfg.epochs));
    for epoch in start_epoch..end {
        let t0 = Instant::now();
        g.reset_metrics(gpu);
        let pb = progress(steps, epoch, cfg.epochs);
        let mut lr = cfg.lr_at(epoch as f32);
        let mut seen = 0usize;
        for (i, b) in train_loader.epoch(epoch as u64).take(steps).enumerate() {
            lr = cfg.lr_at(epoch as f32 + i as f32 / steps as f32);
            gpu.write(&m.lr, &[lr]);
            g.load(gpu, &b.images, &b.labels)?;
            g.run(gpu, &m);
            // Reading the running sums waits for this step: the loader has the next batch
            // ready on its threads meanwhile.
            let (loss, correct, n) = g.read_metrics(gpu)?;
            if !loss.is_finite() {
                bail!(
                    "training diverged at epoch {} step {i}: loss is {loss} (try a lower --lr)",
                    epoch + 1
                );
            }
            seen += b.len();
            let ips = seen as f64 / t0.elapsed().as_secs_f64();
            pb.set_message(format!(
                "loss {loss:.4} acc {:.2}% {ips:.1} img/s",
                100.0 * correct as f64 / n.max(1) as f64
            ));
            pb.inc(1);
        }
        let train_secs = t0.elapsed().as_secs_f64();
        let (train_loss, correct, n) = g.read_metrics(gpu)?;
        let test = eval.run(gpu, &m, &test_loader)?;
        pb.finish_and_clear();
        let st = EpochStats {
            epoch: epoch + 1,
            train_loss,
            train_err: 1.0 - correct as f64 / n.max(1) as f64,
            test_loss: test.loss,
            test_err: test.err,
            lr,
            images_per_s: seen as f64 / train_secs,
            seconds: t0.elapsed().as_secs_f64(),
        };
        // The metrics row first, then the checkpoint: a crash in between leaves a row the
        // checkpoint does not have yet, which the resumed run drops (`reconcile_metrics`)
        // before it re-runs that epoch. (The other order would lose the row for good.)
        append_metrics(&metrics_path, &st)?;
        inject_fault("after-metrics", epoch + 1);
        host = m.download(gpu, &host)?;
        host.extras.retain(|t| t.name != "meta.epoch");
        host.extras.push(HostTensor {
            name: "meta.epoch".into(),
            shape: vec![1],
            data: vec![(epoch + 1) as f32],
        });
        host.save(&ck_path)?;
        if !run.quiet {
            say!(
                "epoch {:>3}/{}  train loss {:.4} err {:5.2}%  test loss {:.4} err {:5.2}%  lr {:.4}  {:.1} img/s  {:.1}s",
                st.epoch,
                cfg.epochs,
                st.train_loss,
                100.0 * st.train_err,
                st.test_loss,
                100.0 * st.test_err,
                st.lr,
                st.images_per_s,
                st.seconds
            );
        }
        out.push(st);
    }
    Ok(out)
}

/// The default run folder name: dataset, family with its size, step mode, so runs of other
/// configurations do not land on each other (`digits-cifar20-lstm`,
/// `cifar10-cifar-resnext29-w4-g8-se16-lstm`, `folder-resnet50-fixed-1`).
pub fn default_run_name(cfg: &TrainConfig) -> String {
    let mut n = format!("{}-{}", cfg.dataset, cfg.arch);
    if cfg.is_cifar_arch() {
        n += &cfg.depth.to_string();
        if cfg.width != 1.0 {
            n += &format!("-w{}", cfg.width);
        }
    }
    for (tag, v) in [
        ("g", cfg.groups),
        ("d", cfg.base_width),
        ("se", cfg.se_reduction),
    ] {
        if v != 0 {
            n += &format!("-{tag}{v}");
        }
    }
    n + "-" + &cfg.steps.replace(':', "-")
}

/// A new run may start in `dir` only if it holds no run (no config, checkpoint or metrics);
/// with `overwrite` those files are removed first. Nothing is touched when refused.
pub fn claim_run_folder(dir: &Path, overwrite: bool) -> Result<()> {
    let present: Vec<&str> = [CHECKPOINT, METRICS, CONFIG, INIT_CHECKPOINT]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    if !overwrite {
        bail!(
            "{} already holds a run ({}): --resume {} continues it, --overwrite replaces it, or give another --out",
            dir.display(),
            present.join(", "),
            dir.display()
        );
    }
    for f in present {
        std::fs::remove_file(dir.join(f))
            .with_context(|| format!("--overwrite: cannot remove {}", dir.join(f).display()))?;
    }
    Ok(())
}

/// Training steps per epoch: all batches, or `max_steps` of them.
fn steps_per_epoch(cfg: &TrainConfig, batches: usize) -> usize {
    match cfg.max_steps {
        0 => batches,
        n => n.min(batches),
    }
}

/// Images the whole run passes through its training graph. On CPU adapters this picks the
/// conv tiles (`Gpu::set_expected_images`), and the tile sets the order of the weight
/// gradients' sums: `trainer grad` uses the same number to compute the gradient the run's
/// steps compute.
pub fn run_images(cfg: &TrainConfig, batches_per_epoch: usize, batch: usize) -> u64 {
    (cfg.epochs * steps_per_epoch(cfg, batches_per_epoch) * batch) as u64
}

/// Keeps the metrics rows of epochs `1..=epochs` (the checkpoint's), in order and complete,
/// dropping a row written after the last checkpoint (and a partial last line), so the
/// resumed run's rows follow without a gap or a duplicate.
fn reconcile_metrics(path: &Path, epochs: usize) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut kept = String::from(METRICS_HEADER);
    let mut next = 1;
    for line in text.lines().skip(1) {
        let epoch = line.split(',').next().and_then(|e| e.parse::<usize>().ok());
        let complete = line.split(',').count() == METRICS_HEADER.trim_end().split(',').count();
        if epoch == Some(next) && complete && next <= epochs {
            kept.push_str(line);
            kept.push('\n');
            next += 1;
        }
    }
    if kept != text {
        write_atomic(path, kept.as_bytes())?;
    }
    Ok(())
}

/// `opt.*` momentum saved beside a tensor must match its shape and be finite: a corrupt
/// state would otherwise surface steps later as "training diverged".
fn check_optimizer_state(host: &HostModel, path: &Path) -> Result<()> {
    for t in host.extras.iter().filter(|t| t.name.starts_with("opt.")) {
        let of = &t.name["opt.".len()..];
        match host.get(of) {
            Some(p) if p.data.len() == t.data.len() => {}
            Some(_) => bail!(
                "checkpoint {}: optimizer state {} does not match {of}'s shape",
                path.display(),
                t.name
            ),
            None => bail!(
                "checkpoint {}: optimizer state {} belongs to no tensor of the model",
                path.display(),
                t.name
            ),
        }
        if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
            bail!(
                "checkpoint {}: optimizer state {} holds {} at element {i}; the weights may be \
                 fine, but resuming would diverge",
                path.display(),
                t.name,
                t.data[i]
            );
        }
    }
    Ok(())
}

/// Temporary files that killed atomic writes left in the run folder
/// (`.checkpoint.tscm.tmp<pid>-<n>`, see `model::write_atomic`): nothing will rename them.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(n) = name.to_str() else { continue };
        let ours = [CHECKPOINT, CONFIG, METRICS, INIT_CHECKPOINT]
            .iter()
            .any(|f| n.starts_with(&format!(".{f}.tmp")));
        if ours {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Test hook: `TSC_INJECT_FAULT=<point>:<epoch>` aborts the process at `point` of that
/// epoch, as a kill would (`trainer/tests/cli.rs` uses it).
fn inject_fault(point: &str, epoch: usize) {
    if let Ok(v) = std::env::var("TSC_INJECT_FAULT") {
        if v == format!("{point}:{epoch}") {
            std::process::abort();
        }
    }
}

fn append_metrics(path: &Path, s: &EpochStats) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(
        f,
        "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.2},{:.2}",
        s.epoch,
        s.train_loss,
        s.train_err,
        s.test_loss,
        s.test_err,
        s.lr,
        s.images_per_s,
        s.seconds
    )?;
    Ok(())
}

/// The config saved in a run folder.
pub fn load_run_config(run_dir: &Path) -> Result<TrainConfig> {
    let p = run_dir.join(CONFIG);
    if !p.exists() {
        bail!("{} is not a run folder (no {CONFIG})", run_dir.display());
    }
    TrainConfig::load(&p)
}

/// `trainer eval MODEL`: loss and top-1 error on the test split. A checkpoint runs on the GPU
/// (BN in inference form); a folded model runs through core on the CPU.
pub fn eval(gpu: Option<&Gpu>, model_path: &Path, cfg: &TrainConfig) -> Result<EvalStats> {
    let bytes = std::fs::read(model_path)
        .with_context(|| format!("cannot read model {}", model_path.display()))?;
    let model =
        tsc_core::Model::parse(&bytes).map_err(|e| anyhow!("{}: {e}", model_path.display()))?;
    // The test split alone (CIFAR's evaluation needs only test_batch.bin); an image folder
    // is brought to the model's input size.
    let mut spec = cfg.dataset_spec()?;
    if spec.kind == data::DatasetKind::Folder {
        let i = model.arch().input;
        spec.image_size = (i.h, i.w);
        spec.grayscale = i.c == 1;
    }
    let test_ds = data::load_split(&spec, data::Split::Test)?;
    let names: Vec<String> = model.class_names().map(str::to_string).collect();
    check_fits(model.arch(), &names, &test_ds, "the model")?;
    match (model.kind(), gpu) {
        (ModelKind::Checkpoint, Some(gpu)) => {
            let host = HostModel::decode(&bytes)?;
            let m = GpuModel::new(gpu, &host, 0.0, 0.0)?;
            let a = &host.arch;
            let norm = Normalization {
                mean: a.mean[..a.input.c].to_vec(),
                std: a.std[..a.input.c].to_vec(),
            };
            let n = test_ds.len();
            let batch = cfg.batch.min(n);
            // One pass over the split: cheap-to-compile kernels on CPU adapters.
            gpu.set_expected_images(n as u64);
            let ev = Evaluator::new(gpu, &m, batch, n)?;
            gpu.prepare()?;
            let loader = Loader::new(Arc::new(test_ds), norm, LoaderConfig::eval(batch))?;
            ev.run(gpu, &m, &loader)
        }
        _ => Ok(eval_cpu(&model, &test_ds)?),
    }
}

/// Loss and error of a model (folded or not) through core on the CPU, one image at a time.
pub fn eval_cpu(model: &tsc_core::Model, ds: &Dataset) -> Result<EvalStats> {
    let a = model.arch();
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut logits = vec![0.0f32; a.classes];
    let (mut loss, mut correct) = (0.0f64, 0u64);
    for i in 0..ds.len() {
        let x: Vec<f32> = ds.image(i).iter().map(|&v| v as f32 * ds.scale).collect();
        tsc_core::infer(model, &x, &mut scratch, &mut logits)
            .map_err(|e| anyhow!("inference failed on image {i}: {e:?}"))?;
        let p = crate::tools::softmax(&logits);
        let y = ds.labels[i] as usize;
        loss -= (p[y].max(1e-30) as f64).ln();
        if tsc_core::layers::argmax(&logits) == Some(y) {
            correct += 1;
        }
    }
    let n = ds.len().max(1) as f64;
    Ok(EvalStats {
        loss: loss / n,
        err: 1.0 - correct as f64 / n,
        samples: ds.len() as u64,
    })
}
