//! `trainer bench train`: images/s of whole training steps (forward, backward, SGD) per
//! step-size mode, measured side by side in one process so their ratio is meaningful.

use crate::config::{parse_steps, steps_name, TrainConfig};
use crate::gpu::Gpu;
use crate::model::{arch_for, HostModel};
use crate::net::{GpuModel, Graph, Mode};
use crate::rng::Rng;
use anyhow::Result;
use std::time::Instant;
use tsc_core::arch::Shape3;

/// Options of `trainer bench train`.
#[derive(clap::Args, Debug)]
pub struct TrainBenchArgs {
    /// Network family (cifar, cifar-bottleneck, resnet18, ...).
    #[arg(long, default_value = "cifar")]
    pub arch: String,
    /// Depth of the CIFAR families (6n+2 basic, 9n+2 bottleneck).
    #[arg(long, default_value_t = 20)]
    pub depth: usize,
    /// Width multiplier of the CIFAR families.
    #[arg(long, default_value_t = 1.0)]
    pub width: f32,
    /// Groups of the branch's 3x3 convs (0: the family's default).
    #[arg(long, default_value_t = 0)]
    pub groups: usize,
    /// Squeeze-excitation reduction on every block (0: the family's default).
    #[arg(long = "se", value_name = "R", default_value_t = 0)]
    pub se_reduction: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Step modes to compare (the first is the baseline of the ratio).
    #[arg(long, value_delimiter = ',', default_value = "fixed:1,lstm")]
    pub steps: Vec<String>,
    /// Timed rounds (one step per mode each, after two warm-up steps).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Also time evaluation forwards.
    #[arg(long)]
    pub eval: bool,
    /// Also time each kernel of the first mode's step on its own and print where the time goes.
    #[arg(long)]
    pub profile: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Time `reps` training steps on random 32×32×3 data for each mode. All graphs are built and
/// warmed up first, then timed in interleaved rounds (mode 1, mode 2, ..., mode 1, ...), so a
/// drift of the machine's speed hits every mode alike.
pub fn run(gpu: &Gpu, a: &TrainBenchArgs) -> Result<()> {
    anyhow::ensure!(a.batch >= 1, "--batch {}: must be at least 1", a.batch);
    anyhow::ensure!(a.reps >= 1, "--reps {}: must be at least 1", a.reps);
    println!("device: {}", gpu.describe());
    let reps = a.reps;
    let mut rng = Rng::new(7);
    let x: Vec<f32> = (0..a.batch * 32 * 32 * 3).map(|_| rng.normal()).collect();
    let y: Vec<u32> = (0..a.batch).map(|_| rng.below_usize(10) as u32).collect();
    let mut runs = Vec::new();
    for s in &a.steps {
        parse_steps(s)?;
        let cfg = TrainConfig {
            arch: a.arch.clone(),
            depth: a.depth,
            width: a.width,
            groups: a.groups,
            se_reduction: a.se_reduction,
            shortcut: if !a.arch.starts_with("cifar") {
                "B"
            } else {
                "A"
            }
            .into(),
            steps: s.clone(),
            ..Default::default()
        };
        cfg.validate()?;
        let arch = arch_for(&cfg, Shape3::new(32, 32, 3), 10, &[0.5; 3], &[0.25; 3])?;
        if runs.is_empty() {
            println!(
                "{} batch {} on random 32x32x3 CIFAR-shaped data, median of {reps} interleaved rounds",
                crate::model::arch_name(&arch),
                a.batch
            );
        }
        let host = HostModel::init(arch, vec![], 1)?;
        let m = GpuModel::new(gpu, &host, 0.9, 1e-4)?;
        gpu.write(&m.lr, &[0.01]);
        let mut graphs = vec![Graph::new(gpu, &m, a.batch, Mode::Train)?];
        if a.eval {
            graphs.push(Graph::new(gpu, &m, a.batch, Mode::Eval)?);
        }
        let prepared = gpu.prepare()?;
        if prepared.kernels > 0 {
            println!("{}: {prepared}", s);
        }
        for g in &graphs {
            g.load(gpu, &x, &y)?;
            for _ in 0..2 {
                // warm-up: pipeline JIT and first-touch of every buffer
                g.run(gpu, &m);
                g.read_metrics(gpu)?;
            }
        }
        runs.push((steps_name(arch.step), m, graphs, vec![Vec::new(); 2]));
    }
    for _ in 0..reps {
        for (_, m, graphs, times) in runs.iter_mut() {
            for (g, t) in graphs.iter().zip(times.iter_mut()) {
                let t0 = Instant::now();
                g.run(gpu, m);
                g.read_metrics(gpu)?;
                t.push(t0.elapsed().as_secs_f64());
            }
        }
    }
    if a.profile {
        let (name, m, graphs, _) = &runs[0];
        let p = graphs[0].profile(gpu, m)?;
        let total: f64 = p.iter().map(|e| e.1).sum();
        println!(
            "where a {name} training step goes (each op submitted alone: {:.0} ms in all)",
            1e3 * total
        );
        println!(
            "{:<64} {:>6} {:>10} {:>7}",
            "kernel", "calls", "ms", "share"
        );
        for (k, t, n) in &p {
            println!(
                "{k:<64} {n:>6} {:>10.1} {:>6.1}%",
                1e3 * t,
                100.0 * t / total
            );
        }
        println!();
    }
    println!(
        "{:<12} {:>10} {:>10} {:>8} {:>12}",
        "steps", "ms/step", "img/s", "ratio", "eval img/s"
    );
    let base = median(runs[0].3[0].clone());
    for (name, _, _, times) in runs {
        let ms = median(times[0].clone());
        let eval = if a.eval {
            format!("{:.1}", a.batch as f64 / median(times[1].clone()))
        } else {
            "-".into()
        };
        println!(
            "{:<12} {:>10.1} {:>10.1} {:>8.3} {:>12}",
            name,
            1e3 * ms,
            a.batch as f64 / ms,
            ms / base,
            eval
        );
    }
    Ok(())
}
