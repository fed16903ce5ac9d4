//! Single-image inference for folded and checkpoint models, no allocation.

use crate::arch::{BlockPart, BnField, ModelKind, Shape3, TensorId, BN_EPS, KERNEL};
use crate::controller::StageSteps;
use crate::format::{Model, TensorView};
use crate::layers::{batchnorm, conv2d, fc, global_avg_pool, relu, residual_update, Conv2d};
use crate::Error;

fn bn(model: &Model<'_>, x: &mut [f32], id: impl Fn(BnField) -> TensorId) -> Result<(), Error> {
    let g = model.tensor_by_id(id(BnField::Gamma))?;
    let b = model.tensor_by_id(id(BnField::Beta))?;
    let m = model.tensor_by_id(id(BnField::Mean))?;
    let v = model.tensor_by_id(id(BnField::Var))?;
    batchnorm(x, &g, &b, &m, &v, BN_EPS)?;
    Ok(())
}

/// `conv` then (checkpoint) BN or (folded) bias.
fn conv_bn(
    model: &Model<'_>,
    p: &Conv2d,
    x: &[f32],
    out: &mut [f32],
    w: TensorId,
    b: TensorId,
    bnid: impl Fn(BnField) -> TensorId,
) -> Result<(), Error> {
    let wt = model.tensor_by_id(w)?;
    match model.kind() {
        ModelKind::Folded => {
            let bt = model.tensor_by_id(b)?;
            conv2d(p, x, &wt, Some(&bt), out)?;
        }
        ModelKind::Checkpoint => {
            conv2d(p, x, &wt, None::<&TensorView<'_>>, out)?;
            bn(model, out, bnid)?;
        }
    }
    Ok(())
}

/// Runs one image through `model` (folded or checkpoint).
///
/// - `input`: `H·W·C` f32, NHWC, intensities in `[0, 1]`; normalised here with the header's
///   `(x − mean[c]) / std[c]`.
/// - `scratch`: at least `model.scratch_len()` f32 (contents are overwritten).
/// - `logits`: exactly `classes` f32 (no softmax applied).
///
/// A checkpoint runs BN in inference form and applies Δt recomputed by
/// [`crate::controller`]; a folded model runs plain convs with biases. Both give the same
/// logits up to rounding.
pub fn infer(
    model: &Model<'_>,
    input: &[f32],
    scratch: &mut [f32],
    logits: &mut [f32],
) -> Result<(), Error> {
    let arch = *model.arch();
    let len = |what, expected: usize, got: usize| {
        if expected == got {
            Ok(())
        } else {
            Err(Error::Len {
                what,
                expected,
                got,
            })
        }
    };
    len("input", arch.input.len(), input.len())?;
    len("logits", arch.classes, logits.len())?;
    let need = model.scratch_len();
    if scratch.len() < need {
        return Err(Error::Len {
            what: "scratch",
            expected: need,
            got: scratch.len(),
        });
    }
    let a_len = arch.activation_scratch_len();
    let (act, rest) = scratch.split_at_mut(a_len);
    let ctl = &mut rest[..need - a_len];
    let s = a_len;

    // Stem: normalised image at the start, stem output at the end.
    let img = arch.input;
    let stem = arch.stem_output();
    {
        let (lo, hi) = act.split_at_mut(s - stem.len());
        let x = &mut lo[..img.len()];
        for (i, (d, v)) in x.iter_mut().zip(input).enumerate() {
            let c = i % img.c;
            *d = (v - arch.mean[c]) / arch.std[c];
        }
        let p = Conv2d::new(img, stem.c, KERNEL, 1, 1);
        conv_bn(
            model,
            &p,
            x,
            hi,
            TensorId::StemConvW,
            TensorId::StemConvB,
            TensorId::StemBn,
        )?;
        relu(hi);
    }
    let mut at_start = false; // where the current activation lives
    let mut cur = stem;

    let mut ctl_opt = Some(ctl);
    for (stage, st) in arch.stages().iter().enumerate() {
        let mut steps = match model.kind() {
            ModelKind::Checkpoint => {
                let c = ctl_opt.take().ok_or(Error::Index)?;
                Some(StageSteps::new(model, stage, c)?)
            }
            ModelKind::Folded => None,
        };
        for block in 0..st.blocks {
            let g = arch.block_geom(stage, block);
            debug_assert_eq!(g.input, cur);
            let (xl, yl) = (g.input.len(), g.output.len());
            // Three disjoint regions: x (block input), t1, t2 (block output).
            let (x, t1, t2): (&mut [f32], &mut [f32], &mut [f32]) = if at_start {
                let (lo, hi) = act.split_at_mut(s - 2 * yl);
                let (t1, t2) = hi.split_at_mut(yl);
                (&mut lo[..xl], t1, t2)
            } else {
                let (lo, hi) = act.split_at_mut(s - xl);
                let (t2, rest) = lo.split_at_mut(yl);
                (hi, &mut rest[..yl], t2)
            };
            let x: &[f32] = x;
            let id = |part| TensorId::Block { stage, block, part };
            let gr = arch.groups;
            let mut p1 = Conv2d::new(g.input, g.output.c, KERNEL, g.stride, 1);
            p1.groups = gr;
            conv_bn(
                model,
                &p1,
                x,
                t1,
                id(BlockPart::Conv1W),
                id(BlockPart::Conv1B),
                |f| id(BlockPart::Bn1(f)),
            )?;
            relu(t1);
            let mut p2 = Conv2d::new(g.output, g.output.c, KERNEL, 1, 1);
            p2.groups = gr;
            conv_bn(
                model,
                &p2,
                t1,
                t2,
                id(BlockPart::Conv2W),
                id(BlockPart::Conv2B),
                |f| id(BlockPart::Bn2(f)),
            )?;
            let dt: Option<&[f32]> = match steps.as_mut() {
                Some(st) => Some(st.next_dt()?.ok_or(Error::Index)?),
                None => None,
            };
            if g.has_proj {
                let pp = Conv2d::new(g.input, g.output.c, 1, g.stride, 0);
                conv_bn(
                    model,
                    &pp,
                    x,
                    t1,
                    id(BlockPart::ProjW),
                    id(BlockPart::ProjB),
                    |f| id(BlockPart::ProjBn(f)),
                )?;
                residual_update(g.output, 1, t1, g.output, t2, dt, true)?;
            } else {
                residual_update(g.input, g.stride, x, g.output, t2, dt, true)?;
            }
            at_start = !at_start;
            cur = g.output;
        }
        if let Some(st) = steps {
            ctl_opt = Some(st.into_scratch());
        }
    }

    // Head.
    let xl = cur.len();
    let (x, pooled): (&[f32], &mut [f32]) = if at_start {
        let (lo, hi) = act.split_at_mut(xl);
        (lo, &mut hi[..cur.c])
    } else {
        let (lo, hi) = act.split_at_mut(s - xl);
        (hi, &mut lo[..cur.c])
    };
    global_avg_pool(Shape3::new(cur.h, cur.w, cur.c), x, pooled)?;
    let fw = model.tensor_by_id(TensorId::FcW)?;
    let fb = model.tensor_by_id(TensorId::FcB)?;
    fc(pooled, &fw, Some(&fb), logits)?;
    Ok(())
}
