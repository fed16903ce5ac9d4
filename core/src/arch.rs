//! Network architecture description ([`Arch`]), block geometry, and the canonical tensor set
//! (names and shapes of docs/DESIGN.md) for a given architecture and [`ModelKind`].

use core::fmt::Write as _;

use crate::format::FormatError;
use crate::layers::Conv2d;

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
/// Most convolutions on one residual branch (the bottleneck's three).
pub const MAX_BRANCH: usize = 3;
/// Largest stem kernel, stride or padding, and largest pooling window.
pub const MAX_STEM_KERNEL: usize = 15;

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

/// Residual block kind: what the residual branch of every block is ([`Arch::branch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convolutions at the block's width (He et al. 2016, CIFAR and ResNet-18/34);
    /// the first carries the stride. `Arch::groups` groups both.
    Basic,
    /// 1×1 → 3×3 → 1×1 (ResNet-50/101): the outer convs reduce to and expand from the
    /// middle width `(C / expansion) · base_width / 64 · groups` (torchvision's `width`),
    /// where `C` is the stage width (the block's output). Only the 3×3 is grouped.
    Bottleneck {
        /// Output width over the "planes" (4 for ResNet-50/101).
        expansion: usize,
        /// torchvision's `width_per_group` (64 for ResNet; 4 for ResNeXt `32x4d`).
        base_width: usize,
        /// Stride on the 3×3 (torchvision, "ResNet v1.5") instead of the first 1×1 (the
        /// original layout, which the paper's FLOP counts imply).
        stride_on_3x3: bool,
    },
}

impl BlockKind {
    /// The standard ResNet-50/101 bottleneck (expansion 4, base width 64), original layout.
    pub const BOTTLENECK: BlockKind = BlockKind::Bottleneck {
        expansion: 4,
        base_width: 64,
        stride_on_3x3: false,
    };
}

/// Max-pooling window (padding never wins: it acts as −∞).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Pool2d {
    /// Output extent of a window sweep over `n` positions: `(n + 2p − k) / s + 1`.
    pub const fn out_len(&self, n: usize) -> usize {
        (n + 2 * self.pad).saturating_sub(self.kernel)
            / if self.stride == 0 { 1 } else { self.stride }
            + 1
    }
}

/// The stem: `kernel×kernel` conv (stride, pad) to `stem_width` channels, BN, ReLU, then an
/// optional max pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StemSpec {
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
    pub pool: Option<Pool2d>,
}

impl StemSpec {
    /// CIFAR ResNets: 3×3, stride 1, pad 1, no pool (every version-1 file).
    pub const CIFAR: StemSpec = StemSpec {
        kernel: 3,
        stride: 1,
        pad: 1,
        pool: None,
    };
    /// ImageNet ResNets: 7×7, stride 2, pad 3, then a 3×3 stride-2 pad-1 max pool.
    pub const IMAGENET: StemSpec = StemSpec {
        kernel: 7,
        stride: 2,
        pad: 3,
        pool: Some(Pool2d {
            kernel: 3,
            stride: 2,
            pad: 1,
        }),
    };
}

/// One convolution of a residual branch, for one image. Branch conv `i` owns the tensors
/// `conv{i+1}.w` / `conv{i+1}.b` / `bn{i+1}.*`; each is followed by its BN (checkpoint) or
/// bias (folded), then ReLU, except the last, whose BN output is scaled by Δt and added to
/// the shortcut (Δt folds into it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BranchConv {
    pub conv: Conv2d,
    /// Enters the controller's weight summary `w̄` (paper Eq. 10 and Table 6: both convs of
    /// a basic block; the first and last 1×1 of a bottleneck).
    pub summary: bool,
}

/// The residual branch of one block: 1 to [`MAX_BRANCH`] convs in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branch {
    convs: [BranchConv; MAX_BRANCH],
    len: usize,
}

