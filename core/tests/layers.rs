//! Every layer against a plain f64 reference on random inputs with odd sizes, plus small
//! examples computed by hand.
//!
//! Tolerances (u = 2⁻²⁴, the f32 unit roundoff; inputs are f32 values, so the reference sees
//! exactly the same operands):
//! - dot-product layers (conv2d, fc, the LSTM pre-activations, weight summary, average
//!   pool): `|ŷ − y| ≤ γ_n · Σ|terms| + 1e-30` with `γ_n = n·u/(1 − n·u)`, n = number of
//!   terms plus one for the bias (Higham's a-priori bound for any summation order).
//! - batchnorm: `|ŷ − y| ≤ 8u · (|x − μ|·|γ|/σ + |β| + |y|)`.
//! - residual update: `|ŷ − y| ≤ 3u · (|s| + |f·Δt|)`.
//! - shortcut A, relu, argmax: exact.
//! - softmax: relative `(range + n + 4)·u` per element (range = max − min of the input).
#![allow(clippy::needless_range_loop)]

mod common;

use common::{conv_ref, maxpool_ref, Rng};
use tsc_core::layers::{
    argmax, batchnorm, conv2d, fc, global_avg_pool, max_pool2d, relu, residual_update, shortcut_a,
    softmax, Conv2d, LayerError,
};
use tsc_core::Shape3;

