//! Shared helpers for the cross-crate tests.

use std::path::PathBuf;
use tsc_trainer::config::TrainConfig;
use tsc_trainer::gpu::Gpu;
use tsc_trainer::train::{train, TrainRun};

/// A fresh, empty folder under the system temporary directory (`tsc-tests-<pid>/<name>`).
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("tsc-tests-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny config on the shipped digits: depth 8, stem width 8, a few steps per epoch.
pub fn tiny_digits(steps: &str) -> TrainConfig {
    TrainConfig {
        dataset: "digits".into(),
        depth: 8,
        width: 0.5,
        steps: steps.into(),
        epochs: 2,
        batch: 32,
        max_steps: 6,
        workers: 2,
        seed: 3,
        ..Default::default()
    }
}

/// Train `cfg` into `dir` (quietly) on `gpu`; panics if training fails.
pub fn train_into(
    gpu: &Gpu,
    cfg: &TrainConfig,
    dir: &std::path::Path,
    resume: bool,
    stop_after: Option<usize>,
) {
    train(
        cfg,
        &TrainRun {
            gpu,
            run_dir: dir.to_path_buf(),
            resume,
            quiet: true,
            stop_after,
            save_init: false,
        },
    )
    .unwrap();
}