impl Branch {
    /// The convs in execution order.
    pub fn convs(&self) -> &[BranchConv] {
        &self.convs[..self.len]
    }
    /// Index of the last conv (the one Δt multiplies and folds into).
    pub fn last(&self) -> usize {
        self.len - 1
    }
    /// Length `K` of the weight summary: `Σ kh·kw·C_out` over the summary convs.
    pub fn summary_len(&self) -> usize {
        self.convs()
            .iter()
            .filter(|c| c.summary)
            .map(|c| c.conv.kh * c.conv.kw * c.conv.out_c)
            .sum()
    }
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
    /// Stem conv geometry and optional max pool.
    pub stem: StemSpec,
    pub num_stages: usize,
    pub stages: [StageSpec; MAX_STAGES],
    pub block: BlockKind,
    pub shortcut: ShortcutKind,
    pub step: StepMode,
    /// Controller reduction `r`: hidden size `H = max(C / r, 1)`.
    pub reduction: usize,
    /// Groups of the residual branch's 3×3 convolutions (both of a basic block, the middle
    /// one of a bottleneck; the stem, 1×1s, projection and fc are never grouped). Must divide
    /// the channel counts of the convs it groups.
    pub groups: usize,
    /// Squeeze-excitation reduction `r` (Hu et al. 2018): when non-zero, every block's
    /// residual branch ends in an SE unit with a hidden width of `⌊C / r⌋` (global average
    /// pool, fc, ReLU, fc, sigmoid, channel-wise scale) after its last BN and before Δt
    /// ([`Arch::se_hidden`]); 0: no SE units. Must not exceed any stage's width.
    pub se_reduction: usize,
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
            && self.stem == o.stem
            && self.num_stages == o.num_stages
            && self.stages[..n] == o.stages[..n]
            && self.block == o.block
            && self.shortcut == o.shortcut
            && self.step == o.step
            && self.reduction == o.reduction
            && self.groups == o.groups
            && self.se_reduction == o.se_reduction
            && self.mean[..c] == o.mean[..c]
            && self.std[..c] == o.std[..c]
    }
}

/// CIFAR-10 per-channel mean of the training set (pixel values in [0, 1]).
pub const CIFAR10_MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
/// CIFAR-10 per-channel standard deviation of the training set.
pub const CIFAR10_STD: [f32; 3] = [0.2470, 0.2435, 0.2616];
/// ImageNet per-channel mean (torchvision's).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet per-channel standard deviation (torchvision's).
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Geometry of one residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockGeom {
    pub input: Shape3,
    pub output: Shape3,
    /// Stride of the block (on the branch conv [`Arch::branch`] puts it on, and on the
    /// shortcut).
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

/// A tensor of one block. Branch conv `i` (0-based, [`Arch::branch`]) is named
/// `conv{i+1}` / `bn{i+1}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockPart {
    ConvW(u8),
    ConvB(u8),
    Bn(u8, BnField),
    ProjW,
    ProjB,
    ProjBn(BnField),
    Dt,
    /// Per-block 2fc controller (`sS.bB.ctl.*`; only the four fc parts).
    Ctl(CtlPart),
    /// The block's squeeze-excitation unit (`sS.bB.se.*`, when `se_reduction ≠ 0`); the
    /// same four tensors in checkpoints and folded models.
    Se(SePart),
}

/// A tensor of a squeeze-excitation unit: `fc1` reduces `C → ⌊C / r⌋` (then ReLU), `fc2`
/// expands back to `C` (then sigmoid); weights `[out][in]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SePart {
    Fc1W,
    Fc1B,
    Fc2W,
    Fc2B,
}

