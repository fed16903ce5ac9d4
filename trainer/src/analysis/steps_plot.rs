//! The picture of `trainer steps`: each checkpoint's per-block mean Δt against the block's
//! position in the network, with the block's min–max range over channels as a shaded band.

use super::plot::{self, Panel, Series};
use anyhow::Result;
use std::path::Path;

/// `(label, [(stage, block, Δt vector)])` per checkpoint, as [`crate::tools::block_steps`]
/// returns them, drawn to `path`. Blocks are numbered 1.. through the whole network.
/// One checkpoint's label and its blocks' `(stage, block, Δt vector)`.
pub type LabelledSteps = (String, Vec<(usize, usize, Vec<f32>)>);

pub fn plot(checkpoints: &[LabelledSteps], path: &Path) -> Result<()> {
    let series = checkpoints
        .iter()
        .map(|(label, steps)| {
            let mut points = Vec::new();
            let mut band = Vec::new();
            for (j, (_, _, v)) in steps.iter().enumerate() {
                let x = (j + 1) as f64;
                let mean = v.iter().map(|&d| d as f64).sum::<f64>() / v.len().max(1) as f64;
                let lo = v.iter().cloned().fold(f32::INFINITY, f32::min) as f64;
                let hi = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                points.push((x, mean));
                band.push((x, lo, hi));
            }
            Series {
                label: label.clone(),
                points,
                band: Some(band),
            }
        })
        .collect();
    let panel = Panel {
        title: "Step size Δt per residual block (mean over channels, band: min–max)".into(),
        x_label: "residual block (1 = first block of stage 0)".into(),
        y_label: "Δt".into(),
        series,
    };
    plot::write_png(path, &[panel], 900, 520)
}
