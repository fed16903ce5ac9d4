//! Shared plumbing of the non-convolution kernels, and per-column sums.
//!
//! # API
//! - [`Op`]: what every builder in `norm`, `elementwise`, `pool`, `linear`, `loss`, `optim` and
//!   this module returns: the dispatches to replay every step (`op.record(&mut rec)`) and the
//!   scratch/uniform buffers they bind, owned here so a step allocates nothing.
//! - [`column_sum`]`(gpu, a, b, rows, channels, out, scale, accumulate)`: `out[c] (+)= scale ·
//!   Σ_r a[r][c] (· b[r][c])` over a `[rows][channels]` matrix (NHWC activations: rows = N·H·W).
//!   Two-stage and deterministic (see `shaders/reduce.wgsl`). With `channels = 1` it sums a
//!   whole vector, e.g. metrics.
//! - [`sum_all`]`(gpu, a, out, scale, accumulate)`: `out[0] (+)= scale · Σ a`.
//!
//! Shader files hold several entry points, each in a section that starts with a line
//! `//#entry NAME`; the text before the first section (uniform struct, constants) is shared.
//! [`wgsl_section`] cuts one entry's module out, so entries may reuse binding numbers.

use super::{grid_1d, specialize, Dispatch, Gpu, Kernel, Recorder, Slot, Tensor};
use anyhow::{ensure, Result};
use std::sync::Arc;

/// Workgroup size of every 1-D kernel in these shaders.
pub const WG: u32 = 64;

/// A prepared operation: dispatches recorded in order, plus the buffers only they use.
pub struct Op {
    pub dispatches: Vec<Dispatch>,
    /// Scratch, dummy and uniform buffers bound by `dispatches` (kept alive here).
    pub scratch: Vec<wgpu::Buffer>,
}

impl Op {
    /// Queue every dispatch of this op, in order.
    pub fn record(&self, rec: &mut Recorder) {
        for d in &self.dispatches {
            rec.run(d);
        }
    }

    /// Record and submit on its own (tests, one-off use).
    pub fn run(&self, gpu: &Gpu) {
        let mut rec = gpu.recorder();
        self.record(&mut rec);
        rec.submit();
    }
}

/// The shared prelude of `src` followed by the section of entry point `entry`.
pub fn wgsl_section(src: &str, entry: &str) -> String {
    const MARK: &str = "//#entry ";
    let prelude_end = src.find(MARK).unwrap_or(src.len());
    let mut out = src[..prelude_end].to_string();
    let head = format!("{MARK}{entry}\n");
    if let Some(start) = src.find(&head) {
        let body = &src[start + head.len()..];
        let end = body.find(MARK).unwrap_or(body.len());
        out.push_str(&body[..end]);
    }
    out
}

/// One kernel of the tables below: (shader file key, source, entry, slots).
pub struct KernelSpec {
    pub file: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    pub modes: &'static [u32],
    pub slots: &'static [Slot],
}

/// Compile (cached) `spec` specialised with `MODE = mode`.
pub fn compile(gpu: &Gpu, spec: &KernelSpec, mode: u32) -> Result<Arc<Kernel>> {
    let key = format!("{}/{}/m{}", spec.file, spec.entry, mode);
    gpu.kernel(&key, || {
        (
            specialize(&wgsl_section(spec.source, spec.entry), &[("MODE", mode)]),
            spec.entry,
            spec.slots.to_vec(),
        )
    })
}

/// Find `entry` in `table` and compile it.
pub(crate) fn kernel(
    gpu: &Gpu,
    table: &[KernelSpec],
    entry: &str,
    mode: u32,
) -> Result<Arc<Kernel>> {
    let spec = table
        .iter()
        .find(|s| s.entry == entry)
        .unwrap_or_else(|| panic!("no kernel spec for entry {entry}"));
    compile(gpu, spec, mode)
}

/// A uniform buffer of eight 32-bit words.
pub(crate) fn params(gpu: &Gpu, words: [u32; 8]) -> wgpu::Buffer {
    gpu.uniform(&words)
}

/// A one-element buffer bound where a variant does not use a slot.
pub(crate) fn dummy(gpu: &Gpu) -> wgpu::Buffer {
    gpu.zeros(&[1]).buf
}

/// Rows per chunk and number of chunks for a two-stage reduction of `[rows][channels]`:
/// about 16K stage-one invocations, at least 8 rows each.
pub fn chunking(rows: usize, channels: usize) -> (u32, u32) {
    let target = (16384 / channels.max(1)).clamp(1, 4096);
    let chunk = rows.div_ceil(target).max(8);
    let nchunks = rows.div_ceil(chunk).max(1);
    (chunk as u32, nchunks as u32)
}

/// Every kernel of `reduce.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "reduce",
        source: SRC,
        entry: "partial",
        modes: &[0, 1],
        slots: &[Slot::Read, Slot::Read, Slot::ReadWrite, Slot::Uniform],
    },
    KernelSpec {
        file: "reduce",
        source: SRC,
        entry: "finalize",
        modes: &[0, 1],
        slots: &[Slot::Read, Slot::ReadWrite, Slot::Uniform],
    },
];
const SRC: &str = include_str!("../../../shaders/reduce.wgsl");

/// `out[c] = scale · Σ_r a[r][c] · b[r][c]` (`b = None`: without the product); with
/// `accumulate`, added to `out` instead.
#[allow(clippy::too_many_arguments)]
pub fn column_sum(
    gpu: &Gpu,
    a: &Tensor,
    b: Option<&Tensor>,
    rows: usize,
    channels: usize,
    out: &Tensor,
    scale: f32,
    accumulate: bool,
) -> Result<Op> {
    ensure!(
        a.len() == rows * channels,
        "column_sum: a has {} elements, not {rows}×{channels}",
        a.len()
    );
    if let Some(b) = b {
        ensure!(
            b.len() == a.len(),
            "column_sum: b has {} elements, a {}",
            b.len(),
            a.len()
        );
    }
    ensure!(
        out.len() >= channels,
        "column_sum: out holds {} < {channels}",
        out.len()
    );
    let (chunk, nchunks) = chunking(rows, channels);
    let part = gpu.zeros(&[nchunks as usize * channels]).buf;
    let p = params(
        gpu,
        [
            rows as u32,
            channels as u32,
            chunk,
            nchunks,
            scale.to_bits(),
            0,
            0,
            0,
        ],
    );
    let dummy_b = dummy(gpu);
    let bb = b.map(|t| &t.buf).unwrap_or(&dummy_b);
    let k1 = kernel(gpu, KERNELS, "partial", b.is_some() as u32)?;
    let k2 = kernel(gpu, KERNELS, "finalize", accumulate as u32)?;
    let d1 = Dispatch::new(
        gpu,
        &k1,
        &[&a.buf, bb, &part, &p],
        grid_1d(nchunks as usize * channels, WG),
    )?;
    let d2 = Dispatch::new(gpu, &k2, &[&part, &out.buf, &p], grid_1d(channels, WG))?;
    Ok(Op {
        dispatches: vec![d1, d2],
        scratch: vec![part, p, dummy_b],
    })
}

/// `out[0] = scale · Σ a` (or `+=` with `accumulate`).
pub fn sum_all(gpu: &Gpu, a: &Tensor, out: &Tensor, scale: f32, accumulate: bool) -> Result<Op> {
    column_sum(gpu, a, None, a.len(), 1, out, scale, accumulate)
}
