//! How many digits each long-reduction kernel keeps, at ResNet-20's shapes: every output's
//! error against f64, in units of u = 2^-24 (f32's unit roundoff) relative to the sum of the
//! absolute values of its terms, Σ|terms| (the scale a summation's rounding error is
//! proportional to; an output near 0 by cancellation is judged by its terms, not by itself).
//! A plain f32 dot product of n terms in one running sum is off by about √n·u typically and
//! n·u at worst; blocked or pairwise sums stay near log₂n·u.
//!
//! The table (max and RMS per kernel) is printed; `PRECISION_BATCH` sets the batch (default
//! 16 in CI; 128 is ResNet-20's training batch), `PRECISION_LONG=1` takes a long run's conv
//! tiles, `PRECISION_SEED` replays a run.

use tsc_trainer::gpu::conv::{
    budget_tile_for, conv_backward_data_with, conv_backward_weights_with, conv_forward_with,
    default_tile, ConvShape, Pass, Tile,
};
use tsc_trainer::gpu::norm::{self, BnGrad, BnShape, Epilogue};
use tsc_trainer::gpu::{Dispatch, Gpu, Tensor};
use tsc_trainer::reference::conv as rc;
use tsc_trainer::reference::ops as r;
use tsc_trainer::rng::Rng;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    let seed = std::env::var("PRECISION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed {seed} (PRECISION_SEED={seed} replays)");
    seed
}

/// `n` normal values (mean, std), rounded to f32 so that the reference sees the GPU's inputs.
fn randn(rng: &mut Rng, n: usize, mean: f64, std: f64) -> Vec<f64> {
    (0..n)
        .map(|_| (mean + std * rng.normal() as f64) as f32 as f64)
        .collect()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

fn up(gpu: &Gpu, v: &[f64], shape: &[usize]) -> Tensor {
    let f: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    gpu.upload(&f, shape)
}

fn down(gpu: &Gpu, t: &Tensor) -> Vec<f64> {
    gpu.download(t).unwrap().iter().map(|&x| x as f64).collect()
}

fn run(gpu: &Gpu, ds: &[Dispatch]) {
    let mut rec = gpu.recorder();
    for d in ds {
        rec.run(d);
    }
    rec.submit();
}

/// One kernel output's errors: max and RMS of |got − want| / Σ|terms|, in u.
struct Row {
    name: String,
    terms: usize,
    max: f64,
    rms: f64,
}

fn row(name: &str, terms: usize, got: &[f64], want: &[f64], scale: &[f64]) -> Row {
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), scale.len());
    let e: Vec<f64> = got
        .iter()
        .zip(want)
        .zip(scale)
        .map(|((g, w), s)| {
            assert!(g.is_finite(), "{name}: non-finite output {g}");
            (g - w).abs() / s.max(f64::MIN_POSITIVE) / U
        })
        .collect();
    Row {
        name: name.to_string(),
        terms,
        max: e.iter().fold(0.0, |m, &v| m.max(v)),
        rms: (e.iter().map(|v| v * v).sum::<f64>() / e.len() as f64).sqrt(),
    }
}

/// The conv tiles measured: a long run's (`PRECISION_LONG=1`, what training ResNet-20 on all
/// of CIFAR-10 takes), else a short run's (the capped tiles `trainer/tests/conv.rs` has
/// already compiled, so CI spends no JIT here). The sums run in the same order in both; dW's
/// chunk lengths differ.
fn tile(gpu: &Gpu, pass: Pass, s: &ConvShape) -> Tile {
    if std::env::var("PRECISION_LONG").as_deref() == Ok("1") {
        default_tile(gpu, pass, s)
    } else {
        budget_tile_for(gpu.is_cpu(), pass, s, 1)
    }
}

