//! Network architecture description ([`Arch`]), block geometry, and the canonical tensor set
//! (names and shapes of docs/DESIGN.md) for a given architecture and [`ModelKind`].

use core::fmt::Write as _;

use crate::format::FormatError;

/// Most stages an [`Arch`] can describe (CIFAR ResNets use 3, ImageNet ResNets 4).
pub const MAX_STAGES: usize = 4;
/// Most input channels (the per-channel mean/std arrays have this capacity).
pub const MAX_INPUT_CHANNELS: usize = 4;
/// Largest value of any single dimension (height, width, channels, classes, ...).
pub const MAX_DIM: usize = 65_535;
/// Most blocks in one stage.
pub const MAX_BLOCKS: usize = 4096;
/// Largest stage stride.
pub const MAX_STRIDE: usize = 8;
/// Longest tensor name in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Largest number of f32 in any activation, tensor or scratch buffer (keeps every byte
/// count below 2^31 so that 32-bit targets never overflow).
pub const MAX_ELEMS: usize = (1 << 29) - 1;
/// BatchNorm epsilon (docs/DESIGN.md).
pub const BN_EPS: f32 = 1e-5;
/// Kernel size of the stem and of the basic block's convolutions.
pub const KERNEL: usize = 3;

/// A fixed-capacity tensor name.
pub type TensorName = heapless::String<MAX_NAME_LEN>;

/// Height, width, channels of one NHWC activation (batch 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape3 {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape3 {
    pub const fn new(h: usize, w: usize, c: usize) -> Self {
        Shape3 { h, w, c }
    }
    /// `h·w·c` (saturating; validated shapes never saturate).
    pub const fn len(&self) -> usize {
        self.h.saturating_mul(self.w).saturating_mul(self.c)
    }
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shape of a stored tensor: 0 to 4 dimensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dims {
    dims: [usize; 4],
    ndim: usize,
}

impl Dims {
    /// `None` if more than 4 dimensions.
    pub fn new(dims: &[usize]) -> Option<Dims> {
        if dims.len() > 4 {
            return None;
        }
        let mut d = [0usize; 4];
        d[..dims.len()].copy_from_slice(dims);
        Some(Dims {
            dims: d,
            ndim: dims.len(),
        })
    }
    pub fn as_slice(&self) -> &[usize] {
        &self.dims[..self.ndim]
    }
    /// Number of elements (1 for a scalar); `None` on overflow.
    pub fn elems(&self) -> Option<usize> {
        self.as_slice()
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

/// Residual block kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions (the only kind implemented).
    Basic,
    /// 1×1, 3×3, 1×1 bottleneck: representable in the header, rejected with
    /// [`FormatError::Unsupported`].
    Bottleneck,
}

/// Shortcut used when a block changes shape (stride ≠ 1 or channel count changes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShortcutKind {
    /// Stride subsampling plus zero channels appended (no parameters).
    A,
    /// 1×1 convolution (stride s) followed by BatchNorm.
    B,
}

/// Step-size mode (paper Eqs. 10–13).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepMode {
    /// Δt = c for every channel.
    Fixed(f32),
    /// Free per-block vector `sS.bB.dt`.
    Indp,
    /// Per-block controller fc → ReLU → fc → sigmoid.
    TwoFc,
    /// Per-stage controller fc → ReLU → LSTM → fc → sigmoid.
    Lstm,
}

/// Whether a model holds the training form or the folded inference form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Unfolded: bias-free convs, BatchNorm running statistics, Δt parameters/controllers.
    Checkpoint,
    /// Folded: every conv has a bias, no BN, no Δt (already multiplied into conv2).
    Folded,
}

/// One stage: `blocks` blocks of `width` output channels; the first block has `stride`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageSpec {
    pub blocks: usize,
    pub width: usize,
    pub stride: usize,
}

