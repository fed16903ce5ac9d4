//! Folding a checkpoint into a plain inference ResNet, streamed to a [`ByteSink`] without
//! allocation.
//!
//! For a conv followed by BN (γ, β, μ, σ²) and, for the last conv of a block's residual
//! branch ([`crate::arch::Branch::last`]), the step Δt:
//! `a[o] = Δt[o] · γ[o] / sqrt(σ²[o] + ε)`, `W'[o] = a[o] · W[o]`,
//! `b'[o] = Δt[o] · (β[o] − γ[o] · μ[o] / sqrt(σ²[o] + ε))` (Δt = 1 for the stem, the other
//! branch convs and the projection), computed in f64 and rounded once to f32. A block's
//! squeeze-excitation unit then sees `Δt ⊙ s` instead of its pooled input `s`, so its first
//! fc becomes `W1' = W1 · diag(1/Δt)` (exact for Δt > 0; any Δt ≤ 0 is
//! [`Error::SeStepNotPositive`]: the gate `g(s)` is not positively homogeneous, so a sign or
//! a zero cannot move through it). The folded file keeps the
//! header (architecture, step mode for information, class names), the fc layer, the
//! folded convs with biases, and the checkpoint's `meta.*` tensors; `opt.*` tensors are
//! dropped.

use crate::arch::{BlockPart, BnField, Dims, ModelKind, SePart, TensorId, BN_EPS};
use crate::controller::StageSteps;
use crate::format::{
    header_len, is_extra_name, record_len, ByteSink, FormatError, Model, ModelWriter, TensorView,
};
use crate::Error;

fn is_meta(name: &str) -> bool {
    name.starts_with("meta.")
}

/// Size in bytes of the folded model [`fold`] writes for `checkpoint`.
pub fn folded_len(checkpoint: &Model<'_>) -> Result<usize, Error> {
    let arch = checkpoint.arch();
    let mut n = header_len(arch, checkpoint.class_names())?;
    arch.for_each_tensor(ModelKind::Folded, |id, dims| -> Result<(), FormatError> {
        n += record_len(&id.name(), dims.as_slice())?;
        Ok(())
    })?;
    for t in checkpoint.tensors().filter(|t| is_meta(t.name())) {
        n += record_len(t.name(), t.dims())?;
    }
    Ok(n + 4)
}

/// Buffers values and hands them to the writer 64 at a time.
struct Stream<'w, 's, S: ByteSink + ?Sized> {
    w: &'w mut ModelWriter<'s, S>,
    buf: [f32; 64],
    n: usize,
}