/// Conv forward, backward to input and to weights at one shape.
fn conv_rows(gpu: &Gpu, rng: &mut Rng, label: &str, s: ConvShape) -> Vec<Row> {
    // x as after a ReLU (non-negative) and gradients with a common sign component, so that
    // dW's pixel sums accumulate instead of cancelling (random signs hide a long running sum:
    // its error grows like √n while Σ|terms| grows like n)
    let x: Vec<f64> = abs(&randn(rng, s.x_shape().iter().product(), 0.3, 1.0));
    let w = randn(rng, s.w_shape().iter().product(), 0.0, 0.1);
    let dy = randn(rng, s.y_shape().iter().product(), 0.5, 1.0);
    let (tx, tw, tdy) = (
        up(gpu, &x, &s.x_shape()),
        up(gpu, &w, &s.w_shape()),
        up(gpu, &dy, &s.y_shape()),
    );
    let (ty, tdx, tdw) = (
        gpu.zeros(&s.y_shape()),
        gpu.zeros(&s.x_shape()),
        gpu.zeros(&s.w_shape()),
    );
    let f = conv_forward_with(gpu, &s, tile(gpu, Pass::Forward, &s), &tx, &tw, None, &ty);
    run(gpu, &f.unwrap());
    let t = tile(gpu, Pass::BackwardData, &s);
    run(
        gpu,
        &conv_backward_data_with(gpu, &s, t, &tdy, &tw, &tdx).unwrap(),
    );
    let t = tile(gpu, Pass::BackwardWeights, &s);
    let ds = conv_backward_weights_with(gpu, &s, t, &tx, &tdy, &tdw, false).unwrap();
    run(gpu, &ds);
    let taps = s.kh * s.kw * s.cin;
    let pixels = s.n * s.out_h() * s.out_w();
    vec![
        row(
            &format!("conv fwd {label}"),
            taps,
            &down(gpu, &ty),
            &rc::conv2d_forward(&s, &x, &w, None),
            &rc::conv2d_forward(&s, &abs(&x), &abs(&w), None),
        ),
        row(
            &format!("conv dX {label}"),
            s.kh * s.kw * s.cout,
            &down(gpu, &tdx),
            &rc::conv2d_backward_data(&s, &dy, &w),
            &rc::conv2d_backward_data(&s, &abs(&dy), &abs(&w)),
        ),
        row(
            &format!("conv dW {label}"),
            pixels,
            &down(gpu, &tdw),
            &rc::conv2d_backward_weights(&s, &x, &dy),
            &rc::conv2d_backward_weights(&s, &abs(&x), &abs(&dy)),
        ),
    ]
}

