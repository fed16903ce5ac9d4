//! Plain f64 reference implementations (naive loops, written independently of the crate's
//! layer code) shared by the integration tests.
#![allow(dead_code, clippy::too_many_arguments)]

use tsc_core::arch::{BlockPart, BnField, CtlPart, SePart, TensorId};
use tsc_core::{BlockKind, Model, ModelKind, Shape3, StepMode};

#[allow(unused_imports)]
pub use tsc_core::testutil::Rng;

/// f64 copy of a model tensor.
pub fn t64(m: &Model<'_>, id: TensorId) -> Vec<f64> {
    m.tensor(&id.name())
        .unwrap_or_else(|| panic!("missing {}", id.name()))
        .iter()
        .map(|v| v as f64)
        .collect()
}

/// Reference conv: NHWC input, OHWI weights, zero padding, groups.
pub fn conv_ref(
    x: &[f64],
    s: Shape3,
    w: &[f64],
    b: Option<&[f64]>,
    co: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    groups: usize,
) -> (Vec<f64>, Shape3, Vec<f64>) {
    let ho = (s.h + 2 * pad - kh) / stride + 1;
    let wo = (s.w + 2 * pad - kw) / stride + 1;
    let cig = s.c / groups;
    let cog = co / groups;
    let mut y = vec![0.0; ho * wo * co];
    let mut absy = vec![0.0; ho * wo * co];
    for oy in 0..ho {
        for ox in 0..wo {
            for o in 0..co {
                let g = o / cog;
                let mut acc = b.map_or(0.0, |b| b[o]);
                let mut aacc = acc.abs();
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                            continue;
                        }
                        for i in 0..cig {
                            let xv = x[((iy as usize * s.w) + ix as usize) * s.c + g * cig + i];
                            let wv = w[((o * kh + ky) * kw + kx) * cig + i];
                            acc += xv * wv;
                            aacc += (xv * wv).abs();
                        }
                    }
                }
                y[(oy * wo + ox) * co + o] = acc;
                absy[(oy * wo + ox) * co + o] = aacc;
            }
        }
    }
    (y, Shape3::new(ho, wo, co), absy)
}

pub fn bn_ref(x: &mut [f64], g: &[f64], b: &[f64], m: &[f64], v: &[f64]) {
    let c = g.len();
    for (i, e) in x.iter_mut().enumerate() {
        let ch = i % c;
        *e = (*e - m[ch]) / (v[ch] + 1e-5f32 as f64).sqrt() * g[ch] + b[ch];
    }
}

pub fn relu_ref(x: &mut [f64]) {
    for v in x {
        if *v < 0.0 {
            *v = 0.0;
        }
    }
}

pub fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn fc_ref(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len();
    (0..b.len())
        .map(|o| b[o] + (0..n).map(|i| w[o * n + i] * x[i]).sum::<f64>())
        .collect()
}

/// Weight summary of a block, f64: conv1 then conv2 for basic blocks, conv1 then conv3 for
/// bottlenecks (paper Table 6).
pub fn summary_ref(m: &Model<'_>, s: usize, b: usize) -> Vec<f64> {
    let mut out = Vec::new();
    let parts = match m.arch().block {
        BlockKind::Basic => [BlockPart::ConvW(0), BlockPart::ConvW(1)],
        BlockKind::Bottleneck { .. } => [BlockPart::ConvW(0), BlockPart::ConvW(2)],
    };
    for part in parts {
        let t = m
            .tensor(
                &TensorId::Block {
                    stage: s,
                    block: b,
                    part,
                }
                .name(),
            )
            .unwrap();
        let d = t.dims().to_vec();
        let w: Vec<f64> = t.iter().map(|v| v as f64).collect();
        let per = d[3];
        for tap in 0..d[0] * d[1] * d[2] {
            out.push(w[tap * per..(tap + 1) * per].iter().sum::<f64>() / per as f64);
        }
    }
    out
}