impl<S: ByteSink + ?Sized> Stream<'_, '_, S> {
    fn push(&mut self, v: f32) -> Result<(), FormatError> {
        self.buf[self.n] = v;
        self.n += 1;
        if self.n == self.buf.len() {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), FormatError> {
        self.w.write_values(&self.buf[..self.n])?;
        self.n = 0;
        Ok(())
    }
}

/// The BN that follows a conv: the stem's (`None`) or a block part's.
#[derive(Clone, Copy)]
enum BnOf {
    Stem,
    Branch(usize, usize, u8),
    Proj(usize, usize),
}

fn bn_id(which: BnOf, f: BnField) -> TensorId {
    let blk = |stage, block, part| TensorId::Block { stage, block, part };
    match which {
        BnOf::Stem => TensorId::StemBn(f),
        BnOf::Branch(s, b, i) => blk(s, b, BlockPart::Bn(i, f)),
        BnOf::Proj(s, b) => blk(s, b, BlockPart::ProjBn(f)),
    }
}

/// Folds the conv `w` with its BN `which` and the step `dt` (the branch's last conv only),
/// writing the weight (`w` given) or the bias (`w == None`).
fn write_folded<S: ByteSink + ?Sized>(
    ck: &Model<'_>,
    which: BnOf,
    w: Option<&TensorView<'_>>,
    dt: Option<&[f32]>,
    out: &mut Stream<'_, '_, S>,
) -> Result<(), Error> {
    let get = |f| ck.tensor_by_id(bn_id(which, f));
    let (g, b, m, v) = (
        get(BnField::Gamma)?,
        get(BnField::Beta)?,
        get(BnField::Mean)?,
        get(BnField::Var)?,
    );
    let c = g.len();
    let coef = |o: usize| -> (f64, f64) {
        let gm = g.get(o).unwrap_or(0.0) as f64;
        let sd = libm::sqrt(v.get(o).unwrap_or(0.0) as f64 + BN_EPS as f64);
        let d = dt.and_then(|d| d.get(o)).map_or(1.0, |&x| x as f64);
        let a = d * gm / sd;
        let bias = d * (b.get(o).unwrap_or(0.0) as f64 - gm * m.get(o).unwrap_or(0.0) as f64 / sd);
        (a, bias)
    };
    match w {
        Some(w) => {
            let per = w.len() / c.max(1);
            for o in 0..c {
                let (a, _) = coef(o);
                for i in 0..per {
                    let x = w.get(o * per + i).unwrap_or(0.0) as f64;
                    out.push((a * x) as f32)?;
                }
            }
        }
        None => {
            for o in 0..c {
                out.push(coef(o).1 as f32)?;
            }
        }
    }
    Ok(())
}

/// Folds checkpoint `ck` into a folded model written to `sink`; returns the bytes written
/// (= [`folded_len`]). `scratch` needs `ck.arch().controller_scratch_len()` f32 (for Δt).
pub fn fold<S: ByteSink + ?Sized>(
    ck: &Model<'_>,
    scratch: &mut [f32],
    sink: &mut S,
) -> Result<usize, Error> {
    if ck.kind() != ModelKind::Checkpoint {
        return Err(Error::WrongKind);
    }
    let arch = *ck.arch();
    let need = arch.controller_scratch_len();
    if scratch.len() < need {
        return Err(Error::Len {
            what: "fold scratch",
            expected: need,
            got: scratch.len(),
        });
    }
    let total = folded_len(ck)?;
    let count =
        arch.tensor_count(ModelKind::Folded) + ck.tensors().filter(|t| is_meta(t.name())).count();
    let mut w = ModelWriter::begin_with_names(
        sink,
        &arch,
        ModelKind::Folded,
        ck.class_names(),
        count,
        total,
    )?;
    let mut steps: Option<StageSteps<'_, '_, '_>> = None;
    let mut scratch = Some(scratch);
    let mut cur_stage = usize::MAX;
    let wt = |id| ck.tensor_by_id(id);
    arch.for_each_tensor(ModelKind::Folded, |id, dims: Dims| -> Result<(), Error> {
        w.begin_tensor(&id.name(), dims.as_slice())?;
        let mut out = Stream {
            w: &mut w,
            buf: [0.0; 64],
            n: 0,
        };
        match id {
            TensorId::StemConvW => write_folded(ck, BnOf::Stem, Some(&wt(id)?), None, &mut out)?,
            TensorId::StemConvB => write_folded(ck, BnOf::Stem, None, None, &mut out)?,
            TensorId::FcW | TensorId::FcB => {
                for v in wt(id)?.iter() {
                    out.push(v)?;
                }
            }
            TensorId::Block { stage, block, part } => {
                if stage != cur_stage {
                    // Reclaim the scratch from the previous stage's controller.
                    if let Some(s) = steps.take() {
                        scratch = Some(s.into_scratch());
                    }
                    let s = scratch.take().ok_or(Error::Index)?;
                    steps = Some(StageSteps::new(ck, stage, s)?);
                    cur_stage = stage;
                }
                let last = arch.branch(stage, block).last() as u8;
                let conv = |p| {
                    wt(TensorId::Block {
                        stage,
                        block,
                        part: p,
                    })
                };
                match part {
                    BlockPart::ConvW(i) => {
                        let which = BnOf::Branch(stage, block, i);
                        let dt = if i == last {
                            // Δt of this block: computed once, at its last conv's weight.
                            let st = steps.as_mut().ok_or(Error::Index)?;
                            if st.next_block() != block {
                                return Err(Error::Index);
                            }
                            st.next_dt()?;
                            Some(st.current())
                        } else {
                            None
                        };
                        write_folded(ck, which, Some(&conv(part)?), dt, &mut out)?
                    }
                    BlockPart::ConvB(i) => {
                        let dt = if i == last {
                            steps.as_ref().map(|s| s.current())
                        } else {
                            None
                        };
                        write_folded(ck, BnOf::Branch(stage, block, i), None, dt, &mut out)?
                    }
                    BlockPart::ProjW => write_folded(
                        ck,
                        BnOf::Proj(stage, block),
                        Some(&conv(BlockPart::ProjW)?),
                        None,
                        &mut out,
                    )?,
                    BlockPart::ProjB => {
                        write_folded(ck, BnOf::Proj(stage, block), None, None, &mut out)?
                    }
                    BlockPart::Se(SePart::Fc1W) => {
                        // Δt is in the last conv now, so the pool sees Δt ⊙ s: W1' = W1 ·
                        // diag(1/Δt) gives the gate the same input (exact only for Δt > 0).
                        let dt = steps.as_ref().ok_or(Error::Index)?.current();
                        if let Some(channel) = dt.iter().position(|&d| !(d > 0.0 && d.is_finite()))
                        {
                            return Err(Error::SeStepNotPositive {
                                stage,
                                block,
                                channel,
                            });
                        }
                        let w1 = conv(part)?;
                        let c = dt.len();
                        for (i, v) in w1.iter().enumerate() {
                            out.push((v as f64 / dt[i % c] as f64) as f32)?;
                        }
                    }
                    BlockPart::Se(_) => {
                        for v in conv(part)?.iter() {
                            out.push(v)?;
                        }
                    }
                    _ => return Err(Error::Format(FormatError::UnexpectedTensor(id.name()))),
                }
            }
            _ => return Err(Error::Format(FormatError::UnexpectedTensor(id.name()))),
        }
        out.flush()?;
        Ok(())
    })?;
    for t in ck.tensors().filter(|t| is_meta(t.name())) {
        debug_assert!(is_extra_name(t.name()));
        w.begin_tensor(t.name(), t.dims())?;
        let mut out = Stream {
            w: &mut w,
            buf: [0.0; 64],
            n: 0,
        };
        for v in t.iter() {
            out.push(v)?;
        }
        out.flush()?;
    }
    Ok(w.finish()?)
}

/// [`fold`] into a new `Vec<u8>` (allocates the output and the controller scratch).
#[cfg(feature = "std")]
pub fn fold_to_vec(ck: &Model<'_>) -> Result<std::vec::Vec<u8>, Error> {
    let mut scratch = std::vec![0.0f32; ck.arch().controller_scratch_len()];
    let mut out = std::vec::Vec::with_capacity(folded_len(ck)?);
    fold(ck, &mut scratch, &mut out)?;
    Ok(out)
}
