//! Single-image inference for folded and checkpoint models, no allocation. Everything here
//! walks the architecture's description ([`Arch::branch`], [`Arch::stem`]).

use crate::arch::{BlockPart, BnField, ModelKind, SePart, Shape3, TensorId, BN_EPS};
use crate::controller::StageSteps;
use crate::format::{Model, TensorView};
use crate::layers::{
    batchnorm, conv2d, fc, global_avg_pool, max_pool2d, relu, residual_update, squeeze_excite,
    Conv2d,
};
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

fn too_short(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if got < expected {
        Err(Error::Len {
            what,
            expected,
            got,
        })
    } else {
        Ok(())
    }
}

/// Runs residual block (stage, block) of `model` on one image: `x` is the block input,
/// `out` receives the block output, `mid` (at least [`crate::Arch::block_middle_len`] f32)
/// holds the branch's intermediate outputs, the SE unit's vectors and the projection. With
/// SE units the gate scales the last conv's output before Δt (checkpoint) or with Δt
/// already in that conv and the SE's first fc rescaled by 1/Δt (folded, [`crate::fold`]). `dt` is the block's Δt
/// (`None`: 1, as in a folded model, where Δt is already in the last conv).
///
/// Intermediate branch outputs alternate between the start (even convs) and the end (odd
/// convs) of `mid`, so consecutive ones never overlap.
pub fn block_forward(
    model: &Model<'_>,
    stage: usize,
    block: usize,
    x: &[f32],
    mid: &mut [f32],
    out: &mut [f32],
    dt: Option<&[f32]>,
) -> Result<(), Error> {
    let arch = model.arch();
    if stage >= arch.stages().len() || block >= arch.stages[stage].blocks {
        return Err(Error::Index);
    }
    let g = arch.block_geom(stage, block);
    let br = arch.branch(stage, block);
    let need = arch.block_middle_len(stage, block);
    too_short("block middle scratch", need, mid.len())?;
    let (xl, yl) = (g.input.len(), g.output.len());
    if x.len() != xl || out.len() != yl {
        return Err(Error::Len {
            what: "block input/output",
            expected: xl + yl,
            got: x.len() + out.len(),
        });
    }
    let id = |part| TensorId::Block { stage, block, part };
    let last = br.last();
    let m = mid.len();
    for (i, bc) in br.convs().iter().enumerate() {
        let p = &bc.conv;
        let ol = p.output()?.len();
        let il = p.input.len();
        // Source: the block input or the previous intermediate; destination: the next
        // intermediate or the block output.
        let (src, dst): (&[f32], &mut [f32]) = match (i, i == last) {
            (0, true) => (x, &mut *out),
            (0, false) => (x, &mut mid[..ol]),
            (_, true) if (i - 1) % 2 == 0 => (&mid[..il], &mut *out),
            (_, true) => (&mid[m - il..], &mut *out),
            (_, false) if (i - 1) % 2 == 0 => {
                let (l, r) = mid.split_at_mut(m - ol);
                (&l[..il], r)
            }
            (_, false) => {
                let (l, r) = mid.split_at_mut(ol);
                (&r[r.len() - il..], l)
            }
        };
        let k = i as u8;
        conv_bn(
            model,
            p,
            src,
            dst,
            id(BlockPart::ConvW(k)),
            id(BlockPart::ConvB(k)),
            |f| id(BlockPart::Bn(k, f)),
        )?;
        if i != last {
            relu(dst);
        }
    }
    if arch.se_reduction != 0 {
        // The gate reads the last conv's output (the intermediates in `mid` are dead).
        let se = |p| model.tensor_by_id(id(BlockPart::Se(p)));
        let t = [
            se(SePart::Fc1W)?,
            se(SePart::Fc1B)?,
            se(SePart::Fc2W)?,
            se(SePart::Fc2B)?,
        ];
        squeeze_excite(g.output, out, [&t[0], &t[1], &t[2], &t[3]], mid)?;
    }
    if let Some(pp) = arch.projection(stage, block) {
        let proj = &mut mid[..yl];
        conv_bn(
            model,
            &pp,
            x,
            proj,
            id(BlockPart::ProjW),
            id(BlockPart::ProjB),
            |f| id(BlockPart::ProjBn(f)),
        )?;
        residual_update(g.output, 1, proj, g.output, out, dt, true)?;
    } else {
        residual_update(g.input, g.stride, x, g.output, out, dt, true)?;
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
///
/// Scratch layout: the current activation sits at one end of the activation scratch and
/// each layer writes its output at the other end (a block's intermediates in between), so
/// nothing is copied.
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
    too_short("scratch", need, scratch.len())?;
    let a_len = arch.activation_scratch_len();
    let (act, rest) = scratch.split_at_mut(a_len);
    let ctl = &mut rest[..need - a_len];
    let s = a_len;

    // Stem: normalised image at the start, conv output at the end, pool output (if any)
    // back at the start.
    let img = arch.input;
    let conv_out = arch.stem_conv_output();
    {
        let (lo, hi) = act.split_at_mut(s - conv_out.len());
        let x = &mut lo[..img.len()];
        for (i, (d, v)) in x.iter_mut().zip(input).enumerate() {
            let c = i % img.c;
            *d = (v - arch.mean[c]) / arch.std[c];
        }
        conv_bn(
            model,
            &arch.stem_conv(),
            x,
            hi,
            TensorId::StemConvW,
            TensorId::StemConvB,
            TensorId::StemBn,
        )?;
        relu(hi);
        if let Some(p) = arch.stem.pool {
            let pl = arch.stem_output().len();
            max_pool2d(conv_out, p.kernel, p.stride, p.pad, hi, &mut lo[..pl])?;
        }
    }
    let mut at_start = arch.stem.pool.is_some(); // where the current activation lives
    let mut cur = arch.stem_output();

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
            // Block input at one end, output at the other, the middle in between.
            let (x, mid, out): (&mut [f32], &mut [f32], &mut [f32]) = if at_start {
                let (lo, out) = act.split_at_mut(s - yl);
                let (x, mid) = lo.split_at_mut(xl);
                (x, mid, out)
            } else {
                let (out, hi) = act.split_at_mut(yl);
                let (mid, x) = hi.split_at_mut(hi.len() - xl);
                (x, mid, out)
            };
            let dt: Option<&[f32]> = match steps.as_mut() {
                Some(st) => Some(st.next_dt()?.ok_or(Error::Index)?),
                None => None,
            };
            block_forward(model, stage, block, x, mid, out, dt)?;
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
