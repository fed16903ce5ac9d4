//! The step-size controllers `2fc` and `lstm` on the GPU (docs/DESIGN.md "Step-size modes",
//! paper Eqs. 10–13), forward and backward, for one stage. f64 reference:
//! `crate::reference::controller`; tests: `trainer/tests/controller.rs`.
//!
//! # API
//! - [`StageController::new`]`(gpu, mode, blocks: &[BlockTensors], params: &[CtlParams],
//!   hidden) -> Result<StageController>` builds every dispatch once (at model build time).
//!   `params` holds one [`CtlParams`] per block for [`CtlMode::TwoFc`] and exactly one for the
//!   stage for [`CtlMode::Lstm`] (whose `lstm` field must then be `Some`). Shapes: the two summary
//!   convs of each block (`conv1`, `conv2` of a basic block; `conv1`, `conv3` of a bottleneck,
//!   named `conv1_w`/`conv2_w` here) OHWI `[C_out][kh][kw][C_in]` of any sizes, `dt`/`ddt`
//!   `[C]`, `fc_in.w [H][K]` with `K = len(conv1)/cin1 + len(conv2)/cin2` (`18·C` for basic
//!   blocks, `C/4 + C` for ResNet-50's bottleneck), `fc_in.b [H]`,
//!   `lstm.w [4H][2H]`, `lstm.b [4H]`, `fc_out.w [C][H]`, `fc_out.b [C]`; each gradient tensor
//!   shaped like its parameter.
//! - [`StageController::record_forward`]`(rec)`: writes every block's `dt` from the conv weights
//!   and the controller parameters (and saves what the backward pass needs in its own scratch).
//! - [`StageController::record_backward`]`(rec)`: reads every block's `ddt` (dL/dΔt), OVERWRITES
//!   every controller-parameter gradient and ACCUMULATES (`+=`) the gradient through the weight
//!   summary into each block's `conv1_dw` / `conv2_dw` (record it after the conv backward that
//!   writes them). Uses the state of the latest forward: the conv weights and parameters must not
//!   change in between (record the optimizer step after it).
//!
//! Dispatches per stage of B blocks and per step: forward B (summary + fc_in [+ 2fc head]) + 1
//! (lstm) + B copies of Δt; backward B copies of dΔt + 2 (lstm: BPTT, parameter gradients) or
//! B (2fc: head) + B (conv-weight gradients). Every kernel binds at most 7 storage buffers.
//! The backward pass uses the Δt saved in its scratch, not the blocks' `dt` tensors. Measured on
//! lavapipe (2 cores): one C=64 stage, forward + backward, 3 blocks ≈ 2.5 ms, 18 blocks ≈ 15 ms
//! (`cargo test -p tsc-trainer --test controller timing -- --ignored --nocapture`).

use super::{grid_1d, Dispatch, Gpu, Kernel, Recorder, Slot, Tensor};
use anyhow::{anyhow, bail, ensure, Result};
use std::sync::Arc;
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const ACTIVATION: &str = include_str!("../../../shaders/activation.wgsl");
const ACTIVATION_PROBE: &str = include_str!("../../../shaders/activation_probe.wgsl");
const COMMON: &str = include_str!("../../../shaders/controller_common.wgsl");
const SUMMARY: &str = include_str!("../../../shaders/controller_summary.wgsl");
const LSTM_FWD: &str = include_str!("../../../shaders/controller_lstm_fwd.wgsl");
const LSTM_BWD: &str = include_str!("../../../shaders/controller_lstm_bwd.wgsl");
const LSTM_PGRAD: &str = include_str!("../../../shaders/controller_lstm_param_grad.wgsl");
const HEAD_BWD: &str = include_str!("../../../shaders/controller_2fc_head_bwd.wgsl");
const CONV_GRAD: &str = include_str!("../../../shaders/controller_conv_grad.wgsl");

