//! The analysis commands (issue 7) on tiny models and the shipped digits: numbers computed and
//! finite, σ = 0 equal to plain eval, PNG/CSV files valid, power iteration against exact
//! spectral norms, the feature forward against core's `infer`, and clear errors on bad input.

use std::path::{Path, PathBuf};
use tsc_core::arch::Shape3;
use tsc_trainer::analysis::stability::{self, ConvOp, StabilityOptions};
use tsc_trainer::analysis::{noise, sweep, table};
use tsc_trainer::config::TrainConfig;
use tsc_trainer::data::{self, Normalization, Split};
use tsc_trainer::gpu::Gpu;
use tsc_trainer::model::{arch_for, HostModel};
use tsc_trainer::rng::Rng;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir()
        .join(format!("tsc-analysis-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn digits_cfg(steps: &str) -> TrainConfig {
    TrainConfig {
        dataset: "digits".into(),
        depth: 8,
        width: 0.25,
        steps: steps.into(),
        batch: 64,
        ..Default::default()
    }
}

/// A freshly initialised tiny checkpoint for digits (8x8x1, 10 classes), optionally with other
/// input shape / classes, saved under `dir/name/checkpoint.tscm`.
fn tiny_checkpoint(
    dir: &Path,
    name: &str,
    steps: &str,
    input: Shape3,
    classes: usize,
    seed: u64,
) -> PathBuf {
    let cfg = digits_cfg(steps);
    let (train, _) = data::load(&cfg.dataset_spec().unwrap()).unwrap();
    let norm = Normalization::from_dataset(&train);
    let mean = vec![norm.mean[0]; input.c];
    let std = vec![norm.std[0]; input.c];
    let arch = arch_for(&cfg, input, classes, &mean, &std).unwrap();
    let names = (0..classes).map(|i| i.to_string()).collect();
    let host = HostModel::init(arch, names, seed).unwrap();
    let p = dir.join(name).join("checkpoint.tscm");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    host.save(&p).unwrap();
    p
}

fn digits_ck(dir: &Path, name: &str, steps: &str) -> PathBuf {
    tiny_checkpoint(dir, name, steps, Shape3::new(8, 8, 1), 10, 7)
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let img = image::load_from_memory(&bytes).unwrap();
    assert!(img.width() > 100 && img.height() > 100);
    // Something was drawn: not a blank image.
    let rgb = img.to_rgb8();
    let dark = rgb
        .pixels()
        .filter(|p| p.0.iter().all(|&v| v < 100))
        .count();
    assert!(dark > 200, "{} looks blank", path.display());
}

/// Rows of a CSV file, each split at commas; checks that every row has the header's width.
fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert!(rows.len() >= 2, "{} has no data row", path.display());
    for r in &rows {
        assert_eq!(
            r.len(),
            rows[0].len(),
            "{}: ragged row {r:?}",
            path.display()
        );
    }
    rows
}

fn err_of<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn noise_eval_sigma_zero_is_eval_and_files_are_valid() {
    let dir = scratch("noise");
    let a = digits_ck(&dir, "fixed", "fixed:1");
    let b = digits_ck(&dir, "lstm", "lstm");
    let cfg = digits_cfg("lstm");
    let opts = noise::NoiseOptions {
        sigmas: vec![0.0, 0.5, 2.0],
        seed: 1,
        batch: 64,
        images: 0,
    };
    let out = dir.join("out");
    let gpu = Gpu::new(None).unwrap();
    let curves = noise::command(
        || Gpu::new(None),
        &[a.clone(), b.clone()],
        &cfg,
        &opts,
        &out,
    )
    .unwrap();
    assert_eq!(curves.len(), 2);
    for (c, p) in curves.iter().zip([&a, &b]) {
        assert_eq!(c.points.len(), 3);
        for q in &c.points {
            assert!(
                q.loss.is_finite() && (0.0..=1.0).contains(&q.accuracy) && q.samples > 0,
                "{q:?}"
            );
        }
        let e = tsc_trainer::train::eval(Some(&gpu), p, &cfg).unwrap();
        let z = c.points[0];
        assert_eq!(z.samples, e.samples);
        assert!(
            (z.accuracy - (1.0 - e.err)).abs() < 1e-12,
            "σ=0 accuracy {} vs eval {}",
            z.accuracy,
            1.0 - e.err
        );
        assert!(
            (z.loss - e.loss).abs() < 1e-6 * e.loss.max(1.0),
            "σ=0 loss {} vs eval {}",
            z.loss,
            e.loss
        );
        // Large noise changes the loss.
        assert_ne!(c.points[2].loss, z.loss);
    }
    assert_png(&out.join("noise.png"));
    let rows = read_csv(&out.join("noise.csv"));
    assert_eq!(
        rows[0],
        ["checkpoint", "sigma", "images", "accuracy", "loss"]
    );
    assert_eq!(rows.len(), 1 + 2 * 3);
    // Same seed, same numbers (noise is seeded); and a subset of images works.
    let again = noise::noise_eval(
        &gpu,
        std::slice::from_ref(&a),
        &noise::read_checkpoints(std::slice::from_ref(&a)).unwrap(),
        &data::load_split(&cfg.dataset_spec().unwrap(), Split::Test).unwrap(),
        &opts,
    )
    .unwrap();
    assert_eq!(again[0].points, curves[0].points);
    let sub = noise::NoiseOptions { images: 50, ..opts };
    let few = noise::noise_eval(
        &gpu,
        std::slice::from_ref(&a),
        &noise::read_checkpoints(std::slice::from_ref(&a)).unwrap(),
        &data::load_split(&cfg.dataset_spec().unwrap(), Split::Test).unwrap(),
        &sub,
    )
    .unwrap();
    assert_eq!(few[0].points[0].samples, 50);
}

