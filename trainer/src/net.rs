//! The network on the GPU: parameters (`GpuModel`, shared) and per-batch-size programs of
//! prepared dispatches (`Graph`): training forward + backward + update, or evaluation forward.
//!
//! Everything is built once; a step uploads a batch, replays the dispatches and reads back
//! 16 bytes of metrics. Block structure and names follow docs/DESIGN.md and core's one
//! description of the network ([`tsc_core::Arch::branch`]):
//! `y = ReLU(shortcut(x) + Δt ⊗ BN_last(conv_last(… ReLU(BN1(conv1(x))))))`, with an SE unit's
//! gate `⊙ g(·)` on `BN_last`'s output when the architecture has SE units.
//!
//! Each layer's forward records its backward on a tape at the same time (`Builder::conv_bn`,
//! `Builder::stem`, `Builder::block`); the training program is the forward, then the head's
//! backward, then the tape unwound in reverse.
//!
//! Where Δt comes from (`StepSource`) is the only thing the step-size modes change:
//! a constant tensor (`fixed:C`), a trained vector (`indp`), or a controller (`2fc`, `lstm`)
//! that computes Δt from the block's conv weights before the stage's forward and, after the
//! stage's backward, turns dL/dΔt into controller gradients and extra conv-weight gradients.

use crate::gpu::controller::{BlockTensors, CtlMode, CtlParams, LstmTensors, StageController};
use crate::gpu::conv::{conv_backward_data, conv_backward_weights, conv_forward, ConvShape};
use crate::gpu::elementwise::{
    add_inplace, relu_backward, relu_forward, shortcut_a_backward, shortcut_a_forward,
};
use crate::gpu::linear::{linear_backward, linear_forward};
use crate::gpu::loss::softmax_ce;
use crate::gpu::norm::{
    batchnorm_backward, batchnorm_infer_forward, batchnorm_train_forward, BnGrad, BnShape, Epilogue,
};
use crate::gpu::optim::sgd_step;
use crate::gpu::pool::{gap_backward, gap_forward};
use crate::gpu::pool::{maxpool_backward, maxpool_forward, Pool2d};
use crate::gpu::reduce::Op;
use crate::gpu::se::{se_gate_forward, se_residual_backward, se_residual_forward};
use crate::gpu::{Dispatch, Gpu, Recorder, Tensor};
use crate::model::{block_convs, stem_conv, HostModel, HostTensor};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use tsc_core::arch::{Arch, ShortcutKind, StepMode};

/// One trainable tensor with its gradient and momentum.
pub struct Param {
    pub name: String,
    pub value: Tensor,
    pub grad: Tensor,
    pub momentum: Tensor,
}

/// Where a block's Δt lives.
enum StepSource {
    /// Constant tensor; dL/dΔt goes to a scratch tensor nobody reads.
    Fixed,
    /// The parameter `sS.bB.dt`.
    Indp,
    /// Output of the stage's controller.
    Controller,
}

/// Parameters, BN statistics and step-size state on the GPU, shared by every `Graph`.
pub struct GpuModel {
    pub arch: Arch,
    pub class_names: Vec<String>,
    pub params: Vec<Param>,
    /// Non-trainable canonical tensors (BN running statistics) by name.
    pub buffers: HashMap<String, Tensor>,
    index: HashMap<String, usize>,
    /// Per block (stage-major): Δt [C] and dL/dΔt [C].
    dt: Vec<Tensor>,
    ddt: Vec<Tensor>,
    source: StepSource,
    controllers: Vec<StageController>,
    pub lr: Tensor,
    pub momentum: f32,
    pub weight_decay: f32,
}

fn is_buffer(name: &str) -> bool {
    name.ends_with(".mean") || name.ends_with(".var")
}

