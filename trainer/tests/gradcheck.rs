//! Whole-network gradient check (issue 5, requirement 2): a tiny TSC-ResNet (depth 8, stem
//! width 4, batch 2, 8×8×3 input) runs forward + backward on the GPU; every parameter group's
//! gradient is compared with central finite differences of the f64 CPU reference of the same
//! network (`reference::network::train_loss`), for every step mode and both shortcut kinds;
//! then per block kind: a bottleneck net (depth 11, also grouped with the stride on the 3×3)
//! and the ImageNet stem (7×7/2 conv, 3×3/2 max pool) on a 16×16 input; ResNeXt's grouped
//! bottleneck and squeeze-excitation units (basic and grouped bottleneck) at fixed:1 and lstm.
//! The error per group is `‖g_gpu − g_fd‖ / ‖g_fd‖` over the checked elements.

use std::collections::HashMap;
use tsc_core::arch::{Shape3, StepMode};
use tsc_trainer::config::{steps_name, TrainConfig};
use tsc_trainer::gpu::Gpu;
use tsc_trainer::model::{arch_for, HostModel};
use tsc_trainer::net::{GpuModel, Graph, Mode};
use tsc_trainer::reference::network::{train_loss, Weights};
use tsc_trainer::rng::Rng;

fn group_of(name: &str) -> &'static str {
    if name.contains(".se.") {
        "se"
    } else if name.contains(".ctl.") {
        if name.contains("lstm") {
            "lstm"
        } else if name.contains("fc_in") {
            "ctl.fc_in"
        } else {
            "ctl.fc_out"
        }
    } else if name.ends_with(".dt") {
        "dt (indp)"
    } else if name.starts_with("fc.") {
        "fc"
    } else if name.contains("bn") {
        "bn"
    } else {
        "conv"
    }
}

/// The tiny net of `family` (`cifar`, `cifar-bottleneck`, `imagenet-stem`) on `side`×`side`
/// inputs.
fn tiny(family: &str, steps: &str, shortcut: &str) -> (tsc_core::Arch, usize) {
    let (arch_name, depth, side) = match family {
        "cifar-bottleneck" => ("cifar-bottleneck", 11, 8),
        "imagenet-stem" => ("cifar", 8, 16),
        _ => ("cifar", 8, 8),
    };
    let cfg = TrainConfig {
        arch: arch_name.into(),
        depth,
        width: 0.25,
        steps: steps.into(),
        shortcut: shortcut.into(),
        reduction: 2,
        ..Default::default()
    };
    let mut arch = arch_for(&cfg, Shape3::new(side, side, 3), 5, &[0.0; 3], &[1.0; 3]).unwrap();
    if family == "imagenet-stem" {
        arch.stem = tsc_core::arch::StemSpec::IMAGENET;
    }
    arch.validate().unwrap();
    (arch, side)
}

fn check(steps: &str, shortcut: &str, seed: u64) {
    let (arch, side) = tiny("cifar", steps, shortcut);
    check_arch(arch, side, seed);
}

