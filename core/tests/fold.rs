//! Folding equivalence and whole-network inference against the f64 reference.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{forward_ref, rel_err};
use tsc_core::arch::{Pool2d, StemSpec};
use tsc_core::fold::{fold, fold_to_vec, folded_len};
use tsc_core::format::SliceSink;
use tsc_core::testutil::{random_checkpoint, random_input};
use tsc_core::{infer, Arch, BlockKind, Model, ModelKind, ShortcutKind, StageSpec, StepMode};

/// Tiny 3-stage net with odd sizes: 9×7×3 input, widths 4/6/12 (stage 1 stride 2, stage 2
/// stride 2), 2 blocks per stage, r = 2, 5 classes.
fn tiny(step: StepMode, shortcut: ShortcutKind, groups: usize) -> Arch {
    let mut a = Arch::cifar(2, 4, step, shortcut);
    a.input.h = 9;
    a.input.w = 7;
    a.classes = 5;
    a.stages[1] = StageSpec {
        blocks: 2,
        width: 6,
        stride: 2,
    };
    a.stages[2] = StageSpec {
        blocks: 1,
        width: 12,
        stride: 2,
    };
    a.reduction = 2;
    a.groups = groups;
    a
}

const MODES: [StepMode; 4] = [
    StepMode::Fixed(0.7),
    StepMode::Indp,
    StepMode::TwoFc,
    StepMode::Lstm,
];

/// Checkpoint `infer` against folded `infer` against the independent f64 forward on three
/// random images; returns the worst relative logit error (asserts ≤ 1e-5).
fn check_equivalence(arch: &Arch, label: &str, seed: u64) -> f64 {
    arch.validate().unwrap_or_else(|e| panic!("{label}: {e}"));
    let ck_bytes = random_checkpoint(arch, seed);
    let ck = Model::parse(&ck_bytes).unwrap();
    let folded_bytes = fold_to_vec(&ck).unwrap();
    assert_eq!(folded_bytes.len(), folded_len(&ck).unwrap());
    let fm = Model::parse(&folded_bytes).unwrap();
    assert_eq!(fm.kind(), ModelKind::Folded);
    assert_eq!(fm.arch(), ck.arch());
    assert!(fm.scratch_len() <= ck.scratch_len());
    let mut worst: f64 = 0.0;
    for img in 0..3 {
        let x = random_input(arch, seed * 7 + img);
        let mut s1 = vec![f32::NAN; ck.scratch_len()];
        let mut s2 = vec![f32::NAN; fm.scratch_len()];
        let mut l1 = vec![0.0; arch.classes];
        let mut l2 = vec![0.0; arch.classes];
        infer(&ck, &x, &mut s1, &mut l1).unwrap();
        infer(&fm, &x, &mut s2, &mut l2).unwrap();
        let r = forward_ref(&ck, &x);
        let l1_64: Vec<f64> = l1.iter().map(|&v| v as f64).collect();
        let e_fold = rel_err(&l2, &l1_64);
        let e_ref = rel_err(&l1, &r);
        let e_fref = rel_err(&l2, &forward_ref(&fm, &x));
        assert!(e_fold <= 1e-5, "{label}: fold rel err {e_fold}");
        assert!(e_ref <= 1e-5, "{label}: ref rel err {e_ref}");
        assert!(e_fref <= 1e-5, "{label}: folded ref {e_fref}");
        worst = worst.max(e_fold).max(e_ref).max(e_fref);
    }
    worst
}

#[test]
fn folding_equivalence_all_modes_and_shortcuts() {
    let mut worst: f64 = 0.0;
    for (mi, &mode) in MODES.iter().enumerate() {
        for (si, &sc) in [ShortcutKind::A, ShortcutKind::B].iter().enumerate() {
            for groups in [1, 2] {
                let arch = tiny(mode, sc, groups);
                let seed = (mi * 10 + si * 3 + groups) as u64;
                let label = format!("basic {mode:?} {sc:?} g{groups}");
                worst = worst.max(check_equivalence(&arch, &label, seed));
            }
        }
    }
    println!("worst relative logit error: {worst:.3e}");
}

/// Tiny bottleneck net: 11×9×3 input, stage widths 8/16 (middle widths 2·g/4·g with
/// expansion 4, base width 32), a 3×3 stride-2 stem with a 3×3 stride-2 max pool when
/// `pooled`, groups on the 3×3 only.
fn tiny_bottleneck(
    step: StepMode,
    sc: ShortcutKind,
    groups: usize,
    on_3x3: bool,
    pooled: bool,
) -> Arch {
    let mut a = tiny(step, sc, groups);
    a.input.h = 11;
    a.input.w = 9;
    a.num_stages = 2;
    a.stages[0].width = 8;
    a.stages[1] = StageSpec {
        blocks: 2,
        width: 16,
        stride: 2,
    };
    a.block = BlockKind::Bottleneck {
        expansion: 4,
        base_width: 32,
        stride_on_3x3: on_3x3,
    };
    if pooled {
        a.stem = StemSpec {
            kernel: 5,
            stride: 2,
            pad: 2,
            pool: Some(Pool2d {
                kernel: 3,
                stride: 2,
                pad: 1,
            }),
        };
    }
    a
}