impl GpuModel {
    /// Upload a host model. Momentum comes from `opt.<name>` extras when present (resume).
    pub fn new(gpu: &Gpu, host: &HostModel, momentum: f32, weight_decay: f32) -> Result<GpuModel> {
        let arch = host.arch;
        let mut params = Vec::new();
        let mut buffers = HashMap::new();
        let mut index = HashMap::new();
        for t in &host.tensors {
            let value = gpu.upload(&t.data, &t.shape);
            if is_buffer(&t.name) {
                buffers.insert(t.name.clone(), value);
                continue;
            }
            let mom = host.extra(&format!("opt.{}", t.name));
            let momentum_t = match mom {
                Some(m) if m.data.len() == t.data.len() => gpu.upload(&m.data, &t.shape),
                _ => gpu.zeros(&t.shape),
            };
            index.insert(t.name.clone(), params.len());
            params.push(Param {
                name: t.name.clone(),
                value,
                grad: gpu.zeros(&t.shape),
                momentum: momentum_t,
            });
        }
        let mut dt = Vec::new();
        let mut ddt = Vec::new();
        let source = match arch.step {
            StepMode::Fixed(_) => StepSource::Fixed,
            StepMode::Indp => StepSource::Indp,
            StepMode::TwoFc | StepMode::Lstm => StepSource::Controller,
        };
        // One Δt and one dL/dΔt per block (indp reads its parameter instead, see `dt_of`).
        for st in arch.stages() {
            for _ in 0..st.blocks {
                let c = st.width;
                dt.push(match arch.step {
                    StepMode::Fixed(v) => gpu.upload(&vec![v; c], &[c]),
                    _ => gpu.zeros(&[c]),
                });
                ddt.push(gpu.zeros(&[c]));
            }
        }
        let mut m = GpuModel {
            arch,
            class_names: host.class_names.clone(),
            params,
            buffers,
            index,
            dt,
            ddt,
            source,
            controllers: Vec::new(),
            lr: gpu.upload(&[0.0], &[1]),
            momentum,
            weight_decay,
        };
        m.controllers = m.build_controllers(gpu)?;
        Ok(m)
    }

    fn param(&self, name: &str) -> Result<&Param> {
        self.index
            .get(name)
            .map(|&i| &self.params[i])
            .ok_or_else(|| anyhow!("model has no parameter {name}"))
    }

    fn buffer(&self, name: &str) -> Result<&Tensor> {
        self.buffers
            .get(name)
            .ok_or_else(|| anyhow!("model has no buffer {name}"))
    }

    /// Index of block (stage, block) in the flat per-block lists.
    fn flat(&self, stage: usize, block: usize) -> usize {
        self.arch.stages()[..stage]
            .iter()
            .map(|s| s.blocks)
            .sum::<usize>()
            + block
    }

    /// The Δt tensor a block multiplies its branch by (for indp: the parameter itself).
    fn dt_of(&self, stage: usize, block: usize) -> Result<&Tensor> {
        Ok(match self.source {
            StepSource::Indp => &self.param(&format!("s{stage}.b{block}.dt"))?.value,
            _ => &self.dt[self.flat(stage, block)],
        })
    }

    /// Where a block's dL/dΔt goes (for indp: the parameter's gradient).
    fn ddt_of(&self, stage: usize, block: usize) -> Result<&Tensor> {
        Ok(match self.source {
            StepSource::Indp => &self.param(&format!("s{stage}.b{block}.dt"))?.grad,
            _ => &self.ddt[self.flat(stage, block)],
        })
    }

