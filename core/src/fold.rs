//! Folding a checkpoint into a plain inference ResNet, streamed to a [`ByteSink`] without
//! allocation.
//!
//! For a conv followed by BN (γ, β, μ, σ²) and, for a block's conv2, the step Δt:
//! `a[o] = Δt[o] · γ[o] / sqrt(σ²[o] + ε)`, `W'[o] = a[o] · W[o]`,
//! `b'[o] = Δt[o] · (β[o] − γ[o] · μ[o] / sqrt(σ²[o] + ε))` (Δt = 1 for the stem, conv1 and
//! the projection), computed in f64 and rounded once to f32. The folded file keeps the
//! header (architecture, step mode for information, class names), the fc layer, the
//! folded convs with biases, and the checkpoint's `meta.*` tensors; `opt.*` tensors are
//! dropped.

use crate::arch::{BlockPart, BnField, Dims, ModelKind, TensorId, BN_EPS};
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

fn bn_of(stage_block: Option<(usize, usize)>, which: u8, f: BnField) -> TensorId {
    match stage_block {
        None => TensorId::StemBn(f),
        Some((stage, block)) => TensorId::Block {
            stage,
            block,
            part: match which {
                1 => BlockPart::Bn1(f),
                2 => BlockPart::Bn2(f),
                _ => BlockPart::ProjBn(f),
            },
        },
    }
}

/// Folds the conv `w` with its BN (`which`: 1 = bn1, 2 = bn2, 3 = projbn; ignored for the
/// stem) and the step `dt` (conv2 only), writing the weight (`bias == false`) or the bias.
#[allow(clippy::too_many_arguments)]
fn write_folded<S: ByteSink + ?Sized>(
    ck: &Model<'_>,
    sb: Option<(usize, usize)>,
    which: u8,
    w: Option<&TensorView<'_>>,
    dt: Option<&[f32]>,
    out: &mut Stream<'_, '_, S>,
) -> Result<(), Error> {
    let get = |f| ck.tensor_by_id(bn_of(sb, which, f));
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
            TensorId::StemConvW => write_folded(ck, None, 0, Some(&wt(id)?), None, &mut out)?,
            TensorId::StemConvB => write_folded(ck, None, 0, None, None, &mut out)?,
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
                let sb = Some((stage, block));
                let conv = |p| {
                    wt(TensorId::Block {
                        stage,
                        block,
                        part: p,
                    })
                };
                match part {
                    BlockPart::Conv1W => {
                        write_folded(ck, sb, 1, Some(&conv(BlockPart::Conv1W)?), None, &mut out)?
                    }
                    BlockPart::Conv1B => write_folded(ck, sb, 1, None, None, &mut out)?,
                    BlockPart::Conv2W => {
                        let st = steps.as_mut().ok_or(Error::Index)?;
                        if st.next_block() != block {
                            return Err(Error::Index);
                        }
                        st.next_dt()?;
                        let dt = Some(st.current());
                        write_folded(ck, sb, 2, Some(&conv(BlockPart::Conv2W)?), dt, &mut out)?
                    }
                    BlockPart::Conv2B => {
                        let dt = steps.as_ref().map(|s| s.current());
                        write_folded(ck, sb, 2, None, dt, &mut out)?
                    }
                    BlockPart::ProjW => {
                        write_folded(ck, sb, 3, Some(&conv(BlockPart::ProjW)?), None, &mut out)?
                    }
                    BlockPart::ProjB => write_folded(ck, sb, 3, None, None, &mut out)?,
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
