//! Strided convolutions with few input channels (the ImageNet ResNets' 7×7 stride-2 stem on
//! RGB) run as a stride-1 convolution over a space-to-depth copy of the input
//! (`shaders/space_to_depth.wgsl`, which gives the mapping). Why: the direct kernels gather
//! 3-channel pixels lane by lane (3 channels never fill a vec4) and the row kernels need
//! stride 1; after the transform the stem is a 4×4 conv on 12 channels, which the vec4
//! kernels run at the speed of a generic conv. The copy is about the input's size; a patch
//! matrix (im2col, what this replaced) is `kh·kw/s²` = 12× the input for the stem, which at
//! ImageNet batch sizes outgrows a storage binding (batch 18 on lavapipe's 128 MiB).
//! The transform adds zero taps: 4·4·12 = 192 multiply-adds per output for the stem's 147.
//!
//! Derivation, for a k×k stride-s pad-p conv: output `oy` reads x rows `s·oy − p + ky`. With
//! `e = (s − p mod s) mod s` and `p + e = s·m`, write `ky + e = s·ay + by` (`by < s`): the row
//! is `s·(oy + ay − m) + by`, i.e. row `oy + ay` of the space-to-depth image whose row `Y`
//! holds x rows `s(Y − m) .. s(Y − m) + s`. Columns likewise. So `y = conv(xs, ws)` with an
//! `A × A` kernel (`A = ceil((k + e) / s)`), stride 1, pad 0, `xs` of `Ho + A − 1` rows.
//!
//! `conv_forward_with` / `conv_backward_data_with` / `conv_backward_weights_with` route the
//! shapes [`applies`] accepts here, with the tile they were given used for the inner conv
//! ([`inner`]), so callers and tests see one convolution API. Scratch (owned by the
//! dispatches): `xs` (or its gradient) and the rearranged weights (or their gradient).

use super::conv::{
    conv_backward_data_with, conv_backward_weights_with, conv_forward_with, ConvShape, Tile,
};
use super::reduce::{kernel, KernelSpec};
use super::{grid_1d, Dispatch, Gpu, Slot, Tensor};
use anyhow::{ensure, Result};
use Slot::{Read as R, ReadWrite as W, Uniform as U};

const SRC: &str = include_str!("../../../shaders/space_to_depth.wgsl");
const WG: u32 = 64;

/// Every kernel of `space_to_depth.wgsl`.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        file: "space_to_depth",
        source: SRC,
        entry: "input",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "space_to_depth",
        source: SRC,
        entry: "input_adjoint",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "space_to_depth",
        source: SRC,
        entry: "weights",
        modes: &[0],
        slots: &[R, W, U],
    },
    KernelSpec {
        file: "space_to_depth",
        source: SRC,
        entry: "weights_adjoint",
        modes: &[0, 1],
        slots: &[R, W, U],
    },
];

/// Whether `s` runs through the space-to-depth copy: ungrouped, fewer than 4 input channels,
/// stride ≥ 2, and at least 48 taps per output (a 7×7 RGB stem has 147; ResNet-20's 3×3 RGB
/// stem, 27, stays on the row kernels, and a 3×3 stride-2 one would double its FLOPs).
pub fn applies(s: &ConvShape) -> bool {
    s.groups == 1 && s.cin < 4 && s.stride >= 2 && s.kh * s.kw * s.cin >= 48
}

/// The transform's constants for `s` (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Geometry {
    /// Taps prepended to the kernel so that the padding is a whole number of blocks.
    e: usize,
    /// `(pad + e) / stride`: row `Y` of `xs` starts at x row `stride·(Y − m)`.
    m: usize,
    /// Kernel rows and columns of the inner conv.
    ay: usize,
    ax: usize,
    /// Channels of `xs`: `stride²·cin` rounded up to a multiple of 4.
    cp: usize,
}

fn geometry(s: &ConvShape) -> Geometry {
    let st = s.stride;
    let e = (st - s.pad % st) % st;
    Geometry {
        e,
        m: (s.pad + e) / st,
        ay: (s.kh + e).div_ceil(st),
        ax: (s.kw + e).div_ceil(st),
        cp: (st * st * s.cin).div_ceil(4) * 4,
    }
}

/// The stride-1 convolution over the space-to-depth copy that computes `s` (its tiles are
/// the ones to pick for `s`).
pub fn inner(s: &ConvShape) -> ConvShape {
    let g = geometry(s);
    ConvShape {
        n: s.n,
        h: s.out_h() + g.ay - 1,
        w: s.out_w() + g.ax - 1,
        cin: g.cp,
        cout: s.cout,
        kh: g.ay,
        kw: g.ax,
        stride: 1,
        pad: 0,
        groups: 1,
    }
}

fn params(gpu: &Gpu, s: &ConvShape, total: usize) -> wgpu::Buffer {
    let (g, si) = (geometry(s), inner(s));
    let w = [
        s.n, s.h, s.w, s.cin, si.h, si.w, g.cp, s.stride, g.m, g.e, g.ay, g.ax, s.kh, s.kw, s.cout,
        total,
    ]
    .map(|v| v as u32);
    gpu.uniform(&w)
}

