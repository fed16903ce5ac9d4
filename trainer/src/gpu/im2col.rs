//! Convolutions with few input channels and a large kernel or stride (the ImageNet ResNets'
//! 7×7 stride-2 stem on RGB) run as a patch matrix (`im2col`) and a 1×1 convolution over it
//! (`shaders/im2col.wgsl`). The direct kernels gather such inputs lane by lane (3 channels
//! never fill a vec4) and the row kernels need stride 1; the 1×1 path reads whole vec4s.
//! Measured on lavapipe at batch 2 (`trainer bench kernels --shapes imagenet --only stem`):
//! the stem went from 3.2 GF/s forward / 3.0 GF/s dW to about the 1×1 convs' speed.
//!
//! `conv_forward_with` / `conv_backward_data_with` / `conv_backward_weights_with` route the
//! shapes [`applies`] accepts here, with the tile they were given used for the inner 1×1
//! conv, so callers and tests see one convolution API. Scratch (owned by the dispatches):
//! the patch matrix `[N·Ho·Wo][KP]` (`KP` = `kh·kw·cin` rounded up to a multiple of 4) and
//! the zero-padded weights `[Cout][KP]`.

use super::conv::{
    conv_backward_data_with, conv_backward_weights_with, conv_forward_with, ConvShape, Tile,
};
use super::reduce::{kernel, KernelSpec};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::Result;
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/im2col.wgsl");
const WG: u32 = 64;

/// Every kernel of `im2col.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "im2col",
        source: SRC,
        entry: "im2col",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "im2col",
        source: SRC,
        entry: "col2im",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "im2col",
        source: SRC,
        entry: "pad_rows",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "im2col",
        source: SRC,
        entry: "unpad_rows",
        modes: &[0, 1],
        slots: &[R, W, U],
    },
];

/// Whether `s` runs through the patch matrix: ungrouped, fewer than 4 input channels, and at
/// least 48 taps per output (a 7×7 RGB stem has 147; ResNet-20's 3×3 RGB stem, 27, stays on
/// the row kernels).
pub fn applies(s: &ConvShape) -> bool {
    s.groups == 1 && s.cin < 4 && s.kh * s.kw * s.cin >= 48
}

/// Taps per output `K` and the padded row length `KP`.
fn taps(s: &ConvShape) -> (usize, usize) {
    let k = s.kh * s.kw * s.cin;
    (k, k.div_ceil(4) * 4)
}

/// The 1×1 convolution over the patch matrix that computes `s` (its tiles are the ones to
/// pick for `s`).
pub fn inner(s: &ConvShape) -> ConvShape {
    ConvShape {
        n: s.n,
        h: s.out_h(),
        w: s.out_w(),
        cin: taps(s).1,
        cout: s.cout,
        kh: 1,
        kw: 1,
        stride: 1,
        pad: 0,
        groups: 1,
    }
}

fn params(gpu: &Gpu, s: &ConvShape, total: usize) -> wgpu::Buffer {
    let (k, kp) = taps(s);
    let w = [
        s.n,
        s.h,
        s.w,
        s.cin,
        s.out_h(),
        s.out_w(),
        s.kh,
        s.kw,
        s.stride,
        s.pad,
        k,
        kp,
        s.cout,
        total,
        0,
        0,
    ]
    .map(|v| v as u32);
    gpu.uniform(&w)
}

fn run(
    gpu: &Gpu,
    entry: &str,
    mode: u32,
    a: &Tensor,
    b: &Tensor,
    p: &wgpu::Buffer,
    n: usize,
) -> Result<Dispatch> {
    let k = kernel(gpu, KERNELS, entry, mode)?;
    Dispatch::new(gpu, &k, &[&a.buf, &b.buf, p], grid_1d(n, WG))
}

/// The patch matrix of `x` and its dispatch (one invocation per patch row and kernel row).
fn patches(gpu: &Gpu, s: &ConvShape, x: &Tensor) -> Result<(Tensor, Dispatch)> {
    let si = inner(s);
    let col = gpu.zeros(&si.x_shape());
    let total = s.n * s.out_h() * s.out_w() * s.kh;
    let d = run(gpu, "im2col", 0, x, &col, &params(gpu, s, total), total)?;
    Ok((col, d))
}

/// The weights `[Cout][K]` with zero columns to `[Cout][KP]`, and the dispatch.
fn padded_weights(gpu: &Gpu, s: &ConvShape, w: &Tensor) -> Result<(Tensor, Dispatch)> {
    let wp = gpu.zeros(&inner(s).w_shape());
    let total = wp.len();
    let d = run(gpu, "pad_rows", 0, w, &wp, &params(gpu, s, total), total)?;
    Ok((wp, d))
}

/// `y = conv(x, w) (+ bias)`: patches, padded weights, then the 1×1 forward with `tile`.
pub fn forward(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<Vec<Dispatch>> {
    let (wp, d0) = padded_weights(gpu, s, w)?;
    let (col, d1) = patches(gpu, s, x)?;
    let mut ds = vec![d0, d1];
    ds.extend(conv_forward_with(gpu, &inner(s), tile, &col, &wp, bias, y)?);
    Ok(ds)
}

/// `dx` from `dy`: the 1×1 backward to its input (the patch matrix), then its adjoint
/// `col2im` (a gather: deterministic). Overwrites `dx`.
pub fn backward_data(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Vec<Dispatch>> {
    let si = inner(s);
    let (wp, d0) = padded_weights(gpu, s, w)?;
    let dcol = gpu.zeros(&si.x_shape());
    let mut ds = vec![d0];
    ds.extend(conv_backward_data_with(gpu, &si, tile, dy, &wp, &dcol)?);
    let total = dx.len();
    ds.push(run(
        gpu,
        "col2im",
        0,
        &dcol,
        dx,
        &params(gpu, s, total),
        total,
    )?);
    Ok(ds)
}

/// `dw` (`accumulate`: `+=`) from `x` and `dy`: patches, the 1×1 backward to its weights
/// (deterministic chunked reduction), then the zero columns dropped.
pub fn backward_weights(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let si = inner(s);
    let (col, d0) = patches(gpu, s, x)?;
    let gp = gpu.zeros(&si.w_shape());
    let mut ds = vec![d0];
    ds.extend(conv_backward_weights_with(
        gpu, &si, tile, &col, dy, &gp, false,
    )?);
    let total = dw.len();
    ds.push(run(
        gpu,
        "unpad_rows",
        accumulate as u32,
        &gp,
        dw,
        &params(gpu, s, total),
        total,
    )?);
    Ok(ds)
}