    fn build_controllers(&self, gpu: &Gpu) -> Result<Vec<StageController>> {
        let mode = match self.arch.step {
            StepMode::TwoFc => CtlMode::TwoFc,
            StepMode::Lstm => CtlMode::Lstm,
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::new();
        for (s, st) in self.arch.stages().iter().enumerate() {
            let mut blocks = Vec::new();
            for b in 0..st.blocks {
                // The branch convs that enter w̄ (conv1 and conv2, or conv1 and conv3).
                let br = self.arch.branch(s, b);
                let summary: Vec<usize> = (0..br.convs().len())
                    .filter(|&i| br.convs()[i].summary)
                    .collect();
                let [i1, i2] = summary[..] else {
                    bail!("the GPU controller needs exactly two summary convs per block");
                };
                let c1 = self.param(&format!("s{s}.b{b}.conv{}.w", i1 + 1))?;
                let c2 = self.param(&format!("s{s}.b{b}.conv{}.w", i2 + 1))?;
                let i = self.flat(s, b);
                blocks.push(BlockTensors {
                    conv1_w: &c1.value,
                    conv2_w: &c2.value,
                    conv1_dw: &c1.grad,
                    conv2_dw: &c2.grad,
                    dt: &self.dt[i],
                    ddt: &self.ddt[i],
                });
            }
            let ctl = |prefix: &str| -> Result<CtlParams> {
                let p = |n: &str| self.param(&format!("{prefix}.{n}"));
                let lstm = if mode == CtlMode::Lstm {
                    let (w, b) = (p("lstm.w")?, p("lstm.b")?);
                    Some(LstmTensors {
                        w: &w.value,
                        b: &b.value,
                        dw: &w.grad,
                        db: &b.grad,
                    })
                } else {
                    None
                };
                Ok(CtlParams {
                    fc_in_w: &p("fc_in.w")?.value,
                    fc_in_b: &p("fc_in.b")?.value,
                    fc_out_w: &p("fc_out.w")?.value,
                    fc_out_b: &p("fc_out.b")?.value,
                    d_fc_in_w: &p("fc_in.w")?.grad,
                    d_fc_in_b: &p("fc_in.b")?.grad,
                    d_fc_out_w: &p("fc_out.w")?.grad,
                    d_fc_out_b: &p("fc_out.b")?.grad,
                    lstm,
                })
            };
            let params = match mode {
                CtlMode::Lstm => vec![ctl(&format!("s{s}.ctl"))?],
                CtlMode::TwoFc => (0..st.blocks)
                    .map(|b| ctl(&format!("s{s}.b{b}.ctl")))
                    .collect::<Result<_>>()?,
            };
            out.push(
                StageController::new(gpu, mode, &blocks, &params, self.arch.hidden(s))
                    .with_context(|| format!("controller of stage {s}"))?,
            );
        }
        Ok(out)
    }

    /// Download every tensor into a host model (momentum as `opt.*` extras).
    pub fn download(&self, gpu: &Gpu, template: &HostModel) -> Result<HostModel> {
        let mut host = template.clone();
        host.extras.retain(|t| !t.name.starts_with("opt."));
        for t in host.tensors.iter_mut() {
            if let Some(b) = self.buffers.get(&t.name) {
                t.data = gpu.download(b)?;
            } else {
                let p = self.param(&t.name)?;
                t.data = gpu.download(&p.value)?;
                host.extras.push(HostTensor {
                    name: format!("opt.{}", t.name),
                    shape: t.shape.clone(),
                    data: gpu.download(&p.momentum)?,
                });
            }
        }
        Ok(host)
    }

    /// Current Δt of every block as the GPU computed it in the latest forward.
    pub fn steps(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        for (s, st) in self.arch.stages().iter().enumerate() {
            for b in 0..st.blocks {
                out.push(gpu.download(self.dt_of(s, b)?)?);
            }
        }
        Ok(out)
    }
}

/// One schedulable piece of a program.
enum Unit<'a> {
    CtlForward(&'a StageController),
    CtlBackward(&'a StageController),
    Op(&'a Op),
}

impl Unit<'_> {
    fn record(&self, rec: &mut Recorder) {
        match self {
            Unit::CtlForward(c) => c.record_forward(rec),
            Unit::CtlBackward(c) => c.record_backward(rec),
            Unit::Op(o) => o.record(rec),
        }
    }

    /// The op's kernels, e.g. `conv_wtrans+conv_bwd_data` (variant suffixes such as tile
    /// shapes dropped).
    fn name(&self) -> String {
        match self {
            Unit::CtlForward(_) => "controller forward".into(),
            Unit::CtlBackward(_) => "controller backward".into(),
            Unit::Op(o) => {
                let mut names: Vec<String> = Vec::new();
                for d in &o.dispatches {
                    let n = &d.kernel.name;
                    let n = n
                        .rsplit_once('/')
                        .map_or(n.as_str(), |(head, _)| head)
                        .to_string();
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                names.join("+")
            }
        }
    }
}

/// Training or evaluation program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A program for one batch size: its activations, and its dispatches in order.
pub struct Graph {
    pub batch: usize,
    pub mode: Mode,
    pub input: Tensor,
    pub labels: Tensor,
    pub logits: Tensor,
    /// `[Σ loss, Σ correct, Σ samples, batches]`, accumulated until reset.
    pub metrics: Tensor,
    ops: Vec<Op>,
    /// Index into `ops` where each stage's forward begins (controller forward goes first).
    stage_fwd_at: Vec<usize>,
    /// Index into `ops` right after each stage's backward (controller backward goes there).
    stage_bwd_at: Vec<usize>,
    update_at: usize,
    _acts: Vec<Tensor>,
}

fn op(d: Vec<Dispatch>) -> Op {
    Op {
        dispatches: d,
        scratch: Vec::new(),
    }
}

/// Records a program: its ops in order, its activations, and (training) the tape of
/// backward passes.
struct Builder<'a> {
    gpu: &'a Gpu,
    m: &'a GpuModel,
    batch: usize,
    train: bool,
    ops: Vec<Op>,
    acts: Vec<Tensor>,
    /// Index into `ops` right after each stage's backward (controller backward goes there).
    stage_bwd_at: Vec<usize>,
}

/// A layer's backward pass, recorded by the layer's forward: given dL/d(output) it records
/// the ops for the parameter gradients and returns dL/d(input) (a new tensor; `None` where
/// nothing upstream needs it, i.e. the input image).
type Backward<'a> = Box<dyn FnOnce(&mut Builder<'a>, Tensor) -> Result<Option<Tensor>> + 'a>;

/// Backward passes in forward order; [`unwind`] runs them in reverse.
type Tape<'a> = Vec<Backward<'a>>;

/// Runs `tape` backwards from dL/d(output) `dy`; returns dL/d(input) when there is one.
fn unwind<'a>(bd: &mut Builder<'a>, tape: Tape<'a>, dy: Tensor) -> Result<Option<Tensor>> {
    let mut d = Some(dy);
    for back in tape.into_iter().rev() {
        let dy =
            d.ok_or_else(|| anyhow!("a layer needs a gradient its successor does not produce"))?;
        d = back(bd, dy)?;
    }
    Ok(d)
}