/// Every block's Δt of stage `s`, f64, straight from the equations.
pub fn steps_ref(m: &Model<'_>, s: usize) -> Vec<Vec<f64>> {
    let a = *m.arch();
    let st = a.stages[s];
    let c = st.width;
    let hs = (c / a.reduction).max(1);
    let mut out = Vec::new();
    let mut h = vec![0.0; hs];
    let mut cst = vec![0.0; hs];
    for b in 0..st.blocks {
        let bid = |part| TensorId::Block {
            stage: s,
            block: b,
            part,
        };
        let sid = |part| TensorId::StageCtl { stage: s, part };
        let dt = match a.step {
            StepMode::Fixed(v) => vec![v as f64; c],
            StepMode::Indp => t64(m, bid(BlockPart::Dt)),
            StepMode::TwoFc => {
                let wb = summary_ref(m, s, b);
                let g = |p| t64(m, bid(BlockPart::Ctl(p)));
                let mut x = fc_ref(&wb, &g(CtlPart::FcInW), &g(CtlPart::FcInB));
                relu_ref(&mut x);
                fc_ref(&x, &g(CtlPart::FcOutW), &g(CtlPart::FcOutB))
                    .into_iter()
                    .map(sig)
                    .collect()
            }
            StepMode::Lstm => {
                let wb = summary_ref(m, s, b);
                let g = |p| t64(m, sid(p));
                let mut x = fc_ref(&wb, &g(CtlPart::FcInW), &g(CtlPart::FcInB));
                relu_ref(&mut x);
                let mut z = h.clone();
                z.extend_from_slice(&x);
                let gates = fc_ref(&z, &g(CtlPart::LstmW), &g(CtlPart::LstmB));
                for k in 0..hs {
                    let i = sig(gates[k]);
                    let f = sig(gates[hs + k]);
                    let gg = gates[2 * hs + k].tanh();
                    let o = sig(gates[3 * hs + k]);
                    cst[k] = f * cst[k] + i * gg;
                    h[k] = o * cst[k].tanh();
                }
                fc_ref(&h, &g(CtlPart::FcOutW), &g(CtlPart::FcOutB))
                    .into_iter()
                    .map(sig)
                    .collect()
            }
        };
        out.push(dt);
    }
    out
}

/// Full forward pass in f64 (checkpoint: BN + Δt; folded: biases), input in [0, 1].
pub fn forward_ref(m: &Model<'_>, input: &[f32]) -> Vec<f64> {
    let a = *m.arch();
    let unf = m.kind() == ModelKind::Checkpoint;
    let mut s = a.input;
    let mut x: Vec<f64> = input
        .iter()
        .enumerate()
        .map(|(i, &v)| (v as f64 - a.mean[i % s.c] as f64) / a.std[i % s.c] as f64)
        .collect();
    let conv = |x: &[f64],
                s: Shape3,
                w: TensorId,
                b: TensorId,
                bn: &dyn Fn(BnField) -> TensorId,
                co: usize,
                k: usize,
                stride: usize,
                pad: usize,
                groups: usize| {
        let wv = t64(m, w);
        let (mut y, ys, _) = if unf {
            conv_ref(x, s, &wv, None, co, k, k, stride, pad, groups)
        } else {
            let bv = t64(m, b);
            conv_ref(x, s, &wv, Some(&bv), co, k, k, stride, pad, groups)
        };
        if unf {
            bn_ref(
                &mut y,
                &t64(m, bn(BnField::Gamma)),
                &t64(m, bn(BnField::Beta)),
                &t64(m, bn(BnField::Mean)),
                &t64(m, bn(BnField::Var)),
            );
        }
        (y, ys)
    };
    let stem = a.stem;
    let (mut y, ys) = conv(
        &x,
        s,
        TensorId::StemConvW,
        TensorId::StemConvB,
        &TensorId::StemBn,
        a.stem_width,
        stem.kernel,
        stem.stride,
        stem.pad,
        1,
    );
    relu_ref(&mut y);
    x = y;
    s = ys;
    if let Some(p) = stem.pool {
        (x, s) = maxpool_ref(&x, s, p.kernel, p.stride, p.pad);
    }
    for (si, st) in a.stages().iter().enumerate() {
        let dts = if unf { Some(steps_ref(m, si)) } else { None };
        for b in 0..st.blocks {
            let id = |part| TensorId::Block {
                stage: si,
                block: b,
                part,
            };
            let stride = if b == 0 { st.stride } else { 1 };
            // Branch conv `i` (1-based names): (input, out channels, k, stride, groups).
            let bconv = |x: &[f64], s: Shape3, i: u8, co: usize, k: usize, st: usize, g: usize| {
                conv(
                    x,
                    s,
                    id(BlockPart::ConvW(i)),
                    id(BlockPart::ConvB(i)),
                    &|f| id(BlockPart::Bn(i, f)),
                    co,
                    k,
                    st,
                    k / 2,
                    g,
                )
            };
            let (mut t2, s2) = match a.block {
                // 3×3 (stride) → 3×3, both grouped.
                BlockKind::Basic => {
                    let (mut t1, s1) = bconv(&x, s, 0, st.width, 3, stride, a.groups);
                    relu_ref(&mut t1);
                    bconv(&t1, s1, 1, st.width, 3, 1, a.groups)
                }
                // 1×1 → 3×3 (grouped) → 1×1 at torchvision's middle width; the stride on
                // the first 1×1 (original) or on the 3×3 (v1.5).
                BlockKind::Bottleneck {
                    expansion,
                    base_width,
                    stride_on_3x3,
                } => {
                    let mid = st.width / expansion * base_width / 64 * a.groups;
                    let (sa, sb) = if stride_on_3x3 {
                        (1, stride)
                    } else {
                        (stride, 1)
                    };
                    let (mut t1, s1) = bconv(&x, s, 0, mid, 1, sa, 1);
                    relu_ref(&mut t1);
                    let (mut t2, s2) = bconv(&t1, s1, 1, mid, 3, sb, a.groups);
                    relu_ref(&mut t2);
                    bconv(&t2, s2, 2, st.width, 1, 1, 1)
                }
            };
            if a.se_reduction != 0 {
                se_ref(m, si, b, &mut t2, st.width);
            }
            if let Some(d) = &dts {
                for (i, v) in t2.iter_mut().enumerate() {
                    *v *= d[b][i % st.width];
                }
            }
            let change = stride != 1 || s.c != st.width;
            let short: Vec<f64> = if !change {
                x.clone()
            } else if a.shortcut == tsc_core::ShortcutKind::B {
                conv(
                    &x,
                    s,
                    id(BlockPart::ProjW),
                    id(BlockPart::ProjB),
                    &|f| id(BlockPart::ProjBn(f)),
                    st.width,
                    1,
                    stride,
                    0,
                    1,
                )
                .0
            } else {
                let mut o = vec![0.0; s2.h * s2.w * s2.c];
                for yy in 0..s2.h {
                    for xx in 0..s2.w {
                        for c in 0..s.c {
                            o[(yy * s2.w + xx) * s2.c + c] =
                                x[((yy * stride) * s.w + xx * stride) * s.c + c];
                        }
                    }
                }
                o
            };
            for (v, sv) in t2.iter_mut().zip(&short) {
                *v = (*v + sv).max(0.0);
            }
            x = t2;
            s = s2;
        }
    }
    let mut pooled = vec![0.0; s.c];
    for (i, v) in x.iter().enumerate() {
        pooled[i % s.c] += v;
    }
    for p in &mut pooled {
        *p /= (s.h * s.w) as f64;
    }
    fc_ref(&pooled, &t64(m, TensorId::FcW), &t64(m, TensorId::FcB))
}

