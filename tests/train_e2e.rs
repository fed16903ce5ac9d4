//! Training end to end on the shipped digits: the loss falls, a run interrupted and resumed
//! reaches the same weights as one that was not, checkpoints round-trip through core, and bad
//! input gets a clear error.

use tsc_core::arch::Shape3;
use tsc_tests::{scratch_dir, tiny_digits, train_into};
use tsc_trainer::config::TrainConfig;
use tsc_trainer::gpu::Gpu;
use tsc_trainer::model::{arch_for, HostModel};
use tsc_trainer::net::{GpuModel, Graph, Mode};
use tsc_trainer::train::{eval, train, TrainRun};

#[test]
fn loss_falls_on_digits() {
    let gpu = Gpu::new(None).unwrap();
    let dir = scratch_dir("loss_falls");
    let mut cfg = tiny_digits("lstm");
    cfg.epochs = 3;
    cfg.max_steps = 12;
    let stats = train(
        &cfg,
        &TrainRun {
            gpu: &gpu,
            run_dir: dir.clone(),
            resume: false,
            quiet: true,
            stop_after: None,
            save_init: false,
        },
    )
    .unwrap();
    for s in &stats {
        println!(
            "epoch {} train loss {:.4} test loss {:.4} test err {:.3}",
            s.epoch, s.train_loss, s.test_loss, s.test_err
        );
    }
    assert_eq!(stats.len(), 3);
    assert!(
        stats[2].train_loss < 0.7 * stats[0].train_loss,
        "training loss did not fall"
    );
    assert!(
        stats[2].test_err < 0.5,
        "test error {:.3} after 36 steps",
        stats[2].test_err
    );
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "header + one row per epoch:\n{csv}");
    let saved = TrainConfig::load(&dir.join("config.toml")).unwrap();
    assert_eq!(saved, cfg, "the run folder holds the config actually used");
}

#[test]
fn resume_reaches_the_same_weights() {
    let gpu = Gpu::new(None).unwrap();
    let cfg = tiny_digits("lstm");
    let straight = scratch_dir("resume_straight");
    train_into(&gpu, &cfg, &straight, false, None);

    let split = scratch_dir("resume_split");
    train_into(&gpu, &cfg, &split, false, Some(1)); // interrupted after epoch 1
    train_into(&gpu, &cfg, &split, true, None);

    let a = HostModel::load(&straight.join("checkpoint.tscm")).unwrap();
    let b = HostModel::load(&split.join("checkpoint.tscm")).unwrap();
    let mut worst = 0.0f32;
    for (x, y) in a
        .tensors
        .iter()
        .chain(&a.extras)
        .zip(b.tensors.iter().chain(&b.extras))
    {
        assert_eq!(x.name, y.name);
        for (p, q) in x.data.iter().zip(&y.data) {
            worst = worst.max((p - q).abs() / p.abs().max(1.0));
        }
        // Bit for bit, as docs/TRAINING.md says (same batches, deterministic reductions).
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&x.data) == bits(&y.data),
            "{}: resumed run differs",
            x.name
        );
    }
    println!("max relative difference straight vs resumed: {worst:.2e}");
}

#[test]
fn checkpoint_of_another_architecture_is_refused() {
    let gpu = Gpu::new(None).unwrap();
    let dir = scratch_dir("other_arch");
    let cfg = TrainConfig {
        depth: 8,
        width: 0.25,
        ..Default::default()
    };
    // A CIFAR-shaped model against the digits dataset.
    let arch = arch_for(&cfg, Shape3::new(32, 32, 3), 10, &[0.5; 3], &[0.25; 3]).unwrap();
    let host = HostModel::init(arch, vec![], 1).unwrap();
    let p = dir.join("cifar.tscm");
    host.save(&p).unwrap();
    let err = eval(Some(&gpu), &p, &TrainConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("another architecture"), "{err}");

    std::fs::write(dir.join("junk.tscm"), b"not a model at all").unwrap();
    let err = format!("{:#}", HostModel::load(&dir.join("junk.tscm")).unwrap_err());
    assert!(err.contains("junk.tscm"), "{err}");
}

