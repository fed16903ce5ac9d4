//! `trainer sweep`: train plain (`fixed:1`) and TSC (`lstm`) ResNets (or any step modes) at
//! several depths with the same budget and compare test accuracy against depth (paper Fig. 5).
//!
//! Each (mode, depth) trains into `OUT/<mode>-d<depth>/`, an ordinary run folder; a sweep run
//! again resumes unfinished runs and reuses finished ones (the last row of their
//! `metrics.csv`). The table goes to `OUT/sweep.csv`, the plot to `OUT/sweep.png`.

use super::plot::{self, Panel, Series};
use super::table::{col, num, Cell, Table};
use crate::config::TrainConfig;
use crate::gpu::Gpu;
use crate::train::{self, TrainRun};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One trained network's result.
#[derive(Clone, Debug)]
pub struct SweepRow {
    pub steps: String,
    pub depth: usize,
    pub epochs: usize,
    pub test_acc: f64,
    pub test_loss: f64,
    pub train_loss: f64,
    pub params: usize,
    /// Seconds spent training in this call (0 when the run was already finished).
    pub seconds: f64,
    pub run_dir: PathBuf,
}

/// Last row of a run's `metrics.csv`: `(epoch, train_loss, test_loss, test_err)`.
pub fn last_metrics(run_dir: &Path) -> Result<(usize, f64, f64, f64)> {
    let p = run_dir.join(train::METRICS);
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    let line = text
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .last()
        .with_context(|| format!("{} has no epoch yet", p.display()))?;
    let f: Vec<&str> = line.split(',').collect();
    if f.len() < 5 {
        bail!("{}: malformed row {line:?}", p.display());
    }
    let num = |i: usize| {
        f[i].trim()
            .parse::<f64>()
            .with_context(|| format!("{}: malformed row {line:?}", p.display()))
    };
    Ok((num(0)? as usize, num(1)?, num(3)?, num(4)?))
}

/// Train every (mode, depth) of the sweep with `base`'s other settings.
pub fn sweep(
    gpu: &Gpu,
    base: &TrainConfig,
    depths: &[usize],
    modes: &[String],
    out: &Path,
    quiet: bool,
) -> Result<Vec<SweepRow>> {
    if depths.is_empty() || modes.is_empty() {
        bail!("the sweep needs at least one depth (--depths) and one step mode (--modes)");
    }
    let mut rows = Vec::new();
    for mode in modes {
        for &depth in depths {
            let cfg = TrainConfig {
                depth,
                steps: mode.clone(),
                ..base.clone()
            };
            cfg.validate()
                .with_context(|| format!("depth {depth}, steps {mode}"))?;
            let run_dir = out.join(format!("{}-d{depth}", mode.replace(':', "-")));
            let resume =
                run_dir.join(train::CHECKPOINT).exists() && run_dir.join(train::CONFIG).exists();
            if resume {
                let old = train::load_run_config(&run_dir)?;
                if (TrainConfig {
                    epochs: cfg.epochs,
                    workers: cfg.workers,
                    ..old
                }) != cfg
                {
                    bail!(
                        "{} holds a run with other settings: remove it or choose another --out",
                        run_dir.display()
                    );
                }
            }
            if !quiet {
                println!("== {mode} ResNet-{depth} -> {}", run_dir.display());
            }
            let t0 = Instant::now();
            let run = TrainRun {
                gpu,
                run_dir: run_dir.clone(),
                resume,
                quiet,
                stop_after: None,
                save_init: false,
            };
            if resume {
                // A finished run's config may have fewer epochs than asked: extend it.
                let mut c = train::load_run_config(&run_dir)?;
                c.epochs = cfg.epochs;
                train::train(&c, &run)?;
            } else {
                train::train(&cfg, &run)?;
            }
            let seconds = t0.elapsed().as_secs_f64();
            let (epochs, train_loss, test_loss, test_err) = last_metrics(&run_dir)?;
            let host = crate::model::HostModel::load(&run_dir.join(train::CHECKPOINT))?;
            rows.push(SweepRow {
                steps: mode.clone(),
                depth,
                epochs,
                test_acc: 1.0 - test_err,
                test_loss,
                train_loss,
                params: crate::tools::count(&host.arch).train_params,
                seconds,
                run_dir,
            });
        }
    }
    Ok(rows)
}

pub fn table(rows: &[SweepRow]) -> Table {
    let mut t = Table::new(vec![
        col("steps", "steps"),
        col("depth", "depth"),
        col("epochs", "epochs"),
        col("params", "params"),
        num("test acc %", "test_accuracy", 2),
        num("test loss", "test_loss", 4),
        num("train loss", "train_loss", 4),
        num("seconds", "seconds", 1),
        col("run", "run_dir"),
    ]);
    for r in rows {
        t.push(vec![
            Cell::from(r.steps.clone()),
            r.depth.into(),
            r.epochs.into(),
            r.params.into(),
            Cell::Num(100.0 * r.test_acc),
            r.test_loss.into(),
            r.train_loss.into(),
            r.seconds.into(),
            Cell::from(r.run_dir.display().to_string()),
        ]);
    }
    t
}

pub fn plot(rows: &[SweepRow], title: &str, path: &Path) -> Result<()> {
    let mut modes: Vec<&str> = Vec::new();
    for r in rows {
        if !modes.contains(&r.steps.as_str()) {
            modes.push(&r.steps);
        }
    }
    let series = modes
        .iter()
        .map(|m| {
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.steps == *m)
                .map(|r| (r.depth as f64, 100.0 * r.test_acc))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let label = match *m {
                "fixed:1" => "ResNet (fixed:1)".to_string(),
                "lstm" => "TSC-ResNet (lstm)".to_string(),
                o => o.to_string(),
            };
            Series {
                label,
                points: pts,
                band: None,
            }
        })
        .collect();
    let p = Panel {
        title: title.into(),
        x_label: "depth (layers)".into(),
        y_label: "test accuracy (%)".into(),
        series,
    };
    plot::write_png(path, &[p], 820, 520)
}

/// The whole command: train, print the table, write `sweep.csv` and `sweep.png` into `out`.
pub fn command(
    gpu: &Gpu,
    base: &TrainConfig,
    depths: &[usize],
    modes: &[String],
    out: &Path,
) -> Result<Vec<SweepRow>> {
    let rows = sweep(gpu, base, depths, modes, out, false)?;
    let t = table(&rows);
    print!("{}", t.render());
    let (csv, png) = (out.join("sweep.csv"), out.join("sweep.png"));
    t.write_csv(&csv)?;
    let title = format!(
        "{}: test accuracy vs depth ({} epochs, width {})",
        base.dataset, base.epochs, base.width
    );
    plot(&rows, &title, &png)?;
    println!("wrote {} and {}", csv.display(), png.display());
    Ok(rows)
}
