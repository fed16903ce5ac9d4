//! `trainer`: train, evaluate, export and inspect time-stepping-controlled ResNets on any GPU.

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tsc_trainer::config::TrainConfig;
use tsc_trainer::gpu::{list_adapters, Gpu};
use tsc_trainer::report::Format;
use tsc_trainer::train::{self, TrainRun};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train TSC-ResNets (ResNets with learned per-channel step sizes) on any GPU through wgpu (Vulkan/Metal/DX12)"
)]
struct Cli {
    /// GPU adapter: an index or a name substring from `trainer devices`
    /// (default: $TSC_ADAPTER, else the best adapter found).
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model (or continue one with --resume RUN).
    Train(TrainArgs),
    /// Loss and top-1 error of a checkpoint (GPU) or an exported model (CPU, through core).
    Eval(EvalArgs),
    /// Fold BatchNorm and the learned step sizes into a plain-ResNet inference model.
    Export {
        /// Checkpoint (a run's checkpoint.tscm).
        checkpoint: PathBuf,
        /// Output model file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Classify image files on the CPU with core (no GPU needed).
    Predict {
        /// Exported model or checkpoint.
        model: PathBuf,
        /// PNG or JPEG files (resized and center-cropped to the model's input).
        images: Vec<PathBuf>,
        /// Also print every class's logit and probability (full precision) under each file.
        #[arg(long)]
        logits: bool,
        /// text (default) | json | csv; json and csv carry every logit and probability.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Architecture, parameters and GFLOPs for training and inference (paper Tables 2 and 3),
    /// of a model file, or of an architecture (`--arch NAME --steps MODE`, no file needed).
    Info {
        /// Checkpoint or exported model (omit with --arch).
        model: Option<PathBuf>,
        /// Count this architecture instead (cifar, cifar-bottleneck, resnet18, ...).
        #[arg(long)]
        arch: Option<String>,
        /// With --arch: step mode (default lstm).
        #[arg(long, default_value = "lstm")]
        steps: String,
        /// With --arch: depth of the CIFAR nets.
        #[arg(long)]
        depth: Option<usize>,
        /// With --arch: width multiplier of the CIFAR nets.
        #[arg(long)]
        width: Option<f32>,
        /// With --arch: classes (default 1000 for ImageNet nets, 10 for CIFAR nets).
        #[arg(long)]
        classes: Option<usize>,
        /// With --arch: input HxW (default 224x224 for ImageNet nets, 32x32 for CIFAR nets).
        #[arg(long)]
        input: Option<String>,
        /// With --arch: shortcut A or B (default: A for CIFAR nets, B for ImageNet nets).
        #[arg(long)]
        shortcut: Option<String>,
        /// With --arch: stride on the bottleneck's 3x3 (torchvision) instead of its first 1x1.
        #[arg(long)]
        stride_on_3x3: bool,
        #[command(flatten)]
        family: FamilyArgs,
    },
    /// Each block's step sizes Δt: mean, min, max (paper Table 4), full vectors to CSV, the
    /// per-block mean (min–max band) of one or more checkpoints as a PNG.
    Steps {
        /// Checkpoints (exported models have their steps folded in).
        #[arg(required = true)]
        checkpoints: Vec<PathBuf>,
        /// Write every block's full Δt vector here.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// Draw each checkpoint's per-block mean Δt with its min–max band here (PNG).
        #[arg(long)]
        png: Option<PathBuf>,
    },
    /// Accuracy and loss under Gaussian noise on the normalised test inputs (paper Fig. 4):
    /// table, OUT/noise.csv, OUT/noise.png; several checkpoints overlay their curves.
    NoiseEval(NoiseEvalArgs),
    /// Proposition 1: per-block spectral norms, Δt and the bound Π(1 + ‖W‖Δt) beside the
    /// measured amplification of a small perturbation (CPU); table and CSV.
    Stability(StabilityArgs),
    /// Depth sweep (paper Fig. 5): train each step mode at each depth with the same budget;
    /// OUT/sweep.csv and OUT/sweep.png of test accuracy against depth.
    Sweep(SweepArgs),
    /// Loss and gradient of every parameter for one training batch (GPU), written in the
    /// model format under the checkpoint's tensor names (see docs/TRAINING.md).
    Grad(GradArgs),
    /// List the GPU adapters wgpu sees, with backend and limits.
    Devices,
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Time conv forward / backward-to-input / backward-to-weights at ResNet-20's shapes.
    Kernels(tsc_trainer::bench::KernelArgs),
    /// Time whole training steps (forward, backward, update) per step-size mode.
    Train(tsc_trainer::bench_train::TrainBenchArgs),
    /// List every pipeline the training run these flags describe compiles, with its compile
    /// and JIT time (nothing is trained).
    Compile(Box<CompileArgs>),
}

/// Flags of `trainer bench compile`: those of `trainer train`, and `--cold`.
#[derive(Args)]
struct CompileArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Compile as a fresh machine would: Mesa's shader cache in an empty folder, no pipeline
    /// cache.
    #[arg(long)]
    cold: bool,
}

/// Flags of `trainer train`; each overrides the same key of --config (see docs/TRAINING.md).
#[derive(Args)]
struct TrainArgs {
    /// TOML config file; flags override its values.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder (config.toml, checkpoint.tscm, metrics.csv). Default:
    /// runs/<dataset>-<arch><depth>-<steps> (plus width, groups, SE when set). A folder that
    /// already holds a run is refused: --resume continues it, --overwrite replaces it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run already in the --out folder (its checkpoint and metrics are lost).
    #[arg(long)]
    overwrite: bool,
    /// Continue the run in this folder from its last checkpoint (its config is reused;
    /// --epochs may extend it).
    #[arg(long, value_name = "RUN")]
    resume: Option<PathBuf>,
    /// digits | cifar10 | cifar100 | mnist | folder.
    #[arg(long)]
    dataset: Option<String>,
    /// Dataset location (folder or file). Digits defaults to the copy built into the binary.
    #[arg(long)]
    data: Option<String>,
    /// Fetch CIFAR-10/100 from the official address into the cache (checksum verified).
    #[arg(long)]
    download: bool,
    /// CIFAR-10 training batches to use, e.g. 1 or 1,2,3,4,5.
    #[arg(long, value_delimiter = ',')]
    cifar_batches: Option<Vec<usize>>,
    /// Image folders: side of the square input.
    #[arg(long)]
    image_size: Option<usize>,
    /// Network: cifar (basic blocks, default) | cifar-bottleneck | cifar-resnext | resnet18 |
    /// resnet34 | resnet50 | resnet101 | resnext50_32x4d | resnext101_32x4d | se_resnet50 |
    /// se_resnet101 (ImageNet stem: 7x7/2 conv, 3x3/2 max pool).
    #[arg(long)]
    arch: Option<String>,
    /// CIFAR nets: depth, 6n+2 for cifar (8, 14, 20, 32, 56, 110, ...), 9n+2 for
    /// cifar-bottleneck (11, 20, 29, 56, 164, ...).
    #[arg(long)]
    depth: Option<usize>,
    /// CIFAR nets: width multiplier (stem 16·w; stages 1, 2, 4 times that, ×4 for bottlenecks).
    #[arg(long)]
    width: Option<f32>,
    /// Bottlenecks: stride on the 3x3 (torchvision, "v1.5") instead of the first 1x1.
    #[arg(long)]
    stride_on_3x3: bool,
    #[command(flatten)]
    family: FamilyArgs,
    /// Shortcut when shapes change: A (subsample + zero channels) or B (1x1 conv + BN).
    #[arg(long)]
    shortcut: Option<String>,
    /// Step sizes: fixed:C (fixed:1 = plain ResNet) | indp | 2fc | lstm (recommended).
    #[arg(long)]
    steps: Option<String>,
    /// Controller reduction r (hidden size C/r; default 4 for basic blocks, 8 for bottlenecks).
    #[arg(long)]
    reduction: Option<usize>,
    /// Number of epochs (default 10).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per training step (default 128).
    #[arg(long)]
    batch: Option<usize>,
    /// Initial learning rate (default 0.1).
    #[arg(long)]
    lr: Option<f32>,
    /// Nesterov momentum (default 0.9).
    #[arg(long)]
    momentum: Option<f32>,
    /// L2 weight decay on every parameter, the controller's included (default 1e-4).
    #[arg(long)]
    weight_decay: Option<f32>,
    /// step (÷10 at each milestone) | cosine.
    #[arg(long)]
    schedule: Option<String>,
    /// Fractions of the run where the step schedule divides the rate by 10, e.g. 0.5,0.75.
    #[arg(long, value_delimiter = ',')]
    milestones: Option<Vec<f32>>,
    /// auto (on for CIFAR and folders) | on | off.
    #[arg(long)]
    augment: Option<String>,
    /// Seed of initialisation, shuffling and augmentation (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop each epoch after this many steps (smoke tests).
    #[arg(long)]
    max_steps: Option<usize>,
    /// CPU threads preparing batches.
    #[arg(long)]
    workers: Option<usize>,
    /// Write the initialised model to RUN/init.tscm (checkpoint format) before the first step.
    #[arg(long)]
    save_init: bool,
}

/// A resumed run keeps the config it was trained with: only the number of epochs may grow,
/// and the dataset's location, its download and the loader threads (which change no result)
/// may be given again. Anything else is refused, naming every key that would change.
fn check_resume_changes(saved: &TrainConfig, wanted: &TrainConfig) -> Result<()> {
    const MAY_CHANGE: [&str; 4] = ["epochs", "data", "download", "workers"];
    let table = |c: &TrainConfig| -> Result<toml::Table> { Ok(toml::from_str(&c.to_toml())?) };
    let (a, b) = (table(saved)?, table(wanted)?);
    let changed: Vec<String> = a
        .iter()
        .filter(|(k, v)| !MAY_CHANGE.contains(&k.as_str()) && b.get(*k) != Some(*v))
        .map(|(k, v)| {
            let new = b.get(k).map_or("(none)".into(), |n| n.to_string());
            format!("{k} {v} -> {new}")
        })
        .collect();
    if !changed.is_empty() {
        bail!(
            "--resume continues a run with its own config, and these would change: {}; only --epochs (and --data, --download, --workers) may be given",
            changed.join(", ")
        );
    }
    Ok(())
}

/// Grouped convolutions and squeeze-excitation, for any family (`train`, `info --arch`).
#[derive(Args)]
struct FamilyArgs {
    /// Groups of the branch's 3x3 convs (ResNeXt cardinality; default: the family's, 32 for
    /// resnext*_32x4d, 8 for cifar-resnext, else 1).
    #[arg(long)]
    groups: Option<usize>,
    /// Bottlenecks: width per group d (middle width C/4 · d/64 · groups; default: 4 for
    /// resnext*_32x4d, 16 for cifar-resnext, else 64).
    #[arg(long)]
    base_width: Option<usize>,
    /// Squeeze-excitation on every block with reduction R (hidden width C/R; se_resnet*
    /// default to 16).
    #[arg(long = "se", value_name = "R")]
    se_reduction: Option<usize>,
}

impl FamilyArgs {
    /// Overrides `c`'s family fields; 0 is refused here because the config's 0 means "the
    /// family's default".
    fn apply(&self, c: &mut TrainConfig) -> Result<()> {
        for (flag, v, field) in [
            ("--groups", self.groups, &mut c.groups),
            ("--base-width", self.base_width, &mut c.base_width),
            ("--se", self.se_reduction, &mut c.se_reduction),
        ] {
            match v {
                Some(0) => bail!("{flag} 0: must be at least 1"),
                Some(v) => *field = v,
                None => {}
            }
        }
        Ok(())
    }
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = match (&self.resume, &self.config) {
            (Some(run), _) => train::load_run_config(run)?,
            (None, Some(p)) => TrainConfig::load(p)?,
            (None, None) => TrainConfig::default(),
        };
        if self.resume.is_some() && self.config.is_some() {
            bail!("--resume continues a run with the config.toml in its folder: drop --config");
        }
        if self.stride_on_3x3 {
            c.stride_on_3x3 = true;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { c.$f = v.clone().into(); } )* };
        }
        set!(
            dataset,
            data,
            cifar_batches,
            image_size,
            arch,
            depth,
            width,
            shortcut,
            steps,
            reduction,
            epochs,
            batch,
            lr
        );
        set!(
            momentum,
            weight_decay,
            schedule,
            milestones,
            augment,
            seed,
            max_steps,
            workers
        );
        c.download |= self.download;
        self.family.apply(&mut c)?;
        if let Some(run) = &self.resume {
            check_resume_changes(&train::load_run_config(run)?, &c)?;
        }
        c.validate()?;
        Ok(c)
    }
}

