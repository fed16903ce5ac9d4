//! f64 reference of the whole network's training loss (BatchNorm with batch statistics, Δt
//! from the configured step mode), composed from the per-layer references. The whole-network
//! gradient check differentiates this by central differences and compares with the GPU's
//! backward pass.

use super::controller as ctl;
use super::conv::conv2d_forward;
use super::ops::{
    bn_train_forward, gap_forward, linear_forward, maxpool_forward, shortcut_a_forward, softmax_ce,
};
use crate::gpu::conv::ConvShape;
use crate::model::{block_convs, stem_conv};
use std::collections::HashMap;
use tsc_core::arch::{Arch, ShortcutKind, StepMode};

/// Canonical tensors by name, in f64.
pub type Weights = HashMap<String, Vec<f64>>;

fn conv(w: &Weights, name: &str, x: &[f64], s: ConvShape) -> Vec<f64> {
    conv2d_forward(&s, x, &w[name], None)
}

fn bn(w: &Weights, prefix: &str, x: &[f64], c: usize) -> Vec<f64> {
    bn_train_forward(
        x,
        c,
        &w[&format!("{prefix}.gamma")],
        &w[&format!("{prefix}.beta")],
    )
    .y
}

fn relu(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| x.max(0.0)).collect()
}

/// The squeeze-excitation unit of block `p` (`"sS.bB"`) over `f` (`n` images of `hw`
/// pixels, `c` channels): pool, fc1, ReLU, fc2, sigmoid, per-image channel-wise product.
fn squeeze_excite(w: &Weights, p: &str, f: &[f64], n: usize, c: usize) -> Vec<f64> {
    let hw = f.len() / (n * c);
    let hid = w[&format!("{p}.se.fc1.b")].len();
    let pooled = gap_forward(f, n, hw, c);
    let h = relu(linear_forward(
        &pooled,
        &w[&format!("{p}.se.fc1.w")],
        &w[&format!("{p}.se.fc1.b")],
        n,
        c,
        hid,
    ));
    let a = linear_forward(
        &h,
        &w[&format!("{p}.se.fc2.w")],
        &w[&format!("{p}.se.fc2.b")],
        n,
        hid,
        c,
    );
    f.iter()
        .enumerate()
        .map(|(i, &v)| {
            let (img, ch) = (i / (hw * c), i % c);
            v / (1.0 + (-a[img * c + ch]).exp())
        })
        .collect()
}

/// Δt of every block of `stage` for the model's step mode.
pub fn stage_steps(a: &Arch, w: &Weights, stage: usize) -> Vec<Vec<f64>> {
    let st = a.stages()[stage];
    let c = st.width;
    match a.step {
        StepMode::Fixed(v) => vec![vec![v as f64; c]; st.blocks],
        StepMode::Indp => (0..st.blocks)
            .map(|b| w[&format!("s{stage}.b{b}.dt")].clone())
            .collect(),
        StepMode::TwoFc | StepMode::Lstm => {
            let blocks: Vec<ctl::Block> = (0..st.blocks)
                .map(|b| {
                    // The two summary convs of the branch (conv1 + conv2, or conv1 + conv3).
                    let br = a.branch(stage, b);
                    let mut sum = br.convs().iter().enumerate().filter(|(_, c)| c.summary);
                    let mut next = || {
                        let (i, c) = sum.next().expect("two summary convs");
                        let cin = c.conv.input.c / c.conv.groups;
                        (w[&format!("s{stage}.b{b}.conv{}.w", i + 1)].clone(), cin)
                    };
                    let ((conv1, cin1), (conv2, cin2)) = (next(), next());
                    ctl::Block {
                        conv1,
                        cin1,
                        conv2,
                        cin2,
                    }
                })
                .collect();
            let params = |p: &str| ctl::Params {
                fc_in_w: w[&format!("{p}.fc_in.w")].clone(),
                fc_in_b: w[&format!("{p}.fc_in.b")].clone(),
                lstm_w: w.get(&format!("{p}.lstm.w")).cloned().unwrap_or_default(),
                lstm_b: w.get(&format!("{p}.lstm.b")).cloned().unwrap_or_default(),
                fc_out_w: w[&format!("{p}.fc_out.w")].clone(),
                fc_out_b: w[&format!("{p}.fc_out.b")].clone(),
            };
            let (mode, ps) = if a.step == StepMode::Lstm {
                (ctl::Mode::Lstm, vec![params(&format!("s{stage}.ctl"))])
            } else {
                (
                    ctl::Mode::TwoFc,
                    (0..st.blocks)
                        .map(|b| params(&format!("s{stage}.b{b}.ctl")))
                        .collect(),
                )
            };
            ctl::forward(mode, &blocks, &ps, a.hidden(stage)).dt
        }
    }
}

/// Mean softmax cross-entropy of a training-mode forward pass over `images` (NHWC, already
/// normalised) with `labels`. SE units (when the architecture has them) scale the last BN's
/// output before Δt. The block structure comes from core's description
/// ([`crate::model::block_convs`] walks `Arch::branch`).
pub fn train_loss(a: &Arch, w: &Weights, images: &[f64], labels: &[u32]) -> f64 {
    let n = labels.len();
    let w0 = a.stem_width;
    let s = stem_conv(a, n);
    let mut x = relu(bn(w, "stem.bn", &conv(w, "stem.conv.w", images, s), w0));
    if let Some(p) = a.stem.pool {
        let shape = [n, s.out_h(), s.out_w(), w0];
        x = maxpool_forward(&x, shape, p.kernel, p.stride, p.pad).0;
    }
    for si in 0..a.stages().len() {
        let steps = stage_steps(a, w, si);
        for (b, dt) in steps.iter().enumerate() {
            let g = a.block_geom(si, b);
            let (hi, wi, ci) = (g.input.h, g.input.w, g.input.c);
            let c = g.output.c;
            let p = format!("s{si}.b{b}");
            let cv = block_convs(a, si, b, n);
            let last = cv.branch.len() - 1;
            let mut f = x.clone();
            for (i, sh) in cv.branch.iter().enumerate() {
                let t = bn(
                    w,
                    &format!("{p}.bn{}", i + 1),
                    &conv(w, &format!("{p}.conv{}.w", i + 1), &f, *sh),
                    sh.cout,
                );
                f = if i == last { t } else { relu(t) };
            }
            if a.se_reduction != 0 {
                f = squeeze_excite(w, &p, &f, n, c);
            }
            let short = if !g.shape_change {
                x.clone()
            } else if a.shortcut == ShortcutKind::A {
                shortcut_a_forward(&x, n, hi, wi, ci, c, g.stride)
            } else {
                let sp = cv.proj.expect("option B with a shape change");
                bn(
                    w,
                    &format!("{p}.projbn"),
                    &conv(w, &format!("{p}.proj.w"), &x, sp),
                    c,
                )
            };
            x = f
                .iter()
                .enumerate()
                .map(|(i, &v)| (short[i] + dt[i % c] * v).max(0.0))
                .collect();
        }
    }
    let last = a.head_input();
    let pooled = gap_forward(&x, n, last.h * last.w, last.c);
    let logits = linear_forward(&pooled, &w["fc.w"], &w["fc.b"], n, last.c, a.classes);
    softmax_ce(&logits, labels, a.classes).0
}