impl<'a> Builder<'a> {
    fn act(&mut self, shape: &[usize]) -> Tensor {
        let t = self.gpu.zeros(shape);
        self.acts.push(t.clone());
        t
    }
    fn push(&mut self, o: Op) {
        self.ops.push(o);
    }

    /// BN forward (batch statistics when training, running statistics otherwise) with its
    /// epilogue; the saved mean and 1/σ for the backward.
    fn bn_forward(
        &mut self,
        prefix: &str,
        x: &Tensor,
        y: &Tensor,
        epi: Epilogue,
    ) -> Result<Option<BnSaved>> {
        let (gpu, m) = (self.gpu, self.m);
        let s = bn_shape(x);
        let g = &m.param(&format!("{prefix}.gamma"))?.value;
        let b = &m.param(&format!("{prefix}.beta"))?.value;
        let rm = m.buffer(&format!("{prefix}.mean"))?;
        let rv = m.buffer(&format!("{prefix}.var"))?;
        if self.train {
            let saved = BnSaved {
                mean: self.act(&[s.channels]),
                invstd: self.act(&[s.channels]),
            };
            let op = batchnorm_train_forward(
                gpu,
                &s,
                x,
                g,
                b,
                rm,
                rv,
                y,
                &saved.mean,
                &saved.invstd,
                epi,
            )?;
            self.push(op);
            Ok(Some(saved))
        } else {
            self.push(batchnorm_infer_forward(gpu, &s, x, g, b, rm, rv, y, epi)?);
            Ok(None)
        }
    }