#[derive(Args)]
struct NoiseEvalArgs {
    /// Checkpoints (training checkpoints: run folders' checkpoint.tscm).
    #[arg(required = true)]
    checkpoints: Vec<PathBuf>,
    /// Noise standard deviations, in normalised-input units.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
    )]
    sigma: Vec<f32>,
    /// Dataset flags as for `eval`; default: the config.toml beside the first checkpoint.
    #[arg(long)]
    dataset: Option<String>,
    /// Dataset location, as for `train`.
    #[arg(long)]
    data: Option<String>,
    /// Images per GPU evaluation step.
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of the noise (the same noise for every checkpoint and level).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N test images (0: all).
    #[arg(long, default_value_t = 0)]
    images: usize,
    /// Output folder for noise.csv and noise.png.
    #[arg(long, default_value = "noise-eval")]
    out: PathBuf,
}

#[derive(Args)]
struct StabilityArgs {
    /// Training checkpoint.
    checkpoint: PathBuf,
    /// Test images for the measured amplification.
    #[arg(long, default_value_t = 32)]
    images: usize,
    /// Relative size of the perturbation: ‖δ‖ = eps·‖y_0‖.
    #[arg(long, default_value_t = 1e-3)]
    eps: f64,
    /// Power-iteration steps at most (stops earlier once converged).
    #[arg(long, default_value_t = 200)]
    iters: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset flags as for `eval`; default: the config.toml beside the checkpoint.
    #[arg(long)]
    dataset: Option<String>,
    /// Dataset location, as for `train`.
    #[arg(long)]
    data: Option<String>,
    /// CSV output.
    #[arg(long, default_value = "stability.csv")]
    csv: PathBuf,
}