/// BatchNorm's training statistics and backward at one shape (`[rows][c]`).
fn bn_rows(gpu: &Gpu, rng: &mut Rng, label: &str, s: BnShape) -> Vec<Row> {
    let c = s.channels;
    let shape = [s.len() / c, c];
    // conv outputs: a mean of the order of the spread
    let x = randn(rng, s.len(), 0.5, 1.0);
    let gamma = randn(rng, c, 1.0, 0.2);
    let beta = randn(rng, c, 0.0, 0.2);
    let dy = randn(rng, s.len(), 0.5, 1.0);
    let (tx, tg, tb) = (
        up(gpu, &x, &shape),
        up(gpu, &gamma, &[c]),
        up(gpu, &beta, &[c]),
    );
    let (trm, trv) = (gpu.zeros(&[c]), gpu.zeros(&[c]));
    let (ty, tm, ti) = (gpu.zeros(&shape), gpu.zeros(&[c]), gpu.zeros(&[c]));
    let op = norm::batchnorm_train_forward(
        gpu,
        &s,
        &tx,
        &tg,
        &tb,
        &trm,
        &trv,
        &ty,
        &tm,
        &ti,
        Epilogue::None,
    )
    .unwrap();
    op.run(gpu);
    let bn = r::bn_train_forward(&x, c, &gamma, &beta);
    let mean_abs = r::bn_stats(&abs(&x), c).0;
    // the backward from the reference's saved statistics (so it is judged on its own sums)
    let (tdy, tm2, ti2) = (
        up(gpu, &dy, &shape),
        up(gpu, &bn.mean, &[c]),
        up(gpu, &bn.invstd, &[c]),
    );
    let (tdx, tdg, tdb) = (gpu.zeros(&shape), gpu.zeros(&[c]), gpu.zeros(&[c]));
    let op = norm::batchnorm_backward(
        gpu,
        &s,
        &tdy,
        &tx,
        &tg,
        &tb,
        &tm2,
        &ti2,
        &tdx,
        &tdg,
        &tdb,
        BnGrad::None,
    )
    .unwrap();
    op.run(gpu);
    let (dx, dg, db) = r::bn_backward(&dy, &x, c, &gamma, &bn.mean, &bn.invstd);
    // Σ|terms| of the backward: dβ = Σdy, dγ = Σdy·x̂, dx = γ·invstd·(dy − dβ/n − x̂·dγ/n)
    let rows = s.len() / c;
    let xhat: Vec<f64> = (0..s.len())
        .map(|i| (x[i] - bn.mean[i % c]) * bn.invstd[i % c])
        .collect();
    let mut sdb = vec![0.0; c];
    let mut sdg = vec![0.0; c];
    for i in 0..s.len() {
        sdb[i % c] += dy[i].abs();
        sdg[i % c] += (dy[i] * xhat[i]).abs();
    }
    let sdx: Vec<f64> = (0..s.len())
        .map(|i| {
            let j = i % c;
            (gamma[j] * bn.invstd[j]).abs()
                * (dy[i].abs() + sdb[j] / rows as f64 + xhat[i].abs() * sdg[j] / rows as f64)
        })
        .collect();
    vec![
        row(
            &format!("bn mean {label}"),
            rows,
            &down(gpu, &tm),
            &bn.mean,
            &mean_abs,
        ),
        // the variance's terms are all positive: the error relative to itself (via invstd,
        // whose relative error is half the variance's)
        row(
            &format!("bn invstd {label}"),
            rows,
            &down(gpu, &ti),
            &bn.invstd,
            &bn.invstd,
        ),
        row(&format!("bn dβ {label}"), rows, &down(gpu, &tdb), &db, &sdb),
        row(&format!("bn dγ {label}"), rows, &down(gpu, &tdg), &dg, &sdg),
        row(&format!("bn dx {label}"), rows, &down(gpu, &tdx), &dx, &sdx),
    ]
}

/// The bound asserted for every kernel, in u relative to Σ|terms|: a plain f32 dot product of
/// the conv's 144–576 taps reaches about 6 u here; before the BatchNorm statistics merged
/// per-chunk means and M2 and the finalizes summed in blocks, the statistics were at 29–149 u
/// and dβ at 11 u at batch 128.
const BOUND_U: f64 = 16.0;

#[test]
fn long_reductions_keep_f32_digits() {
    let gpu = Gpu::new(None).expect("a GPU adapter (lavapipe in CI)");
    let mut rng = Rng::new(seed());
    let n = env_usize("PRECISION_BATCH", 16);
    println!("adapter {}, batch {n}", gpu.describe());
    let sq = ConvShape::square;
    let mut rows = Vec::new();
    rows.extend(conv_rows(
        &gpu,
        &mut rng,
        "16->16 @32",
        sq(n, 32, 16, 16, 3, 1, 1),
    ));
    rows.extend(conv_rows(
        &gpu,
        &mut rng,
        "64->64 @8",
        sq(n, 8, 64, 64, 3, 1, 1),
    ));
    rows.extend(bn_rows(
        &gpu,
        &mut rng,
        "16 @32",
        BnShape::nhwc(n, 32, 32, 16),
    ));
    rows.extend(bn_rows(&gpu, &mut rng, "64 @8", BnShape::nhwc(n, 8, 8, 64)));
    println!(
        "{:<22} {:>8} {:>10} {:>10}",
        "kernel", "terms", "max (u)", "rms (u)"
    );
    for r in &rows {
        println!(
            "{:<22} {:>8} {:>10.2} {:>10.2}",
            r.name, r.terms, r.max, r.rms
        );
    }
    for r in &rows {
        assert!(
            r.max <= BOUND_U,
            "{}: {:.1} u > {BOUND_U} u (Σ|terms|-relative)",
            r.name,
            r.max
        );
    }
}