/// Complete architecture of a TSC-ResNet. Plain data: construct it directly or with
/// [`Arch::cifar`], then call [`Arch::validate`] (the writer and parser do).
///
/// Only the first `num_stages` entries of `stages` and the first `input.c` entries of
/// `mean`/`std` are meaningful; equality ignores the rest.
#[derive(Clone, Copy, Debug)]
pub struct Arch {
    /// Input image shape (NHWC, batch 1).
    pub input: Shape3,
    pub classes: usize,
    /// Output channels of the stem convolution (`w0`).
    pub stem_width: usize,
    pub num_stages: usize,
    pub stages: [StageSpec; MAX_STAGES],
    pub block: BlockKind,
    pub shortcut: ShortcutKind,
    pub step: StepMode,
    /// Controller reduction `r`: hidden size `H = max(C / r, 1)`.
    pub reduction: usize,
    /// Groups of the residual branch's convolutions (stem, projection and fc are never
    /// grouped). Every block's input and output channel count must be a multiple.
    pub groups: usize,
    /// Per-channel input normalisation: `x_norm = (x − mean[c]) / std[c]`.
    pub mean: [f32; MAX_INPUT_CHANNELS],
    pub std: [f32; MAX_INPUT_CHANNELS],
}

impl PartialEq for Arch {
    fn eq(&self, o: &Self) -> bool {
        let n = self.num_stages.min(MAX_STAGES);
        let c = self.input.c.min(MAX_INPUT_CHANNELS);
        self.input == o.input
            && self.classes == o.classes
            && self.stem_width == o.stem_width
            && self.num_stages == o.num_stages
            && self.stages[..n] == o.stages[..n]
            && self.block == o.block
            && self.shortcut == o.shortcut
            && self.step == o.step
            && self.reduction == o.reduction
            && self.groups == o.groups
            && self.mean[..c] == o.mean[..c]
            && self.std[..c] == o.std[..c]
    }
}

/// CIFAR-10 per-channel mean of the training set (pixel values in [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 per-channel standard deviation of the training set.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Geometry of one residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockGeom {
    pub input: Shape3,
    pub output: Shape3,
    /// Stride of conv1 (and of the shortcut).
    pub stride: usize,
    /// True when the shortcut is not the identity (stride ≠ 1 or channels change).
    pub shape_change: bool,
    /// True when the block has a projection (`proj.w`): option B and `shape_change`.
    pub has_proj: bool,
}

/// Identifies one tensor of the canonical set (docs/DESIGN.md "Tensor names").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorId {
    StemConvW,
    StemConvB,
    StemBn(BnField),
    Block {
        stage: usize,
        block: usize,
        part: BlockPart,
    },
    /// Per-stage LSTM controller (`sS.ctl.*`).
    StageCtl {
        stage: usize,
        part: CtlPart,
    },
    FcW,
    FcB,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BnField {
    Gamma,
    Beta,
    Mean,
    Var,
}

