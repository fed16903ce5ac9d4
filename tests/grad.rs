//! `trainer grad` and `trainer train --save-init` (issue 21, item 4):
//! - one SGD step applied on the host, in f32, to `init.tscm` with the gradient `grad` writes
//!   reproduces the trainer's first step bit for bit (weights and momentum);
//! - the written gradient of a tiny network matches central differences of the f64 reference
//!   network on the same images;
//! - bad input gets a clear error and the checkpoint is never written.
//!
//! Random choices (perturbed parameters, sampled elements): seed from $TSC_TEST_SEED (default
//! 21), printed.

use std::collections::HashMap;
use std::path::Path;
use tsc_core::arch::Shape3;
use tsc_tests::{scratch_dir, tiny_digits};
use tsc_trainer::config::TrainConfig;
use tsc_trainer::data::Normalization;
use tsc_trainer::gpu::Gpu;
use tsc_trainer::grad::{command, GradOptions};
use tsc_trainer::model::{arch_for, HostModel};
use tsc_trainer::reference::network::{train_loss, Weights};
use tsc_trainer::rng::Rng;
use tsc_trainer::train::{train, TrainRun, CHECKPOINT, INIT_CHECKPOINT};

fn seed() -> u64 {
    let s = std::env::var("TSC_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    println!("seed {s} (set TSC_TEST_SEED to change)");
    s
}

fn opts(cfg: &TrainConfig, step: usize, shuffle: bool) -> GradOptions {
    GradOptions {
        batch: cfg.batch,
        seed: cfg.seed,
        epoch: 0,
        step,
        shuffle,
    }
}

fn is_buffer(name: &str) -> bool {
    name.ends_with(".mean") || name.ends_with(".var")
}

#[test]
fn sgd_step_from_save_init_with_the_gradient_is_the_first_training_step() {
    let gpu = Gpu::new(None).unwrap();
    let dir = scratch_dir("grad_first_step");
    let mut cfg = tiny_digits("lstm");
    cfg.epochs = 1;
    cfg.max_steps = 1;
    // Augmentation on, so `grad` must draw the augmented batch exactly as training does.
    cfg.augment = "on".into();
    cfg.weight_decay = 5e-4;
    let stats = train(
        &cfg,
        &TrainRun {
            gpu: &gpu,
            run_dir: dir.clone(),
            resume: false,
            quiet: true,
            stop_after: None,
            save_init: true,
        },
    )
    .unwrap();
    let init_path = dir.join(INIT_CHECKPOINT);
    let init_bytes = std::fs::read(&init_path).unwrap();
    let g = command(
        &gpu,
        &init_path,
        &cfg,
        &opts(&cfg, 0, true),
        &dir.join("grads.tscm"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&init_path).unwrap(),
        init_bytes,
        "grad changed its input"
    );
    println!("loss: train {} grad {}", stats[0].train_loss, g.loss);
    assert_eq!(stats[0].train_loss.to_bits(), g.loss.to_bits());

    let init = HostModel::load(&init_path).unwrap();
    let grads = HostModel::load(&dir.join("grads.tscm")).unwrap();
    let stepped = HostModel::load(&dir.join(CHECKPOINT)).unwrap();
    // The step schedule has not dropped at t = 0: the rate is the configured one.
    let (lr, mu, wd) = (cfg.lr, cfg.momentum, cfg.weight_decay);
    let (mut checked, mut bad) = (0usize, Vec::new());
    for ((w0, gr), w1) in init
        .tensors
        .iter()
        .zip(&grads.tensors)
        .zip(&stepped.tensors)
    {
        assert!(w0.name == gr.name && w0.name == w1.name);
        if is_buffer(&w0.name) {
            assert!(gr.data.iter().all(|&v| v == 0.0), "{}: not zero", gr.name);
            continue;
        }
        let v1 = &stepped.extra(&format!("opt.{}", w0.name)).unwrap().data;
        let (w, v) = host_sgd_step(&w0.data, &gr.data, lr, mu, wd);
        for (i, ((w, v), (w1, v1))) in w.iter().zip(&v).zip(w1.data.iter().zip(v1)).enumerate() {
            if w.to_bits() != w1.to_bits() || v.to_bits() != v1.to_bits() {
                bad.push(format!(
                    "{}[{i}]: host w {w:e} v {v:e}, trainer w {w1:e} v {v1:e}",
                    w0.name
                ));
            }
            checked += 1;
        }
    }
    println!("{checked} parameters compared, {} differ", bad.len());
    assert!(bad.is_empty(), "first {:?}", &bad[..bad.len().min(5)]);
}

/// PyTorch's SGD step (Nesterov, weight decay) from zero momentum, in f32, operation by
/// operation as docs/TRAINING.md writes it: `g = grad + wd·w; v = μ·v + g; w − lr·(g + μ·v)`.
fn host_sgd_step(w: &[f32], grad: &[f32], lr: f32, mu: f32, wd: f32) -> (Vec<f32>, Vec<f32>) {
    let mut out = (Vec::new(), Vec::new());
    for (&w, &gr) in w.iter().zip(grad) {
        let g = gr + wd * w;
        let v = mu * 0.0 + g;
        out.0.push(w - lr * (g + mu * v));
        out.1.push(v);
    }
    out
}

fn group_of(name: &str) -> &'static str {
    if name.contains(".ctl.") {
        "controller"
    } else if name.starts_with("fc.") {
        "fc"
    } else if name.contains("bn") {
        "bn"
    } else {
        "conv"
    }
}

