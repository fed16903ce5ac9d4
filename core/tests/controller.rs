//! Controller forward math (paper Eqs. 10–12) against plain f64 references.
//!
//! Tolerances: weight summary and LSTM pre-activations use the dot-product bound of
//! tests/layers.rs (`γ_n · Σ|terms|`); the final Δt ∈ (0, 1) after the whole chain
//! (summary → fc → ReLU → [LSTM] → fc → σ) is compared with an absolute tolerance of 1e-6.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{steps_ref, Rng};
use tsc_core::controller::{compute_steps, lstm_cell, weight_summary, StageSteps};
use tsc_core::testutil::random_checkpoint;
use tsc_core::{Arch, BlockKind, Error, Model, ShortcutKind, StageSpec, StepMode};

const U: f64 = 1.0 / (1u64 << 24) as f64;

#[test]
fn weight_summary_matches_reference() {
    let mut rng = Rng::new(10);
    for (co, kh, kw, ci) in [
        (5usize, 3usize, 3usize, 3usize),
        (17, 3, 3, 17),
        (3, 1, 1, 7),
        (4, 5, 3, 1),
    ] {
        let w = rng.vec(co * kh * kw * ci, -1.0, 1.0);
        let mut out = vec![0.0f32; co * kh * kw];
        weight_summary(&w[..], co, kh, kw, ci, &mut out).unwrap();
        for t in 0..co * kh * kw {
            let terms = &w[t * ci..(t + 1) * ci];
            let want = terms.iter().map(|&v| v as f64).sum::<f64>() / ci as f64;
            let abs = terms.iter().map(|&v| (v as f64).abs()).sum::<f64>() / ci as f64;
            let n = ci + 1;
            assert!((out[t] as f64 - want).abs() <= n as f64 * U * 1.01 * abs + 1e-30);
        }
        assert!(weight_summary(&w[..], co, kh, kw, ci, &mut out[1..]).is_err());
    }
    // By hand: W[0][0][0] = [1, 2, 6], W[1][0][0] = [−3, 0, 0] → [3, −1].
    let mut out = [0.0f32; 2];
    weight_summary(
        &[1.0f32, 2.0, 6.0, -3.0, 0.0, 0.0][..],
        2,
        1,
        1,
        3,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [3.0, -1.0]);
}

#[test]
fn lstm_cell_matches_reference_and_hand_example() {
    let mut rng = Rng::new(11);
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    for hs in [1usize, 3, 5, 17] {
        let w = rng.vec(8 * hs * hs, -1.0, 1.0);
        let b = rng.vec(4 * hs, -1.0, 1.0);
        let x = rng.vec(hs, -1.0, 1.0);
        let h0 = rng.vec(hs, -1.0, 1.0);
        let c0 = rng.vec(hs, -2.0, 2.0);
        let (mut h, mut c) = (h0.clone(), c0.clone());
        let mut gates = vec![0.0f32; 4 * hs];
        lstm_cell(&w[..], &b[..], &x, &mut h, &mut c, &mut gates).unwrap();
        let z: Vec<f64> = h0.iter().chain(&x).map(|&v| v as f64).collect();
        let pre: Vec<f64> = (0..4 * hs)
            .map(|j| {
                b[j] as f64
                    + (0..2 * hs)
                        .map(|k| w[j * 2 * hs + k] as f64 * z[k])
                        .sum::<f64>()
            })
            .collect();
        for j in 0..4 * hs {
            let abs = (b[j] as f64).abs()
                + (0..2 * hs)
                    .map(|k| (w[j * 2 * hs + k] as f64 * z[k]).abs())
                    .sum::<f64>();
            let n = 2 * hs + 1;
            assert!((gates[j] as f64 - pre[j]).abs() <= n as f64 * U * 1.01 * abs);
        }
        for k in 0..hs {
            let (i, f, g, o) = (
                sig(pre[k]),
                sig(pre[hs + k]),
                pre[2 * hs + k].tanh(),
                sig(pre[3 * hs + k]),
            );
            let cc = f * c0[k] as f64 + i * g;
            let hh = o * cc.tanh();
            assert!(
                (c[k] as f64 - cc).abs() <= 1e-6 * (1.0 + cc.abs()),
                "hs={hs} c"
            );
            assert!((h[k] as f64 - hh).abs() <= 1e-6, "hs={hs} h");
        }
    }
    // By hand, H = 1: W = 0, b = 0 → i = f = o = 1/2, g = 0; c0 = 2 → c = 1, h = tanh(1)/2.
    let (mut h, mut c) = ([0.3f32], [2.0f32]);
    let mut gates = [0.0f32; 4];
    lstm_cell(
        &[0.0f32; 8][..],
        &[0.0f32; 4][..],
        &[0.7],
        &mut h,
        &mut c,
        &mut gates,
    )
    .unwrap();
    assert_eq!(c, [1.0]);
    assert!((h[0] - 0.5 * 1.0f32.tanh()).abs() < 1e-7);
}

