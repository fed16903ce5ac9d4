//! Step-size controllers (paper Eqs. 10–12, docs/DESIGN.md "Step-size modes"): recompute
//! every block's Δt from a checkpoint's weights.
//!
//! - `fixed:c`: Δt = c. `indp`: Δt = `sS.bB.dt`.
//! - `2fc`: `Δt = σ(fc_out · ReLU(fc_in · w̄ + b_in) + b_out)` with per-block parameters.
//! - `lstm`: per stage, `x_d = ReLU(fc_in · w̄_d + b_in)`, `(h_d, c_d) = LSTM(x_d, h_{d−1},
//!   c_{d−1})` from zero state at the stage's first block, `Δt_d = σ(fc_out · h_d + b_out)`.
//!
//! `w̄` (length `K = 18·C` for a basic block) is conv1's then conv2's weight summary:
//! `w̄[o·kh·kw + ky·kw + kx] = mean_i W[o][ky][kx][i]`.

use crate::arch::{BlockPart, CtlPart, ModelKind, StepMode, TensorId};
use crate::format::{Model, TensorView};
use crate::layers::{fc, relu, sigmoid, LayerError, Weights};
use crate::Error;

/// Weight summary of one OHWI conv weight `[c_out][kh][kw][c_in_g]`:
/// `out[o·kh·kw + ky·kw + kx] = (Σ_i W[o][ky][kx][i]) / c_in_g` (sequential sum).
pub fn weight_summary<W: Weights + ?Sized>(
    w: &W,
    c_out: usize,
    kh: usize,
    kw: usize,
    c_in_g: usize,
    out: &mut [f32],
) -> Result<(), LayerError> {
    let taps = c_out
        .checked_mul(kh)
        .and_then(|v| v.checked_mul(kw))
        .ok_or(LayerError::Shape("overflow"))?;
    if c_in_g == 0 {
        return Err(LayerError::Shape("c_in_g must be ≥ 1"));
    }
    let total = taps
        .checked_mul(c_in_g)
        .ok_or(LayerError::Shape("overflow"))?;
    if w.len() != total {
        return Err(LayerError::Len {
            what: "summary weights",
            expected: total,
            got: w.len(),
        });
    }
    if out.len() != taps {
        return Err(LayerError::Len {
            what: "summary output",
            expected: taps,
            got: out.len(),
        });
    }
    for (t, o) in out.iter_mut().enumerate() {
        let mut s = 0.0f32;
        for i in 0..c_in_g {
            s += w.at(t * c_in_g + i);
        }
        *o = s / c_in_g as f32;
    }
    Ok(())
}

/// One LSTM step (Eq. 11, gate rows `i, f, g, o`): `z = W·[h, x] + b` with `W` `[4H][2H]`
/// (`h` first), then `c = σ(f)⊙c + σ(i)⊙tanh(g)`, `h = σ(o)⊙tanh(c)`. `h`, `c` are updated
/// in place; `gates` (4H) is workspace. Each row is
/// `dot(W[j][..H], h) + dot(W[j][H..], x) + b[j]`.
pub fn lstm_cell<W: Weights + ?Sized, B: Weights + ?Sized>(
    w: &W,
    b: &B,
    x: &[f32],
    h: &mut [f32],
    c: &mut [f32],
    gates: &mut [f32],
) -> Result<(), LayerError> {
    let hs = x.len();
    let len = |what, expected: usize, got: usize| {
        if expected == got {
            Ok(())
        } else {
            Err(LayerError::Len {
                what,
                expected,
                got,
            })
        }
    };
    len("lstm h", hs, h.len())?;
    len("lstm c", hs, c.len())?;
    len("lstm gates", 4 * hs, gates.len())?;
    len("lstm weights", 8 * hs * hs, w.len())?;
    len("lstm bias", 4 * hs, b.len())?;
    for (j, z) in gates.iter_mut().enumerate() {
        let row = j * 2 * hs;
        *z = w.dot(row, h) + w.dot(row + hs, x) + b.at(j);
    }
    for k in 0..hs {
        let i = sigmoid(gates[k]);
        let f = sigmoid(gates[hs + k]);
        let g = libm::tanhf(gates[2 * hs + k]);
        let o = sigmoid(gates[3 * hs + k]);
        c[k] = f * c[k] + i * g;
        h[k] = o * libm::tanhf(c[k]);
    }
    Ok(())
}

