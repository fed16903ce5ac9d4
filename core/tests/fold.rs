//! Folding equivalence and whole-network inference against the f64 reference.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{forward_ref, rel_err};
use tsc_core::fold::{fold, fold_to_vec, folded_len};
use tsc_core::format::SliceSink;
use tsc_core::testutil::{random_checkpoint, random_input};
use tsc_core::{infer, Arch, Model, ModelKind, ShortcutKind, StageSpec, StepMode};

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

#[test]
fn folding_equivalence_all_modes_and_shortcuts() {
    let mut worst: f64 = 0.0;
    for (mi, &mode) in MODES.iter().enumerate() {
        for (si, &sc) in [ShortcutKind::A, ShortcutKind::B].iter().enumerate() {
            for groups in [1, 2] {
                let arch = tiny(mode, sc, groups);
                arch.validate().unwrap();
                let seed = (mi * 10 + si * 3 + groups) as u64;
                let ck_bytes = random_checkpoint(&arch, seed);
                let ck = Model::parse(&ck_bytes).unwrap();
                let folded_bytes = fold_to_vec(&ck).unwrap();
                assert_eq!(folded_bytes.len(), folded_len(&ck).unwrap());
                let fm = Model::parse(&folded_bytes).unwrap();
                assert_eq!(fm.kind(), ModelKind::Folded);
                assert_eq!(fm.arch(), ck.arch());
                assert!(fm.scratch_len() <= ck.scratch_len());
                for img in 0..3 {
                    let x = random_input(&arch, seed * 7 + img);
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
                    assert!(
                        e_fold <= 1e-5,
                        "{mode:?} {sc:?} g{groups}: fold rel err {e_fold}"
                    );
                    assert!(
                        e_ref <= 1e-5,
                        "{mode:?} {sc:?} g{groups}: ref rel err {e_ref}"
                    );
                    assert!(
                        e_fref <= 1e-5,
                        "{mode:?} {sc:?} g{groups}: folded ref {e_fref}"
                    );
                    worst = worst.max(e_fold).max(e_ref).max(e_fref);
                }
            }
        }
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