#[test]
fn export_and_predict_image_files() {
    // Train briefly, export, write held-out digits as 8-bit PNG files, and check that
    // `predict`'s path (image files -> decode -> core on the folded export, CPU) classifies
    // them as the GPU's evaluation graph does on the unfolded checkpoint (an independent
    // implementation: no core, no folding).
    let gpu = Gpu::new(None).unwrap();
    let dir = scratch_dir("predict");
    let mut cfg = tiny_digits("lstm");
    cfg.epochs = 1;
    train_into(&gpu, &cfg, &dir, false, None);
    let model = dir.join("model.tscm");
    tsc_trainer::tools::export(&dir.join("checkpoint.tscm"), &model).unwrap();
    let bytes = std::fs::read(&model).unwrap();
    let m = tsc_core::Model::parse(&bytes).unwrap();
    assert_eq!(m.kind(), tsc_core::ModelKind::Folded);

    let (_, test) = tsc_trainer::data::load(&cfg.dataset_spec().unwrap()).unwrap();
    let n = 12;
    let host = HostModel::load(&dir.join("checkpoint.tscm")).unwrap();
    let a = host.arch;
    let gm = GpuModel::new(&gpu, &host, 0.9, 0.0).unwrap();
    let g = Graph::new(&gpu, &gm, n, Mode::Eval).unwrap();
    let mut paths = Vec::new();
    let mut images = Vec::new();
    for i in 0..n {
        // Digits pixels are 0..16; the PNG holds them scaled to 0..255 (rounded).
        let px: Vec<u8> = test
            .image(i)
            .iter()
            .map(|&v| ((v as f32 * 255.0 / 16.0).round()) as u8)
            .collect();
        let p = dir.join(format!("digit{i}.png"));
        image::GrayImage::from_raw(8, 8, px.clone())
            .unwrap()
            .save(&p)
            .unwrap();
        paths.push(p);
        images.extend(
            px.iter()
                .map(|&v| (v as f32 / 255.0 - a.mean[0]) / a.std[0]),
        );
    }
    g.load(&gpu, &images, &vec![0; n]).unwrap();
    g.run(&gpu, &gm);
    let gl = gpu.download(&g.logits).unwrap();
    let expected: Vec<usize> = gl
        .chunks(a.classes)
        .map(|row| tsc_core::layers::argmax(row).unwrap())
        .collect();
    let got = tsc_trainer::tools::classify(&bytes, &paths).unwrap();
    let classes: Vec<usize> = got.iter().map(|g| g.0).collect();
    assert_eq!(classes, expected);
    // The logits too (a briefly trained net predicts few distinct classes): core on the
    // decoded files against the GPU graph, relative to the largest logit.
    let logits = tsc_trainer::tools::classify_logits(&bytes, &paths).unwrap();
    let (mut num, mut den) = (0f32, 0f32);
    for (row, want) in logits.iter().zip(gl.chunks(a.classes)) {
        for (p, q) in row.iter().zip(want) {
            num = num.max((p - q).abs());
            den = den.max(q.abs());
        }
    }
    println!(
        "predict vs GPU graph: max |Δlogit| / max |logit| = {:.2e}",
        num / den
    );
    assert!(
        num <= 1e-4 * den,
        "predict's logits differ from the GPU's by {num} (max {den})"
    );
    assert!(got.iter().all(|g| g.1 > 0.0 && g.1 <= 1.0));

    std::fs::write(dir.join("broken.png"), b"\x89PNG not really").unwrap();
    let err = format!(
        "{:#}",
        tsc_trainer::tools::classify(&bytes, &[dir.join("broken.png")]).unwrap_err()
    );
    assert!(err.contains("broken.png"), "{err}");
}