/// Writes block `(stage, block)`'s weight summary `w̄` into `out`: the summaries of the
/// branch convs marked `summary` ([`crate::arch::Branch`]), concatenated in branch order
/// (`K = 18·C` for basic blocks, `C/4 + C` for the standard bottleneck).
pub fn block_summary(
    model: &Model<'_>,
    stage: usize,
    block: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let arch = model.arch();
    if stage >= arch.stages().len() || block >= arch.stages[stage].blocks {
        return Err(Error::Index);
    }
    let br = arch.branch(stage, block);
    let k = br.summary_len();
    if out.len() != k {
        return Err(Error::Len {
            what: "weight summary",
            expected: k,
            got: out.len(),
        });
    }
    let mut at = 0;
    for (i, bc) in br.convs().iter().enumerate().filter(|(_, b)| b.summary) {
        let cv = bc.conv;
        let taps = cv.out_c * cv.kh * cv.kw;
        let w = model.tensor_by_id(TensorId::Block {
            stage,
            block,
            part: BlockPart::ConvW(i as u8),
        })?;
        let cin = cv.input.c / cv.groups;
        weight_summary(&w, cv.out_c, cv.kh, cv.kw, cin, &mut out[at..at + taps])?;
        at += taps;
    }
    Ok(())
}

/// Sequential Δt computation for the blocks of one stage of a checkpoint.
///
/// Scratch layout (f32): `[Δt: C][w̄: K][x: H][h: H][c: H][gates: 4H]` (only the parts the
/// mode needs; see [`crate::Arch::controller_scratch_len`], which is enough for any stage).
pub struct StageSteps<'m, 'a, 's> {
    model: &'m Model<'a>,
    stage: usize,
    next: usize,
    buf: &'s mut [f32],
}

impl<'m, 'a, 's> StageSteps<'m, 'a, 's> {
    /// Starts stage `stage` (LSTM state zeroed). `scratch` needs at least
    /// `model.arch().controller_scratch_len()` f32.
    pub fn new(model: &'m Model<'a>, stage: usize, scratch: &'s mut [f32]) -> Result<Self, Error> {
        if model.kind() != ModelKind::Checkpoint {
            return Err(Error::WrongKind);
        }
        let arch = model.arch();
        if stage >= arch.stages().len() {
            return Err(Error::Index);
        }
        let need = arch.controller_scratch_len();
        if scratch.len() < need {
            return Err(Error::Len {
                what: "controller scratch",
                expected: need,
                got: scratch.len(),
            });
        }
        scratch.fill(0.0);
        Ok(StageSteps {
            model,
            stage,
            next: 0,
            buf: scratch,
        })
    }