/// Which controller (the modes `indp` and `fixed:C` need no kernels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtlMode {
    /// Independent `fc_in`/`fc_out` per block.
    TwoFc,
    /// One `fc_in`/LSTM/`fc_out` per stage, state carried across the blocks.
    Lstm,
}

/// One block's tensors as the training graph owns them.
pub struct BlockTensors<'a> {
    pub conv1_w: &'a Tensor,
    pub conv2_w: &'a Tensor,
    /// Gradients of the conv weights: the controller adds onto them.
    pub conv1_dw: &'a Tensor,
    pub conv2_dw: &'a Tensor,
    /// Δt `[C]` (written by the forward pass).
    pub dt: &'a Tensor,
    /// dL/dΔt `[C]` (read by the backward pass).
    pub ddt: &'a Tensor,
}

/// The LSTM cell's parameters and gradients.
pub struct LstmTensors<'a> {
    pub w: &'a Tensor,
    pub b: &'a Tensor,
    pub dw: &'a Tensor,
    pub db: &'a Tensor,
}

/// One controller's parameters and their gradients (overwritten by the backward pass).
pub struct CtlParams<'a> {
    pub fc_in_w: &'a Tensor,
    pub fc_in_b: &'a Tensor,
    pub fc_out_w: &'a Tensor,
    pub fc_out_b: &'a Tensor,
    pub d_fc_in_w: &'a Tensor,
    pub d_fc_in_b: &'a Tensor,
    pub d_fc_out_w: &'a Tensor,
    pub d_fc_out_b: &'a Tensor,
    /// `Some` for `lstm`, `None` for `2fc`.
    pub lstm: Option<LstmTensors<'a>>,
}

/// Element offsets into the scratch buffer (see shaders/controller_common.wgsl).
#[derive(Clone, Copy, Debug)]
struct Layout {
    wbar: usize,
    pre: usize,
    x: usize,
    gates: usize,
    c: usize,
    h: usize,
    dt: usize,
    ddt: usize,
    dz: usize,
    dh: usize,
    dgate: usize,
    da: usize,
    dhrec: usize,
    dcrec: usize,
    len: usize,
}

impl Layout {
    fn new(nb: usize, k: usize, h: usize, c: usize) -> Layout {
        let mut at = 0;
        let mut take = |n: usize| {
            let o = at;
            at += n;
            o
        };
        let wbar = take(nb * k);
        let pre = take(nb * h);
        let x = take(nb * h);
        let gates = take(nb * 4 * h);
        let cc = take(nb * h);
        let hh = take(nb * h);
        let dt = take(nb * c);
        let ddt = take(nb * c);
        let dz = take(nb * c);
        let dh = take(nb * h);
        let dgate = take(nb * 4 * h);
        let da = take(nb * h);
        let dhrec = take(h);
        let dcrec = take(h);
        Layout {
            wbar,
            pre,
            x,
            gates,
            c: cc,
            h: hh,
            dt,
            ddt,
            dz,
            dh,
            dgate,
            da,
            dhrec,
            dcrec,
            len: at,
        }
    }
}

/// The prepared controller of one stage: its dispatches, copies and scratch.
pub struct StageController {
    pub mode: CtlMode,
    /// Saved forward state and backward intermediates (layout in controller_common.wgsl).
    scratch: Tensor,
    c: usize,
    dt_off: usize,
    ddt_off: usize,
    /// (dt, ddt) buffers of every block.
    block_io: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    fwd: Vec<Dispatch>,
    fwd_stage: Option<Dispatch>,
    bwd_stage: Vec<Dispatch>,
    bwd: Vec<Dispatch>,
    /// Uniform buffers the bind groups refer to (kept alive here).
    _uniforms: Vec<wgpu::Buffer>,
}

fn source(file: &str, mode: u32) -> String {
    super::specialize(
        &format!("{ACTIVATION}\n{COMMON}\n{file}"),
        &[("MODE", mode)],
    )
}

fn check(t: &Tensor, len: usize, what: &str) -> Result<()> {
    ensure!(
        t.len() == len,
        "controller: {what} has {} elements {:?}, expected {len}",
        t.len(),
        t.shape
    );
    Ok(())
}