const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(n: usize) -> f64 {
    n as f64 * U / (1.0 - n as f64 * U)
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn conv2d_matches_f64_reference() {
    let mut rng = Rng::new(1);
    // (input, out_c, kh, kw, stride, pad, groups)
    let cases = [
        (Shape3::new(7, 9, 3), 5, 3, 3, 1, 1, 1),
        (Shape3::new(9, 7, 5), 17, 3, 3, 2, 1, 1),
        (Shape3::new(7, 9, 6), 10, 3, 3, 2, 0, 2),
        (Shape3::new(9, 9, 17), 3, 5, 3, 1, 2, 1),
        (Shape3::new(7, 9, 5), 17, 1, 1, 2, 0, 1),
        (Shape3::new(9, 7, 34), 34, 3, 3, 1, 1, 2),
        (Shape3::new(5, 5, 9), 6, 3, 3, 3, 2, 3),
        (Shape3::new(1, 1, 3), 4, 3, 3, 1, 1, 1),
    ];
    let mut worst: f64 = 0.0;
    for (input, out_c, kh, kw, stride, pad, groups) in cases {
        let p = Conv2d {
            input,
            out_c,
            kh,
            kw,
            stride,
            pad,
            groups,
        };
        let out = p.output().unwrap();
        let x = rng.vec(input.len(), -1.0, 1.0);
        let w = rng.vec(p.weight_len().unwrap(), -1.0, 1.0);
        let b = rng.vec(out_c, -1.0, 1.0);
        for with_bias in [false, true] {
            let mut y = vec![f32::NAN; out.len()];
            let bias = if with_bias { Some(&b[..]) } else { None };
            conv2d(&p, &x, &w[..], bias, &mut y).unwrap();
            let b64 = to64(&b);
            let (r, rs, abs) = conv_ref(
                &to64(&x),
                input,
                &to64(&w),
                if with_bias { Some(&b64[..]) } else { None },
                out_c,
                kh,
                kw,
                stride,
                pad,
                groups,
            );
            assert_eq!(rs, out);
            let n = kh * kw * input.c / groups + 1;
            for i in 0..y.len() {
                let err = (y[i] as f64 - r[i]).abs();
                assert!(err <= gamma(n) * abs[i] + 1e-30, "{p:?} i={i} err={err}");
                worst = worst.max(err / abs[i].max(1e-30));
            }
        }
    }
    println!("conv2d worst error / Σ|terms| = {worst:.2e}");
}

#[test]
fn conv2d_hand_example() {
    // 3×3×1 input 1..9, all-ones 3×3 kernel, pad 1: each output sums its 3×3 neighbourhood.
    let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let w = [1.0f32; 9];
    let p = Conv2d::new(Shape3::new(3, 3, 1), 1, 3, 1, 1);
    let mut y = [0.0f32; 9];
    conv2d(&p, &x, &w[..], None::<&[f32]>, &mut y).unwrap();
    assert_eq!(y, [12.0, 21.0, 16.0, 27.0, 45.0, 33.0, 24.0, 39.0, 28.0]);
    // Stride 2: outputs at (0,0), (0,2), (2,0), (2,2); bias 0.5.
    let p2 = Conv2d::new(Shape3::new(3, 3, 1), 1, 3, 2, 1);
    let mut y2 = [0.0f32; 4];
    conv2d(&p2, &x, &w[..], Some(&[0.5f32][..]), &mut y2).unwrap();
    assert_eq!(y2, [12.5, 16.5, 24.5, 28.5]);
    // Two input channels, one output, 1×1: y = 2·a − b.
    let x = [1.0f32, 3.0, 2.0, 5.0];
    let p3 = Conv2d::new(Shape3::new(1, 2, 2), 1, 1, 1, 0);
    let mut y3 = [0.0f32; 2];
    conv2d(&p3, &x, &[2.0f32, -1.0][..], None::<&[f32]>, &mut y3).unwrap();
    assert_eq!(y3, [-1.0, -1.0]);
}

#[test]
fn conv2d_rejects_bad_arguments() {
    let p = Conv2d::new(Shape3::new(4, 4, 2), 3, 3, 1, 1);
    let x = [0.0f32; 32];
    let w = [0.0f32; 54];
    let mut y = [0.0f32; 48];
    assert!(conv2d(&p, &x, &w[..], None::<&[f32]>, &mut y).is_ok());
    assert!(matches!(
        conv2d(&p, &x[..31], &w[..], None::<&[f32]>, &mut y),
        Err(LayerError::Len {
            what: "conv input",
            ..
        })
    ));
    assert!(matches!(
        conv2d(&p, &x, &w[..53], None::<&[f32]>, &mut y),
        Err(LayerError::Len { .. })
    ));
    assert!(matches!(
        conv2d(&p, &x, &w[..], Some(&[0.0f32; 2][..]), &mut y),
        Err(LayerError::Len { .. })
    ));
    assert!(matches!(
        conv2d(&p, &x, &w[..], None::<&[f32]>, &mut y[..47]),
        Err(LayerError::Len { .. })
    ));
    let mut g = p;
    g.groups = 2; // 3 output channels not divisible by 2
    assert!(matches!(g.output(), Err(LayerError::Shape(_))));
    let mut s = p;
    s.stride = 0;
    assert!(s.output().is_err());
    let big = Conv2d::new(Shape3::new(2, 2, 1), 1, 7, 1, 1);
    assert!(big.output().is_err());
    let huge = Conv2d::new(Shape3::new(usize::MAX, 2, 1), 1, 1, 1, 0);
    assert!(huge.output().is_err());
    let huge_pad = Conv2d::new(Shape3::new(2, 2, 1), 1, 1, 1, usize::MAX);
    assert!(huge_pad.output().is_err());
}

#[test]
fn batchnorm_matches_f64_reference() {
    let mut rng = Rng::new(2);
    for c in [3usize, 5, 17] {
        let n = 7 * 9 * c;
        let x = rng.vec(n, -3.0, 3.0);
        let g = rng.vec(c, -2.0, 2.0);
        let b = rng.vec(c, -1.0, 1.0);
        let m = rng.vec(c, -1.0, 1.0);
        let v = rng.vec(c, 0.0, 3.0);
        let mut y = x.clone();
        batchnorm(&mut y, &g[..], &b[..], &m[..], &v[..], 1e-5).unwrap();
        for i in 0..n {
            let ch = i % c;
            let sd = (v[ch] as f64 + 1e-5f32 as f64).sqrt();
            let r = (x[i] as f64 - m[ch] as f64) / sd * g[ch] as f64 + b[ch] as f64;
            let scale = (x[i] as f64 - m[ch] as f64).abs() * (g[ch] as f64).abs() / sd
                + (b[ch] as f64).abs()
                + r.abs();
            assert!((y[i] as f64 - r).abs() <= 8.0 * U * scale, "c={c} i={i}");
        }
    }
    // By hand: (3 − 1) / sqrt(3 + 1) · 2 + 1 = 3 (eps = 0).
    let mut x = [3.0f32];
    batchnorm(
        &mut x,
        &[2.0f32][..],
        &[1.0f32][..],
        &[1.0f32][..],
        &[3.0f32][..],
        1.0,
    )
    .unwrap();
    assert_eq!(x, [3.0]);
    let mut bad = [0.0f32; 7];
    assert!(batchnorm(
        &mut bad,
        &[1.0f32; 2][..],
        &[0.0f32; 2][..],
        &[0.0f32; 2][..],
        &[1.0f32; 2][..],
        1e-5
    )
    .is_err());
}

#[test]
fn relu_residual_and_shortcut() {
    let mut rng = Rng::new(3);
    let mut r = [-1.0f32, 0.0, 2.5, -0.0];
    relu(&mut r);
    assert_eq!(r, [0.0, 0.0, 2.5, 0.0]);

    for (ins, stride, oc) in [
        (Shape3::new(7, 9, 5), 1, 5),
        (Shape3::new(7, 9, 5), 2, 17),
        (Shape3::new(9, 7, 3), 2, 3),
        (Shape3::new(9, 9, 3), 1, 6),
    ] {
        let out = Shape3::new((ins.h - 1) / stride + 1, (ins.w - 1) / stride + 1, oc);
        let x = rng.vec(ins.len(), -2.0, 2.0);
        let f = rng.vec(out.len(), -2.0, 2.0);
        let dt = rng.vec(oc, 0.0, 1.0);
        // Materialised shortcut: exact subsampling and zero channels.
        let mut s = vec![f32::NAN; out.len()];
        shortcut_a(ins, stride, oc, &x, &mut s).unwrap();
        for yy in 0..out.h {
            for xx in 0..out.w {
                for c in 0..oc {
                    let want = if c < ins.c {
                        x[((yy * stride) * ins.w + xx * stride) * ins.c + c]
                    } else {
                        0.0
                    };
                    assert_eq!(s[(yy * out.w + xx) * oc + c].to_bits(), want.to_bits());
                }
            }
        }
        for (with_dt, act) in [(true, true), (false, true), (true, false)] {
            let mut y = f.clone();
            let d = if with_dt { Some(&dt[..]) } else { None };
            residual_update(ins, stride, &x, out, &mut y, d, act).unwrap();
            for i in 0..out.len() {
                let c = i % oc;
                let dd = if with_dt { dt[c] as f64 } else { 1.0 };
                let mut want = s[i] as f64 + f[i] as f64 * dd;
                if act {
                    want = want.max(0.0);
                }
                let tol = 3.0 * U * ((s[i] as f64).abs() + (f[i] as f64 * dd).abs());
                assert!((y[i] as f64 - want).abs() <= tol);
            }
        }
    }
    // By hand: shortcut [1, −2], branch [2, 3], Δt 0.5 → ReLU([2, −0.5]) = [2, 0].
    let mut y = [2.0f32, 3.0];
    residual_update(
        Shape3::new(1, 1, 2),
        1,
        &[1.0, -2.0],
        Shape3::new(1, 1, 2),
        &mut y,
        Some(&[0.5f32, 0.5][..]),
        true,
    )
    .unwrap();
    assert_eq!(y, [2.0, 0.0]);
    // By hand: 2×2×1 [1, 2, 3, 4], stride 2, 2 channels → [1, 0].
    let mut s = [9.0f32; 2];
    shortcut_a(Shape3::new(2, 2, 1), 2, 2, &[1.0, 2.0, 3.0, 4.0], &mut s).unwrap();
    assert_eq!(s, [1.0, 0.0]);
    // Channel reduction and wrong shapes are errors.
    assert!(shortcut_a(Shape3::new(2, 2, 3), 1, 2, &[0.0; 12], &mut [0.0; 8]).is_err());
    let mut y = [0.0f32; 4];
    assert!(residual_update(
        Shape3::new(2, 2, 1),
        1,
        &[0.0; 4],
        Shape3::new(1, 1, 4),
        &mut y,
        None::<&[f32]>,
        true
    )
    .is_err());
}

#[test]
fn pool_fc_softmax_argmax() {
    let mut rng = Rng::new(4);
    for s in [
        Shape3::new(7, 9, 3),
        Shape3::new(9, 7, 17),
        Shape3::new(1, 1, 5),
    ] {
        let x = rng.vec(s.len(), -1.0, 3.0);
        let mut p = vec![0.0f32; s.c];
        global_avg_pool(s, &x, &mut p).unwrap();
        for c in 0..s.c {
            let terms: Vec<f64> = x.iter().skip(c).step_by(s.c).map(|&v| v as f64).collect();
            let want = terms.iter().sum::<f64>() / terms.len() as f64;
            let abs = terms.iter().map(|v| v.abs()).sum::<f64>() / terms.len() as f64;
            assert!((p[c] as f64 - want).abs() <= gamma(terms.len() + 1) * abs);
        }
    }
    for (n_in, n_out) in [(3usize, 5usize), (17, 3), (64, 10), (1, 1)] {
        let x = rng.vec(n_in, -1.0, 1.0);
        let w = rng.vec(n_in * n_out, -1.0, 1.0);
        let b = rng.vec(n_out, -1.0, 1.0);
        let mut y = vec![0.0f32; n_out];
        fc(&x, &w[..], Some(&b[..]), &mut y).unwrap();
        for o in 0..n_out {
            let terms: Vec<f64> = (0..n_in)
                .map(|i| w[o * n_in + i] as f64 * x[i] as f64)
                .collect();
            let want = terms.iter().sum::<f64>() + b[o] as f64;
            let abs = terms.iter().map(|v| v.abs()).sum::<f64>() + (b[o] as f64).abs();
            assert!((y[o] as f64 - want).abs() <= gamma(n_in + 1) * abs);
        }
        assert!(fc(&x, &w[..], Some(&b[..]), &mut vec![0.0; n_out + 1]).is_err());
    }
    // By hand: fc [[1, 2], [3, 4]]·[1, −1] + [0.5, 0] = [−0.5, −1].
    let mut y = [0.0f32; 2];
    fc(
        &[1.0, -1.0],
        &[1.0f32, 2.0, 3.0, 4.0][..],
        Some(&[0.5f32, 0.0][..]),
        &mut y,
    )
    .unwrap();
    assert_eq!(y, [-0.5, -1.0]);

    for n in [1usize, 3, 17] {
        let x = rng.vec(n, -10.0, 10.0);
        let mut y = x.clone();
        softmax(&mut y);
        let m = x.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let mn = x.iter().fold(f64::INFINITY, |a, &v| a.min(v as f64));
        let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        for i in 0..n {
            let want = e[i] / s;
            assert!((y[i] as f64 - want).abs() <= (m - mn + n as f64 + 4.0) * U * want);
        }
        let am = argmax(&x).unwrap();
        assert!(x.iter().all(|&v| v <= x[am]));
    }
    // By hand: softmax([0, ln 3]) = [1/4, 3/4].
    let mut s = [0.0f32, 3.0f32.ln()];
    softmax(&mut s);
    assert!((s[0] - 0.25).abs() < 1e-7 && (s[1] - 0.75).abs() < 1e-7);
    assert_eq!(argmax(&[0.1, 0.7, 0.2]), Some(1));
}

#[test]
fn max_pool_matches_reference_exactly() {
    let mut rng = Rng::new(41);
    // (h, w, c, k, stride, pad): the ImageNet stem's 3/2/1 on odd and even sizes, windows
    // that overlap, do not overlap, or skip inputs, a 1×1 image.
    let cases = [
        (7, 9, 5, 3, 2, 1),
        (8, 8, 3, 3, 2, 1),
        (5, 6, 2, 2, 2, 0),
        (6, 5, 4, 3, 1, 1),
        (9, 7, 1, 2, 3, 1),
        (1, 1, 3, 1, 1, 0),
        (2, 3, 2, 3, 2, 1),
    ];
    for (h, w, c, k, st, pad) in cases {
        let s = Shape3::new(h, w, c);
        let x = rng.vec(s.len(), -2.0, 2.0);
        let (want, o) = maxpool_ref(&to64(&x), s, k, st, pad);
        let mut y = vec![f32::NAN; o.h * o.w * o.c];
        let got = max_pool2d(s, k, st, pad, &x, &mut y).unwrap();
        assert_eq!(got, o);
        assert_eq!(to64(&y), want, "{h}x{w}x{c} k{k} s{st} p{pad}");
    }
    let s = Shape3::new(4, 4, 2);
    let x = vec![0.0; s.len()];
    let mut y = vec![0.0; 8];
    for (k, st, pad) in [(0, 1, 0), (3, 0, 1), (2, 2, 2), (9, 1, 1)] {
        assert!(
            matches!(
                max_pool2d(s, k, st, pad, &x, &mut y),
                Err(LayerError::Shape(_))
            ),
            "k{k} s{st} p{pad}"
        );
    }
    assert!(matches!(
        max_pool2d(s, 2, 2, 0, &x, &mut y[..7]),
        Err(LayerError::Len { .. })
    ));
}