fn check_arch(arch: tsc_core::Arch, side: usize, seed: u64) {
    let gpu = Gpu::new(None).unwrap();
    let (steps, shortcut) = (steps_name(arch.step), format!("{:?}", arch.shortcut));
    let label = tsc_trainer::model::arch_name(&arch);
    let mut host = HostModel::init(arch, vec![], seed).unwrap();
    let mut rng = Rng::new(seed ^ 0xabc);
    // Random BN affine params and controller params large enough to matter.
    for t in host.tensors.iter_mut() {
        if t.name.ends_with(".gamma") {
            t.data
                .iter_mut()
                .for_each(|v| *v = rng.uniform_range(0.5, 1.5));
        } else if t.name.ends_with(".beta") || t.name.ends_with(".b") {
            t.data
                .iter_mut()
                .for_each(|v| *v = rng.uniform_range(-0.3, 0.3));
        } else if t.name.ends_with(".dt") {
            t.data
                .iter_mut()
                .for_each(|v| *v = rng.uniform_range(0.2, 0.9));
        }
    }
    let batch = 2;
    let images: Vec<f32> = (0..batch * side * side * 3).map(|_| rng.normal()).collect();
    let labels: Vec<u32> = (0..batch).map(|i| (i as u32 * 3 + 1) % 5).collect();

    let m = GpuModel::new(&gpu, &host, 0.9, 0.0).unwrap();
    // A handful of runs: the cheap-to-JIT tiles (every tile is checked in tests/conv.rs).
    gpu.set_expected_images(8);
    let g = Graph::new(&gpu, &m, batch, Mode::Train).unwrap();
    g.load(&gpu, &images, &labels).unwrap();
    let mut rec = gpu.recorder();
    g.record_gradients(&m, &mut rec);
    rec.submit();
    let (gpu_loss, _, _) = g.read_metrics(&gpu).unwrap();

    let mut w: Weights = host
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|&v| v as f64).collect()))
        .collect();
    let x64: Vec<f64> = images.iter().map(|&v| v as f64).collect();
    let ref_loss = train_loss(&arch, &w, &x64, &labels);
    println!("[{label} {steps} {shortcut}] loss gpu {gpu_loss:.7} ref {ref_loss:.7}");
    assert!(
        (gpu_loss - ref_loss).abs() <= 1e-4 * ref_loss.abs().max(1.0),
        "loss differs"
    );

    let mut groups: HashMap<&str, (f64, f64, usize)> = HashMap::new();
    // Small steps: f64 keeps the quotient exact enough, and a step this small rarely crosses
    // a ReLU kink (which would make the difference quotient meaningless).
    let eps = 1e-6;
    for p in &m.params {
        let grad = gpu.download(&p.grad).unwrap();
        let n = grad.len();
        // All elements of small tensors, 12 random ones of larger tensors.
        let idx: Vec<usize> = if n <= 12 {
            (0..n).collect()
        } else {
            (0..12).map(|_| rng.below_usize(n)).collect()
        };
        let e = groups.entry(group_of(&p.name)).or_default();
        for i in idx {
            let orig = w[&p.name][i];
            w.get_mut(&p.name).unwrap()[i] = orig + eps;
            let lp = train_loss(&arch, &w, &x64, &labels);
            w.get_mut(&p.name).unwrap()[i] = orig - eps;
            let lm = train_loss(&arch, &w, &x64, &labels);
            w.get_mut(&p.name).unwrap()[i] = orig;
            let fd = (lp - lm) / (2.0 * eps);
            e.0 += (grad[i] as f64 - fd).powi(2);
            e.1 += fd * fd;
            e.2 += 1;
        }
    }
    let mut names: Vec<_> = groups.keys().copied().collect();
    names.sort();
    let mut bad = Vec::new();
    for k in names {
        let (num, den, cnt) = groups[k];
        let rel = (num / den.max(1e-30)).sqrt();
        println!("[{label} {steps} {shortcut}] {k:<11} {cnt:>4} elements  rel err {rel:.2e}");
        if !(rel < 2e-3 || den.sqrt() < 1e-6) {
            bad.push(format!("{k}: {rel:.2e}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{label} {steps} {shortcut}: relative gradient errors too large: {bad:?}"
    );
}

#[test]
fn gradients_fixed() {
    check("fixed:1", "A", 11);
    check("fixed:0.01", "B", 12);
}

#[test]
fn gradients_indp() {
    check("indp", "A", 13);
}

#[test]
fn gradients_2fc() {
    check("2fc", "A", 14);
    check("2fc", "B", 17);
}

#[test]
fn gradients_lstm() {
    check("lstm", "A", 15);
    check("lstm", "B", 16);
}

#[test]
fn gradients_bottleneck() {
    let (a, side) = tiny("cifar-bottleneck", "fixed:1", "A");
    check_arch(a, side, 21);
    let (a, side) = tiny("cifar-bottleneck", "lstm", "B");
    check_arch(a, side, 22);
    // Grouped 3×3 carrying the stride (torchvision's placement, ResNeXt's grouping).
    let (mut a, side) = tiny("cifar-bottleneck", "lstm", "B");
    a.groups = 2;
    a.block = tsc_core::BlockKind::Bottleneck {
        expansion: 4,
        base_width: 64,
        stride_on_3x3: true,
    };
    check_arch(a, side, 23);
}

#[test]
fn gradients_imagenet_stem_with_max_pool() {
    let (a, side) = tiny("imagenet-stem", "fixed:1", "B");
    check_arch(a, side, 31);
    let (a, side) = tiny("imagenet-stem", "lstm", "B");
    check_arch(a, side, 32);
}

#[test]
fn gradients_resnext_and_se() {
    // ResNeXt's grouped bottleneck at fixed:1 (its lstm twin is in gradients_bottleneck).
    let (mut a, side) = tiny("cifar-bottleneck", "fixed:1", "A");
    a.groups = 2;
    check_arch(a, side, 41);
    // SE units on basic blocks (widths 4/8/16, hidden 2/4/8) and on a grouped bottleneck.
    for (steps, shortcut, seed) in [("fixed:1", "A", 42), ("lstm", "B", 43)] {
        let (mut a, side) = tiny("cifar", steps, shortcut);
        a.se_reduction = 2;
        check_arch(a, side, seed);
    }
    let (mut a, side) = tiny("cifar-bottleneck", "lstm", "B");
    a.groups = 2;
    a.se_reduction = 4;
    check_arch(a, side, 44);
}

#[allow(dead_code)]
fn _uses(_: StepMode) {}