impl StageController {
    /// Build the dispatches of one stage's controller (see the module docs).
    pub fn new(
        gpu: &Gpu,
        mode: CtlMode,
        blocks: &[BlockTensors],
        params: &[CtlParams],
        hidden: usize,
    ) -> Result<StageController> {
        let nb = blocks.len();
        ensure!(nb > 0, "controller: a stage needs at least one block");
        let h = hidden;
        ensure!(h > 0, "controller: hidden size must be at least 1");
        let want = match mode {
            CtlMode::TwoFc => nb,
            CtlMode::Lstm => 1,
        };
        ensure!(
            params.len() == want,
            "controller {mode:?}: {} parameter sets for {nb} blocks, expected {want}",
            params.len()
        );
        let c = blocks[0].dt.len();
        // Per block: (cin1, cin2, k1, k).
        let mut dims = Vec::with_capacity(nb);
        for (d, b) in blocks.iter().enumerate() {
            // The summary convs' output widths are free (a bottleneck's conv1 has M = C/4).
            let cin = |t: &Tensor, name: &str| -> Result<usize> {
                ensure!(
                    t.shape.len() == 4 && t.shape[3] > 0,
                    "controller: block {d} {name} must be OHWI [C_out][kh][kw][C_in], got {:?}",
                    t.shape
                );
                Ok(t.shape[3])
            };
            let cin1 = cin(b.conv1_w, "first summary conv")?;
            let cin2 = cin(b.conv2_w, "second summary conv")?;
            check(b.conv1_dw, b.conv1_w.len(), "conv1 gradient")?;
            check(b.conv2_dw, b.conv2_w.len(), "conv2 gradient")?;
            check(b.dt, c, "dt")?;
            check(b.ddt, c, "ddt")?;
            let k1 = b.conv1_w.len() / cin1;
            dims.push((cin1, cin2, k1, k1 + b.conv2_w.len() / cin2));
        }
        let k = dims[0].3;
        if dims.iter().any(|dm| dm.3 != k) {
            bail!("controller: every block of a stage needs the same summary length");
        }
        for (i, p) in params.iter().enumerate() {
            check(p.fc_in_w, h * k, "fc_in.w")?;
            check(p.fc_in_b, h, "fc_in.b")?;
            check(p.fc_out_w, c * h, "fc_out.w")?;
            check(p.fc_out_b, c, "fc_out.b")?;
            check(p.d_fc_in_w, h * k, "fc_in.w gradient")?;
            check(p.d_fc_in_b, h, "fc_in.b gradient")?;
            check(p.d_fc_out_w, c * h, "fc_out.w gradient")?;
            check(p.d_fc_out_b, c, "fc_out.b gradient")?;
            match (&p.lstm, mode) {
                (Some(l), CtlMode::Lstm) => {
                    check(l.w, 8 * h * h, "lstm.w")?;
                    check(l.b, 4 * h, "lstm.b")?;
                    check(l.dw, 8 * h * h, "lstm.w gradient")?;
                    check(l.db, 4 * h, "lstm.b gradient")?;
                }
                (None, CtlMode::TwoFc) => {}
                _ => bail!("controller {mode:?}: parameter set {i} has the wrong LSTM part"),
            }
        }
        ensure!(
            gpu.limits.max_storage_buffers_per_shader_stage >= 7,
            "controller: the adapter binds only {} storage buffers per stage, 7 needed",
            gpu.limits.max_storage_buffers_per_shader_stage
        );

        let lay = Layout::new(nb, k, h, c);
        let scratch = gpu.zeros(&[lay.len]);
        let m = (mode == CtlMode::TwoFc) as u32;
        let params_of = |d: usize, dm: (usize, usize, usize, usize)| -> [u32; 24] {
            let v = [
                nb,
                k,
                dm.2,
                dm.0,
                dm.1,
                h,
                c,
                d,
                lay.wbar,
                lay.pre,
                lay.x,
                lay.gates,
                lay.c,
                lay.h,
                lay.dt,
                lay.ddt,
                lay.dz,
                lay.dh,
                lay.dgate,
                lay.da,
                lay.dhrec,
                lay.dcrec,
                blocks[d].conv1_w.len(),
                blocks[d].conv2_w.len(),
            ];
            v.map(|x| x as u32)
        };
        let k_sum = kernel(gpu, "summary", m)?;
        let k_grad = kernel(gpu, "conv_grad", m)?;
        let mut uniforms = Vec::new();
        let mut fwd = Vec::new();
        let mut bwd = Vec::new();
        let mut bwd_stage = Vec::new();
        let mut fwd_stage = None;
        let head_bwd = match mode {
            CtlMode::TwoFc => Some(kernel(gpu, "2fc_head_bwd", 0)?),
            CtlMode::Lstm => None,
        };
        for (d, b) in blocks.iter().enumerate() {
            let p = &params[if mode == CtlMode::TwoFc { d } else { 0 }];
            let u = gpu.uniform(&params_of(d, dims[d]));
            fwd.push(Dispatch::new(
                gpu,
                &k_sum,
                &[
                    &b.conv1_w.buf,
                    &b.conv2_w.buf,
                    &p.fc_in_w.buf,
                    &p.fc_in_b.buf,
                    &p.fc_out_w.buf,
                    &p.fc_out_b.buf,
                    &scratch.buf,
                    &u,
                ],
                [1, 1, 1],
            )?);
            if let Some(kh) = &head_bwd {
                bwd.push(Dispatch::new(
                    gpu,
                    kh,
                    &[
                        &scratch.buf,
                        &p.fc_out_w.buf,
                        &p.d_fc_out_w.buf,
                        &p.d_fc_out_b.buf,
                        &p.d_fc_in_b.buf,
                        &u,
                    ],
                    [1, 1, 1],
                )?);
            }
            bwd.push(Dispatch::new(
                gpu,
                &k_grad,
                &[
                    &scratch.buf,
                    &p.fc_in_w.buf,
                    &b.conv1_dw.buf,
                    &b.conv2_dw.buf,
                    &p.d_fc_in_w.buf,
                    &u,
                ],
                grid_1d(k, 64),
            )?);
            uniforms.push(u);
        }
        if mode == CtlMode::Lstm {
            let p = &params[0];
            let l = p.lstm.as_ref().expect("checked above");
            let u = gpu.uniform(&params_of(0, dims[0]));
            let kf = kernel(gpu, "lstm_fwd", 0)?;
            fwd_stage = Some(Dispatch::new(
                gpu,
                &kf,
                &[
                    &l.w.buf,
                    &l.b.buf,
                    &p.fc_out_w.buf,
                    &p.fc_out_b.buf,
                    &scratch.buf,
                    &u,
                ],
                [1, 1, 1],
            )?);
            let kb = kernel(gpu, "lstm_bwd", 0)?;
            bwd_stage.push(Dispatch::new(
                gpu,
                &kb,
                &[&l.w.buf, &p.fc_out_w.buf, &scratch.buf, &u],
                [1, 1, 1],
            )?);
            let kp = kernel(gpu, "lstm_param_grad", 0)?;
            let n = h * k + h + 8 * h * h + 4 * h + c * h + c;
            bwd_stage.push(Dispatch::new(
                gpu,
                &kp,
                &[
                    &scratch.buf,
                    &p.d_fc_in_w.buf,
                    &p.d_fc_in_b.buf,
                    &l.dw.buf,
                    &l.db.buf,
                    &p.d_fc_out_w.buf,
                    &p.d_fc_out_b.buf,
                    &u,
                ],
                grid_1d(n, 64),
            )?);
            uniforms.push(u);
        }
        Ok(StageController {
            mode,
            scratch,
            c,
            dt_off: lay.dt,
            ddt_off: lay.ddt,
            block_io: blocks
                .iter()
                .map(|b| (b.dt.buf.clone(), b.ddt.buf.clone()))
                .collect(),
            fwd,
            fwd_stage,
            bwd_stage,
            bwd,
            _uniforms: uniforms,
        })
    }

