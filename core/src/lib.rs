#![no_std]
#![forbid(unsafe_code)]
//! # tsc-core
//!
//! `no_std`, allocation-free math for ResNets with time-stepping controllers (TSC-ResNet,
//! paper Eqs. 10–13): layers, controller forward math, BN/Δt folding, the versioned model
//! format, and single-image inference. Conventions (network, layouts, step modes, tensor
//! names) are those of `docs/DESIGN.md`; the file format is specified in `docs/FORMAT.md`.
//!
//! ## Public API at a glance
//! - [`Arch`]: plain-data architecture, the one description of the network that everything
//!   walks: `Arch::cifar(n, w0, step, shortcut)` (basic blocks, depth `6n+2`),
//!   `Arch::cifar_bottleneck` (`9n+2`), `Arch::resnet(18 | 34 | 50 | 101 | 152, step)`
//!   (ImageNet stem and stages); [`Arch::branch`] (a block's residual branch as convs),
//!   [`Arch::validate`], [`Arch::for_each_tensor`] (canonical tensor set with shapes),
//!   [`Arch::scratch_len`].
//! - [`format::Model::parse`]`(&[u8]) -> Result<Model, FormatError>`: zero-copy, validating;
//!   `model.arch()`, `model.kind()`, `model.tensor(name) -> Option<TensorView>`,
//!   `model.class_name(i) -> Option<&str>`, `model.scratch_len()`.
//! - [`format::write_model`]`(arch, kind, class_names, tensors, &mut sink) -> Result<usize,_>`
//!   with `tensors: IntoIterator<Item = (&str, &[usize], &[f32])> + Clone` and a
//!   [`format::ByteSink`] (`SliceSink` over `&mut [u8]`; `Vec<u8>` with `std`);
//!   [`format::encoded_len`] sizes the buffer; [`format::ModelWriter`] streams.
//! - [`layers`]: conv2d, batchnorm, relu, residual update, option-A shortcut, global average
//!   pool, fc, softmax, argmax (slices or model tensors through [`layers::Weights`]).
//! - [`controller`]: weight summary `w̄`, LSTM cell, [`controller::StageSteps`] /
//!   [`controller::compute_steps`] recomputing every block's Δt from a checkpoint.
//! - [`fold::fold`]`(&checkpoint, scratch, &mut sink)`: checkpoint → folded model bytes.
//! - [`infer`]`(&model, input_hwc, scratch, logits)`: one image, folded or checkpoint model;
//!   [`block_forward`] runs one residual block.
//! - `testutil` (feature `std`): seeded random checkpoints for tests, benches and demos.
//! - `fuzzing` (feature `std`): the fuzz targets' entry functions (`parse_raw`,
//!   `parse_fixed`), shared by `core/fuzz` and the corpus-replay test.
//!
//! ## Inference input convention
//! `input` is one image, NHWC (`H·W·C` f32, `(y·W + x)·C + c`), pixel intensities already
//! scaled to `[0, 1]`. [`infer`] normalises it itself with the model's per-channel
//! `x' = (x − mean[c]) / std[c]` from the header.
//!
//! ## Scratch (f32 count for one image)
//! `scratch_len = A + (checkpoint ? Ctl : 0)` where, with `|s| = h·w·c` of an activation,
//! - `A = max( |image| + |stem conv| , |stem conv| + |pool| (with a pool),
//!   max over blocks (|in_b| + middle_b + |out_b|) , |last| + C_last )`: the peak of live
//!   activations, `middle_b` = [`Arch::block_middle_len`] (the largest sum of two consecutive
//!   intermediate branch outputs, the first alone for a two-conv branch, and the projection's
//!   output; the residual is added in place). For basic blocks this is `|in| + 2·|out|`.
//! - `Ctl = max over stages` of `C` (fixed, indp), `K + H + C` (2fc), `K + 7H + C` (lstm),
//!   `K` = [`Arch::summary_len`] (`18·C` basic, `C/4 + C` bottleneck), `H = max(C / r, 1)`:
//!   Δt, `w̄`, controller hidden/LSTM state and gates.
//!
//! For the CIFAR ResNet-20 (widths 16/32/64) a folded model needs `A = 3·32·32·16 = 49152`
//! f32 (192 KiB).

#[cfg(feature = "std")]
extern crate std;

pub mod arch;
pub mod controller;
pub mod crc32;
pub mod fold;
pub mod format;
#[cfg(feature = "std")]
pub mod fuzzing;
mod infer;
pub mod layers;
#[cfg(feature = "std")]
pub mod testutil;

pub use arch::{
    Arch, BlockKind, ModelKind, Shape3, ShortcutKind, StageSpec, StepMode, TensorId, BN_EPS,
};
pub use format::{FormatError, Model, TensorView};
pub use infer::{block_forward, infer};
pub use layers::LayerError;

/// Errors of the model-level operations ([`infer`], [`fold::fold`], [`controller`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A model-format problem (including a tensor missing from a model).
    Format(FormatError),
    /// A layer rejected its arguments.
    Layer(LayerError),
    /// A caller buffer has the wrong size (`expected` is the minimum for scratch buffers).
    Len {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// The operation needs the other [`ModelKind`] (e.g. folding a folded model).
    WrongKind,
    /// A stage or block index is out of range.
    Index,
    /// Folding a block with a squeeze-excitation unit needs every Δt > 0 (the gate's
    /// input is rescaled by 1/Δt); this channel's Δt is zero, negative or not finite
    /// (possible with `indp`). Such a checkpoint runs unfolded.
    SeStepNotPositive {
        stage: usize,
        block: usize,
        channel: usize,
    },
}

impl From<FormatError> for Error {
    fn from(e: FormatError) -> Self {
        Error::Format(e)
    }
}

impl From<LayerError> for Error {
    fn from(e: LayerError) -> Self {
        Error::Layer(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Format(e) => write!(f, "{e}"),
            Error::Layer(e) => write!(f, "{e}"),
            Error::Len {
                what,
                expected,
                got,
            } => write!(f, "{what}: expected {expected} elements, got {got}"),
            Error::WrongKind => write!(f, "wrong model kind for this operation"),
            Error::Index => write!(f, "stage or block index out of range"),
            Error::SeStepNotPositive {
                stage,
                block,
                channel,
            } => write!(
                f,
                "cannot fold s{stage}.b{block}: its SE unit needs every step > 0, channel \
                 {channel} has Δt ≤ 0 (run the checkpoint unfolded)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
