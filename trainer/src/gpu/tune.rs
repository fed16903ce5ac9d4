//! Tile selection for the conv kernels: the adapter's default, or (with `TSC_AUTOTUNE=1`) the
//! fastest of a few candidates timed on the actual shape at first use, cached per
//! (pass, shape) for the rest of the process. Candidates are few because each new tile is a
//! pipeline JIT (lavapipe, conv forward: ~1.2 s for 8×8 tiles, ~6 s for 16×16, 70+ s for
//! 32×32). Without autotuning the tile is `conv::budget_tile`: the adapter's default, capped
//! on CPU adapters for short runs. The candidates are checked against the f64 references by
//! the ignored `autotune_candidates_match_reference` in `trainer/tests/conv.rs`.

use super::conv::{
    budget_tile, conv_backward_data_with, conv_backward_weights_with, conv_forward_with,
    default_tile_for, ConvShape, Pass, Tile,
};
use super::{Dispatch, Gpu};
use anyhow::Result;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Environment variable that turns on autotuning at first use.
pub const AUTOTUNE_ENV: &str = "TSC_AUTOTUNE";

fn cache() -> &'static Mutex<HashMap<(Pass, ConvShape), Tile>> {
    static C: OnceLock<Mutex<HashMap<(Pass, ConvShape), Tile>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Whether `TSC_AUTOTUNE=1` is set.
pub fn autotune_enabled() -> bool {
    std::env::var(AUTOTUNE_ENV).is_ok_and(|v| v == "1")
}

/// Tiles worth trying for `pass` on this adapter (the default first).
pub fn candidates(gpu: &Gpu, pass: Pass, s: &ConvShape) -> Vec<Tile> {
    candidates_for(gpu.is_cpu(), pass, s)
}

/// `candidates` for a CPU (`cpu`) or GPU adapter.
pub fn candidates_for(cpu: bool, pass: Pass, s: &ConvShape) -> Vec<Tile> {
    let d = default_tile_for(cpu, pass, s);
    let mut v = vec![d];
    let extra: &[(u32, u32, u32)] = if cpu {
        &[(16, 16, 8), (32, 16, 8), (16, 32, 8)]
    } else {
        &[(8, 4, 64), (4, 8, 64)]
    };
    for &(tm, tn, wg) in extra {
        let t = Tile {
            tm,
            tn,
            wg,
            tex: d.tex,
        };
        if !v.contains(&t) {
            v.push(t);
        }
    }
    v
}

/// Median seconds of `reps` runs of `ds` (submit to completion), after one warm-up run.
pub fn time_dispatches(gpu: &Gpu, ds: &[Dispatch], reps: usize) -> Result<f64> {
    let run = || -> Result<f64> {
        let mut rec = gpu.recorder();
        for d in ds {
            rec.run(d);
        }
        let t = Instant::now();
        rec.submit();
        gpu.wait()?;
        Ok(t.elapsed().as_secs_f64())
    };
    run()?;
    let mut t: Vec<f64> = (0..reps.max(1)).map(|_| run()).collect::<Result<_>>()?;
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// Time each candidate of `pass` on shape `s` (fresh zero tensors), fastest first.
pub fn tune(gpu: &Gpu, pass: Pass, s: &ConvShape, reps: usize) -> Result<Vec<(Tile, f64)>> {
    let x = gpu.zeros(&s.x_shape());
    let w = gpu.zeros(&s.w_shape());
    let y = gpu.zeros(&s.y_shape());
    let mut out = Vec::new();
    for t in candidates(gpu, pass, s) {
        let ds = match pass {
            Pass::Forward => conv_forward_with(gpu, s, t, &x, &w, None, &y)?,
            Pass::BackwardData => conv_backward_data_with(gpu, s, t, &y, &w, &x)?,
            Pass::BackwardWeights => conv_backward_weights_with(gpu, s, t, &x, &y, &w, false)?,
        };
        out.push((t, time_dispatches(gpu, &ds, reps)?));
    }
    out.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(out)
}

/// The tile for `pass` on `s`: tuned (and cached) when autotuning is on, else the default for
/// the run's length (`budget_tile`).
pub fn conv_tile(gpu: &Gpu, pass: Pass, s: &ConvShape) -> Result<Tile> {
    if !autotune_enabled() {
        return Ok(budget_tile(gpu, pass, s));
    }
    if let Some(t) = cache().lock().expect("tune cache").get(&(pass, *s)) {
        return Ok(*t);
    }
    let best = tune(gpu, pass, s, 2)?[0].0;
    cache().lock().expect("tune cache").insert((pass, *s), best);
    Ok(best)
}