/// The noise noise-eval adds has the σ it is asked for (empirical mean 0 and standard
/// deviation σ over every input value, independent across images), and the GPU's loss and
/// accuracy on the noisy inputs equal core's inference on the same inputs (an independent
/// implementation; the σ = 0 test above only compares with `eval`).
#[test]
fn noise_eval_adds_the_requested_noise_and_matches_core() {
    let dir = scratch("noise_sigma");
    let ck = digits_ck(&dir, "lstm", "lstm");
    let cfg = digits_cfg("lstm");
    let test = data::load_split(&cfg.dataset_spec().unwrap(), Split::Test).unwrap();
    let host = noise::read_checkpoints(std::slice::from_ref(&ck))
        .unwrap()
        .remove(0);
    let a = host.arch;
    let norm = Normalization {
        mean: a.mean[..a.input.c].to_vec(),
        std: a.std[..a.input.c].to_vec(),
    };
    let loader = data::Loader::new(
        std::sync::Arc::new(test.clone()),
        norm.clone(),
        data::LoaderConfig::eval(64),
    )
    .unwrap();
    let batches: Vec<data::Batch> = loader.epoch(0).collect();
    let (seed, sigma) = (3u64, 0.7f32);
    // The added noise: mean, variance, correlation between consecutive images.
    let (mut n, mut sum, mut sq, mut cross) = (0f64, 0f64, 0f64, 0f64);
    let per = a.input.len();
    for b in &batches {
        let noisy = noise::add_noise(b, seed, sigma);
        let d: Vec<f64> = noisy
            .iter()
            .zip(&b.images)
            .map(|(y, x)| (y - x) as f64)
            .collect();
        for v in &d {
            sum += v;
            sq += v * v;
        }
        for i in 0..b.len().saturating_sub(1) {
            for k in 0..per {
                cross += d[i * per + k] * d[(i + 1) * per + k];
            }
        }
        n += d.len() as f64;
    }
    let mean = sum / n;
    let sd = (sq / n - mean * mean).sqrt();
    let corr = cross / n / (sigma as f64 * sigma as f64);
    println!("{n} noise values: mean {mean:.4}, sd {sd:.4} (σ {sigma}), lag-1 image correlation {corr:.4}");
    // n ≈ 23,000: the sample sd is within 2% of σ and the mean within 0.02 σ with
    // overwhelming probability for Gaussian noise; a wrong scale (σ², σ·std) fails.
    assert!(
        (sd / sigma as f64 - 1.0).abs() < 0.02,
        "sd {sd} for σ {sigma}"
    );
    assert!(mean.abs() < 0.02 * sigma as f64, "mean {mean}");
    assert!(corr.abs() < 0.05, "noise correlated across images: {corr}");

    // The GPU's noisy evaluation against core on the same noisy inputs.
    let opts = noise::NoiseOptions {
        sigmas: vec![sigma],
        seed,
        batch: 64,
        images: 0,
    };
    let gpu = Gpu::new(None).unwrap();
    let curves = noise::noise_eval(&gpu, std::slice::from_ref(&ck), &[host], &test, &opts).unwrap();
    let got = curves[0].points[0];
    let bytes = std::fs::read(&ck).unwrap();
    let model = tsc_core::Model::parse(&bytes).unwrap();
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut logits = vec![0.0f32; a.classes];
    let (mut loss, mut correct, mut count) = (0f64, 0u64, 0u64);
    for b in &batches {
        let noisy = noise::add_noise(b, seed, sigma);
        for (i, &y) in b.labels.iter().enumerate() {
            // core normalises itself: feed intensities whose normalised value is the input.
            let x: Vec<f32> = noisy[i * per..(i + 1) * per]
                .iter()
                .enumerate()
                .map(|(k, &v)| v * norm.std[k % a.input.c] + norm.mean[k % a.input.c])
                .collect();
            tsc_core::infer(&model, &x, &mut scratch, &mut logits).unwrap();
            let m = logits.iter().fold(f32::MIN, |m, &v| m.max(v)) as f64;
            let lse = m + logits
                .iter()
                .map(|&v| (v as f64 - m).exp())
                .sum::<f64>()
                .ln();
            loss += lse - logits[y as usize] as f64;
            correct += (tsc_core::layers::argmax(&logits) == Some(y as usize)) as u64;
            count += 1;
        }
    }
    let (loss, acc) = (loss / count as f64, correct as f64 / count as f64);
    println!(
        "σ {sigma}: GPU loss {:.6} acc {:.4}; core loss {loss:.6} acc {acc:.4}",
        got.loss, got.accuracy
    );
    assert_eq!(got.samples, count);
    assert!(
        (got.loss - loss).abs() <= 1e-4 * loss.max(1.0),
        "loss {} vs core {loss}",
        got.loss
    );
    assert!(
        (got.accuracy - acc).abs() <= 2.0 / count as f64,
        "accuracy {} vs core {acc}",
        got.accuracy
    );
}