/// Squeeze-excitation of block (s, b) in place over `x` (one image, `c` channels): mean
/// over pixels, fc1, ReLU, fc2, logistic, channel-wise product.
pub fn se_ref(m: &Model<'_>, s: usize, b: usize, x: &mut [f64], c: usize) {
    let t = |p| {
        t64(
            m,
            TensorId::Block {
                stage: s,
                block: b,
                part: BlockPart::Se(p),
            },
        )
    };
    let px = x.len() / c;
    let mut pooled = vec![0.0; c];
    for (i, v) in x.iter().enumerate() {
        pooled[i % c] += v / px as f64;
    }
    let mut h = fc_ref(&pooled, &t(SePart::Fc1W), &t(SePart::Fc1B));
    relu_ref(&mut h);
    let gate: Vec<f64> = fc_ref(&h, &t(SePart::Fc2W), &t(SePart::Fc2B))
        .into_iter()
        .map(sig)
        .collect();
    for (i, v) in x.iter_mut().enumerate() {
        *v *= gate[i % c];
    }
}

/// Max pool (padding never wins), NHWC, one image.
pub fn maxpool_ref(x: &[f64], s: Shape3, k: usize, st: usize, pad: usize) -> (Vec<f64>, Shape3) {
    let o = Shape3::new(
        (s.h + 2 * pad - k) / st + 1,
        (s.w + 2 * pad - k) / st + 1,
        s.c,
    );
    let mut y = vec![f64::NEG_INFINITY; o.h * o.w * o.c];
    for oy in 0..o.h {
        for ox in 0..o.w {
            for ky in 0..k {
                for kx in 0..k {
                    let iy = (oy * st + ky) as isize - pad as isize;
                    let ix = (ox * st + kx) as isize - pad as isize;
                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                        continue;
                    }
                    for c in 0..s.c {
                        let v = x[(iy as usize * s.w + ix as usize) * s.c + c];
                        let d = &mut y[(oy * o.w + ox) * o.c + c];
                        *d = d.max(v);
                    }
                }
            }
        }
    }
    (y, o)
}

/// max |a − b| / max |b|.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    num / den.max(1e-30)
}