#[test]
fn compute_steps_matches_reference_for_every_mode() {
    let mut worst: f64 = 0.0;
    for mode in [
        StepMode::Fixed(0.25),
        StepMode::Indp,
        StepMode::TwoFc,
        StepMode::Lstm,
    ] {
        for bottleneck in [false, true] {
            let mut arch = Arch::cifar(3, 4, mode, ShortcutKind::B);
            arch.stages[2] = StageSpec {
                blocks: 2,
                width: 17,
                stride: 2,
            };
            if bottleneck {
                // Widths 8/12/20, middle widths 4/6/10 (expansion 2, base width 32), groups 2
                // on the 3×3: w̄ = [w̄(conv1), w̄(conv3)] of length C/2 + C.
                arch.block = BlockKind::Bottleneck {
                    expansion: 2,
                    base_width: 32,
                    stride_on_3x3: true,
                };
                arch.groups = 2;
                for (st, w) in arch.stages.iter_mut().zip([8, 12, 20]) {
                    st.width = w;
                }
                assert_eq!(arch.summary_len(2), 20 / 2 + 20);
            }
            arch.input.h = 9;
            arch.input.w = 9;
            arch.reduction = 3;
            arch.validate().unwrap();
            let bytes = random_checkpoint(&arch, 77);
            let m = Model::parse(&bytes).unwrap();
            let mut scratch = vec![f32::NAN; arch.controller_scratch_len()];
            for (s, st) in arch.stages().iter().enumerate() {
                let mut out = vec![0.0f32; st.blocks * st.width];
                compute_steps(&m, s, &mut out, &mut scratch).unwrap();
                let r = steps_ref(&m, s);
                for b in 0..st.blocks {
                    for c in 0..st.width {
                        let e = (out[b * st.width + c] as f64 - r[b][c]).abs();
                        assert!(e <= 1e-6, "{mode:?} s{s} b{b} c{c}: {e}");
                        worst = worst.max(e);
                    }
                }
                // The streaming interface gives the same values, then None.
                let mut it = StageSteps::new(&m, s, &mut scratch).unwrap();
                for b in 0..st.blocks {
                    assert_eq!(
                        it.next_dt().unwrap().unwrap(),
                        &out[b * st.width..(b + 1) * st.width]
                    );
                }
                assert_eq!(it.next_dt().unwrap(), None);
            }
            assert_eq!(
                compute_steps(&m, 3, &mut [], &mut scratch),
                Err(Error::Index)
            );
            let mut small = vec![0.0f32; arch.controller_scratch_len() - 1];
            assert!(matches!(
                StageSteps::new(&m, 0, &mut small),
                Err(Error::Len { .. })
            ));
        }
    }
    println!("worst |Δt − Δt_ref| = {worst:.2e}");
}

#[test]
fn steps_need_a_checkpoint() {
    let arch = Arch::cifar(1, 4, StepMode::Lstm, ShortcutKind::A);
    let folded = tsc_core::testutil::random_folded(&arch, 1);
    let m = Model::parse(&folded).unwrap();
    let mut scratch = vec![0.0f32; arch.controller_scratch_len()];
    assert!(matches!(
        StageSteps::new(&m, 0, &mut scratch),
        Err(Error::WrongKind)
    ));
}
