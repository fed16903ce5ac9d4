//! The network on the GPU: parameters (`GpuModel`, shared) and per-batch-size programs of
//! prepared dispatches (`Graph`): training forward + backward + update, or evaluation forward.
//!
//! Everything is built once; a step uploads a batch, replays the dispatches and reads back
//! 16 bytes of metrics. Block structure and names follow docs/DESIGN.md:
//! `y = ReLU(shortcut(x) + Δt ⊗ BN2(conv2(ReLU(BN1(conv1(x))))))`.
//!
//! Where Δt comes from (`StepSource`) is the only thing the step-size modes change:
//! a constant tensor (`fixed:C`), a trained vector (`indp`), or a controller (`2fc`, `lstm`)
//! that computes Δt from the block's conv weights before the stage's forward and, after the
//! stage's backward, turns dL/dΔt into controller gradients and extra conv-weight gradients.

use crate::gpu::controller::{BlockTensors, CtlMode, CtlParams, LstmTensors, StageController};
use crate::gpu::conv::{conv_backward_data, conv_backward_weights, conv_forward, ConvShape};
use crate::gpu::elementwise::{add_inplace, shortcut_a_backward, shortcut_a_forward};
use crate::gpu::linear::{linear_backward, linear_forward};
use crate::gpu::loss::softmax_ce;
use crate::gpu::norm::{
    batchnorm_backward, batchnorm_infer_forward, batchnorm_train_forward, BnGrad, BnShape, Epilogue,
};
use crate::gpu::optim::sgd_step;
use crate::gpu::pool::{gap_backward, gap_forward};
use crate::gpu::reduce::Op;
use crate::gpu::{Dispatch, Gpu, Recorder, Tensor};
use crate::model::{block_convs, stem_conv, HostModel, HostTensor};
use anyhow::{anyhow, Context, Result};
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
                let c1 = self.param(&format!("s{s}.b{b}.conv1.w"))?;
                let c2 = self.param(&format!("s{s}.b{b}.conv2.w"))?;
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

struct Builder<'a> {
    gpu: &'a Gpu,
    ops: Vec<Op>,
    acts: Vec<Tensor>,
}

impl Builder<'_> {
    fn act(&mut self, shape: &[usize]) -> Tensor {
        let t = self.gpu.zeros(shape);
        self.acts.push(t.clone());
        t
    }
    fn push(&mut self, o: Op) {
        self.ops.push(o);
    }
}

/// Saved per-BN state for backward.
struct BnSaved {
    mean: Tensor,
    invstd: Tensor,
}

struct BlockActs {
    x: Tensor,
    c1: Tensor,
    r1: Tensor,
    c2: Tensor,
    y: Tensor,
    bn1: Option<BnSaved>,
    bn2: Option<BnSaved>,
    /// Option A: the subsampled, zero-padded input; option B: (proj conv out, BN out, saved).
    short_a: Option<Tensor>,
    proj: Option<(Tensor, Tensor, Option<BnSaved>)>,
    g1: ConvShape,
    g2: ConvShape,
    gp: Option<ConvShape>,
}