impl SePart {
    pub const ALL: [SePart; 4] = [SePart::Fc1W, SePart::Fc1B, SePart::Fc2W, SePart::Fc2B];
    fn idx(self) -> u8 {
        match self {
            SePart::Fc1W => 0,
            SePart::Fc1B => 1,
            SePart::Fc2W => 2,
            SePart::Fc2B => 3,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SePart::Fc1W => "fc1.w",
            SePart::Fc1B => "fc1.b",
            SePart::Fc2W => "fc2.w",
            SePart::Fc2B => "fc2.b",
        }
    }
    fn parse(s: &str) -> Option<SePart> {
        SePart::ALL.into_iter().find(|p| p.as_str() == s)
    }
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
    /// projbn, dt, ctl, se); then fc. Model files store canonical tensors in increasing key.
    pub fn order_key(&self) -> OrderKey {
        match *self {
            TensorId::StemConvW => (0, 0, 0, 0),
            TensorId::StemConvB => (0, 0, 0, 1),
            TensorId::StemBn(f) => (0, 0, 0, 2 + f.idx()),
            TensorId::StageCtl { stage, part } => (1, stage, 0, part.idx()),
            TensorId::Block { stage, block, part } => {
                // conv1, bn1, conv2, bn2, conv3, bn3, proj, projbn, dt, ctl: version-1
                // files (two convs) keep their order.
                const P: u8 = 6 * MAX_BRANCH as u8;
                let p = match part {
                    BlockPart::ConvW(i) => 6 * i,
                    BlockPart::ConvB(i) => 6 * i + 1,
                    BlockPart::Bn(i, f) => 6 * i + 2 + f.idx(),
                    BlockPart::ProjW => P,
                    BlockPart::ProjB => P + 1,
                    BlockPart::ProjBn(f) => P + 2 + f.idx(),
                    BlockPart::Dt => P + 6,
                    BlockPart::Ctl(c) => P + 7 + c.idx(),
                    // After everything older files hold, so their order is unchanged.
                    BlockPart::Se(e) => P + 13 + e.idx(),
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
        // `conv{i}` / `bn{i}` with a single digit 1..=MAX_BRANCH.
        let branch_idx = |d: &str| -> Option<u8> {
            match d.as_bytes() {
                [c @ b'1'..=b'9'] if ((c - b'0') as usize) <= MAX_BRANCH => Some(c - b'1'),
                _ => None,
            }
        };
        let part = match field {
            "proj.w" => BlockPart::ProjW,
            "proj.b" => BlockPart::ProjB,
            "dt" => BlockPart::Dt,
            _ => {
                if let Some(r) = field.strip_prefix("conv") {
                    let (d, wb) = r.split_once('.')?;
                    let i = branch_idx(d)?;
                    match wb {
                        "w" => BlockPart::ConvW(i),
                        "b" => BlockPart::ConvB(i),
                        _ => return None,
                    }
                } else if let Some(r) = field.strip_prefix("bn") {
                    let (d, f) = r.split_once('.')?;
                    BlockPart::Bn(branch_idx(d)?, parse_bn(f)?)
                } else if let Some(f) = field.strip_prefix("projbn.") {
                    BlockPart::ProjBn(parse_bn(f)?)
                } else if let Some(f) = field.strip_prefix("ctl.") {
                    BlockPart::Ctl(CtlPart::parse(f)?)
                } else if let Some(f) = field.strip_prefix("se.") {
                    BlockPart::Se(SePart::parse(f)?)
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
                    BlockPart::ConvW(i) => write!(s, "conv{}.w", i + 1),
                    BlockPart::ConvB(i) => write!(s, "conv{}.b", i + 1),
                    BlockPart::ProjW => s.write_str("proj.w"),
                    BlockPart::ProjB => s.write_str("proj.b"),
                    BlockPart::Dt => s.write_str("dt"),
                    BlockPart::Bn(i, f) => write!(s, "bn{}.{}", i + 1, f.as_str()),
                    BlockPart::ProjBn(f) => write!(s, "projbn.{}", f.as_str()),
                    BlockPart::Ctl(p) => write!(s, "ctl.{}", p.as_str()),
                    BlockPart::Se(p) => write!(s, "se.{}", p.as_str()),
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
    /// normalisation, 3×3 stem of width `w0`, three stages of widths `w0, 2·w0, 4·w0` with
    /// strides 1, 2, 2, basic blocks, reduction 4, groups 1.
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
            stem: StemSpec::CIFAR,
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
            se_reduction: 0,
            mean,
            std,
        }
    }

    /// CIFAR bottleneck ResNet of depth `9n + 2` (He et al. 2016's ResNet-164 family):
    /// [`Arch::cifar`]'s stem and strides, stage widths `4·w0, 8·w0, 16·w0` (middle widths
    /// `w0, 2·w0, 4·w0`), [`BlockKind::BOTTLENECK`], reduction 8 (paper Table 6).
    pub fn cifar_bottleneck(n: usize, w0: usize, step: StepMode, shortcut: ShortcutKind) -> Arch {
        let mut a = Arch::cifar(n, w0, step, shortcut);
        for (s, m) in a.stages.iter_mut().zip([4, 8, 16]) {
            s.width = m * w0;
        }
        a.block = BlockKind::BOTTLENECK;
        a.reduction = 8;
        a
    }

    /// ImageNet ResNet (He et al. 2016, Table 1): 224×224×3 input, 1000 classes, ImageNet
    /// normalisation, [`StemSpec::IMAGENET`] of width 64, four stages of `blocks[i]` blocks
    /// with strides 1, 2, 2, 2 and widths 64, 128, 256, 512 (times the expansion for
    /// bottlenecks), projection shortcuts, reduction 4 (basic) or 8 (bottleneck).
    pub fn imagenet(blocks: [usize; 4], block: BlockKind, step: StepMode) -> Arch {
        let e = match block {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck { expansion, .. } => expansion,
        };
        let mut mean = [0.0; MAX_INPUT_CHANNELS];
        let mut std = [1.0; MAX_INPUT_CHANNELS];
        mean[..3].copy_from_slice(&IMAGENET_MEAN);
        std[..3].copy_from_slice(&IMAGENET_STD);
        let mut stages = [StageSpec::default(); MAX_STAGES];
        for (i, s) in stages.iter_mut().enumerate() {
            *s = StageSpec {
                blocks: blocks[i],
                width: (64 << i) * e,
                stride: if i == 0 { 1 } else { 2 },
            };
        }
        Arch {
            input: Shape3::new(224, 224, 3),
            classes: 1000,
            stem_width: 64,
            stem: StemSpec::IMAGENET,
            num_stages: 4,
            stages,
            block,
            shortcut: ShortcutKind::B,
            step,
            reduction: if e == 1 { 4 } else { 8 },
            groups: 1,
            se_reduction: 0,
            mean,
            std,
        }
    }

    /// The ImageNet ResNet of `depth` 18, 34, 50, 101 or 152 ([`Arch::imagenet`]).
    pub fn resnet(depth: usize, step: StepMode) -> Option<Arch> {
        let (blocks, kind) = match depth {
            18 => ([2, 2, 2, 2], BlockKind::Basic),
            34 => ([3, 4, 6, 3], BlockKind::Basic),
            50 => ([3, 4, 6, 3], BlockKind::BOTTLENECK),
            101 => ([3, 4, 23, 3], BlockKind::BOTTLENECK),
            152 => ([3, 8, 36, 3], BlockKind::BOTTLENECK),
            _ => return None,
        };
        Some(Arch::imagenet(blocks, kind, step))
    }

    /// The meaningful stage entries (`&stages[..num_stages]`, clamped to capacity).
    pub fn stages(&self) -> &[StageSpec] {
        &self.stages[..self.num_stages.min(MAX_STAGES)]
    }

    /// Total number of residual blocks.
    pub fn total_blocks(&self) -> usize {
        self.stages().iter().map(|s| s.blocks).sum()
    }

    /// Weighted layers: stem, every branch conv, fc (`6n+2`, `9n+2`, 18, 50, ...).
    pub fn depth(&self) -> usize {
        let per_block = match self.block {
            BlockKind::Basic => 2,
            BlockKind::Bottleneck { .. } => 3,
        };
        2 + per_block * self.total_blocks()
    }

    /// The stem convolution for one image (input: the normalised image).
    pub fn stem_conv(&self) -> Conv2d {
        Conv2d::new(
            self.input,
            self.stem_width,
            self.stem.kernel,
            self.stem.stride,
            self.stem.pad,
        )
    }

    /// Output shape of the stem conv (before the pool).
    pub fn stem_conv_output(&self) -> Shape3 {
        self.stem_conv().output().unwrap_or_default()
    }

    /// Output shape of the stem (after the pool, if any): the first stage's input.
    pub fn stem_output(&self) -> Shape3 {
        let c = self.stem_conv_output();
        match self.stem.pool {
            Some(p) => Shape3::new(p.out_len(c.h), p.out_len(c.w), c.c),
            None => c,
        }
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

    /// Middle width of a bottleneck of output width `c`: `(c / expansion) · base_width / 64 ·
    /// groups`; `c` for basic blocks. Exact for validated architectures.
    pub fn mid_width(&self, c: usize) -> usize {
        match self.block {
            BlockKind::Basic => c,
            BlockKind::Bottleneck {
                expansion,
                base_width,
                ..
            } => {
                // In u64: on 32-bit targets the product of three u32 header fields overflows
                // (validated architectures keep the result ≤ MAX_DIM).
                let wide = (c / expansion.max(1)) as u64 * base_width as u64 * self.groups as u64;
                (wide / 64).min(usize::MAX as u64) as usize
            }
        }
    }

    /// The residual branch of block (stage, block): the one description of the block that
    /// inference, folding, the controller summary, the format's tensor set and the trainer
    /// all walk. Kernels `k` get padding `k / 2`.
    pub fn branch(&self, stage: usize, block: usize) -> Branch {
        let g = self.block_geom(stage, block);
        let (i, o) = (g.input, g.output);
        let gr = self.groups.max(1);
        let mk =
            |input: Shape3, out_c: usize, k: usize, stride: usize, groups, summary| BranchConv {
                conv: Conv2d {
                    input,
                    out_c,
                    kh: k,
                    kw: k,
                    stride,
                    pad: k / 2,
                    groups,
                },
                summary,
            };
        let at = |s: Shape3, c: usize| Shape3::new(s.h, s.w, c);
        match self.block {
            BlockKind::Basic => {
                let c1 = mk(i, o.c, 3, g.stride, gr, true);
                let c2 = mk(o, o.c, 3, 1, gr, true);
                Branch {
                    convs: [c1, c2, c2],
                    len: 2,
                }
            }
            BlockKind::Bottleneck { stride_on_3x3, .. } => {
                let m = self.mid_width(o.c);
                let (s1, s2) = if stride_on_3x3 {
                    (1, g.stride)
                } else {
                    (g.stride, 1)
                };
                let c1 = mk(i, m, 1, s1, 1, true);
                let mid_in = if s1 == 1 { at(i, m) } else { at(o, m) };
                let c2 = mk(mid_in, m, 3, s2, gr, false);
                let c3 = mk(at(o, m), o.c, 1, 1, 1, true);
                Branch {
                    convs: [c1, c2, c3],
                    len: 3,
                }
            }
        }
    }

    /// The projection shortcut of block (stage, block) — 1×1, the block's stride, no pad —
    /// when it has one (option B and a shape change).
    pub fn projection(&self, stage: usize, block: usize) -> Option<Conv2d> {
        let g = self.block_geom(stage, block);
        g.has_proj
            .then(|| Conv2d::new(g.input, g.output.c, 1, g.stride, 0))
    }

    /// Controller hidden size `H = max(C / r, 1)` for stage `stage`.
    pub fn hidden(&self, stage: usize) -> usize {
        let c = self.stages.get(stage).map_or(0, |s| s.width);
        (c / self.reduction.max(1)).max(1)
    }

    /// Hidden width `⌊c / se_reduction⌋` of the SE unit of a block with `c` output channels
    /// (0 without SE units).
    pub fn se_hidden(&self, c: usize) -> usize {
        c.checked_div(self.se_reduction).unwrap_or(0)
    }

    /// Length `K` of a block's weight summary `w̄` in stage `stage` ([`Branch::summary_len`]:
    /// `18·C` for basic blocks, `C + C/4` for the standard bottleneck).
    pub fn summary_len(&self, stage: usize) -> usize {
        self.branch(stage, 0).summary_len()
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
        let st = self.stem;
        if !(1..=MAX_STEM_KERNEL).contains(&st.kernel)
            || !(1..=MAX_STRIDE).contains(&st.stride)
            || st.pad >= st.kernel
        {
            return Err(inv(
                "stem kernel/stride/pad (1 ≤ k ≤ 15, 1 ≤ s ≤ 8, pad < k)",
            ));
        }
        if self.stem_conv().output().is_err() {
            return Err(inv("stem kernel larger than the padded input"));
        }
        if let Some(p) = st.pool {
            if !(1..=MAX_STEM_KERNEL).contains(&p.kernel)
                || !(1..=MAX_STRIDE).contains(&p.stride)
                || 2 * p.pad > p.kernel
            {
                return Err(inv(
                    "pool kernel/stride/pad (1 ≤ k ≤ 15, 1 ≤ s ≤ 8, 2·pad ≤ k)",
                ));
            }
            let c = self.stem_conv_output();
            if c.h + 2 * p.pad < p.kernel || c.w + 2 * p.pad < p.kernel {
                return Err(inv("pool window larger than the padded stem output"));
            }
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
        if self.se_reduction != 0 && self.stages().iter().any(|s| s.width < self.se_reduction) {
            return Err(inv("se_reduction (0, or at most every stage's width)"));
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
        if let BlockKind::Bottleneck {
            expansion,
            base_width,
            ..
        } = self.block
        {
            if !(1..=64).contains(&expansion) || !dim_ok(base_width) {
                return Err(inv("bottleneck expansion (1..=64) / base_width"));
            }
            for st in self.stages() {
                let planes = st.width / expansion;
                let wide = planes as u64 * base_width as u64 * self.groups as u64;
                if !st.width.is_multiple_of(expansion)
                    || !wide.is_multiple_of(64)
                    || wide == 0
                    || wide / 64 > MAX_DIM as u64
                {
                    return Err(inv(
                        "bottleneck width: stage width / expansion · base_width / 64 · groups must be a whole number ≥ 1",
                    ));
                }
            }
        }
        // Per-block checks and sizes.
        let big = |v: u64| v > MAX_ELEMS as u64;
        let img = self.input.h as u64 * self.input.w as u64;
        if big(img * self.input.c as u64) || big(self.stem_conv_output().len() as u64) {
            return Err(FormatError::TooLarge("activation"));
        }
        for (si, st) in self.stages().iter().enumerate() {
            let g = self.block_geom(si, 0);
            if g.shape_change && self.shortcut == ShortcutKind::A && g.output.c < g.input.c {
                return Err(inv("option A shortcut cannot reduce channels"));
            }
            for b in 0..st.blocks.min(2) {
                for bc in self.branch(si, b).convs() {
                    let cv = bc.conv;
                    if cv.input.c % cv.groups != 0 || cv.out_c % cv.groups != 0 {
                        return Err(inv(
                            "groups must divide the channels of the convs it groups",
                        ));
                    }
                    let w =
                        cv.out_c as u64 * (cv.kh * cv.kw) as u64 * (cv.input.c / cv.groups) as u64;
                    let act = cv.input.len() as u64 + cv.output().map_or(0, |o| o.len()) as u64;
                    if big(w) {
                        return Err(FormatError::TooLarge("parameter tensor"));
                    }
                    if big(act) {
                        return Err(FormatError::TooLarge("activation"));
                    }
                }
            }
            let c = st.width as u64;
            if big(c * g.input.c as u64)
                || big(c * self.se_hidden(st.width) as u64)
                || big(self.hidden(si) as u64 * self.summary_len(si) as u64)
                || big(16 * self.hidden(si) as u64 * self.hidden(si) as u64)
            {
                return Err(FormatError::TooLarge("parameter tensor"));
            }
        }
        if big(self.classes as u64 * self.head_input().c as u64) {
            return Err(FormatError::TooLarge("parameter tensor"));
        }
        if big(self.activation_scratch_len() as u64 + self.controller_scratch_len() as u64) {
            return Err(FormatError::TooLarge("activation"));
        }
        Ok(())
    }

    /// Expected shape of tensor `id` in a model of `kind`, or `None` when the architecture
    /// has no such tensor. Assumes a validated `Arch`.
    pub fn tensor_shape(&self, kind: ModelKind, id: TensorId) -> Option<Dims> {
        let unf = kind == ModelKind::Checkpoint;
        let d = |s: &[usize]| Dims::new(s);
        match id {
            TensorId::StemConvW => {
                let k = self.stem.kernel;
                d(&[self.stem_width, k, k, self.input.c])
            }
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
                let br = self.branch(stage, block);
                let conv = |i: u8| br.convs().get(i as usize).map(|b| b.conv);
                match part {
                    BlockPart::ConvW(i) => {
                        let cv = conv(i)?;
                        d(&[cv.out_c, cv.kh, cv.kw, cv.input.c / cv.groups])
                    }
                    BlockPart::ConvB(i) if !unf => d(&[conv(i)?.out_c]),
                    BlockPart::Bn(i, _) if unf => d(&[conv(i)?.out_c]),
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
                    BlockPart::Se(p) if self.se_reduction != 0 => {
                        let h = self.se_hidden(c);
                        match p {
                            SePart::Fc1W => d(&[h, c]),
                            SePart::Fc1B => d(&[h]),
                            SePart::Fc2W => d(&[c, h]),
                            SePart::Fc2B => d(&[c]),
                        }
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Calls `f` for every tensor a model of `kind` must contain, in canonical order
    /// (stem; per stage: LSTM controller, then per block conv1, bn1, conv2, bn2, (conv3,
    /// bn3,) proj, projbn, dt, ctl, se; head). Stops at the first error. Assumes a validated
    /// `Arch`.
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
                for i in 0..MAX_BRANCH as u8 {
                    e(BlockPart::ConvW(i))?;
                    e(BlockPart::ConvB(i))?;
                    for b in BnField::ALL {
                        e(BlockPart::Bn(i, b))?;
                    }
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
                for part in SePart::ALL {
                    e(BlockPart::Se(part))?;
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

    /// f32 a block needs between its input and its output ([`crate::infer`]'s layout):
    /// every pair of consecutive intermediate branch outputs (the first alone for a
    /// two-conv branch), the projection's output, and the SE unit's
    /// [`Arch::se_scratch_len`].
    pub fn block_middle_len(&self, stage: usize, block: usize) -> usize {
        let br = self.branch(stage, block);
        let convs = br.convs();
        let out = |i: usize| convs[i].conv.output().map_or(0, |s| s.len());
        let inter = br.last(); // number of intermediate outputs
        let mut m = 0;
        for i in 0..inter {
            let next = if i + 1 < inter { out(i + 1) } else { 0 };
            m = m.max(out(i) + next);
        }
        let g = self.block_geom(stage, block);
        if g.has_proj {
            m = m.max(g.output.len());
        }
        if self.se_reduction != 0 {
            m = m.max(self.se_scratch_len(g.output.c));
        }
        m
    }

    /// f32 an SE unit over `c` channels needs: the pooled input, the hidden activation and
    /// the gate (`2·c + ⌊c / r⌋`); 0 without SE units.
    pub fn se_scratch_len(&self, c: usize) -> usize {
        if self.se_reduction == 0 {
            0
        } else {
            2 * c + self.se_hidden(c)
        }
    }

    /// Peak number of live activation f32 for one image: the largest of the stem's
    /// `|image| + |conv|` (and `|conv| + |pool|` with a pool), every block's
    /// `|in| + middle + |out|` ([`Arch::block_middle_len`]) and the head's `|last| + C_last`,
    /// with `|·| = h·w·c`.
    pub fn activation_scratch_len(&self) -> usize {
        let conv = self.stem_conv_output().len();
        let mut peak = self.input.len() + conv;
        if self.stem.pool.is_some() {
            peak = peak.max(conv + self.stem_output().len());
        }
        for (si, st) in self.stages().iter().enumerate() {
            for b in 0..st.blocks.min(2) {
                let g = self.block_geom(si, b);
                peak = peak.max(g.input.len() + self.block_middle_len(si, b) + g.output.len());
            }
        }
        let head = self.head_input();
        peak.max(head.len() + head.c)
    }

    /// f32 of scratch the step-size computation needs (unfolded models only):
    /// `max over stages` of `C` (fixed, indp), `K + H + C` (2fc) or `K + 7·H + C` (lstm),
    /// with `K` the weight-summary length ([`Arch::summary_len`]) and `H = max(C / r, 1)`.
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
            a.se_reduction = 2;
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
            "s0.b0.bn4.gamma",
            "s0.b0.conv0.w",
            "s0.b0.conv10.w",
            "s0.b0.conv1.x",
            "s0.dt",
            "stem.bn.x",
            "s.b0.dt",
            "s1.b-1.dt",
            "s0.b0.se.fc3.w",
            "s0.b0.se.fc1",
            "s0.se.fc1.w",
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