#[test]
fn noise_eval_bad_input_errors() {
    let dir = scratch("noise_bad");
    let good = digits_ck(&dir, "good", "lstm");
    let rgb = tiny_checkpoint(&dir, "rgb", "lstm", Shape3::new(8, 8, 3), 10, 1);
    let cfg = digits_cfg("lstm");
    let out = dir.join("out");
    let opts = |s: Vec<f32>| noise::NoiseOptions {
        sigmas: s,
        seed: 0,
        batch: 32,
        images: 0,
    };
    let no_gpu =
        || -> anyhow::Result<Gpu> { panic!("the GPU must not be needed to reject bad input") };
    let e = err_of(noise::command(
        no_gpu,
        std::slice::from_ref(&good),
        &cfg,
        &opts(vec![]),
        &out,
    ));
    assert!(e.contains("empty --sigma"), "{e}");
    let e = err_of(noise::command(
        no_gpu,
        std::slice::from_ref(&good),
        &cfg,
        &opts(vec![0.0, -0.1]),
        &out,
    ));
    assert!(e.contains("-0.1"), "{e}");
    let e = err_of(noise::command(
        no_gpu,
        &[good.clone(), dir.join("missing.tscm")],
        &cfg,
        &opts(vec![0.0]),
        &out,
    ));
    assert!(e.contains("missing.tscm"), "{e}");
    let e = err_of(noise::command(
        no_gpu,
        &[good, rgb],
        &cfg,
        &opts(vec![0.0]),
        &out,
    ));
    assert!(
        e.contains("another architecture") && e.contains("rgb"),
        "{e}"
    );
}

#[test]
fn steps_for_several_checkpoints_writes_png_and_csv() {
    let dir = scratch("steps");
    let a = digits_ck(&dir, "fixed", "fixed:0.1");
    let b = digits_ck(&dir, "lstm", "lstm");
    let (csv, png) = (dir.join("steps.csv"), dir.join("steps.png"));
    tsc_trainer::tools::steps(&[a.clone(), b], Some(&csv), Some(&png)).unwrap();
    assert_png(&png);
    let rows = read_csv(&csv);
    assert_eq!(rows[0], ["checkpoint", "stage", "block", "channel", "dt"]);
    // 3 blocks of 4, 8, 16 channels, for each checkpoint.
    assert_eq!(rows.len(), 1 + 2 * (4 + 8 + 16));
    assert!(rows[1..]
        .iter()
        .all(|r| r[4].parse::<f32>().unwrap().is_finite()));
    // One checkpoint keeps the original CSV layout.
    tsc_trainer::tools::steps(&[a], Some(&csv), None).unwrap();
    assert_eq!(read_csv(&csv)[0], ["stage", "block", "channel", "dt"]);
    let e = err_of(tsc_trainer::tools::steps(
        &[dir.join("nope.tscm")],
        None,
        None,
    ));
    assert!(e.contains("nope.tscm"), "{e}");
}

