//! The GPU trainer against core on the same weights: step sizes recomputed by core from a
//! checkpoint match the GPU controller's (1e-5), and on real held-out digits the GPU's
//! evaluation logits match core's inference on the folded export (1e-4 relative), for every
//! step-size mode and every block family (basic, CIFAR bottleneck, ImageNet ResNet-18,
//! ResNeXt, SE). The checkpoints are briefly trained, so BN statistics and Δt are not at
//! their initial values.

use tsc_core::Model;
use tsc_tests::{scratch_dir, tiny_digits, train_into};
use tsc_trainer::data::{self, Normalization};
use tsc_trainer::gpu::Gpu;
use tsc_trainer::model::HostModel;
use tsc_trainer::net::{GpuModel, Graph, Mode};

fn compare(steps: &str) {
    let mut cfg = tiny_digits(steps);
    cfg.epochs = 1;
    compare_cfg(&cfg);
}

fn compare_cfg(cfg: &tsc_trainer::config::TrainConfig) {
    let gpu = Gpu::new(None).unwrap();
    let steps = format!("{} {}", cfg.arch, cfg.steps);
    let dir = scratch_dir(&format!(
        "trainer_core_{}_{}_g{}_se{}",
        cfg.arch,
        cfg.steps.replace(':', "_"),
        cfg.groups,
        cfg.se_reduction
    ));
    train_into(&gpu, cfg, &dir, false, None);
    let bytes = std::fs::read(dir.join("checkpoint.tscm")).unwrap();
    let host = HostModel::decode(&bytes).unwrap();
    let ck = Model::parse(&bytes).unwrap();
    let folded = tsc_core::fold::fold_to_vec(&ck).unwrap();
    let fm = Model::parse(&folded).unwrap();
    let a = host.arch;

    // Δt: GPU (after one forward) vs core's controller math on the checkpoint.
    let (_, test) = data::load(&cfg.dataset_spec().unwrap()).unwrap();
    let n = test.len();
    let m = GpuModel::new(&gpu, &host, 0.9, 0.0).unwrap();
    let g = Graph::new(&gpu, &m, n, Mode::Eval).unwrap();
    let norm = Normalization {
        mean: a.mean[..a.input.c].to_vec(),
        std: a.std[..a.input.c].to_vec(),
    };
    let mut images = vec![0.0f32; n * test.image_len()];
    for i in 0..n {
        let len = test.image_len();
        norm.normalize_into(
            test.image(i),
            test.scale,
            &mut images[i * len..(i + 1) * len],
        );
    }
    g.load(&gpu, &images, &test.labels).unwrap();
    g.run(&gpu, &m);
    let gpu_steps = m.steps(&gpu).unwrap();
    let core_steps = tsc_trainer::tools::block_steps(&bytes).unwrap();
    let mut worst_dt = 0.0f32;
    for (gs, (_, _, cs)) in gpu_steps.iter().zip(&core_steps) {
        for (x, y) in gs.iter().zip(cs) {
            worst_dt = worst_dt.max((x - y).abs());
        }
    }
    println!("[{steps}] max |Δt_gpu − Δt_core| = {worst_dt:.2e}");
    assert!(worst_dt <= 1e-5, "{steps}: step sizes differ by {worst_dt}");

    // Logits: GPU eval graph (unfolded, BN inference) vs core on the folded export.
    let gl = gpu.download(&g.logits).unwrap();
    let k = a.classes;
    let mut scratch = vec![0.0f32; fm.scratch_len()];
    let mut logits = vec![0.0f32; k];
    let (mut num, mut den, mut agree) = (0.0f64, 0.0f64, 0);
    for i in 0..n {
        let x: Vec<f32> = test
            .image(i)
            .iter()
            .map(|&v| v as f32 * test.scale)
            .collect();
        tsc_core::infer(&fm, &x, &mut scratch, &mut logits).unwrap();
        let row = &gl[i * k..(i + 1) * k];
        for (p, q) in row.iter().zip(&logits) {
            num = num.max((p - q).abs() as f64);
            den = den.max(q.abs() as f64);
        }
        if tsc_core::layers::argmax(row) == tsc_core::layers::argmax(&logits) {
            agree += 1;
        }
    }
    let rel = num / den.max(1e-12);
    println!("[{steps}] {n} real test images: max |logit_gpu − logit_core(folded)| / max|logit| = {rel:.2e}; argmax agrees on {agree}/{n}");
    assert!(rel <= 1e-4, "{steps}: logits differ by {rel:.2e} relative");
}

#[test]
fn lstm_matches_core() {
    compare("lstm");
}

#[test]
fn twofc_matches_core() {
    compare("2fc");
}

#[test]
fn indp_matches_core() {
    compare("indp");
}

#[test]
fn fixed_matches_core() {
    compare("fixed:0.5");
}

#[test]
fn bottleneck_matches_core() {
    // CIFAR bottleneck ResNet-11 (1×1–3×3–1×1, w̄ = [conv1, conv3]), both stride placements.
    for (steps, on_3x3) in [("lstm", false), ("indp", true)] {
        let mut cfg = tiny_digits(steps);
        cfg.arch = "cifar-bottleneck".into();
        cfg.depth = 11;
        cfg.epochs = 1;
        cfg.stride_on_3x3 = on_3x3;
        compare_cfg(&cfg);
    }
}

#[test]
fn imagenet_resnet18_matches_core() {
    // The ImageNet family (7×7/2 stem, 3×3/2 max pool, four stages, projections) on digits.
    let mut cfg = tiny_digits("lstm");
    cfg.arch = "resnet18".into();
    cfg.width = 1.0;
    cfg.shortcut = "B".into();
    cfg.epochs = 1;
    cfg.max_steps = 3;
    compare_cfg(&cfg);
}

#[test]
fn resnext_and_se_match_core() {
    // A CIFAR ResNeXt (grouped 3×3s, 4 groups of 2 channels at width 0.5) and an SE ResNet-8
    // (gate on every block; folding rescales the SE's fc1 by 1/Δt) on real digits.
    let mut cfg = tiny_digits("lstm");
    cfg.arch = "cifar-resnext".into();
    cfg.depth = 11;
    cfg.groups = 4;
    cfg.epochs = 1;
    compare_cfg(&cfg);
    let mut cfg = tiny_digits("lstm");
    cfg.se_reduction = 4;
    cfg.epochs = 1;
    compare_cfg(&cfg);
}