impl Graph {
    /// Build the program for `batch` images.
    pub fn new(gpu: &Gpu, m: &GpuModel, batch: usize, mode: Mode) -> Result<Graph> {
        let a = &m.arch;
        let train = mode == Mode::Train;
        let mut bd = Builder {
            gpu,
            ops: Vec::new(),
            acts: Vec::new(),
        };
        let (h, w, cin) = (a.input.h, a.input.w, a.input.c);
        let input = bd.act(&[batch, h, w, cin]);
        let labels = gpu.upload_u32(&vec![0; batch], &[batch]);
        let w0 = a.stem_width;

        // BN forward, training or inference form.
        let bn_fwd = |bd: &mut Builder,
                      prefix: &str,
                      x: &Tensor,
                      y: &Tensor,
                      s: BnShape,
                      epi: Epilogue|
         -> Result<Option<BnSaved>> {
            let g = &m.param(&format!("{prefix}.gamma"))?.value;
            let b = &m.param(&format!("{prefix}.beta"))?.value;
            let rm = m.buffer(&format!("{prefix}.mean"))?;
            let rv = m.buffer(&format!("{prefix}.var"))?;
            if train {
                let saved = BnSaved {
                    mean: bd.act(&[s.channels]),
                    invstd: bd.act(&[s.channels]),
                };
                bd.push(batchnorm_train_forward(
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
                )?);
                Ok(Some(saved))
            } else {
                bd.push(batchnorm_infer_forward(gpu, &s, x, g, b, rm, rv, y, epi)?);
                Ok(None)
            }
        };

        // Stem.
        let gs = stem_conv(a, batch);
        let stem_c = bd.act(&[batch, h, w, w0]);
        let stem_y = bd.act(&[batch, h, w, w0]);
        bd.push(op(conv_forward(
            gpu,
            &gs,
            &input,
            &m.param("stem.conv.w")?.value,
            None,
            &stem_c,
        )?));
        let stem_bn = bn_fwd(
            &mut bd,
            "stem.bn",
            &stem_c,
            &stem_y,
            BnShape::nhwc(batch, h, w, w0),
            Epilogue::Relu,
        )?;

        // Blocks.
        let mut blocks: Vec<BlockActs> = Vec::new();
        let mut stage_fwd_at = Vec::new();
        let mut x = stem_y.clone();
        for (s, st) in a.stages().iter().enumerate() {
            stage_fwd_at.push(bd.ops.len());
            for b in 0..st.blocks {
                let geo = a.block_geom(s, b);
                let (ho, wo, c) = (geo.output.h, geo.output.w, geo.output.c);
                let p = format!("s{s}.b{b}");
                let cv = block_convs(a, s, b, batch);
                let (g1, g2) = (cv.conv1, cv.conv2);
                let bs = BnShape::nhwc(batch, ho, wo, c);
                let c1 = bd.act(&[batch, ho, wo, c]);
                let r1 = bd.act(&[batch, ho, wo, c]);
                let c2 = bd.act(&[batch, ho, wo, c]);
                let y = bd.act(&[batch, ho, wo, c]);
                bd.push(op(conv_forward(
                    gpu,
                    &g1,
                    &x,
                    &m.param(&format!("{p}.conv1.w"))?.value,
                    None,
                    &c1,
                )?));
                let bn1 = bn_fwd(&mut bd, &format!("{p}.bn1"), &c1, &r1, bs, Epilogue::Relu)?;
                bd.push(op(conv_forward(
                    gpu,
                    &g2,
                    &r1,
                    &m.param(&format!("{p}.conv2.w"))?.value,
                    None,
                    &c2,
                )?));
                let (mut short_a, mut proj, mut gp) = (None, None, None);
                let shortcut = if !geo.shape_change {
                    x.clone()
                } else if a.shortcut == ShortcutKind::A {
                    let t = bd.act(&[batch, ho, wo, c]);
                    bd.push(shortcut_a_forward(gpu, &x, &t, 2)?);
                    short_a = Some(t.clone());
                    t
                } else {
                    let g = cv.proj.expect("option B with a shape change");
                    let pc = bd.act(&[batch, ho, wo, c]);
                    let pb = bd.act(&[batch, ho, wo, c]);
                    bd.push(op(conv_forward(
                        gpu,
                        &g,
                        &x,
                        &m.param(&format!("{p}.proj.w"))?.value,
                        None,
                        &pc,
                    )?));
                    let saved = bn_fwd(
                        &mut bd,
                        &format!("{p}.projbn"),
                        &pc,
                        &pb,
                        bs,
                        Epilogue::None,
                    )?;
                    proj = Some((pc, pb.clone(), saved));
                    gp = Some(g);
                    pb
                };
                let dt = m.dt_of(s, b)?;
                let bn2 = bn_fwd(
                    &mut bd,
                    &format!("{p}.bn2"),
                    &c2,
                    &y,
                    bs,
                    Epilogue::ResidualRelu {
                        dt,
                        shortcut: &shortcut,
                    },
                )?;
                blocks.push(BlockActs {
                    x: x.clone(),
                    c1,
                    r1,
                    c2,
                    y: y.clone(),
                    bn1,
                    bn2,
                    short_a,
                    proj,
                    g1,
                    g2,
                    gp,
                });
                x = y;
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

        let mut stage_bwd_at = vec![0; a.stages().len()];
        if train {
            // Head backward.
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
            let mut dy = bd.act(&x.shape);
            bd.push(gap_backward(gpu, &dpooled, &dy)?);

            let bn_bwd = |bd: &mut Builder,
                          prefix: &str,
                          dy: &Tensor,
                          x: &Tensor,
                          saved: &BnSaved,
                          dx: &Tensor,
                          s: BnShape,
                          g: BnGrad|
             -> Result<()> {
                let gm = m.param(&format!("{prefix}.gamma"))?;
                let bt = m.param(&format!("{prefix}.beta"))?;
                bd.push(batchnorm_backward(
                    gpu,
                    &s,
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
                )?);
                Ok(())
            };

            // Blocks in reverse; `dy` is dL/d(block output).
            let mut bi = blocks.len();
            for (s, st) in a.stages().iter().enumerate().rev() {
                for b in (0..st.blocks).rev() {
                    bi -= 1;
                    let k = &blocks[bi];
                    let p = format!("s{s}.b{b}");
                    let (ho, wo, c) = (k.g2.h, k.g2.w, k.g2.cout);
                    let bs = BnShape::nhwc(batch, ho, wo, c);
                    let dc2 = bd.act(&k.c2.shape);
                    let dshort = bd.act(&k.y.shape);
                    let dt = m.dt_of(s, b)?;
                    let ddt = m.ddt_of(s, b)?;
                    let g = BnGrad::ResidualRelu {
                        y: &k.y,
                        dt,
                        ddt,
                        dshortcut: &dshort,
                    };
                    bn_bwd(
                        &mut bd,
                        &format!("{p}.bn2"),
                        &dy,
                        &k.c2,
                        k.bn2.as_ref().expect("train"),
                        &dc2,
                        bs,
                        g,
                    )?;
                    let w2 = m.param(&format!("{p}.conv2.w"))?;
                    let dr1 = bd.act(&k.r1.shape);
                    bd.push(op(conv_backward_data(gpu, &k.g2, &dc2, &w2.value, &dr1)?));
                    bd.push(op(conv_backward_weights(
                        gpu, &k.g2, &k.r1, &dc2, &w2.grad, false,
                    )?));
                    let dc1 = bd.act(&k.c1.shape);
                    bn_bwd(
                        &mut bd,
                        &format!("{p}.bn1"),
                        &dr1,
                        &k.c1,
                        k.bn1.as_ref().expect("train"),
                        &dc1,
                        bs,
                        BnGrad::Relu { y: &k.r1 },
                    )?;
                    let w1 = m.param(&format!("{p}.conv1.w"))?;
                    let dx = bd.act(&k.x.shape);
                    bd.push(op(conv_backward_data(gpu, &k.g1, &dc1, &w1.value, &dx)?));
                    bd.push(op(conv_backward_weights(
                        gpu, &k.g1, &k.x, &dc1, &w1.grad, false,
                    )?));
                    if k.short_a.is_some() {
                        bd.push(shortcut_a_backward(gpu, &dshort, &dx, 2, true)?);
                    } else if let (Some((pc, _pb, saved)), Some(gp)) = (&k.proj, &k.gp) {
                        let dpc = bd.act(&pc.shape);
                        bn_bwd(
                            &mut bd,
                            &format!("{p}.projbn"),
                            &dshort,
                            pc,
                            saved.as_ref().expect("train"),
                            &dpc,
                            bs,
                            BnGrad::None,
                        )?;
                        let wp = m.param(&format!("{p}.proj.w"))?;
                        let dxp = bd.act(&k.x.shape);
                        bd.push(op(conv_backward_data(gpu, gp, &dpc, &wp.value, &dxp)?));
                        bd.push(op(conv_backward_weights(
                            gpu, gp, &k.x, &dpc, &wp.grad, false,
                        )?));
                        bd.push(add_inplace(gpu, &dx, &dxp)?);
                    } else {
                        bd.push(add_inplace(gpu, &dx, &dshort)?);
                    }
                    dy = dx;
                }
                stage_bwd_at[s] = bd.ops.len();
            }
            // Stem backward (no gradient to the input image).
            let dstem = bd.act(&stem_c.shape);
            bn_bwd(
                &mut bd,
                "stem.bn",
                &dy,
                &stem_c,
                stem_bn.as_ref().expect("train"),
                &dstem,
                BnShape::nhwc(batch, h, w, w0),
                BnGrad::Relu { y: &stem_y },
            )?;
            bd.push(op(conv_backward_weights(
                gpu,
                &gs,
                &input,
                &dstem,
                &m.param("stem.conv.w")?.grad,
                false,
            )?));
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
            stage_bwd_at,
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