/// A tiny digits-shaped model (depth 8, stem width 4, lstm, projection shortcuts) with BN
/// affine parameters and biases moved off their initial values, so every gradient matters.
fn tiny_model(rng: &mut Rng, norm: &Normalization) -> HostModel {
    let cfg = TrainConfig {
        depth: 8,
        width: 0.25,
        steps: "lstm".into(),
        shortcut: "B".into(),
        reduction: 2,
        ..Default::default()
    };
    let arch = arch_for(&cfg, Shape3::new(8, 8, 1), 10, &norm.mean, &norm.std).unwrap();
    let mut host = HostModel::init(arch, vec![], rng.below_usize(1000) as u64).unwrap();
    for t in host.tensors.iter_mut() {
        let (lo, hi) = if t.name.ends_with(".gamma") {
            (0.5, 1.5)
        } else if t.name.ends_with(".beta") || t.name.ends_with(".b") {
            (-0.3, 0.3)
        } else {
            continue;
        };
        t.data
            .iter_mut()
            .for_each(|v| *v = rng.uniform_range(lo, hi));
    }
    host
}

#[test]
fn gradient_matches_f64_reference_finite_differences() {
    let gpu = Gpu::new(None).unwrap();
    let dir = scratch_dir("grad_reference");
    let mut rng = Rng::new(seed());
    let cfg = TrainConfig {
        dataset: "digits".into(),
        batch: 4,
        ..Default::default()
    };
    let (train_ds, _) = tsc_trainer::data::load(&cfg.dataset_spec().unwrap()).unwrap();
    let norm = Normalization::from_dataset(&train_ds);
    let host = tiny_model(&mut rng, &norm);
    let ck = dir.join("tiny.tscm");
    host.save(&ck).unwrap();
    let out = dir.join("grads.tscm");
    let g = command(&gpu, &ck, &cfg, &opts(&cfg, 0, false), &out).unwrap();
    assert_eq!(
        g.indices,
        vec![0, 1, 2, 3],
        "--no-shuffle: the first images"
    );
    let grads = HostModel::load(&out).unwrap();

    // The first 4 training images, normalised here in f64.
    let (m, s) = (norm.mean[0] as f64, norm.std[0] as f64);
    let x: Vec<f64> = (0..4)
        .flat_map(|i| train_ds.image(i).to_vec())
        .map(|v| (v as f64 * train_ds.scale as f64 - m) / s)
        .collect();
    let labels = train_ds.labels[..4].to_vec();
    let a = host.arch;
    let mut w: Weights = host
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|&v| v as f64).collect()))
        .collect();
    let ref_loss = train_loss(&a, &w, &x, &labels);
    println!("loss gpu {} ref {ref_loss}", g.loss);
    assert!((g.loss - ref_loss).abs() <= 1e-5 * ref_loss.abs().max(1.0));

    let eps = 1e-6;
    let mut groups: HashMap<&str, (f64, f64, usize)> = HashMap::new();
    for t in &grads.tensors {
        if is_buffer(&t.name) {
            assert!(t.data.iter().all(|&v| v == 0.0), "{}", t.name);
            continue;
        }
        let e = groups.entry(group_of(&t.name)).or_default();
        for _ in 0..t.data.len().min(6) {
            let i = rng.below_usize(t.data.len());
            let orig = w[&t.name][i];
            w.get_mut(&t.name).unwrap()[i] = orig + eps;
            let lp = train_loss(&a, &w, &x, &labels);
            w.get_mut(&t.name).unwrap()[i] = orig - eps;
            let lm = train_loss(&a, &w, &x, &labels);
            w.get_mut(&t.name).unwrap()[i] = orig;
            let fd = (lp - lm) / (2.0 * eps);
            e.0 += (t.data[i] as f64 - fd).powi(2);
            e.1 += fd * fd;
            e.2 += 1;
        }
    }
    // Measured: 1e-7..5e-7 per group (f32 rounding); 1e-4 leaves room for an unlucky step
    // across a ReLU kink and still catches a wrong or missing gradient term.
    let mut bad = Vec::new();
    for (k, (num, den, n)) in &groups {
        let rel = (num / den.max(1e-30)).sqrt();
        println!("{k:<10} {n:>4} elements  rel err {rel:.2e}");
        if !(rel < 1e-4 || den.sqrt() < 1e-6) {
            bad.push(format!("{k}: {rel:.2e}"));
        }
    }
    assert!(bad.is_empty(), "gradient errors too large: {bad:?}");
}

