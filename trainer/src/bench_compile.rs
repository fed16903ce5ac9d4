//! `trainer bench compile`: every pipeline a training run creates, with where its compile
//! time went, for the same flags `trainer train` takes (nothing is trained).
//!
//! On lavapipe the time that matters is the JIT at a pipeline's first dispatch (see
//! `crate::gpu::compile`); `--cold` points Mesa's shader cache at an empty folder and turns
//! the pipeline cache off, which is what a fresh machine sees.

use crate::config::TrainConfig;
use crate::gpu::Gpu;
use crate::train::{train, TrainRun};
use anyhow::Result;

/// A JIT this short was a load from Mesa's shader cache (a real one takes 30 ms or more even
/// for the smallest kernels on lavapipe).
const CACHED_S: f64 = 0.012;

/// Build the run `cfg` describes in a scratch folder, compile its kernels and print them,
/// slowest first.
pub fn run(gpu: &Gpu, cfg: &TrainConfig) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("tsc-bench-compile-{}", std::process::id()));
    let result = train(
        cfg,
        &TrainRun {
            gpu,
            run_dir: dir.clone(),
            resume: false,
            quiet: true,
            stop_after: Some(0),
            save_init: false,
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let mut rows: Vec<_> = gpu
        .kernels()
        .into_iter()
        .map(|k| (k.name.clone(), k.source.lines().count(), k.compile_stats()))
        .collect();
    let jit = |st: &crate::gpu::CompileStats| st.helper_s.or(st.warm_s).unwrap_or(0.0);
    rows.sort_by(|a, b| (jit(&b.2) + b.2.create_s).total_cmp(&(jit(&a.2) + a.2.create_s)));
    println!("device: {}", gpu.describe());
    println!(
        "run: {} depth {} width {} steps {} batch {}, {} epochs; Mesa shader cache {}",
        cfg.dataset,
        cfg.depth,
        cfg.width,
        cfg.steps,
        cfg.batch,
        cfg.epochs,
        if crate::gpu::compile::mesa_cache_enabled() {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "{:<58} {:>6} {:>9} {:>9} {:>9} {:>7}",
        "kernel", "lines", "create s", "JIT s", "device s", "cache"
    );
    let (mut create, mut jits, mut device, mut cached) = (0.0, 0.0, 0.0, 0);
    for (name, lines, st) in &rows {
        let j = jit(st);
        let hit = j < CACHED_S;
        cached += hit as usize;
        create += st.create_s;
        jits += st.helper_s.unwrap_or(0.0);
        device += st.warm_s.unwrap_or(0.0);
        println!(
            "{name:<58} {lines:>6} {:>9.2} {:>9} {:>9.2} {:>7}",
            st.create_s,
            st.helper_s.map_or("-".into(), |h| format!("{h:.2}")),
            st.warm_s.unwrap_or(0.0),
            if hit { "hit" } else { "miss" }
        );
    }
    println!(
        "{} pipelines: create {create:.1} s, helper JIT {jits:.1} s, device first dispatch \
         {device:.1} s (summed over threads); {cached} served by a cache",
        rows.len()
    );
    println!(
        "JIT s: create + JIT on a helper device (CPU adapters; '-': none); device s: the \
         device's own first dispatch (the JIT itself without helpers, else a cache load)"
    );
    Ok(())
}