    /// The conv `g` with weights `w`, then BN `bn` with `after`; returns the output and
    /// the backward of both (dX skipped when `need_dx` is false).
    fn conv_bn(
        &mut self,
        x: &Tensor,
        g: ConvShape,
        w: &str,
        bn: &str,
        after: After<'a>,
        need_dx: bool,
    ) -> Result<(Tensor, Option<Backward<'a>>)> {
        let (gpu, m) = (self.gpu, self.m);
        let oshape = [g.n, g.out_h(), g.out_w(), g.cout];
        let c = self.act(&oshape);
        let y = self.act(&oshape);
        let wp = m.param(w)?;
        self.push(op(conv_forward(gpu, &g, x, &wp.value, None, &c)?));
        let epi = match &after {
            After::None => Epilogue::None,
            After::Relu => Epilogue::Relu,
            After::Residual { dt, shortcut, .. } => Epilogue::ResidualRelu { dt, shortcut },
        };
        let saved = self.bn_forward(bn, &c, &y, epi)?;
        let Some(saved) = saved else {
            return Ok((y, None));
        };
        let (x, yc, bn) = (x.clone(), y.clone(), bn.to_string());
        let back: Backward<'a> = Box::new(move |bd: &mut Builder<'a>, dy: Tensor| {
            let grad = match &after {
                After::None => BnGrad::None,
                After::Relu => BnGrad::Relu { y: &yc },
                After::Residual {
                    dt, ddt, dshortcut, ..
                } => BnGrad::ResidualRelu {
                    y: &yc,
                    dt,
                    ddt,
                    dshortcut,
                },
            };
            let dc = bd.act(&c.shape);
            bd.bn_backward(&bn, &dy, &c, &saved, &dc, grad)?;
            let dx = if need_dx {
                let dx = bd.act(&x.shape);
                bd.push(op(conv_backward_data(bd.gpu, &g, &dc, &wp.value, &dx)?));
                Some(dx)
            } else {
                None
            };
            bd.push(op(conv_backward_weights(
                bd.gpu, &g, &x, &dc, &wp.grad, false,
            )?));
            Ok(dx)
        });
        Ok((y, Some(back)))
    }

    fn bn_backward(
        &mut self,
        prefix: &str,
        dy: &Tensor,
        x: &Tensor,
        saved: &BnSaved,
        dx: &Tensor,
        g: BnGrad,
    ) -> Result<()> {
        let gm = self.m.param(&format!("{prefix}.gamma"))?;
        let bt = self.m.param(&format!("{prefix}.beta"))?;
        let op = batchnorm_backward(
            self.gpu,
            &bn_shape(x),
            dy,
            x,
            &gm.value,
            &bt.value,
            &saved.mean,
            &saved.invstd,
            dx,
            &gm.grad,
            &bt.grad,
            g,
        )?;
        self.push(op);
        Ok(())
    }

    /// The stem: conv, BN + ReLU, optional max pool (no gradient to the image).
    fn stem(&mut self, input: &Tensor, tape: &mut Tape<'a>) -> Result<Tensor> {
        let a = &self.m.arch;
        let gs = stem_conv(a, self.batch);
        let (y, back) = self.conv_bn(input, gs, "stem.conv.w", "stem.bn", After::Relu, false)?;
        tape.extend(back);
        let Some(p) = a.stem.pool else {
            return Ok(y);
        };
        let pool = Pool2d::new(p.kernel, p.stride, p.pad);
        let out = pool.out_shape(&y.shape)?;
        let (py, argmax) = (self.act(&out), self.act(&out));
        self.push(maxpool_forward(self.gpu, &y, &py, &argmax, pool)?);
        if self.train {
            tape.push(Box::new(move |bd: &mut Builder<'a>, dy: Tensor| {
                let dx = bd.act(&y.shape);
                bd.push(maxpool_backward(bd.gpu, &dy, &argmax, &dx, pool, false)?);
                Ok(Some(dx))
            }));
        }
        Ok(py)
    }

    /// Residual block (stage, block): `y = ReLU(shortcut(x) + Δt ⊗ branch(x))`, the branch
    /// being core's description ([`tsc_core::Arch::branch`]): conv + BN (+ ReLU) per conv, the
    /// last BN fused with Δt, the shortcut and the ReLU.
    fn block(&mut self, s: usize, b: usize, x: &Tensor, tape: &mut Tape<'a>) -> Result<Tensor> {
        let (m, batch) = (self.m, self.batch);
        let a = &m.arch;
        let geo = a.block_geom(s, b);
        let cv = block_convs(a, s, b, batch);
        let p = format!("s{s}.b{b}");
        let yshape = [batch, geo.output.h, geo.output.w, geo.output.c];
        // The shortcut comes first: the last BN's epilogue adds it.
        let mut short_back = None;
        let shortcut = if !geo.shape_change {
            x.clone()
        } else if a.shortcut == ShortcutKind::A {
            let t = self.act(&yshape);
            self.push(shortcut_a_forward(self.gpu, x, &t, geo.stride)?);
            t
        } else {
            let g = cv
                .proj
                .ok_or_else(|| anyhow!("{p}: option B shape change without a projection"))?;
            let (t, back) = self.conv_bn(
                x,
                g,
                &format!("{p}.proj.w"),
                &format!("{p}.projbn"),
                After::None,
                true,
            )?;
            short_back = back;
            t
        };
        let dshortcut = if self.train {
            self.act(&yshape)
        } else {
            shortcut.clone()
        };
        let mut branch: Tape<'a> = Vec::new();
        let mut h = x.clone();
        let last = cv.branch.len() - 1;
        let se = a.se_reduction != 0;
        for (i, g) in cv.branch.iter().enumerate() {
            let after = if i < last {
                After::Relu
            } else if se {
                // The SE tail below takes the last BN's plain output.
                After::None
            } else {
                After::Residual {
                    dt: m.dt_of(s, b)?,
                    ddt: m.ddt_of(s, b)?,
                    shortcut: shortcut.clone(),
                    dshortcut: dshortcut.clone(),
                }
            };
            let (y, back) = self.conv_bn(
                &h,
                *g,
                &format!("{p}.conv{}.w", i + 1),
                &format!("{p}.bn{}", i + 1),
                after,
                true,
            )?;
            branch.extend(back);
            h = y;
        }
        if se {
            let (y, back) = self.se_tail(s, b, &h, &shortcut, &dshortcut)?;
            branch.extend(back);
            h = y;
        }
        if self.train {
            let (identity, stride) = (!geo.shape_change, geo.stride);
            tape.push(Box::new(move |bd: &mut Builder<'a>, dy: Tensor| {
                let dx = unwind(bd, branch, dy)?.ok_or_else(|| anyhow!("branch without dX"))?;
                match short_back {
                    Some(back) => {
                        let dxp =
                            back(bd, dshortcut)?.ok_or_else(|| anyhow!("projection without dX"))?;
                        bd.push(add_inplace(bd.gpu, &dx, &dxp)?);
                    }
                    None if identity => bd.push(add_inplace(bd.gpu, &dx, &dshortcut)?),
                    None => bd.push(shortcut_a_backward(bd.gpu, &dshortcut, &dx, stride, true)?),
                }
                Ok(Some(dx))
            }));
        }
        Ok(h)
    }

    /// The squeeze-excitation tail of block (s, b) on the last BN's output `z`:
    /// `y = ReLU(shortcut + Δt ⊗ z ⊙ g)`, `g = sigmoid(fc2 ReLU(fc1 pool(z)))` per image;
    /// the backward writes dL/dz, dL/dΔt, dL/d(shortcut) and the SE fcs' gradients.
    fn se_tail(
        &mut self,
        s: usize,
        b: usize,
        z: &Tensor,
        shortcut: &Tensor,
        dshortcut: &Tensor,
    ) -> Result<(Tensor, Option<Backward<'a>>)> {
        let (gpu, m, n) = (self.gpu, self.m, self.batch);
        let c = *z.shape.last().unwrap_or(&1);
        let hid = m.arch.se_hidden(c);
        let p = format!("s{s}.b{b}.se");
        let (w1, b1) = (
            m.param(&format!("{p}.fc1.w"))?,
            m.param(&format!("{p}.fc1.b"))?,
        );
        let (w2, b2) = (
            m.param(&format!("{p}.fc2.w"))?,
            m.param(&format!("{p}.fc2.b"))?,
        );
        let (dt, ddt) = (m.dt_of(s, b)?, m.ddt_of(s, b)?);
        let pooled = self.act(&[n, c]);
        let a1 = self.act(&[n, hid]);
        let h1 = self.act(&[n, hid]);
        let a2 = self.act(&[n, c]);
        let g = self.act(&[n, c]);
        let y = self.act(&z.shape);
        self.push(gap_forward(gpu, z, &pooled)?);
        self.push(linear_forward(gpu, &pooled, &w1.value, &b1.value, &a1)?);
        self.push(relu_forward(gpu, &a1, &h1)?);
        self.push(linear_forward(gpu, &h1, &w2.value, &b2.value, &a2)?);
        self.push(se_gate_forward(gpu, &a2, &g)?);
        self.push(se_residual_forward(gpu, z, &g, dt, shortcut, &y)?);
        if !self.train {
            return Ok((y, None));
        }
        let (z, yc, dsc) = (z.clone(), y.clone(), dshortcut.clone());
        let back: Backward<'a> = Box::new(move |bd: &mut Builder<'a>, dy: Tensor| {
            let dz = bd.act(&z.shape);
            let da2 = bd.act(&[n, c]);
            bd.push(se_residual_backward(
                bd.gpu, &dy, &yc, &z, &g, dt, &dsc, &dz, &da2, ddt,
            )?);
            let dh1 = bd.act(&[n, hid]);
            bd.push(linear_backward(
                bd.gpu,
                &da2,
                &h1,
                &w2.value,
                Some(&dh1),
                &w2.grad,
                &b2.grad,
            )?);
            let da1 = bd.act(&[n, hid]);
            bd.push(relu_backward(bd.gpu, &dh1, &h1, &da1)?);
            let dpooled = bd.act(&[n, c]);
            bd.push(linear_backward(
                bd.gpu,
                &da1,
                &pooled,
                &w1.value,
                Some(&dpooled),
                &w1.grad,
                &b1.grad,
            )?);
            // The pool's share of dL/dz adds onto the gate product's.
            bd.push(gap_backward(bd.gpu, &dpooled, &dz, true)?);
            Ok(Some(dz))
        });
        Ok((y, Some(back)))
    }
}