#[test]
fn power_iteration_matches_exact_svd_of_a_matrix() {
    let mut r = Rng::new(5);
    let (m, n) = (5, 7);
    let a: Vec<f64> = (0..m * n).map(|_| r.normal() as f64).collect();
    // AᵀA and its exact eigenvalues (Jacobi).
    let mut ata = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            ata[i * n + j] = (0..m).map(|k| a[k * n + i] * a[k * n + j]).sum();
        }
    }
    let exact = stability::sym_eigenvalues(ata, n).last().unwrap().sqrt();
    let est = stability::matrix_norm(m, n, &a, 1000, 1);
    assert!(
        (est - exact).abs() < 1e-6 * exact,
        "power iteration {est} vs exact {exact}"
    );
    // A 2×2 with known singular values 3 and 1.
    let d = stability::matrix_norm(2, 2, &[2.0, 1.0, 1.0, 2.0], 500, 2);
    assert!((d - 3.0).abs() < 1e-6, "{d}");
}

#[test]
fn conv_operator_norm_matches_brute_force() {
    let mut r = Rng::new(9);
    for (stride, groups) in [(1, 1), (2, 1), (1, 2)] {
        let input = Shape3::new(5, 4, 2);
        let out_c = 4;
        let w: Vec<f64> = (0..out_c * 9 * 2 / groups)
            .map(|_| r.normal() as f64)
            .collect();
        let op = ConvOp::new(input, out_c, 3, stride, 1, groups, w).unwrap();
        let (n, m) = (input.len(), op.output.len());
        // Adjointness: <A x, y> = <x, Aᵀ y>.
        let x: Vec<f64> = (0..n).map(|_| r.normal() as f64).collect();
        let y: Vec<f64> = (0..m).map(|_| r.normal() as f64).collect();
        let lhs: f64 = op.apply(&x).iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(op.adjoint(&y)).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0));
        // Dense matrix of the operator, column by column, and its exact norm.
        let mut dense = vec![0.0; m * n];
        for j in 0..n {
            let mut e = vec![0.0; n];
            e[j] = 1.0;
            for (i, v) in op.apply(&e).into_iter().enumerate() {
                dense[i * n + j] = v;
            }
        }
        let mut ata = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                ata[i * n + j] = (0..m).map(|k| dense[k * n + i] * dense[k * n + j]).sum();
            }
        }
        let exact = stability::sym_eigenvalues(ata, n).last().unwrap().sqrt();
        let est = op.op_norm(5000, 3);
        assert!(
            (est - exact).abs() < 1e-4 * exact,
            "stride {stride} groups {groups}: {est} vs {exact}"
        );
        assert!(op.matrix_norm(1000, 3) > 0.0);
    }
}

#[test]
fn feature_forward_matches_core_infer() {
    let dir = scratch("forward");
    let p = digits_ck(&dir, "m", "lstm");
    let bytes = std::fs::read(&p).unwrap();
    let ck = tsc_core::Model::parse(&bytes).unwrap();
    let folded = tsc_core::fold::fold_to_vec(&ck).unwrap();
    let fm = tsc_core::Model::parse(&folded).unwrap();
    let test = data::load_split(&digits_cfg("lstm").dataset_spec().unwrap(), Split::Test).unwrap();
    let a = *fm.arch();
    let mut scratch = vec![0.0; fm.scratch_len()];
    let mut want = vec![0.0; a.classes];
    for i in 0..4 {
        tsc_core::infer(&fm, &test.image_f32(i), &mut scratch, &mut want).unwrap();
        let x = stability::normalised(&a, &test, i);
        let ys =
            stability::blocks_forward(&fm, &stability::stem_forward(&fm, &x).unwrap()).unwrap();
        assert_eq!(ys.len(), 3);
        let got = stability::head_forward(&fm, ys.last().unwrap()).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }
}