/// One dispatch of `entry` reading `a`, writing `b`.
fn run(
    gpu: &Gpu,
    entry: &str,
    mode: u32,
    (a, b): (&Tensor, &Tensor),
    p: &wgpu::Buffer,
    groups: [u32; 3],
) -> Result<Dispatch> {
    let k = kernel(gpu, KERNELS, entry, mode)?;
    Dispatch::new(gpu, &k, &[&a.buf, &b.buf, p], groups)
}

/// A grid of one invocation per pixel of an `[n][h][w]` image (x: columns in workgroups of
/// 64, y: rows, z: images), checked against the 65535 workgroups per dimension every adapter
/// allows.
fn pixel_grid(n: usize, h: usize, w: usize) -> Result<[u32; 3]> {
    let g = [w.div_ceil(WG as usize), h, n];
    ensure!(
        g.iter().all(|&v| v <= 65535),
        "space-to-depth: a grid of {n} images of {h}×{w} pixels exceeds 65535 workgroups in \
         one dimension"
    );
    Ok(g.map(|v| v as u32))
}

/// The space-to-depth copy of `x` and its dispatch.
fn input(gpu: &Gpu, s: &ConvShape, x: &Tensor) -> Result<(Tensor, Dispatch)> {
    let si = inner(s);
    let xs = gpu.zeros(&si.x_shape());
    let groups = pixel_grid(si.n, si.h, si.w)?;
    let d = run(gpu, "input", 0, (x, &xs), &params(gpu, s, 0), groups)?;
    Ok((xs, d))
}

/// The rearranged weights `[Cout][Ay][Ax][CP]` and their dispatch.
fn weights(gpu: &Gpu, s: &ConvShape, w: &Tensor) -> Result<(Tensor, Dispatch)> {
    let ws = gpu.zeros(&inner(s).w_shape());
    let total = ws.len();
    let p = params(gpu, s, total);
    let d = run(gpu, "weights", 0, (w, &ws), &p, grid_1d(total, WG))?;
    Ok((ws, d))
}

/// `y = conv(x, w) (+ bias)`: the rearranged weights, the copy, then the inner conv.
pub fn forward(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<Vec<Dispatch>> {
    let (ws, d0) = weights(gpu, s, w)?;
    let (xs, d1) = input(gpu, s, x)?;
    let mut ds = vec![d0, d1];
    ds.extend(conv_forward_with(gpu, &inner(s), tile, &xs, &ws, bias, y)?);
    Ok(ds)
}

/// `dx` from `dy`: the inner conv's backward to its input, then the copy's adjoint (a
/// one-element gather per input value). Overwrites `dx`.
pub fn backward_data(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Vec<Dispatch>> {
    let si = inner(s);
    let (ws, d0) = weights(gpu, s, w)?;
    let dxs = gpu.zeros(&si.x_shape());
    let mut ds = vec![d0];
    ds.extend(conv_backward_data_with(gpu, &si, tile, dy, &ws, &dxs)?);
    let groups = pixel_grid(s.n, s.h, s.w)?;
    ds.push(run(
        gpu,
        "input_adjoint",
        0,
        (&dxs, dx),
        &params(gpu, s, 0),
        groups,
    )?);
    Ok(ds)
}

/// `dw` (`accumulate`: `+=`) from `x` and `dy`: the copy, the inner conv's backward to its
/// weights (deterministic chunked reduction), then the rearrangement's adjoint.
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
    let (xs, d0) = input(gpu, s, x)?;
    let dws = gpu.zeros(&si.w_shape());
    let mut ds = vec![d0];
    ds.extend(conv_backward_weights_with(
        gpu, &si, tile, &xs, dy, &dws, false,
    )?);
    let total = dw.len();
    let p = params(gpu, s, total);
    let mode = accumulate as u32;
    ds.push(run(
        gpu,
        "weights_adjoint",
        mode,
        (&dws, dw),
        &p,
        grid_1d(total, WG),
    )?);
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inner conv has the original's output size and a kernel that covers every tap
    /// (checked against a brute-force walk of the mapping for many strides, pads, kernels).
    #[test]
    fn geometry_covers_every_tap_once() {
        for st in 2..=4 {
            for k in 1..=9 {
                for pad in 0..=4 {
                    for h in [k.max(1), 13, 16] {
                        let s = ConvShape::square(1, h, 3, 8, k, st, pad);
                        if h + 2 * pad < k {
                            continue;
                        }
                        let (g, si) = (geometry(&s), inner(&s));
                        assert_eq!((si.out_h(), si.out_w()), (s.out_h(), s.out_w()), "{s:?}");
                        // every original tap ky maps to one (ay, by) inside the inner kernel
                        let mut seen = vec![0; g.ay * st];
                        for ky in 0..k {
                            let t = ky + g.e;
                            assert!(t / st < g.ay, "{s:?}");
                            seen[t] += 1;
                            // the row it reads is the inner conv's row oy + ay, block row by
                            for oy in 0..s.out_h() {
                                let orig = (st * oy + ky) as i64 - pad as i64;
                                let via = (st * (oy + t / st)) as i64 - (st * g.m) as i64
                                    + (t % st) as i64;
                                assert_eq!(orig, via, "{s:?} oy {oy} ky {ky}");
                            }
                        }
                        assert!(seen.iter().all(|&c| c <= 1));
                    }
                }
            }
        }
    }
}