#[test]
fn folding_equivalence_bottleneck_and_pooled_stem() {
    let mut worst: f64 = 0.0;
    for (mi, &mode) in MODES.iter().enumerate() {
        for (si, &sc) in [ShortcutKind::A, ShortcutKind::B].iter().enumerate() {
            for (groups, on_3x3, pooled) in [
                (1, false, false),
                (2, true, true),
                (1, true, false),
                (2, false, true),
            ] {
                let arch = tiny_bottleneck(mode, sc, groups, on_3x3, pooled);
                let seed = (100 + mi * 10 + si * 3 + groups) as u64;
                let label = format!(
                    "bottleneck {mode:?} {sc:?} g{groups} 3x3-stride {on_3x3} pool {pooled}"
                );
                worst = worst.max(check_equivalence(&arch, &label, seed));
            }
        }
    }
    // The ImageNet stem (7×7/2, pool 3/2/1) on a basic-block net.
    for (mi, &mode) in MODES.iter().enumerate() {
        let mut arch = tiny(mode, ShortcutKind::B, 1);
        arch.input.h = 19;
        arch.input.w = 17;
        arch.stem = StemSpec::IMAGENET;
        worst = worst.max(check_equivalence(
            &arch,
            &format!("imagenet stem {mode:?}"),
            200 + mi as u64,
        ));
    }
    println!("worst relative logit error: {worst:.3e}");
}

#[test]
fn fold_into_slice_sink_and_errors() {
    let arch = tiny(StepMode::Lstm, ShortcutKind::B, 1);
    let ck_bytes = random_checkpoint(&arch, 5);
    let ck = Model::parse(&ck_bytes).unwrap();
    let n = folded_len(&ck).unwrap();
    let mut buf = vec![0u8; n];
    let mut scratch = vec![0.0f32; arch.controller_scratch_len()];
    let mut sink = SliceSink::new(&mut buf);
    assert_eq!(fold(&ck, &mut scratch, &mut sink).unwrap(), n);
    assert_eq!(buf, fold_to_vec(&ck).unwrap());
    // Too small a buffer, too little scratch, folding a folded model.
    let mut small = vec![0u8; n - 1];
    assert!(fold(&ck, &mut scratch, &mut SliceSink::new(&mut small)).is_err());
    let mut s0 = vec![0.0f32; arch.controller_scratch_len() - 1];
    assert!(matches!(
        fold(&ck, &mut s0, &mut Vec::new()),
        Err(tsc_core::Error::Len { .. })
    ));
    let fm = Model::parse(&buf).unwrap();
    assert_eq!(
        fold(&fm, &mut scratch, &mut Vec::new()),
        Err(tsc_core::Error::WrongKind)
    );
}

/// Squeeze-excitation on every block: folding Δt into the last conv and `diag(1/Δt)` into
/// the SE's first fc keeps the logits (the gate sees the same input), for basic and
/// bottleneck blocks, both shortcuts and every step mode, against the f64 reference.
#[test]
fn folding_equivalence_with_se_units() {
    let mut worst: f64 = 0.0;
    for (mi, &mode) in MODES.iter().enumerate() {
        for (si, &sc) in [ShortcutKind::A, ShortcutKind::B].iter().enumerate() {
            let seed = (300 + mi * 10 + si) as u64;
            let mut arch = tiny(mode, sc, 1);
            // Widths 4/6/12: SE hidden widths 1/2/4 (r = 3 does not divide 4).
            arch.se_reduction = 3;
            let label = format!("basic SE {mode:?} {sc:?}");
            worst = worst.max(check_equivalence(&arch, &label, seed));
            let mut arch = tiny_bottleneck(mode, sc, 2, false, true);
            arch.se_reduction = 4;
            let label = format!("bottleneck g2 SE {mode:?} {sc:?}");
            worst = worst.max(check_equivalence(&arch, &label, seed + 5));
        }
    }
    println!("worst relative logit error with SE: {worst:.3e}");
}

/// An `indp` SE checkpoint with a Δt ≤ 0 channel cannot fold exactly (the sigmoid gate
/// does not commute with a sign or a zero): the fold names the block and the channel, and
/// the checkpoint still runs unfolded.
#[test]
fn se_fold_refuses_a_step_that_is_not_positive() {
    use tsc_core::testutil::{encode, random_tensors};
    let mut arch = tiny(StepMode::Indp, ShortcutKind::B, 1);
    arch.se_reduction = 2;
    for bad in [-0.25f32, 0.0] {
        let mut t = random_tensors(&arch, ModelKind::Checkpoint, 9);
        let dt = t.iter_mut().find(|t| t.name == "s1.b1.dt").unwrap();
        dt.data[4] = bad;
        let ck_bytes = encode(&arch, ModelKind::Checkpoint, &t);
        let ck = Model::parse(&ck_bytes).unwrap();
        assert_eq!(
            fold_to_vec(&ck),
            Err(tsc_core::Error::SeStepNotPositive {
                stage: 1,
                block: 1,
                channel: 4
            })
        );
        let x = random_input(&arch, 1);
        let mut s = vec![0.0; ck.scratch_len()];
        let mut l = vec![0.0; arch.classes];
        infer(&ck, &x, &mut s, &mut l).unwrap();
        assert!(rel_err(&l, &forward_ref(&ck, &x)) <= 1e-5);
    }
    // Without SE units the same checkpoint folds (Δt ≤ 0 just scales the last conv).
    arch.se_reduction = 0;
    let mut t = random_tensors(&arch, ModelKind::Checkpoint, 9);
    t.iter_mut().find(|t| t.name == "s1.b1.dt").unwrap().data[4] = -0.25;
    let ck_bytes = encode(&arch, ModelKind::Checkpoint, &t);
    assert!(fold_to_vec(&Model::parse(&ck_bytes).unwrap()).is_ok());
}