#[test]
fn stability_numbers_and_csv() {
    let dir = scratch("stability");
    let cfg = digits_cfg("lstm");
    for (steps, shortcut) in [("lstm", "A"), ("indp", "B")] {
        let cfg = TrainConfig {
            shortcut: shortcut.into(),
            steps: steps.into(),
            ..cfg.clone()
        };
        let (train, _) = data::load(&cfg.dataset_spec().unwrap()).unwrap();
        let norm = Normalization::from_dataset(&train);
        let arch = arch_for(&cfg, Shape3::new(8, 8, 1), 10, &norm.mean, &norm.std).unwrap();
        let host = HostModel::init(arch, (0..10).map(|i| i.to_string()).collect(), 2).unwrap();
        let p = dir.join(format!("{steps}.tscm"));
        host.save(&p).unwrap();
        let csv = dir.join(format!("{steps}.csv"));
        let opts = StabilityOptions {
            images: 6,
            eps: 1e-3,
            iters: 300,
            seed: 0,
        };
        let s = stability::command(&p, &cfg, &opts, &csv).unwrap();
        assert_eq!(s.blocks.len(), 3);
        let mut prev = 1.0;
        for b in &s.blocks {
            for v in [
                b.a1_op,
                b.a2_op,
                b.a1_mat,
                b.a2_mat,
                b.w_norm,
                b.dt_mean,
                b.dt_max,
                b.factor,
                b.bound,
                b.tight_bound,
                b.measured_mean,
                b.measured_max,
            ] {
                assert!(v.is_finite() && v > 0.0, "{b:?}");
            }
            assert!((b.w_norm - b.a1_op * b.a2_op).abs() < 1e-9 * b.w_norm);
            assert!((b.bound - prev * b.factor).abs() < 1e-9 * b.bound);
            assert!(b.tight_bound <= b.bound * (1.0 + 1e-6), "{b:?}");
            // The bound holds for the measurement (it is an upper bound on the Lipschitz constant).
            assert!(b.measured_max <= b.tight_bound * 1.01, "{b:?}");
            assert!(b.measured_mean <= b.measured_max + 1e-12);
            prev = b.bound;
        }
        assert!(s.blocks.iter().any(|b| b.shortcut != 1.0) == (shortcut == "B"));
        assert!(s.input_measured.0.is_finite() && s.input_measured.1 > 0.0);
        let rows = read_csv(&csv);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0][0], "block");
        assert!(
            rows[0].contains(&"conv1_bn_operator_norm".to_string())
                && rows[0].contains(&"conv1_bn_matrix_norm".to_string())
        );
        assert!(stability::summary(&s).contains("operator"));
    }
    // Errors: missing file, folded model, wrong architecture.
    let opts = StabilityOptions::default();
    let e = err_of(stability::command(
        &dir.join("missing.tscm"),
        &cfg,
        &opts,
        &dir.join("x.csv"),
    ));
    assert!(e.contains("missing.tscm"), "{e}");
    let p = dir.join("lstm.tscm");
    let folded = dir.join("folded.tscm");
    tsc_trainer::tools::export(&p, &folded).unwrap();
    let e = err_of(stability::command(&folded, &cfg, &opts, &dir.join("x.csv")));
    assert!(e.contains("checkpoint"), "{e}");
    let five = tiny_checkpoint(&dir, "five", "lstm", Shape3::new(8, 8, 1), 5, 1);
    let e = err_of(stability::command(&five, &cfg, &opts, &dir.join("x.csv")));
    assert!(e.contains("another architecture"), "{e}");
}

#[test]
fn sweep_smoke_on_digits() {
    let dir = scratch("sweep");
    let base = TrainConfig {
        epochs: 1,
        max_steps: 2,
        batch: 32,
        workers: 1,
        ..digits_cfg("lstm")
    };
    let gpu = Gpu::new(None).unwrap();
    let modes = vec!["fixed:1".to_string(), "lstm".to_string()];
    let rows = sweep::command(&gpu, &base, &[8, 14], &modes, &dir).unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert!(
            r.test_acc.is_finite()
                && (0.0..=1.0).contains(&r.test_acc)
                && r.test_loss.is_finite()
                && r.epochs == 1,
            "{r:?}"
        );
    }
    assert!(
        rows[1].params > rows[0].params,
        "depth 14 has more parameters than 8"
    );
    assert_png(&dir.join("sweep.png"));
    let csv = read_csv(&dir.join("sweep.csv"));
    assert_eq!(csv.len(), 5);
    assert_eq!(csv[0][..2], ["steps".to_string(), "depth".to_string()]);
    // Running it again reuses the finished runs.
    let again = sweep::sweep(&gpu, &base, &[8], &modes[..1], &dir, true).unwrap();
    assert_eq!(again[0].test_acc, rows[0].test_acc);
}

#[test]
fn table_aligns_and_writes_csv() {
    let mut t = table::Table::new(vec![
        table::col("name", "name"),
        table::num("σ", "sigma", 2),
    ]);
    t.push(vec!["a,b".into(), 0.5f64.into()]);
    t.push(vec!["long name".into(), 10.0f64.into()]);
    let r = t.render();
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines.len(), 3);
    let w: Vec<usize> = lines.iter().map(|l| l.chars().count()).collect();
    assert!(w.iter().all(|&x| x == w[0]), "{r}");
    assert_eq!(t.csv(), "name,sigma\n\"a,b\",0.5\nlong name,10\n");
}
