//! The paper's analyses as commands (issue 7), each with an aligned terminal table, a CSV and a
//! PNG plot:
//!
//! * [`noise`]: `trainer noise-eval`: accuracy and loss under Gaussian noise added to the
//!   normalised test inputs (paper Fig. 4), on the GPU eval graph.
//! * [`steps_plot`]: the picture of `trainer steps` (per-block mean Δt with its min–max band).
//! * [`stability`]: `trainer stability`: Proposition 1's bound (spectral norms of the residual
//!   branches, Δt, the running product of (1 + ‖W_j‖·max Δt_j)) beside the measured
//!   amplification of a small perturbation, on the CPU.
//! * [`sweep`]: `trainer sweep`: test accuracy against depth for several step modes (Fig. 5).
//! * [`plot`] and [`table`]: the PNG writer (plotters, embedded font) and the table/CSV writer.

pub mod noise;
pub mod plot;
pub mod stability;
pub mod steps_plot;
pub mod sweep;
pub mod table;

use crate::config::TrainConfig;
use crate::train;
use anyhow::Result;
use std::path::Path;

/// The dataset configuration an analysis of `model` uses: the run's `config.toml` beside the
/// model unless `--dataset` is given (then the defaults plus the flags), as `trainer eval` does.
pub fn dataset_config(
    model: &Path,
    dataset: Option<&str>,
    data: Option<&str>,
    batch: Option<usize>,
) -> Result<TrainConfig> {
    let beside = model
        .parent()
        .map(|p| p.join(train::CONFIG))
        .filter(|p| p.exists());
    let mut cfg = match beside {
        Some(p) if dataset.is_none() => TrainConfig::load(&p)?,
        _ => TrainConfig::default(),
    };
    if let Some(d) = dataset {
        cfg.dataset = d.to_string();
    }
    if let Some(d) = data {
        cfg.data = d.to_string();
    }
    if let Some(b) = batch {
        cfg.batch = b;
    }
    cfg.validate()?;
    Ok(cfg)
}

/// A short name for a checkpoint in legends and tables: its step mode and its run folder
/// (or file stem), e.g. `lstm (cifar10-lstm)`.
pub fn checkpoint_label(path: &Path, arch: &tsc_core::arch::Arch) -> String {
    let steps = crate::config::steps_name(arch.step);
    let file = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    let name = if file == train::CHECKPOINT {
        path.parent()
            .and_then(|p| p.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or(file)
    } else {
        path.file_stem().and_then(|s| s.to_str()).unwrap_or(file)
    };
    if name.is_empty() {
        steps
    } else {
        format!("{steps} ({name})")
    }
}