fn err<T, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => {
            let s = format!("{e:#}");
            println!("error: {s}");
            assert!(!s.contains('\n'), "one line: {s}");
            s
        }
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_the_checkpoint_is_never_written() {
    let gpu = Gpu::new(None).unwrap();
    let dir = scratch_dir("grad_errors");
    let cfg = tiny_digits("fixed:1");
    let (train_ds, _) = tsc_trainer::data::load(&cfg.dataset_spec().unwrap()).unwrap();
    let norm = Normalization::from_dataset(&train_ds);
    let host = tiny_model(&mut Rng::new(5), &norm);
    let ck = dir.join("ck.tscm");
    host.save(&ck).unwrap();
    let bytes = std::fs::read(&ck).unwrap();
    let out = dir.join("g.tscm");
    let run = |ck: &Path, cfg: &TrainConfig, o: GradOptions, out: &Path| {
        err(command(&gpu, ck, cfg, &o, out))
    };
    let o = opts(&cfg, 0, true);

    let e = run(&dir.join("missing.tscm"), &cfg, o, &out);
    assert!(
        e.contains("cannot read checkpoint") && e.contains("missing.tscm"),
        "{e}"
    );
    for same in [ck.clone(), dir.join(".").join("ck.tscm")] {
        let e = run(&ck, &cfg, o, &same);
        assert!(e.contains("is the checkpoint itself"), "{e}");
    }
    std::fs::write(dir.join("afile"), b"x").unwrap();
    let e = run(&ck, &cfg, o, &dir.join("afile").join("g.tscm"));
    assert!(e.contains("cannot create its folder"), "{e}");
    let e = run(&ck, &cfg, o, &dir);
    assert!(e.contains("is a folder"), "{e}");
    let e = run(&ck, &cfg, opts(&cfg, 44, true), &out);
    assert!(e.contains("--step 44") && e.contains("44 batches"), "{e}");
    let e = run(&ck, &cfg, GradOptions { batch: 0, ..o }, &out);
    assert!(e.contains("batch size must be at least 1"), "{e}");
    let e = err(tsc_trainer::analysis::dataset_config(
        &ck,
        Some("digits"),
        None,
        Some(0),
    ));
    assert!(e.contains("--batch 0"), "{e}");
    // A CIFAR-shaped checkpoint against the digits.
    let c32 = TrainConfig {
        depth: 8,
        width: 0.25,
        ..Default::default()
    };
    let arch = arch_for(&c32, Shape3::new(32, 32, 3), 10, &[0.5; 3], &[0.25; 3]).unwrap();
    let cifar = dir.join("cifar.tscm");
    HostModel::init(arch, vec![], 1)
        .unwrap()
        .save(&cifar)
        .unwrap();
    let e = run(&cifar, &cfg, o, &out);
    assert!(e.contains("another architecture"), "{e}");
    // A folded model has no training parameters.
    let folded = Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-demo/models/default.tscm");
    let e = run(&folded, &cfg, o, &out);
    assert!(e.contains("folded inference model"), "{e}");

    assert_eq!(std::fs::read(&ck).unwrap(), bytes, "the checkpoint changed");
    assert!(!out.exists(), "a failed grad left {}", out.display());

    // --save-init on a resumed run has nothing to save.
    let e = err(train(
        &cfg,
        &TrainRun {
            gpu: &gpu,
            run_dir: dir.clone(),
            resume: true,
            quiet: true,
            stop_after: None,
            save_init: true,
        },
    ));
    assert!(e.contains("--save-init"), "{e}");
}