#[derive(Args)]
struct SweepArgs {
    /// Depths (6n+2).
    #[arg(long, value_delimiter = ',', default_value = "8,14,20")]
    depths: Vec<usize>,
    /// Step modes to compare.
    #[arg(long, value_delimiter = ',', default_value = "fixed:1,lstm")]
    modes: Vec<String>,
    /// Training flags shared by every run (--out is the sweep folder, default runs/sweep).
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Args)]
struct GradArgs {
    /// Checkpoint (a run's checkpoint.tscm or init.tscm); only read.
    checkpoint: PathBuf,
    /// Output file for the gradients (model format; must not be the checkpoint).
    #[arg(long)]
    out: PathBuf,
    /// Dataset flags as for `eval`; default: the config.toml beside the checkpoint. The
    /// training split is used.
    #[arg(long)]
    dataset: Option<String>,
    /// Dataset location, as for `train`.
    #[arg(long)]
    data: Option<String>,
    /// Images in the batch (default: the run's batch).
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of the shuffled order and augmentation (default: the run's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// auto | on | off (default: the run's; ignored with --no-shuffle).
    #[arg(long)]
    augment: Option<String>,
    /// Epoch whose order is drawn.
    #[arg(long, default_value_t = 0)]
    epoch: u64,
    /// Batch index within the epoch (0: the first step).
    #[arg(long, default_value_t = 0)]
    step: usize,
    /// Dataset order, no augmentation: --step 0 is the first N images of the training split.
    #[arg(long)]
    no_shuffle: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Checkpoint or exported model.
    model: PathBuf,
    /// Dataset kind as for `train`; default: the run's config.toml beside the model, else
    /// digits. The test split is evaluated.
    #[arg(long)]
    dataset: Option<String>,
    /// Dataset location, as for `train`.
    #[arg(long)]
    data: Option<String>,
    /// Images per GPU evaluation step.
    #[arg(long)]
    batch: Option<usize>,
    /// Run on the CPU through core even for a checkpoint.
    #[arg(long)]
    cpu: bool,
    /// text (default, 4 decimals) | json | csv (loss and error at full precision).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn main() {
    private_runtime_dir();
    let cli = parse();
    closed_output_policy(matches!(cli.cmd, Cmd::Train(_) | Cmd::Sweep(_)));
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// What a closed stdout or a lost terminal does. Training keeps going (its progress output is
/// best effort, see `train::say!`, and a hang-up no longer kills it), so its checkpoints keep
/// coming; every other command is a reader whose output is its result, and `trainer info M |
/// head -1` should end it quietly, as SIGPIPE ends `cat` (Rust ignores SIGPIPE by default,
/// which turns the closed pipe into a panic in `println!`).
fn closed_output_policy(training: bool) {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        const SIGHUP: i32 = 1;
        const SIGPIPE: i32 = 13;
        const SIG_DFL: usize = 0;
        const SIG_IGN: usize = 1;
        // SAFETY: `signal` with SIG_DFL/SIG_IGN installs no handler code; called before any
        // thread is spawned.
        unsafe {
            if training {
                signal(SIGHUP, SIG_IGN);
            } else {
                signal(SIGPIPE, SIG_DFL);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = training;
}

/// The command line, with negative numbers accepted as values (`--lr -1`) so that each
/// flag's own check names what is wrong, instead of clap's "unexpected argument '-1'".
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = allow_negative_values(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn allow_negative_values(cmd: clap::Command) -> clap::Command {
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let mut cmd = cmd.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    });
    for name in subs {
        cmd = cmd.mut_subcommand(name, allow_negative_values);
    }
    cmd
}

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" (twice) when
/// the variable does not name a directory, before any message of ours. When it does not,
/// point it at a private directory (mode 0700, created once per user) so users see only the
/// project's words. Runs first in `main`, before any thread exists to read the environment.
fn private_runtime_dir() {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let valid = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .is_some_and(|d| d.is_dir());
        if valid {
            return;
        }
        let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("tsc-runtime-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        // Only a directory of our own, closed to others, stands in for the real one.
        let ours = std::fs::symlink_metadata(&dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0);
        if ours {
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let gpu = || Gpu::new(cli.adapter.as_deref());
    match cli.cmd {
        Cmd::Train(a) => {
            let cfg = a.config()?;
            let run_dir = match (&a.resume, &a.out) {
                (Some(r), _) => r.clone(),
                (None, Some(o)) => o.clone(),
                (None, None) => PathBuf::from("runs").join(train::default_run_name(&cfg)),
            };
            if a.resume.is_none() {
                train::claim_run_folder(&run_dir, a.overwrite)?;
            } else if a.overwrite {
                bail!("--overwrite starts a run afresh; --resume continues one: give one of them");
            }
            let gpu = gpu()?;
            let stats = train::train(
                &cfg,
                &TrainRun {
                    gpu: &gpu,
                    run_dir: run_dir.clone(),
                    resume: a.resume.is_some(),
                    quiet: false,
                    stop_after: None,
                    save_init: a.save_init,
                },
            )?;
            if let Some(s) = stats.last() {
                tsc_trainer::say!(
                    "done: test top-1 error {:.2}% (accuracy {:.2}%), checkpoint {}",
                    100.0 * s.test_err,
                    100.0 * (1.0 - s.test_err),
                    run_dir.join(train::CHECKPOINT).display()
                );
            }
            Ok(())
        }
        Cmd::Eval(a) => {
            let beside = a
                .model
                .parent()
                .map(|p| p.join(train::CONFIG))
                .filter(|p| p.exists());
            let mut cfg = match beside {
                Some(p) if a.dataset.is_none() => TrainConfig::load(&p)?,
                _ => TrainConfig::default(),
            };
            if let Some(d) = a.dataset {
                cfg.dataset = d;
            }
            if let Some(d) = a.data {
                cfg.data = d;
            }
            if let Some(b) = a.batch {
                cfg.batch = b;
            }
            cfg.validate()?;
            let g = if a.cpu { None } else { Some(gpu()?) };
            let s = train::eval(g.as_ref(), &a.model, &cfg)?;
            print!("{}", s.render(&a.model, &cfg.dataset, a.format));
            Ok(())
        }
        Cmd::Export { checkpoint, out } => tsc_trainer::tools::export(&checkpoint, &out),
        Cmd::Predict {
            model,
            images,
            logits,
            format,
        } => tsc_trainer::tools::predict(&model, &images, format, logits),
        Cmd::Info {
            model,
            arch,
            steps,
            depth,
            width,
            classes,
            input,
            shortcut,
            stride_on_3x3,
            family,
        } => match (model, arch) {
            (Some(m), None) => tsc_trainer::tools::info(&m),
            (None, Some(name)) => {
                let mut cfg = TrainConfig {
                    arch: name,
                    steps,
                    stride_on_3x3,
                    ..TrainConfig::default()
                };
                family.apply(&mut cfg)?;
                let a = info_arch(cfg, depth, width, classes, input, shortcut)?;
                tsc_trainer::tools::info_arch(&a)
            }
            _ => bail!("info: give a model file or --arch NAME (not both)"),
        },
        Cmd::Steps {
            checkpoints,
            csv,
            png,
        } => tsc_trainer::tools::steps(&checkpoints, csv.as_deref(), png.as_deref()),
        Cmd::NoiseEval(a) => {
            let cfg = tsc_trainer::analysis::dataset_config(
                &a.checkpoints[0],
                a.dataset.as_deref(),
                a.data.as_deref(),
                a.batch,
            )?;
            let opts = tsc_trainer::analysis::noise::NoiseOptions {
                sigmas: a.sigma,
                seed: a.seed,
                batch: cfg.batch,
                images: a.images,
            };
            tsc_trainer::analysis::noise::command(gpu, &a.checkpoints, &cfg, &opts, &a.out)
                .map(|_| ())
        }
        Cmd::Stability(a) => {
            if a.iters == 0 {
                bail!(
                    "--iters 0: the power iteration needs at least one step (a bound from \
                     fewer steps than it takes to converge is too low; default 200)"
                );
            }
            let cfg = tsc_trainer::analysis::dataset_config(
                &a.checkpoint,
                a.dataset.as_deref(),
                a.data.as_deref(),
                None,
            )?;
            let opts = tsc_trainer::analysis::stability::StabilityOptions {
                images: a.images,
                eps: a.eps,
                iters: a.iters,
                seed: a.seed,
            };
            tsc_trainer::analysis::stability::command(&a.checkpoint, &cfg, &opts, &a.csv)
                .map(|_| ())
        }
        Cmd::Sweep(a) => {
            if a.train.save_init {
                bail!("--save-init: train one run with `trainer train --save-init`, not a sweep");
            }
            if a.train.resume.is_some() || a.train.depth.is_some() || a.train.steps.is_some() {
                bail!("sweep: use --depths and --modes (not --depth/--steps/--resume); an interrupted sweep resumes when run again");
            }
            let cfg = a.train.config()?;
            let out = a
                .train
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("runs/sweep"));
            tsc_trainer::analysis::sweep::command(&gpu()?, &cfg, &a.depths, &a.modes, &out)
                .map(|_| ())
        }
        Cmd::Grad(a) => grad(gpu, a),
        Cmd::Devices => devices(),
        Cmd::Bench {
            what: Bench::Kernels(args),
        } => tsc_trainer::bench::kernels(&gpu()?, &args),
        Cmd::Bench {
            what: Bench::Train(args),
        } => tsc_trainer::bench_train::run(&gpu()?, &args),
        Cmd::Bench {
            what: Bench::Compile(args),
        } => {
            if args.train.save_init {
                bail!("--save-init: bench compile trains nothing");
            }
            let cfg = args.train.config()?;
            if args.cold {
                let dir = std::env::temp_dir()
                    .join(format!("tsc-cold-mesa-cache-{}", std::process::id()));
                // Before the instance exists: Mesa reads these when the device opens.
                std::env::set_var("MESA_SHADER_CACHE_DIR", &dir);
                std::env::set_var(tsc_trainer::gpu::compile::PIPELINE_CACHE_ENV, "off");
                let r = tsc_trainer::bench_compile::run(&gpu()?, &cfg);
                let _ = std::fs::remove_dir_all(&dir);
                r
            } else {
                tsc_trainer::bench_compile::run(&gpu()?, &cfg)
            }
        }
    }
}

fn grad(gpu: impl FnOnce() -> Result<Gpu>, a: GradArgs) -> Result<()> {
    let mut cfg = tsc_trainer::analysis::dataset_config(
        &a.checkpoint,
        a.dataset.as_deref(),
        a.data.as_deref(),
        a.batch,
    )?;
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    if let Some(v) = a.augment {
        cfg.augment = v;
    }
    cfg.validate()?;
    let o = tsc_trainer::grad::GradOptions {
        batch: cfg.batch,
        seed: cfg.seed,
        epoch: a.epoch,
        step: a.step,
        shuffle: !a.no_shuffle,
    };
    // Path mistakes first: they need no GPU.
    tsc_trainer::model::check_out(&a.checkpoint, &a.out)?;
    let g = tsc_trainer::grad::command(&gpu()?, &a.checkpoint, &cfg, &o, &a.out)?;
    let order = if o.shuffle {
        format!("epoch {} step {} of seed {}", o.epoch, o.step, o.seed)
    } else {
        format!("batch {} in dataset order", o.step)
    };
    println!(
        "loss {} over {} training images ({order}); gradients -> {}",
        g.loss,
        g.indices.len(),
        a.out.display()
    );
    Ok(())
}

fn devices() -> Result<()> {
    let all = list_adapters();
    if all.is_empty() {
        bail!("no GPU adapter found: install a Vulkan driver (on Debian/Ubuntu without a GPU: apt-get install mesa-vulkan-drivers)");
    }
    for a in all {
        println!(
            "[{}] {} ({:?}, {:?}) driver: {}\n    max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, invocations/workgroup {}",
            a.index,
            a.name,
            a.device_type,
            a.backend,
            a.driver,
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup
        );
    }
    Ok(())
}

/// The architecture `trainer info --arch` counts: the family's defaults (ImageNet: 1000
/// classes at 224×224×3; CIFAR: 10 classes at 32×32×3) with the given overrides.
fn info_arch(
    mut cfg: TrainConfig,
    depth: Option<usize>,
    width: Option<f32>,
    classes: Option<usize>,
    input: Option<String>,
    shortcut: Option<String>,
) -> Result<tsc_core::Arch> {
    let cifar = cfg.is_cifar_arch();
    if let Some(d) = depth {
        if !cifar {
            bail!("--depth: {} carries its depth in its name", cfg.arch);
        }
        cfg.depth = d;
    }
    if let Some(w) = width {
        cfg.width = w;
    }
    cfg.shortcut = shortcut.unwrap_or(if cifar { "A" } else { "B" }.into());
    cfg.validate()?;
    let (h, w) = match input {
        None if cifar => (32, 32),
        None => (224, 224),
        Some(s) => {
            let parsed = s
                .split_once(['x', 'X'])
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            match parsed {
                Some((h, w)) if h > 0 && w > 0 => (h, w),
                _ => bail!("--input '{s}': expected HxW, e.g. 224x224"),
            }
        }
    };
    let classes = classes.unwrap_or(if cifar { 10 } else { 1000 });
    let (mean, std) = if cifar {
        (tsc_core::arch::CIFAR10_MEAN, tsc_core::arch::CIFAR10_STD)
    } else {
        (tsc_core::arch::IMAGENET_MEAN, tsc_core::arch::IMAGENET_STD)
    };
    tsc_trainer::model::arch_for(&cfg, tsc_core::Shape3::new(h, w, 3), classes, &mean, &std)
}