/// Refuses a batch whose largest tensor would not fit one storage buffer of `gpu`, naming
/// `--batch` and the largest batch that fits ([`Gpu::check_batch_fits`]).
pub fn check_batch_fits(gpu: &Gpu, a: &Arch, batch: usize) -> Result<()> {
    let (per_image, what) = largest_activation(a);
    gpu.check_batch_fits(batch, per_image, &what)
}

/// The largest activation of one image (f32) and its description: every tensor of the graph
/// is one of these shapes times the batch (gradients have the activations' shapes; the
/// convs' scratch is bounded apart from the batch).
fn largest_activation(a: &Arch) -> (usize, String) {
    let mut best = (a.input.len(), a.input);
    let mut see = |s: tsc_core::Shape3| {
        if s.len() > best.0 {
            best = (s.len(), s);
        }
    };
    see(a.stem_conv_output());
    for (s, st) in a.stages().iter().enumerate() {
        for b in 0..st.blocks.min(2) {
            for bc in a.branch(s, b).convs() {
                see(bc.conv.input);
                see(bc.conv.output().unwrap_or_default());
            }
            see(a.block_geom(s, b).output);
        }
    }
    let (n, sh) = best;
    (n, format!("{}x{}x{} activation", sh.h, sh.w, sh.c))
}