    /// Number of blocks of the stage.
    pub fn blocks(&self) -> usize {
        self.block_io.len()
    }

    /// Record the forward pass: every block's `dt`.
    pub fn record_forward(&self, rec: &mut Recorder) {
        for d in &self.fwd {
            rec.run(d);
        }
        if let Some(d) = &self.fwd_stage {
            rec.run(d);
        }
        let bytes = 4 * self.c as u64;
        for (d, (dt, _)) in self.block_io.iter().enumerate() {
            let off = 4 * (self.dt_off + d * self.c) as u64;
            rec.copy_region(&self.scratch.buf, off, dt, 0, bytes);
        }
    }

    /// Record the backward pass: parameter gradients (overwritten) and conv-weight gradients
    /// (accumulated) from every block's `ddt`.
    pub fn record_backward(&self, rec: &mut Recorder) {
        let bytes = 4 * self.c as u64;
        for (d, (_, ddt)) in self.block_io.iter().enumerate() {
            let off = 4 * (self.ddt_off + d * self.c) as u64;
            rec.copy_region(ddt, 0, &self.scratch.buf, off, bytes);
        }
        for d in &self.bwd_stage {
            rec.run(d);
        }
        for d in &self.bwd {
            rec.run(d);
        }
    }
}

/// Every controller kernel: (name, WGSL, binding slots).
const KERNELS: &[(&str, &str, &[Slot])] = &[
    ("summary", SUMMARY, &[R, R, R, R, R, R, W, U]),
    ("conv_grad", CONV_GRAD, &[R, R, W, W, W, U]),
    ("2fc_head_bwd", HEAD_BWD, &[W, R, W, W, W, U]),
    ("lstm_fwd", LSTM_FWD, &[R, R, R, R, W, U]),
    ("lstm_bwd", LSTM_BWD, &[R, R, W, U]),
    ("lstm_param_grad", LSTM_PGRAD, &[R, W, W, W, W, W, W, U]),
];