    /// Gives the scratch buffer back.
    pub fn into_scratch(self) -> &'s mut [f32] {
        self.buf
    }

    /// Index of the block whose Δt the next call returns.
    pub fn next_block(&self) -> usize {
        self.next
    }

    /// The Δt computed by the last [`StageSteps::next_dt`] call (zeros before the first).
    pub fn current(&self) -> &[f32] {
        &self.buf[..self.model.arch().stages[self.stage].width]
    }

    /// Computes the next block's Δt (length `C`); `None` after the stage's last block.
    pub fn next_dt(&mut self) -> Result<Option<&[f32]>, Error> {
        let arch = *self.model.arch();
        let (stage, block) = (self.stage, self.next);
        if block >= arch.stages[stage].blocks {
            return Ok(None);
        }
        let c = arch.stages[stage].width;
        let k = arch.summary_len(stage);
        let hs = arch.hidden(stage);
        let m = self.model;
        let bt = |part| {
            m.tensor_by_id(TensorId::Block {
                stage,
                block,
                part: BlockPart::Ctl(part),
            })
        };
        let st = |part| m.tensor_by_id(TensorId::StageCtl { stage, part });
        let (dt, rest) = self.buf.split_at_mut(c);
        match arch.step {
            StepMode::Fixed(v) => dt.fill(v),
            StepMode::Indp => {
                let t = m.tensor_by_id(TensorId::Block {
                    stage,
                    block,
                    part: BlockPart::Dt,
                })?;
                t.copy_to(dt)?;
            }
            StepMode::TwoFc => {
                let (wbar, rest) = rest.split_at_mut(k);
                let x = &mut rest[..hs];
                block_summary(m, stage, block, wbar)?;
                let (wi, bi, wo, bo) = (
                    bt(CtlPart::FcInW)?,
                    bt(CtlPart::FcInB)?,
                    bt(CtlPart::FcOutW)?,
                    bt(CtlPart::FcOutB)?,
                );
                head(wbar, &wi, &bi, x, &wo, &bo, dt)?;
            }
            StepMode::Lstm => {
                let (wbar, rest) = rest.split_at_mut(k);
                let (x, rest) = rest.split_at_mut(hs);
                let (h, rest) = rest.split_at_mut(hs);
                let (cs, rest) = rest.split_at_mut(hs);
                let gates = &mut rest[..4 * hs];
                block_summary(m, stage, block, wbar)?;
                let (wi, bi) = (st(CtlPart::FcInW)?, st(CtlPart::FcInB)?);
                fc(wbar, &wi, Some(&bi), x)?;
                relu(x);
                let (lw, lb) = (st(CtlPart::LstmW)?, st(CtlPart::LstmB)?);
                lstm_cell(&lw, &lb, x, h, cs, gates)?;
                let (wo, bo) = (st(CtlPart::FcOutW)?, st(CtlPart::FcOutB)?);
                fc(h, &wo, Some(&bo), dt)?;
                for v in dt.iter_mut() {
                    *v = sigmoid(*v);
                }
            }
        }
        self.next += 1;
        Ok(Some(&self.buf[..c]))
    }
}

/// 2fc head: `x = ReLU(W_in·w̄ + b_in)`, `dt = σ(W_out·x + b_out)`.
fn head(
    wbar: &[f32],
    wi: &TensorView<'_>,
    bi: &TensorView<'_>,
    x: &mut [f32],
    wo: &TensorView<'_>,
    bo: &TensorView<'_>,
    dt: &mut [f32],
) -> Result<(), Error> {
    fc(wbar, wi, Some(bi), x)?;
    relu(x);
    fc(x, wo, Some(bo), dt)?;
    for v in dt.iter_mut() {
        *v = sigmoid(*v);
    }
    Ok(())
}

/// Computes Δt for every block of `stage` into `out` (`blocks · C` f32, block-major).
/// `scratch` needs `model.arch().controller_scratch_len()` f32.
pub fn compute_steps(
    model: &Model<'_>,
    stage: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let arch = model.arch();
    if stage >= arch.stages().len() {
        return Err(Error::Index);
    }
    let st = arch.stages[stage];
    let need = st.blocks * st.width;
    if out.len() != need {
        return Err(Error::Len {
            what: "steps output",
            expected: need,
            got: out.len(),
        });
    }
    let mut steps = StageSteps::new(model, stage, scratch)?;
    for row in out.chunks_exact_mut(st.width) {
        match steps.next_dt()? {
            Some(dt) => row.copy_from_slice(dt),
            None => return Err(Error::Index),
        }
    }
    Ok(())
}