/// What follows a conv's BN.
enum After<'a> {
    None,
    Relu,
    /// The last conv of a residual branch: `ReLU(shortcut + Δt ⊗ BN)`; dL/dΔt goes to `ddt`,
    /// dL/d(shortcut) to `dshortcut`.
    Residual {
        dt: &'a Tensor,
        ddt: &'a Tensor,
        shortcut: Tensor,
        dshortcut: Tensor,
    },
}

fn bn_shape(x: &Tensor) -> BnShape {
    let c = *x.shape.last().unwrap_or(&1);
    BnShape {
        rows: x.len() / c.max(1),
        channels: c,
    }
}

/// Saved per-BN state for backward.
struct BnSaved {
    mean: Tensor,
    invstd: Tensor,
}

impl Graph {
    /// Build the program for `batch` images.
    pub fn new(gpu: &Gpu, m: &GpuModel, batch: usize, mode: Mode) -> Result<Graph> {
        let a = &m.arch;
        check_batch_fits(gpu, a, batch)?;
        let train = mode == Mode::Train;
        let mut bd = Builder {
            gpu,
            m,
            batch,
            train,
            ops: Vec::new(),
            acts: Vec::new(),
            stage_bwd_at: vec![0; a.stages().len()],
        };
        let (h, w, cin) = (a.input.h, a.input.w, a.input.c);
        let input = bd.act(&[batch, h, w, cin]);
        let labels = gpu.upload_u32(&vec![0; batch], &[batch]);

        let mut tape: Tape = Vec::new();
        let mut x = bd.stem(&input, &mut tape)?;
        let mut stage_fwd_at = Vec::new();
        for (s, st) in a.stages().iter().enumerate() {
            stage_fwd_at.push(bd.ops.len());
            // Runs after the stage's backward: where its controller's backward goes.
            tape.push(Box::new(move |bd: &mut Builder, dy: Tensor| {
                bd.stage_bwd_at[s] = bd.ops.len();
                Ok(Some(dy))
            }));
            for b in 0..st.blocks {
                x = bd.block(s, b, &x, &mut tape)?;
            }
        }

        // Head.
        let last = a.head_input();
        let pooled = bd.act(&[batch, last.c]);
        let logits = bd.act(&[batch, a.classes]);
        let dlogits = bd.act(&[batch, a.classes]);
        let loss = bd.act(&[1]);
        let correct = bd.act(&[1]);
        let metrics = gpu.zeros(&[4]);
        bd.push(gap_forward(gpu, &x, &pooled)?);
        bd.push(linear_forward(
            gpu,
            &pooled,
            &m.param("fc.w")?.value,
            &m.param("fc.b")?.value,
            &logits,
        )?);
        bd.push(softmax_ce(
            gpu,
            &logits,
            &labels,
            &dlogits,
            &loss,
            &correct,
            Some(&metrics),
        )?);

        if train {
            // Head backward, then the tape from the last block down to the stem.
            let dpooled = bd.act(&[batch, last.c]);
            let fcw = m.param("fc.w")?;
            let fcb = m.param("fc.b")?;
            bd.push(linear_backward(
                gpu,
                &dlogits,
                &pooled,
                &fcw.value,
                Some(&dpooled),
                &fcw.grad,
                &fcb.grad,
            )?);
            let dy = bd.act(&x.shape);
            bd.push(gap_backward(gpu, &dpooled, &dy, false)?);
            unwind(&mut bd, tape, dy)?;
        } else {
            drop(tape);
        }
        let update_at = bd.ops.len();
        if train {
            for p in &m.params {
                bd.push(sgd_step(
                    gpu,
                    &p.value,
                    &p.grad,
                    &p.momentum,
                    &m.lr,
                    m.momentum,
                    m.weight_decay,
                    true,
                )?);
            }
        }
        Ok(Graph {
            batch,
            mode,
            input,
            labels,
            logits,
            metrics,
            ops: bd.ops,
            stage_fwd_at,
            stage_bwd_at: bd.stage_bwd_at,
            update_at,
            _acts: bd.acts,
        })
    }

