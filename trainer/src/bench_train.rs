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
    #[arg(long, default_value_t = 20)]
    pub depth: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Step modes to compare (the first is the baseline of the ratio).
    #[arg(long, value_delimiter = ',', default_value = "fixed:1,lstm")]
    pub steps: Vec<String>,
    /// Timed steps per mode (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Also time evaluation forwards.
    #[arg(long)]
    pub eval: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Time `reps` training steps on random 32×32×3 data for each mode.
pub fn run(gpu: &Gpu, a: &TrainBenchArgs) -> Result<()> {
    println!("device: {}", gpu.describe());
    println!("ResNet-{} batch {} on random 32x32x3 CIFAR-shaped data, median of {} steps", a.depth, a.batch, a.reps.max(1));
    println!("{:<12} {:>10} {:>10} {:>8} {:>12}", "steps", "ms/step", "img/s", "ratio", "eval img/s");
    let mut base = None;
    for s in &a.steps {
        parse_steps(s)?;
        let cfg = TrainConfig { depth: a.depth, steps: s.clone(), ..Default::default() };
        cfg.validate()?;
        let arch = arch_for(&cfg, Shape3::new(32, 32, 3), 10, &[0.5; 3], &[0.25; 3])?;
        let host = HostModel::init(arch, vec![], 1)?;
        let m = GpuModel::new(gpu, &host, 0.9, 1e-4)?;
        let g = Graph::new(gpu, &m, a.batch, Mode::Train)?;
        let mut rng = Rng::new(7);
        let x: Vec<f32> = (0..g.input.len()).map(|_| rng.normal()).collect();
        let y: Vec<u32> = (0..a.batch).map(|_| rng.below_usize(10) as u32).collect();
        g.load(gpu, &x, &y)?;
        gpu.write(&m.lr, &[0.01]);
        let time = |g: &Graph| -> Result<f64> {
            g.run(gpu, &m);
            g.read_metrics(gpu)?; // warm-up: pipeline JIT, first-use allocations
            let mut t = Vec::new();
            for _ in 0..a.reps.max(1) {
                let t0 = Instant::now();
                g.run(gpu, &m);
                g.read_metrics(gpu)?;
                t.push(t0.elapsed().as_secs_f64());
            }
            Ok(median(t))
        };
        let ms = time(&g)?;
        let eval = if a.eval {
            let ge = Graph::new(gpu, &m, a.batch, Mode::Eval)?;
            ge.load(gpu, &x, &y)?;
            format!("{:.1}", a.batch as f64 / time(&ge)?)
        } else {
            "-".into()
        };
        let b = *base.get_or_insert(ms);
        println!("{:<12} {:>10.1} {:>10.1} {:>8.3} {:>12}", steps_name(arch.step), 1e3 * ms, a.batch as f64 / ms, ms / b, eval);
    }
    Ok(())
}