impl BnField {
    fn idx(self) -> u8 {
        match self {
            BnField::Gamma => 0,
            BnField::Beta => 1,
            BnField::Mean => 2,
            BnField::Var => 3,
        }
    }
    pub const ALL: [BnField; 4] = [BnField::Gamma, BnField::Beta, BnField::Mean, BnField::Var];
    pub fn as_str(self) -> &'static str {
        match self {
            BnField::Gamma => "gamma",
            BnField::Beta => "beta",
            BnField::Mean => "mean",
            BnField::Var => "var",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockPart {
    Conv1W,
    Conv1B,
    Conv2W,
    Conv2B,
    Bn1(BnField),
    Bn2(BnField),
    ProjW,
    ProjB,
    ProjBn(BnField),
    Dt,
    /// Per-block 2fc controller (`sS.bB.ctl.*`; only the four fc parts).
    Ctl(CtlPart),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtlPart {
    FcInW,
    FcInB,
    LstmW,
    LstmB,
    FcOutW,
    FcOutB,
}

impl CtlPart {
    fn idx(self) -> u8 {
        match self {
            CtlPart::FcInW => 0,
            CtlPart::FcInB => 1,
            CtlPart::LstmW => 2,
            CtlPart::LstmB => 3,
            CtlPart::FcOutW => 4,
            CtlPart::FcOutB => 5,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CtlPart::FcInW => "fc_in.w",
            CtlPart::FcInB => "fc_in.b",
            CtlPart::LstmW => "lstm.w",
            CtlPart::LstmB => "lstm.b",
            CtlPart::FcOutW => "fc_out.w",
            CtlPart::FcOutB => "fc_out.b",
        }
    }
    fn parse(s: &str) -> Option<CtlPart> {
        Some(match s {
            "fc_in.w" => CtlPart::FcInW,
            "fc_in.b" => CtlPart::FcInB,
            "lstm.w" => CtlPart::LstmW,
            "lstm.b" => CtlPart::LstmB,
            "fc_out.w" => CtlPart::FcOutW,
            "fc_out.b" => CtlPart::FcOutB,
            _ => return None,
        })
    }
}

fn parse_bn(s: &str) -> Option<BnField> {
    Some(match s {
        "gamma" => BnField::Gamma,
        "beta" => BnField::Beta,
        "mean" => BnField::Mean,
        "var" => BnField::Var,
        _ => return None,
    })
}

/// Parses a canonical decimal (no sign, no leading zeros) below 2^20.
fn parse_index(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 6 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    let mut v = 0usize;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (d - b'0') as usize;
    }
    Some(v)
}

/// Sort key of a [`TensorId`]; see [`TensorId::order_key`].
pub type OrderKey = (u8, usize, usize, u8);

impl TensorId {
    /// Position in the canonical order (the order of [`Arch::for_each_tensor`]): stem; then
    /// per stage the stage controller and each block (conv1, bn1, conv2, bn2, proj,
    /// projbn, dt, ctl); then fc. Model files store canonical tensors in increasing key.
    pub fn order_key(&self) -> OrderKey {
        match *self {
            TensorId::StemConvW => (0, 0, 0, 0),
            TensorId::StemConvB => (0, 0, 0, 1),
            TensorId::StemBn(f) => (0, 0, 0, 2 + f.idx()),
            TensorId::StageCtl { stage, part } => (1, stage, 0, part.idx()),
            TensorId::Block { stage, block, part } => {
                let p = match part {
                    BlockPart::Conv1W => 0,
                    BlockPart::Conv1B => 1,
                    BlockPart::Bn1(f) => 2 + f.idx(),
                    BlockPart::Conv2W => 6,
                    BlockPart::Conv2B => 7,
                    BlockPart::Bn2(f) => 8 + f.idx(),
                    BlockPart::ProjW => 12,
                    BlockPart::ProjB => 13,
                    BlockPart::ProjBn(f) => 14 + f.idx(),
                    BlockPart::Dt => 18,
                    BlockPart::Ctl(c) => 19 + c.idx(),
                };
                (1, stage, block.saturating_add(1), p)
            }
            TensorId::FcW => (2, 0, 0, 0),
            TensorId::FcB => (2, 0, 0, 1),
        }
    }

    /// Parses a canonical tensor name; `None` for anything else (including `opt.*`/`meta.*`).
    pub fn parse(name: &str) -> Option<TensorId> {
        match name {
            "stem.conv.w" => return Some(TensorId::StemConvW),
            "stem.conv.b" => return Some(TensorId::StemConvB),
            "fc.w" => return Some(TensorId::FcW),
            "fc.b" => return Some(TensorId::FcB),
            _ => {}
        }
        if let Some(f) = name.strip_prefix("stem.bn.") {
            return parse_bn(f).map(TensorId::StemBn);
        }
        let rest = name.strip_prefix('s')?;
        let (sidx, rest) = rest.split_once('.')?;
        let stage = parse_index(sidx)?;
        if let Some(p) = rest.strip_prefix("ctl.") {
            return CtlPart::parse(p).map(|part| TensorId::StageCtl { stage, part });
        }
        let rest = rest.strip_prefix('b')?;
        let (bidx, field) = rest.split_once('.')?;
        let block = parse_index(bidx)?;
        let part = match field {
            "conv1.w" => BlockPart::Conv1W,
            "conv1.b" => BlockPart::Conv1B,
            "conv2.w" => BlockPart::Conv2W,
            "conv2.b" => BlockPart::Conv2B,
            "proj.w" => BlockPart::ProjW,
            "proj.b" => BlockPart::ProjB,
            "dt" => BlockPart::Dt,
            _ => {
                if let Some(f) = field.strip_prefix("bn1.") {
                    BlockPart::Bn1(parse_bn(f)?)
                } else if let Some(f) = field.strip_prefix("bn2.") {
                    BlockPart::Bn2(parse_bn(f)?)
                } else if let Some(f) = field.strip_prefix("projbn.") {
                    BlockPart::ProjBn(parse_bn(f)?)
                } else if let Some(f) = field.strip_prefix("ctl.") {
                    BlockPart::Ctl(CtlPart::parse(f)?)
                } else {
                    return None;
                }
            }
        };
        Some(TensorId::Block { stage, block, part })
    }

    /// The canonical name (always fits: stage/block indices are below 2^20).
    pub fn name(&self) -> TensorName {
        let mut s = TensorName::new();
        // Longest possible name: "s999999.b999999.projbn.gamma" (28 bytes) < 64.
        let _ = match *self {
            TensorId::StemConvW => s.write_str("stem.conv.w"),
            TensorId::StemConvB => s.write_str("stem.conv.b"),
            TensorId::StemBn(f) => write!(s, "stem.bn.{}", f.as_str()),
            TensorId::FcW => s.write_str("fc.w"),
            TensorId::FcB => s.write_str("fc.b"),
            TensorId::StageCtl { stage, part } => write!(s, "s{}.ctl.{}", stage, part.as_str()),
            TensorId::Block { stage, block, part } => {
                let _ = write!(s, "s{}.b{}.", stage, block);
                match part {
                    BlockPart::Conv1W => s.write_str("conv1.w"),
                    BlockPart::Conv1B => s.write_str("conv1.b"),
                    BlockPart::Conv2W => s.write_str("conv2.w"),
                    BlockPart::Conv2B => s.write_str("conv2.b"),
                    BlockPart::ProjW => s.write_str("proj.w"),
                    BlockPart::ProjB => s.write_str("proj.b"),
                    BlockPart::Dt => s.write_str("dt"),
                    BlockPart::Bn1(f) => write!(s, "bn1.{}", f.as_str()),
                    BlockPart::Bn2(f) => write!(s, "bn2.{}", f.as_str()),
                    BlockPart::ProjBn(f) => write!(s, "projbn.{}", f.as_str()),
                    BlockPart::Ctl(p) => write!(s, "ctl.{}", p.as_str()),
                }
            }
        };
        s
    }
}

fn inv(what: &'static str) -> FormatError {
    FormatError::InvalidHeader(what)
}

impl Arch {
    /// CIFAR-style ResNet of depth `6n + 2`: 32×32×3 input, 10 classes, CIFAR-10
    /// normalisation, stem width `w0`, three stages of widths `w0, 2·w0, 4·w0` with strides
    /// 1, 2, 2, basic blocks, reduction 4, groups 1.
    pub fn cifar(n: usize, w0: usize, step: StepMode, shortcut: ShortcutKind) -> Arch {
        let mut mean = [0.0; MAX_INPUT_CHANNELS];
        let mut std = [1.0; MAX_INPUT_CHANNELS];
        mean[..3].copy_from_slice(&CIFAR10_MEAN);
        std[..3].copy_from_slice(&CIFAR10_STD);
        let st = |width, stride| StageSpec {
            blocks: n,
            width,
            stride,
        };
        Arch {
            input: Shape3::new(32, 32, 3),
            classes: 10,
            stem_width: w0,
            num_stages: 3,
            stages: [
                st(w0, 1),
                st(2 * w0, 2),
                st(4 * w0, 2),
                StageSpec::default(),
            ],
            block: BlockKind::Basic,
            shortcut,
            step,
            reduction: 4,
            groups: 1,
            mean,
            std,
        }
    }

    /// The meaningful stage entries (`&stages[..num_stages]`, clamped to capacity).
    pub fn stages(&self) -> &[StageSpec] {
        &self.stages[..self.num_stages.min(MAX_STAGES)]
    }

    /// Total number of residual blocks.
    pub fn total_blocks(&self) -> usize {
        self.stages().iter().map(|s| s.blocks).sum()
    }

    /// Output shape of the stem.
    pub fn stem_output(&self) -> Shape3 {
        Shape3::new(self.input.h, self.input.w, self.stem_width)
    }

    /// Shape entering stage `stage` (`stage == num_stages` gives the head's input).
    pub fn stage_input(&self, stage: usize) -> Shape3 {
        let mut sh = self.stem_output();
        for st in self.stages().iter().take(stage) {
            let s = st.stride.max(1);
            sh = Shape3::new(
                (sh.h.max(1) - 1) / s + 1,
                (sh.w.max(1) - 1) / s + 1,
                st.width,
            );
        }
        sh
    }

    /// Shape fed to the head (global average pool); `c` is the fc layer's input size.
    pub fn head_input(&self) -> Shape3 {
        self.stage_input(self.stages().len())
    }

    /// Geometry of block `block` of stage `stage` (indices are not checked beyond clamping).
    pub fn block_geom(&self, stage: usize, block: usize) -> BlockGeom {
        let sin = self.stage_input(stage);
        let spec = self.stages.get(stage).copied().unwrap_or_default();
        let s = spec.stride.max(1);
        let out = Shape3::new(
            (sin.h.max(1) - 1) / s + 1,
            (sin.w.max(1) - 1) / s + 1,
            spec.width,
        );
        let (input, stride) = if block == 0 { (sin, s) } else { (out, 1) };
        let shape_change = stride != 1 || input.c != out.c;
        BlockGeom {
            input,
            output: out,
            stride,
            shape_change,
            has_proj: shape_change && self.shortcut == ShortcutKind::B,
        }
    }

    /// Controller hidden size `H = max(C / r, 1)` for stage `stage`.
    pub fn hidden(&self, stage: usize) -> usize {
        let c = self.stages.get(stage).map_or(0, |s| s.width);
        (c / self.reduction.max(1)).max(1)
    }

    /// Length `K` of a block's weight summary `w̄` in stage `stage`: `2·3·3·C`.
    pub fn summary_len(&self, stage: usize) -> usize {
        let c = self.stages.get(stage).map_or(0, |s| s.width);
        2 * KERNEL * KERNEL * c
    }

    /// Checks every field (ranges, divisibility, option-A channel growth, sizes that must fit
    /// in [`MAX_ELEMS`]). `Unsupported` for representable but unimplemented features.
    pub fn validate(&self) -> Result<(), FormatError> {
        let dim_ok = |v: usize| (1..=MAX_DIM).contains(&v);
        if !dim_ok(self.input.h) || !dim_ok(self.input.w) {
            return Err(inv("input_h/input_w"));
        }
        if !(1..=MAX_INPUT_CHANNELS).contains(&self.input.c) {
            return Err(inv("input_c"));
        }
        if !dim_ok(self.classes) {
            return Err(inv("classes"));
        }
        if !dim_ok(self.stem_width) {
            return Err(inv("stem_width"));
        }
        if !(1..=MAX_STAGES).contains(&self.num_stages) {
            return Err(inv("num_stages"));
        }
        if !dim_ok(self.reduction) {
            return Err(inv("reduction"));
        }
        if !dim_ok(self.groups) {
            return Err(inv("groups"));
        }
        if let StepMode::Fixed(c) = self.step {
            if !c.is_finite() {
                return Err(inv("step_fixed"));
            }
        }
        for c in 0..self.input.c {
            if !self.mean[c].is_finite() {
                return Err(inv("mean"));
            }
            if !(self.std[c].is_finite() && self.std[c] > 0.0) {
                return Err(inv("std"));
            }
        }
        for st in self.stages() {
            if !(1..=MAX_BLOCKS).contains(&st.blocks) {
                return Err(inv("stage.blocks"));
            }
            if !dim_ok(st.width) {
                return Err(inv("stage.width"));
            }
            if !(1..=MAX_STRIDE).contains(&st.stride) {
                return Err(inv("stage.stride"));
            }
        }
        if self.block == BlockKind::Bottleneck {
            return Err(FormatError::Unsupported("bottleneck blocks"));
        }
        // Per-block checks and sizes.
        let big = |v: u64| v > MAX_ELEMS as u64;
        let img = self.input.h as u64 * self.input.w as u64;
        if big(img * self.input.c as u64) || big(img * self.stem_width as u64) {
            return Err(FormatError::TooLarge("activation"));
        }
        for (si, st) in self.stages().iter().enumerate() {
            let g = self.block_geom(si, 0);
            if !g.input.c.is_multiple_of(self.groups) || st.width % self.groups != 0 {
                return Err(inv("groups"));
            }
            if g.shape_change && self.shortcut == ShortcutKind::A && g.output.c < g.input.c {
                return Err(inv("option A shortcut cannot reduce channels"));
            }
            let hw_in = g.input.h as u64 * g.input.w as u64;
            let hw_out = g.output.h as u64 * g.output.w as u64;
            let c = st.width as u64;
            if big(hw_in * g.input.c as u64 + 2 * hw_out * c) {
                return Err(FormatError::TooLarge("activation"));
            }
            // Largest parameter tensors: conv weights C·9·C_in, fc_in H·K.
            if big(c * 9 * g.input.c.max(st.width) as u64)
                || big(self.hidden(si) as u64 * self.summary_len(si) as u64)
                || big(16 * self.hidden(si) as u64 * self.hidden(si) as u64)
            {
                return Err(FormatError::TooLarge("parameter tensor"));
            }
        }
        if big(self.classes as u64 * self.head_input().c as u64) {
            return Err(FormatError::TooLarge("parameter tensor"));
        }
        Ok(())
    }

    /// Expected shape of tensor `id` in a model of `kind`, or `None` when the architecture
    /// has no such tensor. Assumes a validated `Arch`.
    pub fn tensor_shape(&self, kind: ModelKind, id: TensorId) -> Option<Dims> {
        let unf = kind == ModelKind::Checkpoint;
        let d = |s: &[usize]| Dims::new(s);
        let k = KERNEL;
        match id {
            TensorId::StemConvW => d(&[self.stem_width, k, k, self.input.c]),
            TensorId::StemConvB if !unf => d(&[self.stem_width]),
            TensorId::StemBn(_) if unf => d(&[self.stem_width]),
            TensorId::FcW => d(&[self.classes, self.head_input().c]),
            TensorId::FcB => d(&[self.classes]),
            TensorId::StageCtl { stage, part } => {
                if !unf || self.step != StepMode::Lstm || stage >= self.stages().len() {
                    return None;
                }
                let c = self.stages[stage].width;
                let h = self.hidden(stage);
                let kk = self.summary_len(stage);
                match part {
                    CtlPart::FcInW => d(&[h, kk]),
                    CtlPart::FcInB => d(&[h]),
                    CtlPart::LstmW => d(&[4 * h, 2 * h]),
                    CtlPart::LstmB => d(&[4 * h]),
                    CtlPart::FcOutW => d(&[c, h]),
                    CtlPart::FcOutB => d(&[c]),
                }
            }
            TensorId::Block { stage, block, part } => {
                if stage >= self.stages().len() || block >= self.stages[stage].blocks {
                    return None;
                }
                let g = self.block_geom(stage, block);
                let c = g.output.c;
                let gr = self.groups.max(1);
                match part {
                    BlockPart::Conv1W => d(&[c, k, k, g.input.c / gr]),
                    BlockPart::Conv2W => d(&[c, k, k, c / gr]),
                    BlockPart::Conv1B | BlockPart::Conv2B if !unf => d(&[c]),
                    BlockPart::Bn1(_) | BlockPart::Bn2(_) if unf => d(&[c]),
                    BlockPart::ProjW if g.has_proj => d(&[c, 1, 1, g.input.c]),
                    BlockPart::ProjB if g.has_proj && !unf => d(&[c]),
                    BlockPart::ProjBn(_) if g.has_proj && unf => d(&[c]),
                    BlockPart::Dt if unf && self.step == StepMode::Indp => d(&[c]),
                    BlockPart::Ctl(p) if unf && self.step == StepMode::TwoFc => {
                        let h = self.hidden(stage);
                        match p {
                            CtlPart::FcInW => d(&[h, self.summary_len(stage)]),
                            CtlPart::FcInB => d(&[h]),
                            CtlPart::FcOutW => d(&[c, h]),
                            CtlPart::FcOutB => d(&[c]),
                            CtlPart::LstmW | CtlPart::LstmB => None,
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Calls `f` for every tensor a model of `kind` must contain, in canonical order
    /// (stem; per stage: LSTM controller, then per block conv1, bn1, conv2, bn2, proj,
    /// projbn, dt, ctl; head). Stops at the first error. Assumes a validated `Arch`.
    pub fn for_each_tensor<E>(
        &self,
        kind: ModelKind,
        mut f: impl FnMut(TensorId, Dims) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut emit = |id: TensorId| -> Result<(), E> {
            match self.tensor_shape(kind, id) {
                Some(d) => f(id, d),
                None => Ok(()),
            }
        };
        emit(TensorId::StemConvW)?;
        emit(TensorId::StemConvB)?;
        for b in BnField::ALL {
            emit(TensorId::StemBn(b))?;
        }
        const CTL: [CtlPart; 6] = [
            CtlPart::FcInW,
            CtlPart::FcInB,
            CtlPart::LstmW,
            CtlPart::LstmB,
            CtlPart::FcOutW,
            CtlPart::FcOutB,
        ];
        for (stage, st) in self.stages().iter().enumerate() {
            for part in CTL {
                emit(TensorId::StageCtl { stage, part })?;
            }
            for block in 0..st.blocks {
                let mut e = |part| emit(TensorId::Block { stage, block, part });
                e(BlockPart::Conv1W)?;
                e(BlockPart::Conv1B)?;
                for b in BnField::ALL {
                    e(BlockPart::Bn1(b))?;
                }
                e(BlockPart::Conv2W)?;
                e(BlockPart::Conv2B)?;
                for b in BnField::ALL {
                    e(BlockPart::Bn2(b))?;
                }
                e(BlockPart::ProjW)?;
                e(BlockPart::ProjB)?;
                for b in BnField::ALL {
                    e(BlockPart::ProjBn(b))?;
                }
                e(BlockPart::Dt)?;
                for part in CTL {
                    e(BlockPart::Ctl(part))?;
                }
            }
        }
        emit(TensorId::FcW)?;
        emit(TensorId::FcB)
    }

    /// Number of tensors a model of `kind` must contain.
    pub fn tensor_count(&self, kind: ModelKind) -> usize {
        let mut n = 0;
        let _ = self.for_each_tensor::<()>(kind, |_, _| {
            n += 1;
            Ok(())
        });
        n
    }

    /// Peak number of live activation f32 for one image:
    /// `max(H·W·C_in + H·W·w0, max over blocks (|in_b| + 2·|out_b|))` where `|·|` is
    /// `h·w·c` of the block's input/output. (The head needs `|last| + C_last`, which never
    /// exceeds the last block's term.)
    pub fn activation_scratch_len(&self) -> usize {
        let mut peak = self.input.len() + self.stem_output().len();
        for (si, st) in self.stages().iter().enumerate() {
            for b in 0..st.blocks.min(2) {
                let g = self.block_geom(si, b);
                peak = peak.max(g.input.len() + 2 * g.output.len());
            }
        }
        let head = self.head_input();
        peak.max(head.len() + head.c)
    }

    /// f32 of scratch the step-size computation needs (unfolded models only):
    /// `max over stages` of `C` (fixed, indp), `K + H + C` (2fc) or `K + 7·H + C` (lstm),
    /// with `K = 18·C` the weight-summary length and `H = max(C / r, 1)`.
    pub fn controller_scratch_len(&self) -> usize {
        let mut m = 0;
        for (si, st) in self.stages().iter().enumerate() {
            let c = st.width;
            let k = self.summary_len(si);
            let h = self.hidden(si);
            let need = match self.step {
                StepMode::Fixed(_) | StepMode::Indp => c,
                StepMode::TwoFc => k + h + c,
                StepMode::Lstm => k + 7 * h + c,
            };
            m = m.max(need);
        }
        m
    }

    /// Scratch f32 that [`crate::infer`] needs for a model of `kind`:
    /// `activation_scratch_len()` plus, for checkpoints, `controller_scratch_len()`.
    pub fn scratch_len(&self, kind: ModelKind) -> usize {
        match kind {
            ModelKind::Folded => self.activation_scratch_len(),
            ModelKind::Checkpoint => self.activation_scratch_len() + self.controller_scratch_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_canonical_order() {
        for step in [StepMode::TwoFc, StepMode::Lstm, StepMode::Indp] {
            let mut a = Arch::cifar(11, 4, step, ShortcutKind::B);
            a.stages[0].width = 2;
            a.validate().unwrap();
            for kind in [ModelKind::Checkpoint, ModelKind::Folded] {
                let mut last = None;
                a.for_each_tensor::<()>(kind, |id, _| {
                    let n = id.name();
                    assert_eq!(TensorId::parse(&n), Some(id), "{}", n);
                    assert!(Some(id.order_key()) > last, "{}", n);
                    last = Some(id.order_key());
                    Ok(())
                })
                .unwrap();
            }
        }
        for bad in [
            "s01.b0.dt",
            "s0.b0.bn3.gamma",
            "s0.dt",
            "stem.bn.x",
            "s.b0.dt",
            "s1.b-1.dt",
        ] {
            assert_eq!(TensorId::parse(bad), None, "{}", bad);
        }
    }

    #[test]
    fn resnet20_counts_and_scratch() {
        let a = Arch::cifar(3, 16, StepMode::Fixed(1.0), ShortcutKind::A);
        a.validate().unwrap();
        // stem conv + 9 blocks × 2 convs + fc.w + fc.b, each with a bias when folded.
        assert_eq!(a.tensor_count(ModelKind::Folded), 2 + 9 * 4 + 2);
        // stem: 3072 + 16384; stage 0 blocks: 3 × 16384.
        assert_eq!(a.activation_scratch_len(), 3 * 16384);
        assert_eq!(a.head_input(), Shape3::new(8, 8, 64));
    }
}