    /// Record the whole program: forward (+ backward + update when training), with the
    /// controllers' forward before each stage and their backward after each stage's backward.
    pub fn record(&self, m: &GpuModel, rec: &mut Recorder) {
        self.record_upto(m, rec, self.ops.len());
    }

    /// Record forward and backward without the optimizer step (gradient checks).
    pub fn record_gradients(&self, m: &GpuModel, rec: &mut Recorder) {
        self.record_upto(m, rec, self.update_at);
    }

    fn record_upto(&self, m: &GpuModel, rec: &mut Recorder, end: usize) {
        self.walk(m, end, |u| u.record(rec));
    }

    /// The program's units in execution order: each stage's controller forward before the
    /// stage's first op, its backward right after the stage's backward, and the ops.
    fn walk<'s>(&'s self, m: &'s GpuModel, end: usize, mut f: impl FnMut(Unit<'s>)) {
        for (i, o) in self.ops[..end].iter().enumerate() {
            if let Some(s) = self.stage_fwd_at.iter().position(|&at| at == i) {
                if let Some(c) = m.controllers.get(s) {
                    f(Unit::CtlForward(c));
                }
            }
            if self.mode == Mode::Train {
                for (s, &at) in self.stage_bwd_at.iter().enumerate() {
                    if at == i {
                        if let Some(c) = m.controllers.get(s) {
                            f(Unit::CtlBackward(c));
                        }
                    }
                }
            }
            f(Unit::Op(o));
        }
    }

    /// Time every unit of the program on its own (submit, wait) and sum the seconds per
    /// kernel name: where a step's time goes. Slower than `run` (no overlap), so use it for
    /// shares, not totals.
    pub fn profile(&self, gpu: &Gpu, m: &GpuModel) -> Result<Vec<(String, f64, usize)>> {
        let mut units = Vec::new();
        self.walk(m, self.ops.len(), |u| units.push(u));
        let mut acc: Vec<(String, f64, usize)> = Vec::new();
        for u in units {
            let name = u.name();
            let t0 = std::time::Instant::now();
            let mut rec = gpu.recorder();
            u.record(&mut rec);
            rec.submit();
            gpu.wait()?;
            let dt = t0.elapsed().as_secs_f64();
            match acc.iter_mut().find(|e| e.0 == name) {
                Some(e) => {
                    e.1 += dt;
                    e.2 += 1;
                }
                None => acc.push((name, dt, 1)),
            }
        }
        acc.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(acc)
    }

    /// Upload one batch (normalised NHWC images, labels).
    pub fn load(&self, gpu: &Gpu, images: &[f32], labels: &[u32]) -> Result<()> {
        if images.len() != self.input.len() || labels.len() != self.batch {
            return Err(anyhow!(
                "batch of {} labels does not fit a graph of batch {}",
                labels.len(),
                self.batch
            ));
        }
        gpu.write(&self.input, images);
        gpu.queue
            .write_buffer(&self.labels.buf, 0, bytemuck::cast_slice(labels));
        Ok(())
    }

    /// Run the program once on the loaded batch (submits; does not wait).
    pub fn run(&self, gpu: &Gpu, m: &GpuModel) {
        let mut rec = gpu.recorder();
        self.record(m, &mut rec);
        rec.submit();
    }

    /// Zero the metrics accumulators.
    pub fn reset_metrics(&self, gpu: &Gpu) {
        gpu.write(&self.metrics, &[0.0; 4]);
    }

    /// `(mean loss, correct, samples)` accumulated since the last reset (waits for the GPU).
    pub fn read_metrics(&self, gpu: &Gpu) -> Result<(f64, u64, u64)> {
        let v = gpu.download(&self.metrics)?;
        let n = v[2].max(1.0) as f64;
        Ok((v[0] as f64 / n, v[1] as u64, v[2] as u64))
    }
}