/// The kernel `name` of `KERNELS` specialised for `MODE = m` (1: 2fc, 0: lstm).
fn kernel(gpu: &Gpu, name: &str, m: u32) -> Result<Arc<Kernel>> {
    let &(_, src, slots) = KERNELS
        .iter()
        .find(|k| k.0 == name)
        .ok_or_else(|| anyhow!("controller: no kernel {name}"))?;
    gpu.kernel(&format!("controller/{name}/m{m}"), || {
        (source(src, m), "main", slots.to_vec())
    })
}

/// The controllers' `tanh` and `sigmoid` (`shaders/activation.wgsl`) evaluated on the GPU at
/// every `z`, for tests against f64: `(tanh(z), σ(z))`.
pub fn activations(gpu: &Gpu, z: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    ensure!(!z.is_empty(), "activations: no inputs");
    let k = gpu.kernel("controller/activation_probe", || {
        (
            format!("{ACTIVATION}\n{ACTIVATION_PROBE}"),
            "main",
            vec![R, W],
        )
    })?;
    let zt = gpu.upload(z, &[z.len()]);
    let out = gpu.zeros(&[2 * z.len()]);
    let d = Dispatch::new(gpu, &k, &[&zt.buf, &out.buf], grid_1d(z.len(), 64))?;
    let mut rec = gpu.recorder();
    rec.run(&d);
    rec.submit();
    let mut v = gpu.download(&out)?;
    let sig = v.split_off(z.len());
    Ok((v, sig))
}

/// Compile every controller shader variant (tests use it to check the WGSL on an adapter).
pub fn compile_all(gpu: &Gpu) -> Result<()> {
    for (name, src, _) in KERNELS {
        kernel(gpu, name, 0)?;
        if src.contains("{{MODE}}") {
            kernel(gpu, name, 1)?;
        }
    }
    Ok(())
}
