//! 2-D convolution on the GPU: forward, backward to the input, backward to the weights, each an
//! implicit GEMM with register blocking (`shaders/conv_*.wgsl`; f64 reference in
//! `crate::reference::conv`).
//!
//! Layouts (docs/DESIGN.md): x `[N,H,W,Cin]` (NHWC), w `[Cout,kh,kw,Cin/G]` (OHWI),
//! y `[N,Ho,Wo,Cout]`, `Ho = (H + 2·pad − kh)/stride + 1`. Any kernel size, stride, zero padding
//! and group count (`G` divides `Cin` and `Cout`).
//!
//! # API: build once, replay every step
//! ```ignore
//! let s = ConvShape { n: 128, h: 32, w: 32, cin: 16, cout: 32, kh: 3, kw: 3, stride: 2, pad: 1, groups: 1 };
//! let fwd = conv_forward(&gpu, &s, &x, &w, Some(&b), &y)?;          // y = conv(x, w) + b
//! let bwd_x = conv_backward_data(&gpu, &s, &dy, &w, &dx)?;          // dx = ∂L/∂x (overwrites)
//! let bwd_w = conv_backward_weights(&gpu, &s, &x, &dy, &dw, false)?; // dw = ∂L/∂w (true: dw += ∂L/∂w)
//! // every step:
//! let mut rec = gpu.recorder();
//! for d in fwd.iter().chain(&bwd_x).chain(&bwd_w) { rec.run(d); }
//! rec.submit();
//! ```
//! Each call returns the `Dispatch`es to record, in order. Scratch buffers (the re-laid-out
//! weights of the backward-to-input, the per-chunk partial sums of the backward-to-weights) are
//! allocated once here and kept alive by the dispatches' bind groups; replaying allocates
//! nothing. Uniform parameters are baked in, so a `Dispatch` is tied to its shape and tensors.
//! A fully connected layer `y = x·Wᵀ + b` is this conv with `h = w = kh = kw = 1`.
//!
//! Tile shapes (`Tile`) are template constants chosen per adapter (`default_tile`): big
//! register tiles on CPU adapters such as lavapipe, 4×4 per invocation and 64-invocation
//! workgroups on GPUs. On CPU adapters a short run caps them (`budget_tile`: a 32×32 tile
//! costs lavapipe a minute or more of JIT, which a few hundred steps never repay; the run's
//! length comes from `Gpu::set_expected_images`). `crate::gpu::tune` can time a few candidates on the actual shape instead
//! (`TSC_AUTOTUNE=1`, cached per shape in-process). The `*_with` variants take an explicit tile.
//!
//! Vector width: loads along the contiguous channel axis are vec4 when that axis is a multiple
//! of 4 (`Cin/G` for forward and backward-to-weights, `Cout/G` for backward-to-input), scalar
//! otherwise (the RGB stem); the two preludes `conv_vec4.wgsl` / `conv_scalar.wgsl` define it.
//!
//! Operand source (`Tile::tex`): on CPU adapters the big operands are read through
//! `rgba32float` texture mirrors (`crate::gpu::texture`) when their channel axis is vec4. On
//! lavapipe a storage-buffer load whose address differs per lane becomes a loop over the SIMD
//! lanes with a branch per component, a `textureLoad` a vectorised fetch; the mirror costs one
//! memcpy-like upload per dispatch. GPUs read storage buffers.
//!
//! # What limits each kernel (lavapipe; see `trainer bench kernels`)
//! All three are barrier-free register-blocked GEMMs whose cost on a CPU adapter is operand
//! fetches (one per vec4, per lane) against FMAs on the register tile, which spills to the
//! stack at these sizes. The tile is written out as named scalars by the host: lavapipe lowers
//! dynamically indexed private arrays to compare-and-select chains (7x slower).
//! - forward: per 4 input channels and tap, `tm` x fetches and `tn` weight fetches (the same
//!   address in every lane, still fetched lane by lane) feed `tm·tn` 4-term dots into scalar
//!   accumulators. 32 pixels × up to 32 channels; with 16 output channels the weight fetches
//!   are amortised over half the FMAs, so the 16-channel stage is the slowest (~60% of the
//!   32/64-channel shapes' GFLOP/s).
//! - backward-to-input: same structure along Cout over the taps that hit an input pixel
//!   (phase split for stride 2, so no wasted taps); plus a tiny weight re-layout dispatch.
//! - backward-to-weights: split-K over pixel chunks, then an in-order chunk reduction (reads
//!   `nchunks`·|W| floats). With vec4 channel axes the dot form (`conv_bwd_weights_dot.wgsl`):
//!   4 pixels per iteration, transposed in registers, one dot per scalar accumulator (the
//!   outer-product form, `conv_bwd_weights.wgsl`, for other channel counts, loads and stores a
//!   spilled vec4 accumulator per vec4 FMA: 1.2–1.3x slower).
//! - the RGB stem (3 input channels, stride 1; `row_kernel`) has its own forward and
//!   backward-to-weights (`conv_fwd_row.wgsl`, `conv_bwd_weights_row.wgsl`): per kernel row, the
//!   input pixels a segment of one output row touches are one contiguous NHWC run, loaded once
//!   as vec4s and reused by every horizontal tap; weights (forward, re-laid out
//!   `[kh][kw][Cin][Cout]`) and dy (dW) are vec4 along output channels; texture operands on
//!   CPU adapters too (1.15x for both). The forward is straight code rather than a loop over
//!   kernel rows that carries the 32×16 register tile (1.2–1.3x), ordered so each
//!   accumulator takes all its kh·kw·Cin terms in a row (another ~1.08x); ~13–17 GFLOP/s. The
//!   stem's dX (training never runs it: the image needs no gradient) is the forward conv over
//!   dy with exactly 3 output channels per tile, 4 output rows per invocation
//!   (`conv_fwd_rows.wgsl`: the 6 input rows they read are fetched once; 1.16–1.24x).
//!
//! What did not help on lavapipe (measured, not shipped): straight-line kernels with every loop
//! unrolled and every weight offset a constant (scalar loads at constant offsets outside
//! control flow are broadcast to the 8 lanes, but per-pixel tiles then reload each weight per
//! pixel: 8–13.5 GFLOP/s at 16->16, and 2+ pixel tiles took minutes to JIT); unrolling the
//! channel loop of `conv_fwd.wgsl` twice (slower in 3 of 3 alternating pairs).

use super::texture::{mirror_if, operand_decl, read_res, read_slot};
use super::{grid_1d, specialize, Dispatch, Gpu, Res, Slot, Tensor};
use anyhow::{bail, ensure, Result};

const PRE_VEC4: &str = include_str!("../../../shaders/conv_vec4.wgsl");
const PRE_SCALAR: &str = include_str!("../../../shaders/conv_scalar.wgsl");
const FWD: &str = include_str!("../../../shaders/conv_fwd.wgsl");
const FWD_RUNS: &str = include_str!("../../../shaders/conv_fwd_runs.wgsl");
const FWD_ROWS: &str = include_str!("../../../shaders/conv_fwd_rows.wgsl");
const WTRANS: &str = include_str!("../../../shaders/conv_wtrans.wgsl");
const BWD_DATA: &str = include_str!("../../../shaders/conv_bwd_data.wgsl");
const BWD_W: &str = include_str!("../../../shaders/conv_bwd_weights.wgsl");
const BWD_W_DOT: &str = include_str!("../../../shaders/conv_bwd_weights_dot.wgsl");
const BWD_W_REDUCE: &str = include_str!("../../../shaders/conv_bwd_weights_reduce.wgsl");
const FWD_ROW: &str = include_str!("../../../shaders/conv_fwd_row.wgsl");
const BWD_W_ROW: &str = include_str!("../../../shaders/conv_bwd_weights_row.wgsl");

/// The shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvShape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvShape {
    /// A square `k×k` convolution without groups.
    #[allow(clippy::too_many_arguments)]
    pub fn square(
        n: usize,
        hw: usize,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        ConvShape {
            n,
            h: hw,
            w: hw,
            cin,
            cout,
            kh: k,
            kw: k,
            stride,
            pad,
            groups: 1,
        }
    }
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.kh) / self.stride + 1
    }
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.kw) / self.stride + 1
    }
    /// FLOPs of each of the three kernels: 2·N·Ho·Wo·Cout·kh·kw·Cin/G.
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.out_h() * self.out_w() * self.cout * self.kh * self.kw) as f64
            * (self.cin / self.groups) as f64
    }
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.cin]
    }
    pub fn w_shape(&self) -> [usize; 4] {
        [self.cout, self.kh, self.kw, self.cin / self.groups]
    }
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.out_h(), self.out_w(), self.cout]
    }
    /// Errors for shapes the kernels cannot run (bad groups, empty output, u32 overflow).
    pub fn validate(&self) -> Result<()> {
        let s = self;
        ensure!(
            s.n > 0 && s.h > 0 && s.w > 0 && s.cin > 0 && s.cout > 0 && s.kh > 0 && s.kw > 0,
            "conv {s:?}: every dimension must be positive"
        );
        ensure!(
            s.stride > 0 && s.groups > 0,
            "conv {s:?}: stride and groups must be positive"
        );
        let (rest_in, rest_out) = (s.cin % s.groups, s.cout % s.groups);
        ensure!(
            rest_in == 0 && rest_out == 0,
            "conv {s:?}: groups must divide Cin and Cout"
        );
        ensure!(
            s.h + 2 * s.pad >= s.kh && s.w + 2 * s.pad >= s.kw,
            "conv {s:?}: kernel larger than the padded input"
        );
        let biggest = [
            s.x_shape().iter().product::<usize>(),
            s.y_shape().iter().product::<usize>(),
            s.w_shape().iter().product::<usize>(),
        ];
        ensure!(
            biggest.iter().all(|&l| l < (1 << 31)),
            "conv {s:?}: tensors over 2^31 elements are not supported"
        );
        Ok(())
    }
}

/// Which of the three convolution kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pass {
    Forward,
    BackwardData,
    BackwardWeights,
}

/// Register tile of one invocation and workgroup size.
/// Forward: `tm` output pixels × `tn` output channels. Backward-to-input: `tm` input pixels ×
/// `tn` input channels. Backward-to-weights: `tm` output channels × `tn` input channels of one
/// tap, over a chunk of pixels. For shapes the row kernels take (`row_kernel`, the RGB stem):
/// forward `tm` consecutive pixels of an output row × `tn` output channels; backward-to-weights
/// `tm` output channels × all taps of one kernel row, over segments of `tn` pixels of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub tm: u32,
    pub tn: u32,
    pub wg: u32,
    /// Read the big operands through texture mirrors (`crate::gpu::texture`) where the
    /// channel axis is vec4: the fast path on CPU adapters, where storage-buffer gathers go
    /// lane by lane. Storage buffers otherwise.
    pub tex: bool,
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}/wg{}", self.tm, self.tn, self.wg)?;
        if self.tex {
            write!(f, "/tex")?;
        }
        Ok(())
    }
}

/// The tile used when nothing was tuned: big register tiles on CPU adapters (few SIMD lanes,
/// loads are the cost), 4×4 per invocation in 64-wide workgroups on GPUs (registers are the
/// cost). Channel tiles never exceed the channel count they tile.
pub fn default_tile(gpu: &Gpu, pass: Pass, s: &ConvShape) -> Tile {
    default_tile_for(gpu.is_cpu(), pass, s)
}

/// `default_tile` for a CPU (`cpu`) or GPU adapter (tests check both kinds on any adapter).
pub fn default_tile_for(cpu: bool, pass: Pass, s: &ConvShape) -> Tile {
    if super::space_to_depth::applies(s) {
        // The tile is the inner stride-1 conv's (`space_to_depth`).
        return default_tile_for(cpu, pass, &super::space_to_depth::inner(s));
    }
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    let fit = |t: u32, c: usize| t.min((c as u32).next_power_of_two()).max(1);
    if cpu {
        // Measured on lavapipe with texture operands (`bench kernels --versus`, alternating
        // runs, ResNet-20 shapes at batch 128): 32 pixels per invocation beat 16 for the
        // forward and backward-to-input at every shape (time ratios 0.80–0.93; 16->16:
        // 32×16 0.89–0.92, 64×16 0.84–0.90 but a larger shader), and 32 channels beat 16 once
        // there are 32+ to tile; the RGB stem (scalar loads) also wants 32 pixels.
        let tm = 32;
        if row_kernel(s) {
            // Row kernels (RGB stem), measured on lavapipe (same-run A/B, batch 128, 30 reps):
            // forward 32 pixels of a row × 16 output channels (vs 16×16: 17–24 ms against
            // 22–27 ms in 4 of 4 rounds of 60 reps; 16×4 and 8×16 slower);
            // backward-to-weights 16 output channels × segments of 4 pixels (idle 19 GF/s vs
            // 11–14 for 8 or 16 pixels, 6 for 32 output channels).
            match pass {
                Pass::Forward => {
                    return Tile {
                        tm: 32,
                        tn: fit(16, cog),
                        wg: 8,
                        tex: true,
                    }
                }
                Pass::BackwardWeights => {
                    return Tile {
                        tm: fit(16, cog),
                        tn: 4,
                        wg: 8,
                        tex: true,
                    }
                }
                Pass::BackwardData => {}
            }
        }
        match pass {
            // Stride 2 with 16-pixel output rows (16->32 s2 @32): the row-run kernel on 16-pixel
            // segments (time ratio 0.90–0.93 against 32 pixels through `conv_fwd.wgsl`; with
            // 8-pixel rows, 32->64 s2 @16, the run kernel lost: 1.27).
            Pass::Forward if s.stride == 2 && s.out_w() % 32 == 16 => Tile {
                tm: 16,
                tn: fit(32, cog),
                wg: 8,
                tex: true,
            },
            // Fewer than 4 output channels: exactly that many, as for the backward-to-input.
            Pass::Forward => Tile {
                tm,
                tn: if cog < 4 { cog as u32 } else { fit(32, cog) },
                wg: 8,
                tex: true,
            },
            // Strided, 32 pixels also let the few taps of each phase (2.25 on average for 3×3
            // stride 2) reload the weights half as often.
            // Fewer than 4 input channels (the stem's dX): exactly that many, not a clamped
            // power of two (3 vs 4: time ratio 0.83).
            Pass::BackwardData => Tile {
                tm,
                tn: if cg < 4 { cg as u32 } else { fit(32, cg) },
                wg: 8,
                tex: true,
            },
            // Dot form (`conv_bwd_weights_dot.wgsl`): 32 output channels once there are 32+
            // input channels too (time ratios 0.87–0.92 against 16 at ResNet-20's 32- and
            // 64-channel shapes; 1.05, i.e. noise, for 16->32).
            Pass::BackwardWeights => Tile {
                tm: if cg >= 32 { fit(32, cog) } else { fit(16, cog) },
                tn: fit(32, cg),
                wg: 8,
                tex: true,
            },
        }
    } else {
        match pass {
            Pass::Forward => Tile {
                tm: 4,
                tn: fit(4, cog),
                wg: 64,
                tex: false,
            },
            Pass::BackwardData => Tile {
                tm: 4,
                tn: fit(4, cg),
                wg: 64,
                tex: false,
            },
            Pass::BackwardWeights => Tile {
                tm: fit(4, cog),
                tn: fit(4, cg),
                wg: 64,
                tex: false,
            },
        }
    }
}

/// The largest tile side worth its JIT for `work` FLOPs (the expected images × one image's
/// FLOPs of the pass) on a CPU adapter. Measured on lavapipe: a conv forward JITs in 1.2 s
/// with 8×8 tiles, 6 s with 16×16 and 25–105 s with the default (32-wide) tiles (first
/// dispatch, Mesa's cache off); at ResNet-20's batch-128 shapes 8×8 tiles take 1.05–2.0× the
/// default tiles' time (typically 1.45×) and 16×16 tiles 0.89–1.27× (typically 1.1×;
/// `trainer bench kernels --versus 8x8/tex`, `--versus 16x16/tex`, one run each). With the
/// layers of a stage sharing one kernel (5–6 in ResNet-20) at ~15–20 GFLOP/s, the 16×16
/// tile's extra 5 s of JIT pays for itself from about 100 GFLOP per layer, the default tile's
/// extra minute or more from about 2 TFLOP (ResNet-20 over 400k+ CIFAR images).
pub fn tile_cap(work: f64) -> u32 {
    if work < 100e9 {
        8
    } else if work < 2e12 {
        16
    } else {
        u32::MAX
    }
}

/// `t` with both tile sides at most `cap` (channel tiles smaller than `cap` stay as they are).
pub fn capped(t: Tile, cap: u32) -> Tile {
    Tile {
        tm: t.tm.min(cap),
        tn: t.tn.min(cap),
        ..t
    }
}

/// The default tile for a run that passes `images` images through `pass` on `s` (batch
/// `s.n`): on CPU adapters capped by `tile_cap` (a short run, such as the quickstart or a
/// test, must not spend minutes compiling tiles it runs a few hundred times), else
/// `default_tile_for`.
pub fn budget_tile_for(cpu: bool, pass: Pass, s: &ConvShape, images: u64) -> Tile {
    let t = default_tile_for(cpu, pass, s);
    if !cpu {
        return t;
    }
    capped(t, tile_cap(images as f64 * s.flops() / s.n as f64))
}

/// `budget_tile_for` on `gpu` with its `expected_images`.
pub fn budget_tile(gpu: &Gpu, pass: Pass, s: &ConvShape) -> Tile {
    budget_tile_for(gpu.is_cpu(), pass, s, gpu.expected_images())
}

/// The tile a pass will use: the tuned one when `TSC_AUTOTUNE=1`, else `budget_tile`.
pub fn pick_tile(gpu: &Gpu, pass: Pass, s: &ConvShape) -> Result<Tile> {
    super::tune::conv_tile(gpu, pass, s)
}

/// 4 when `c` channels can be loaded as vec4 (a multiple of 4), else 1.
pub(crate) fn vec_width(c: usize) -> u32 {
    match c % 4 {
        0 => 4,
        _ => 1,
    }
}

/// The vector-width prelude for `v` = 4 or 1.
pub(crate) fn prelude(v: u32) -> &'static str {
    if v == 4 {
        PRE_VEC4
    } else {
        PRE_SCALAR
    }
}

/// Workgroup counts for `items` invocations along x in groups of `wg`, `y` along y; x is folded
/// into z past 65535 (shaders use `wid.x + wid.z · nwg.x`).
pub(crate) fn grid_xz(items: usize, wg: u32, y: usize) -> Result<[u32; 3]> {
    ensure!(y <= 65535, "too many channel tiles for one dispatch ({y})");
    let groups = items.div_ceil(wg as usize).max(1);
    let z = groups.div_ceil(65535);
    ensure!(z <= 65535, "dispatch too large ({items} invocations)");
    Ok([groups.div_ceil(z) as u32, y as u32, z as u32])
}

/// `pat` once per `i` in `0..n`, with `$i` replaced by the index.
fn rep(n: u32, pat: &str) -> String {
    (0..n).map(|i| pat.replace("$i", &i.to_string())).collect()
}

/// `pat` once per `(i, j)` in `0..n × 0..m`, with `$i` and `$j` replaced.
fn rep2(n: u32, m: u32, pat: &str) -> String {
    (0..n)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| {
            pat.replace("$i", &i.to_string())
                .replace("$j", &j.to_string())
        })
        .collect()
}

/// Fill a template's generated blocks (`{{NAME}}` → code) before `specialize`.
fn blocks(src: &str, parts: &[(&str, String)]) -> String {
    let mut s = src.to_string();
    for (k, v) in parts {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

/// Forward source for a `tm × tn` register tile, vector width `v`.
pub(crate) fn fwd_source(tile: Tile, v: u32) -> String {
    let (tm, tn) = (tile.tm, tile.tn);
    let tex = tile.tex && v == 4;
    let body = blocks(
        FWD,
        &[
            ("X_DECL", operand_decl(0, "x", "VT", tex)),
            ("W_DECL", operand_decl(1, "wt", "VT", tex)),
            (
                "PIXELS",
                rep(
                    tm,
                    "    let pm$i = m0 + $iu;\n    let mm$i = min(pm$i, p.m - 1u);\n    let r$i = mm$i % hw;\n    \
                     let nb$i = (mm$i / hw) * p.h;\n    \
                     let iy$i = select(-1000000, i32(r$i / p.wo) * s - i32(p.pad), pm$i < p.m);\n    \
                     let ix$i = i32(r$i % p.wo) * s - i32(p.pad);\n",
                ),
            ),
            (
                "SETUP",
                rep(tn, "    let wb$j = (g * p.cog + min(co0 + $ju, p.cog - 1u)) * ksz;\n".replace("$j", "$i").as_str())
                    + &rep2(tm, tn, "    var acc$i_$j = 0.0;\n"),
            ),
            (
                "TAP",
                rep(
                    tm,
                    "            let ty$i = iy$i + i32(ky);\n            let tx$i = ix$i + i32(kx);\n            \
                     let ok$i = ty$i >= 0 && ty$i < i32(p.h) && tx$i >= 0 && tx$i < i32(p.w);\n            \
                     let xa$i = select(0u, ((nb$i + u32(ty$i)) * p.w + u32(tx$i)) * p.cin + cbase, ok$i);\n            \
                     let xm$i = select(0.0, 1.0, ok$i);\n",
                ),
            ),
            (
                "BODY",
                rep(tm, "                let a$i = ld_x((xa$i + c) / V) * xm$i;\n")
                    + &(0..tn)
                        .map(|j| {
                            format!("                let b{j} = ld_wt((wb{j} + wo + c) / V);\n")
                                + &rep(tm, &format!("                acc$i_{j} = mac(acc$i_{j}, a$i, b{j});\n"))
                        })
                        .collect::<String>(),
            ),
            (
                "STORE",
                rep2(
                    tm,
                    tn,
                    "    if (m0 + $iu < p.m && co0 + $ju < p.cog) {\n        let oc = g * p.cog + co0 + $ju;\n        \
                     y[(m0 + $iu) * p.cout + oc] = acc$i_$j + select(0.0, bias[oc], p.has_bias != 0u);\n    }\n",
                ),
            ),
        ],
    );
    let body = specialize(&body, &[("TM", tm), ("TN", tn), ("WG", tile.wg)]);
    format!("{}\n{body}", prelude(v))
}

/// Whether the forward takes the row-run kernel (`conv_fwd_runs.wgsl`): vec4 input channels,
/// texture operands (the fetch-bound CPU path), stride 1 or 2, and output rows a whole number
/// of `tile.tm`-pixel segments. Measured on lavapipe at ResNet-20's 16->16 @32 (32-pixel
/// segments): 1.24–1.3x faster than `conv_fwd.wgsl`, ~1.5 s more JIT; at 16->32 s2 (16-pixel
/// segments of a 33-pixel run) 1.08–1.11x. Tiles spanning several shorter rows (32->32 @16,
/// 64->64 @8) measured no faster and took minutes to JIT, so they are left to the general
/// kernel.
fn runs_ok(s: &ConvShape, tile: Tile) -> bool {
    let (tm, wo) = (tile.tm as usize, s.out_w());
    (s.stride == 1 || s.stride == 2)
        && vec_width(s.cin / s.groups) == 4
        && tile.tex
        && s.kw <= 7
        && wo % tm == 0
}

/// Row-run forward source (`conv_fwd_runs.wgsl`) for `s` (checked by `runs_ok`): the tile's
/// `tile.tm` pixels are one segment of an output row.
pub(crate) fn fwd_runs_source(s: &ConvShape, tile: Tile) -> String {
    let (tm, tn, kw, st) = (tile.tm, tile.tn, s.kw as u32, s.stride as u32);
    let run = (tm - 1) * st + kw;
    let mut pixels = format!(
        "    let mm = min(m0, p.m - 1u);\n    let r = mm / p.wo;\n    \
         let oy = (r % p.ho) * {st}u;\n    let nb = (r / p.ho) * p.h;\n    \
         let ox = i32((mm % p.wo) * {st}u) - i32(p.pad);\n"
    );
    pixels += &rep(
        run,
        "    let colok$i = ox + $i >= 0 && ox + $i < i32(p.w);\n",
    );
    let setup = rep(
        tn,
        "    let wb$i = (g * p.cog + min(co0 + $iu, p.cog - 1u)) * ksz;\n",
    ) + &rep2(tm, tn, "    var acc$i_$j = 0.0;\n");
    let row = "        let iy = i32(oy) + i32(ky) - i32(p.pad);\n        \
               let rok = iy >= 0 && iy < i32(p.h);\n        \
               let rb = (nb + u32(max(iy, 0))) * p.w;\n"
        .to_string()
        + &rep(
            run,
            "        let ok$i = rok && colok$i;\n        \
             let xa$i = select(0u, (rb + u32(ox + $i)) * p.cin + cbase, ok$i);\n        \
             let xm$i = select(0.0, 1.0, ok$i);\n",
        );
    let mut body = rep(run, "            let v$i = ld_x((xa$i + c) / V) * xm$i;\n");
    // Output channel by output channel: each accumulator takes its KW taps in one expression,
    // so it is loaded and stored once per channel step rather than once per tap (time ratios
    // 0.75–0.97 at 16->16, ~0.94 at 16->32 s2, in 5 alternating pairs).
    for j in 0..tn {
        for kx in 0..kw {
            body += &format!(
                "            let b{kx}_{j} = ld_wt((wb{j} + wrow + {kx}u * p.cg + c) / V);\n"
            );
        }
        for i in 0..tm {
            let mut e = format!("acc{i}_{j}");
            for kx in 0..kw {
                e = format!("mac({e}, v{}, b{kx}_{j})", i * st + kx);
            }
            body += &format!("            acc{i}_{j} = {e};\n");
        }
    }
    let store = rep2(
        tm,
        tn,
        "    if (m0 + $iu < p.m && co0 + $ju < p.cog) {\n        let oc = g * p.cog + co0 + $ju;\n        \
         y[(m0 + $iu) * p.cout + oc] = acc$i_$j + select(0.0, bias[oc], p.has_bias != 0u);\n    }\n",
    );
    let src = blocks(
        FWD_RUNS,
        &[
            ("X_DECL", operand_decl(0, "x", "VT", true)),
            ("W_DECL", operand_decl(1, "wt", "VT", true)),
            ("PIXELS", pixels),
            ("SETUP", setup),
            ("ROW", row),
            ("BODY", body),
            ("STORE", store),
        ],
    );
    let src = specialize(&src, &[("TM", tm), ("TN", tn), ("WG", tile.wg), ("KW", kw)]);
    format!("{}\n{src}", prelude(4))
}

/// Output rows per invocation of the row-run forward (`runs_ok` shapes): 1 is
/// `conv_fwd_runs.wgsl`; 4 is `conv_fwd_rows.wgsl`, for tiles of fewer than 4 output channels
/// (the stem's dX, a 16->3 conv over dy), which leave each fetch too few dot products. Measured
/// on lavapipe on the stem's dX (same-process A/B, 15 alternating runs): 4 rows of 32 pixels
/// 1.16–1.24x faster than 1 row, 2 rows 1.07x, 8 rows 0.95x, 4 rows of 16 pixels 1.17x. (At
/// 16->16, 2 rows of 16 pixels lost: 0.86–0.93x.)
fn run_rows(s: &ConvShape, tile: Tile) -> u32 {
    if tile.tn < 4 && s.cout / s.groups < 4 && s.kh <= 7 {
        4
    } else {
        1
    }
}

/// Multi-row run forward source (`conv_fwd_rows.wgsl`) for `s` (checked by `runs_ok`): the
/// segment of `tile.tm` pixels in each of `rows` output rows.
pub(crate) fn fwd_rows_source(s: &ConvShape, tile: Tile, rows: u32) -> String {
    let (tm, tn, st) = (tile.tm, tile.tn, s.stride as u32);
    let (kh, kw) = (s.kh as u32, s.kw as u32);
    let run = (tm - 1) * st + kw;
    let nrow = (rows - 1) * st + kh;
    let mut setup = format!(
        "    let ox = i32(ox0 * {st}u) - i32(p.pad);\n    \
         let iy0 = i32(oy0 * {st}u) - i32(p.pad);\n"
    );
    setup += &rep(
        run,
        "    let colok$i = ox + $i >= 0 && ox + $i < i32(p.w);\n",
    );
    for t in 0..nrow {
        setup += &format!(
            "    let rok{t} = iy0 + {t} >= 0 && iy0 + {t} < i32(p.h);\n    \
             let rb{t} = (n * p.h + u32(max(iy0 + {t}, 0))) * p.w;\n"
        );
        setup += &rep(
            run,
            &format!(
                "    let xa{t}_$i = select(0u, (rb{t} + u32(ox + $i)) * p.cin + cbase, rok{t} && colok$i);\n    \
                 let xm{t}_$i = select(0.0, 1.0, rok{t} && colok$i);\n"
            ),
        );
    }
    setup += &rep(
        tn,
        "    let wb$i = (g * p.cog + min(co0 + $iu, p.cog - 1u)) * ksz;\n",
    );
    for i in 0..rows {
        setup += &rep2(tm, tn, &format!("    var acc{i}_$i_$j = 0.0;\n"));
    }
    let mut body = String::new();
    for t in 0..nrow {
        body += &rep(
            run,
            &format!("        let v{t}_$i = ld_x((xa{t}_$i + c) / V) * xm{t}_$i;\n"),
        );
    }
    for j in 0..tn {
        for ky in 0..kh {
            for kx in 0..kw {
                body += &format!(
                    "        let b{ky}_{kx}_{j} = ld_wt((wb{j} + {}u * p.cg + c) / V);\n",
                    ky * kw + kx
                );
            }
        }
    }
    // Per output channel and kernel row, each accumulator takes its KW taps in one expression
    // (the KW weights stay in registers; accumulator-major over all KH·KW taps was 1.08–1.10x
    // against 1 row, this order 1.16–1.24x).
    for j in 0..tn {
        for ky in 0..kh {
            for i in 0..rows {
                for k in 0..tm {
                    let mut e = format!("acc{i}_{k}_{j}");
                    for kx in 0..kw {
                        e = format!("mac({e}, v{}_{}, b{ky}_{kx}_{j})", i * st + ky, k * st + kx);
                    }
                    body += &format!("        acc{i}_{k}_{j} = {e};\n");
                }
            }
        }
    }
    let mut store = String::new();
    for i in 0..rows {
        store += &rep2(
            tm,
            tn,
            &format!(
                "    if (oy0 + {i}u < p.ho && co0 + $ju < p.cog) {{\n        \
                 let oc = g * p.cog + co0 + $ju;\n        \
                 y[((n * p.ho + oy0 + {i}u) * p.wo + ox0 + $iu) * p.cout + oc] = \
                 acc{i}_$i_$j + select(0.0, bias[oc], p.has_bias != 0u);\n    }}\n"
            ),
        );
    }
    let src = blocks(
        FWD_ROWS,
        &[
            ("X_DECL", operand_decl(0, "x", "VT", true)),
            ("W_DECL", operand_decl(1, "wt", "VT", true)),
            ("SETUP", setup),
            ("BODY", body),
            ("STORE", store),
        ],
    );
    let src = specialize(
        &src,
        &[("TM", tm), ("TN", tn), ("WG", tile.wg), ("R", rows)],
    );
    format!("{}\n{src}", prelude(4))
}

/// For a stride-1 square conv without groups, the forward conv over dy that computes dX:
/// `dx = conv(dy, w')` with `w'[ci][ky][kx][co] = w[co][k−1−ky][k−1−kx][ci]` and padding
/// `k − 1 − pad` (its output is H × W again).
fn dx_as_forward(s: &ConvShape) -> Option<ConvShape> {
    (s.stride == 1 && s.groups == 1 && s.kh == s.kw && s.pad < s.kh).then(|| ConvShape {
        n: s.n,
        h: s.out_h(),
        w: s.out_w(),
        cin: s.cout,
        cout: s.cin,
        kh: s.kh,
        kw: s.kw,
        stride: 1,
        pad: s.kh - 1 - s.pad,
        groups: 1,
    })
}

/// Backward-to-input source for a `tm × tn` register tile, vector width `v`.
pub(crate) fn bwd_data_source(tile: Tile, v: u32) -> String {
    let (tm, tn) = (tile.tm, tile.tn);
    let tex = tile.tex && v == 4;
    let body = blocks(
        BWD_DATA,
        &[
            ("DY_DECL", operand_decl(0, "dy", "VT", tex)),
            ("W_DECL", operand_decl(1, "wt", "VT", tex)),
            (
                "PIXELS",
                rep(
                    tm,
                    "    let pm$i = m0 + $iu;\n    let mm$i = min(pm$i, p.mp - 1u);\n    let r$i = mm$i % hwp;\n    \
                     let pn$i = mm$i / hwp;\n    let ty$i = i32(r$i / p.wp);\n    let tx$i = i32(r$i % p.wp);\n    \
                     let qy$i = py + s * u32(ty$i);\n    let qx$i = px + s * u32(tx$i);\n    \
                     let piy$i = select(-1000000, i32(qy$i), pm$i < p.mp && qy$i < p.h && qx$i < p.w);\n    \
                     let pix$i = i32(qx$i);\n",
                ),
            ),
            (
                "SETUP",
                rep(tn, "    let wb$i = min(ci0 + $iu, p.cg - 1u) * p.cog;\n")
                    + &rep2(tm, tn, "    var acc$i_$j = 0.0;\n"),
            ),
            (
                "TAP",
                rep(
                    tm,
                    "            let oy$i = ty$i + offy;\n            let ox$i = tx$i + offx;\n            \
                     let ok$i = piy$i >= 0 && oy$i >= 0 && ox$i >= 0 && oy$i < i32(p.ho) && ox$i < i32(p.wo);\n            \
                     let da$i = select(0u, ((pn$i * p.ho + u32(oy$i)) * p.wo + u32(ox$i)) * p.cout + cbase, ok$i);\n            \
                     let dm$i = select(0.0, 1.0, ok$i);\n",
                ),
            ),
            (
                "BODY",
                rep(tm, "                let a$i = ld_dy((da$i + c) / V) * dm$i;\n")
                    + &(0..tn)
                        .map(|j| {
                            format!("                let b{j} = ld_wt((wo + wb{j} + c) / V);\n")
                                + &rep(tm, &format!("                acc$i_{j} = mac(acc$i_{j}, a$i, b{j});\n"))
                        })
                        .collect::<String>(),
            ),
            (
                "STORE",
                rep(
                    tm,
                    &format!(
                        "    if (piy$i >= 0) {{\n        \
                         let base$i = ((pn$i * p.h + u32(piy$i)) * p.w + u32(pix$i)) * p.cin + g * p.cg + ci0;\n{}    }}\n",
                        (0..tn)
                            .map(|j| format!("        if (ci0 + {j}u < p.cg) {{ dx[base$i + {j}u] = acc$i_{j}; }}\n"))
                            .collect::<String>()
                    ),
                ),
            ),
        ],
    );
    let body = specialize(&body, &[("TM", tm), ("TN", tn), ("WG", tile.wg)]);
    format!("{}\n{body}", prelude(v))
}

/// Backward-to-weights source for `tm` output × `tn` input channels (`tn` a multiple of `v`);
/// `dv` = 4 loads dy as vec4 along the output channels (needs `Cog % 4 == 0`, `tm % 4 == 0`).
pub(crate) fn bwd_weights_source(tile: Tile, v: u32, dv: u32) -> String {
    let (tm, tnv) = (tile.tm, tile.tn / v);
    let (dyo, dyload) = if dv == 4 {
        (
            rep(
                tm / 4,
                "    let dyo$i = (g * p.cog + min(co0 + $iu * 4u, p.cog - 4u)) / 4u;\n",
            ),
            (0..tm / 4)
                .map(|i| {
                    format!("        let d{i} = ld_dy(q * (p.cout / 4u) + dyo{i});\n")
                        + &["x", "y", "z", "w"]
                            .iter()
                            .enumerate()
                            .map(|(c, f)| {
                                format!("        let a{} = VT(d{i}.{f});\n", 4 * i + c as u32)
                            })
                            .collect::<String>()
                })
                .collect::<String>(),
        )
    } else {
        (
            rep(
                tm,
                "    let dyo$i = g * p.cog + min(co0 + $iu, p.cog - 1u);\n",
            ),
            rep(tm, "        let a$i = VT(ld_dy(q * p.cout + dyo$i));\n"),
        )
    };
    let body = blocks(
        BWD_W,
        &[
            ("X_DECL", operand_decl(0, "x", "VT", tile.tex && v == 4)),
            (
                "DY_DECL",
                if dv == 4 {
                    operand_decl(1, "dy", "vec4<f32>", tile.tex)
                } else {
                    operand_decl(1, "dy", "f32", false)
                },
            ),
            (
                "SETUP",
                dyo + &rep(tnv, "    let xo$i = g * p.cg + min(ci0 + $iu * V, p.cg - V);\n")
                    + &rep2(tm, tnv, "    var acc$i_$j = VT();\n"),
            ),
            (
                "BODY",
                rep(tnv, "        let b$i = ld_x((xb + xo$i) / V) * xm;\n")
                    + &dyload
                    + &rep2(tm, tnv, "        acc$i_$j = fma(a$i, b$j, acc$i_$j);\n"),
            ),
            (
                "STORE",
                rep2(
                    tm,
                    tnv,
                    "    if (co0 + $iu < p.cog && ci0 + $ju * V < p.cg) {\n        \
                     part[(((chunk * p.cout + g * p.cog + co0 + $iu) * khw + tap) * p.cg + ci0 + $ju * V) / V] = acc$i_$j;\n    }\n",
                ),
            ),
        ],
    );
    let body = specialize(&body, &[("TM", tm), ("TNV", tnv), ("WG", tile.wg)]);
    format!("{}\n{body}", prelude(v))
}

/// Backward-to-weights source in dot-product form (`conv_bwd_weights_dot.wgsl`): `tile.tm`
/// output × `tile.tn` input channels (both multiples of 4), 4 pixels per iteration.
pub(crate) fn bwd_weights_dot_source(tile: Tile) -> String {
    let (tm, tn) = (tile.tm, tile.tn);
    let comp = ["x", "y", "z", "w"];
    let mut setup = rep(
        tm / 4,
        "    let dyo$i = (g * p.cog + min(co0 + $iu * 4u, p.cog - 4u)) / 4u;\n",
    );
    setup += &rep(
        tn / 4,
        "    let xo$i = g * p.cg + min(ci0 + $iu * 4u, p.cg - 4u);\n",
    );
    setup += &rep2(tm, tn, "    var acc$i_$j = 0.0;\n");
    let mut pix = String::new();
    for k in 0..4 {
        pix += &format!(
            "        let pv{k} = q + {k}u < p1;\n        \
             let iy{k} = i32(oy) * s - i32(p.pad) + i32(ky);\n        \
             let ix{k} = i32(ox) * s - i32(p.pad) + i32(kx);\n        \
             let ok{k} = pv{k} && iy{k} >= 0 && iy{k} < i32(p.h) && ix{k} >= 0 && ix{k} < i32(p.w);\n        \
             let xb{k} = select(0u, ((n * p.h + u32(iy{k})) * p.w + u32(ix{k})) * p.cin, ok{k});\n        \
             let xm{k} = select(0.0, 1.0, ok{k});\n        \
             let db{k} = select(0u, (q + {k}u) * cq, pv{k});\n        \
             let dm{k} = select(0.0, 1.0, pv{k});\n        \
             ox += 1u;\n        \
             if (ox == p.wo) {{ ox = 0u; oy += 1u; if (oy == p.ho) {{ oy = 0u; n += 1u; }} }}\n"
        );
    }
    let mut body = String::new();
    for k in 0..4 {
        body += &rep(
            tm / 4,
            &format!("        let d$i_{k} = ld_dy(db{k} + dyo$i) * dm{k};\n"),
        );
        body += &rep(
            tn / 4,
            &format!("        let x$i_{k} = ld_x((xb{k} + xo$i) / 4u) * xm{k};\n"),
        );
    }
    for m in 0..tm {
        let (i, e) = (m / 4, comp[(m % 4) as usize]);
        body += &format!(
            "        let a{m} = vec4<f32>(d{i}_0.{e}, d{i}_1.{e}, d{i}_2.{e}, d{i}_3.{e});\n"
        );
    }
    for nn in 0..tn {
        let (j, f) = (nn / 4, comp[(nn % 4) as usize]);
        body += &format!(
            "        let b{nn} = vec4<f32>(x{j}_0.{f}, x{j}_1.{f}, x{j}_2.{f}, x{j}_3.{f});\n"
        );
    }
    body += &rep2(tm, tn, "        acc$i_$j = mac(acc$i_$j, a$i, b$j);\n");
    let mut store = String::new();
    for m in 0..tm {
        for j in 0..tn / 4 {
            store += &format!(
                "    if (co0 + {m}u < p.cog && ci0 + {c}u < p.cg) {{\n        \
                 part[(((chunk * p.cout + g * p.cog + co0 + {m}u) * khw + tap) * p.cg + ci0 + {c}u) / 4u] = \
                 vec4<f32>(acc{m}_{c}, acc{m}_{c1}, acc{m}_{c2}, acc{m}_{c3});\n    }}\n",
                c = 4 * j,
                c1 = 4 * j + 1,
                c2 = 4 * j + 2,
                c3 = 4 * j + 3
            );
        }
    }
    let body = blocks(
        BWD_W_DOT,
        &[
            ("X_DECL", operand_decl(0, "x", "VT", tile.tex)),
            ("DY_DECL", operand_decl(1, "dy", "vec4<f32>", tile.tex)),
            ("SETUP", setup),
            ("PIX", pix),
            ("BODY", body),
            ("STORE", store),
        ],
    );
    let body = specialize(&body, &[("TM", tm), ("TN", tn), ("WG", tile.wg)]);
    format!("{}\n{body}", prelude(4))
}

/// Whether the backward-to-weights takes the dot-product form: both channel axes and the tile
/// in whole vec4s.
fn dot_form(s: &ConvShape, tile: Tile) -> bool {
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    vec_width(cg) == 4
        && vec_width(cog) == 4
        && vec_width(tile.tm as usize) == 4
        && vec_width(tile.tn as usize) == 4
}

/// Whether `s` goes to the row kernels (`conv_fwd_row.wgsl`, `conv_bwd_weights_row.wgsl`) when
/// the tile allows it (`row_tile_ok`): few input channels that do not fill a vec4 (the RGB
/// stem), stride 1, no groups, output channels in vec4s, and image rows a whole number of vec4s
/// (so every row segment's NHWC run starts on one).
pub fn row_kernel(s: &ConvShape) -> bool {
    s.groups == 1
        && s.stride == 1
        && vec_width(s.cin) == 1
        && s.cin * s.kw <= 12
        && s.kh <= 7
        && vec_width(s.cout) == 4
        && vec_width(s.w * s.cin) == 4
        && s.pad < s.kw
}

/// Row kernels need `px` pixels per segment to span whole vec4s and `co` output channels in
/// vec4s.
fn row_tile_ok(s: &ConvShape, px: u32, co: u32) -> bool {
    px > 0 && vec_width(px as usize * s.cin) == 4 && vec_width(co as usize) == 4
}

/// `i32(expr) + k` as WGSL source for a signed compile-time `k`.
fn plus(expr: &str, k: i64) -> String {
    match k {
        0 => expr.to_string(),
        k if k > 0 => format!("{expr} + {k}"),
        k => format!("{expr} - {}", -k),
    }
}

/// Load the NHWC run of input columns `0..px + kw − 1` (relative to `ox0 − pad`) at vec4 index
/// `{pre}base` into `{pre}xs{c}_{ci}` (0 where `{pre}ok{c}` is false; the caller defines
/// `{pre}base`, and `ok` maps a column to the boolean expression `{pre}ok{c}` is defined as).
fn row_run(s: &ConvShape, px: u32, ind: &str, pre: &str, ok: &dyn Fn(i64) -> String) -> String {
    let (cin, kw, pad) = (s.cin as i64, s.kw as i64, s.pad as i64);
    let cols = px as i64 + kw - 1;
    let lo = (-pad * cin).div_euclid(4);
    let hi = ((cols - pad) * cin - 1).div_euclid(4);
    let mut out = String::new();
    for c in 0..cols {
        out += &format!("{ind}let {pre}ok{c} = {};\n", ok(c - pad));
    }
    for k in lo..=hi {
        out += &format!(
            "{ind}let {pre}v{} = ld_x(u32(clamp({}, 0, last)));\n",
            k - lo,
            plus(&format!("{pre}base"), k)
        );
    }
    for c in 0..cols {
        for ci in 0..cin {
            let r = (c - pad) * cin + ci;
            let comp = ["x", "y", "z", "w"][r.rem_euclid(4) as usize];
            out += &format!(
                "{ind}let {pre}xs{c}_{ci} = select(0.0, {pre}v{}.{comp}, {pre}ok{c});\n",
                r.div_euclid(4) - lo
            );
        }
    }
    out
}

/// Row-kernel forward source: `tile.tm` pixels of a row × `tile.tn` output channels.
pub(crate) fn fwd_row_source(s: &ConvShape, tile: Tile) -> String {
    let (tm, tq) = (tile.tm, tile.tn / 4);
    let (cin, kw) = (s.cin as u32, s.kw as u32);
    let cols = tm + kw - 1;
    let pad = s.pad as i64;
    let mut setup = String::new();
    for c in 0..cols as i64 {
        let col = plus("i32(ox0)", c - pad);
        setup += &format!("    let colok{c} = {col} >= 0 && {col} < i32(p.w);\n");
    }
    setup += &rep(tq, "    let wq$i = min(co0 / 4u + $iu, cq - 1u);\n");
    setup += &rep2(tm, tq, "    var acc$i_$j = vec4<f32>();\n");
    // Every kernel row's run and weights first, then each accumulator's kh·kw·Cin terms in a
    // row, so an accumulator stays in a register while it is summed and the spilled values
    // are only reloaded (vs the row-by-row order, which loads and stores each accumulator
    // once per kernel row: 0.87–0.97 time in 3 alternating pairs).
    let mut rows = String::new();
    for ky in 0..s.kh {
        rows += &format!(
            "    let iy{ky} = i32(oy) + {} - i32(p.pad);\n    \
             let rowok{ky} = iy{ky} >= 0 && iy{ky} < i32(p.h);\n    \
             let r{ky}base = select(0, i32(((n * p.h + u32(iy{ky})) * p.w + ox0) * CIN / 4u), rowok{ky});\n",
            ky
        );
        rows += &row_run(s, tm, "    ", &format!("r{ky}"), &|c| {
            format!("rowok{ky} && colok{}", c + pad)
        });
        for kx in 0..kw {
            for ci in 0..cin {
                for q in 0..tq {
                    rows += &format!(
                        "    let b{ky}_{kx}_{ci}_{q} = ld_wt({}u * cq + wq{q});\n",
                        (ky as u32 * kw + kx) * cin + ci
                    );
                }
            }
        }
    }
    for q in 0..tq {
        for i in 0..tm {
            for ky in 0..s.kh {
                for kx in 0..kw {
                    for ci in 0..cin {
                        rows += &format!(
                            "    acc{i}_{q} = fma(vec4<f32>(r{ky}xs{}_{ci}), b{ky}_{kx}_{ci}_{q}, acc{i}_{q});\n",
                            i + kx
                        );
                    }
                }
            }
        }
    }
    let mut store = String::new();
    for q in 0..tq {
        let b: Vec<String> = (0..4)
            .map(|e| format!("bias[min(co0 + {}u, p.cout - 1u)]", 4 * q + e))
            .collect();
        store += &format!(
            "    let bq{q} = select(vec4<f32>(), vec4<f32>({}), p.has_bias != 0u);\n",
            b.join(", ")
        );
    }
    store += &rep2(
        tm,
        tq,
        "    if (ox0 + $iu < p.wo && co0 + 4u * $ju < p.cout) {\n        \
         y[(r * p.wo + ox0 + $iu) * cq + co0 / 4u + $ju] = acc$i_$j + bq$j;\n    }\n",
    );
    let src = blocks(
        FWD_ROW,
        &[
            ("X_DECL", operand_decl(0, "x", "vec4<f32>", tile.tex)),
            ("W_DECL", operand_decl(1, "wt", "vec4<f32>", tile.tex)),
            ("SETUP", setup),
            ("ROWS", rows),
            ("STORE", store),
        ],
    );
    specialize(
        &src,
        &[("TM", tm), ("TN", tile.tn), ("WG", tile.wg), ("CIN", cin)],
    )
}

/// Row-kernel backward-to-weights source: `tile.tm` output channels × one kernel row, over
/// segments of `tile.tn` pixels.
pub(crate) fn bwd_weights_row_source(s: &ConvShape, tile: Tile) -> String {
    let (tq, tp) = (tile.tm / 4, tile.tn);
    let (cin, kw) = (s.cin as u32, s.kw as u32);
    let mut setup = rep(tq, "    let dq$i = min(co0 / 4u + $iu, cq - 1u);\n");
    for kx in 0..kw {
        for ci in 0..cin {
            setup += &rep(tq, &format!("    var acc{kx}_{ci}_$i = vec4<f32>();\n"));
        }
    }
    let ind = "                ";
    let load = row_run(s, tp, ind, "", &|c| {
        let col = plus("i32(ox0)", c);
        format!("{col} >= 0 && {col} < i32(p.w)")
    });
    let mut body = String::new();
    for i in 0..tp {
        body += &format!("{ind}let pv{i} = ox0 + {i}u < p.wo;\n");
        for q in 0..tq {
            body += &format!(
                "{ind}let d{i}_{q} = select(vec4<f32>(), ld_dy(select(0u, db + {i}u * cq + dq{q}, pv{i})), pv{i});\n"
            );
        }
        for kx in 0..kw {
            for ci in 0..cin {
                for q in 0..tq {
                    body += &format!(
                        "{ind}acc{kx}_{ci}_{q} = fma(vec4<f32>(xs{}_{ci}), d{i}_{q}, acc{kx}_{ci}_{q});\n",
                        i + kx
                    );
                }
            }
        }
    }
    let mut store = format!("    let cs = p.kh * {}u;\n", kw * cin);
    for kx in 0..kw {
        for ci in 0..cin {
            for q in 0..tq {
                store += &format!(
                    "    if (co0 + {}u < p.cout) {{\n        \
                     let o = ((chunk * p.cout + co0 + {}u) * p.kh + ky) * {}u + {}u;\n        \
                     let a = acc{kx}_{ci}_{q};\n        \
                     part[o] = a.x;\n        part[o + cs] = a.y;\n        \
                     part[o + 2u * cs] = a.z;\n        part[o + 3u * cs] = a.w;\n    }}\n",
                    4 * q,
                    4 * q,
                    kw * cin,
                    kx * cin + ci
                );
            }
        }
    }
    let src = blocks(
        BWD_W_ROW,
        &[
            ("X_DECL", operand_decl(0, "x", "vec4<f32>", tile.tex)),
            ("DY_DECL", operand_decl(1, "dy", "vec4<f32>", tile.tex)),
            ("SETUP", setup),
            ("LOAD", load),
            ("BODY", body),
            ("STORE", store),
        ],
    );
    specialize(
        &src,
        &[("TM", tile.tm), ("TP", tp), ("WG", tile.wg), ("CIN", cin)],
    )
}

/// The weight re-layout OHWI → `[G][kh][kw][Cg][Cog]` into a fresh scratch tensor, and its
/// dispatch.
fn wtrans(gpu: &Gpu, s: &ConvShape, w: &Tensor) -> Result<(Tensor, Dispatch)> {
    wtrans_mode(gpu, s, w, false)
}

/// `wtrans`, or with `flip` (groups 1) the mirrored OHWI weights `[Cin][kh][kw][Cout]` of the
/// forward conv over dy that computes a stride-1 dX.
fn wtrans_mode(gpu: &Gpu, s: &ConvShape, w: &Tensor, flip: bool) -> Result<(Tensor, Dispatch)> {
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    let wt = gpu.zeros(&[w.len()]);
    let kt = gpu.kernel("conv_wtrans", || {
        (
            WTRANS.to_string(),
            "main",
            vec![Slot::Read, Slot::ReadWrite, Slot::Uniform],
        )
    })?;
    let pt = gpu.uniform(&[
        u(w.len()),
        u(s.kh * s.kw),
        u(cg),
        u(cog),
        flip as u32,
        0,
        0,
        0,
    ]);
    let d = Dispatch::new(gpu, &kt, &[&w.buf, &wt.buf, &pt], grid_1d(w.len(), 64))?;
    Ok((wt, d))
}

fn check_len(what: &str, t: &Tensor, want: usize) -> Result<()> {
    if t.len() != want {
        bail!(
            "conv: {what} has {} elements ({:?}), expected {want}",
            t.len(),
            t.shape
        );
    }
    Ok(())
}

fn u(v: usize) -> u32 {
    v as u32
}

/// The first 12 parameters every conv kernel shares.
fn base_params(s: &ConvShape) -> [u32; 12] {
    [
        u(s.n),
        u(s.h),
        u(s.w),
        u(s.cin),
        u(s.cout),
        u(s.kh),
        u(s.kw),
        u(s.stride),
        u(s.pad),
        u(s.groups),
        u(s.out_h()),
        u(s.out_w()),
    ]
}

fn params20(s: &ConvShape, rest: [u32; 8]) -> [u32; 20] {
    let mut p = [0u32; 20];
    p[..12].copy_from_slice(&base_params(s));
    p[12..].copy_from_slice(&rest);
    p
}

/// Forward `y = conv(x, w) (+ bias)` with the adapter's tile.
pub fn conv_forward(
    gpu: &Gpu,
    s: &ConvShape,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<Vec<Dispatch>> {
    let tile = pick_tile(gpu, Pass::Forward, s)?;
    conv_forward_with(gpu, s, tile, x, w, bias, y)
}

/// Forward with an explicit tile.
pub fn conv_forward_with(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<Vec<Dispatch>> {
    s.validate()?;
    check_len("x", x, s.x_shape().iter().product())?;
    check_len("w", w, s.w_shape().iter().product())?;
    check_len("y", y, s.y_shape().iter().product())?;
    if let Some(b) = bias {
        check_len("bias", b, s.cout)?;
    }
    if super::space_to_depth::applies(s) {
        return super::space_to_depth::forward(gpu, s, tile, x, w, bias, y);
    }
    if row_kernel(s) && row_tile_ok(s, tile.tm, tile.tn) {
        return conv_forward_row(gpu, s, tile, x, w, bias, y);
    }
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    let v = vec_width(cg);
    let tex = tile.tex && v == 4;
    let runs = runs_ok(s, tile);
    let rows = if runs { run_rows(s, tile) } else { 1 };
    let mut uploads = Vec::new();
    let mx = mirror_if(gpu, x, tex, &mut uploads)?;
    let mw = mirror_if(gpu, w, tex, &mut uploads)?;
    let (tm, tn, wg) = (tile.tm, tile.tn, tile.wg);
    let key = match (runs, rows) {
        (true, 1) => format!(
            "conv_fwd_runs/tm{tm}_tn{tn}_wg{wg}_kw{}_s{}",
            s.kw, s.stride
        ),
        (true, r) => format!(
            "conv_fwd_rows/tm{tm}_tn{tn}_wg{wg}_r{r}_k{}x{}_s{}",
            s.kh, s.kw, s.stride
        ),
        (false, _) => format!("conv_fwd/tm{tm}_tn{tn}_wg{wg}_v{v}_t{tex}"),
    };
    let k = gpu.kernel(&key, || {
        (
            match (runs, rows) {
                (true, 1) => fwd_runs_source(s, tile),
                (true, r) => fwd_rows_source(s, tile, r),
                (false, _) => fwd_source(tile, v),
            },
            "main",
            vec![
                read_slot(&mx),
                read_slot(&mw),
                Slot::Read,
                Slot::ReadWrite,
                Slot::Uniform,
            ],
        )
    })?;
    // Invocations: `tm`-pixel segments of the output, each in `rows` output rows (the
    // multi-row kernel walks segment, block of rows, image: `nseg`, `hob`; the others ignore
    // them).
    let nseg = s.out_w() / tm as usize;
    let hob = s.out_h().div_ceil(rows as usize);
    let m = s.n * s.out_h() * s.out_w();
    let items = if rows > 1 {
        s.n * hob * nseg
    } else {
        m.div_ceil(tm as usize)
    };
    let ntile = cog.div_ceil(tn as usize);
    let params = gpu.uniform(&params20(
        s,
        [
            u(cg),
            u(cog),
            u(m),
            u(ntile),
            bias.is_some() as u32,
            u(nseg),
            u(hob),
            0,
        ],
    ));
    let groups = grid_xz(items, wg, s.groups * ntile)?;
    // Without a bias the weights stand in for the (unread) bias binding.
    let bias_buf = bias.map_or(&w.buf, |b| &b.buf);
    Ok(vec![Dispatch::with_uploads(
        gpu,
        &k,
        &[
            read_res(&mx, &x.buf),
            read_res(&mw, &w.buf),
            Res::Buf(bias_buf),
            Res::Buf(&y.buf),
            Res::Buf(&params),
        ],
        groups,
        uploads,
    )?])
}

/// Forward through the row kernel (checked by `conv_forward_with`): weight re-layout, then
/// the row-segment GEMM.
fn conv_forward_row(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    y: &Tensor,
) -> Result<Vec<Dispatch>> {
    let (wt, d0) = wtrans(gpu, s, w)?;
    let mut uploads = Vec::new();
    let mx = mirror_if(gpu, x, tile.tex, &mut uploads)?;
    let mw = mirror_if(gpu, &wt, tile.tex, &mut uploads)?;
    let key = format!(
        "conv_fwd_row/tm{}_tn{}_wg{}_c{}_k{}x{}_p{}_t{}",
        tile.tm, tile.tn, tile.wg, s.cin, s.kh, s.kw, s.pad, tile.tex
    );
    let k = gpu.kernel(&key, || {
        (
            fwd_row_source(s, tile),
            "main",
            vec![
                read_slot(&mx),
                read_slot(&mw),
                Slot::Read,
                Slot::ReadWrite,
                Slot::Uniform,
            ],
        )
    })?;
    let nseg = s.out_w().div_ceil(tile.tm as usize);
    let m = s.n * s.out_h() * nseg;
    let ntile = s.cout.div_ceil(tile.tn as usize);
    let params = gpu.uniform(&params20(
        s,
        [u(nseg), u(ntile), u(m), bias.is_some() as u32, 0, 0, 0, 0],
    ));
    let groups = grid_xz(m, tile.wg, ntile)?;
    let bias_buf = bias.map_or(&w.buf, |b| &b.buf);
    let d1 = Dispatch::with_uploads(
        gpu,
        &k,
        &[
            read_res(&mx, &x.buf),
            read_res(&mw, &wt.buf),
            Res::Buf(bias_buf),
            Res::Buf(&y.buf),
            Res::Buf(&params),
        ],
        groups,
        uploads,
    )?;
    Ok(vec![d0, d1])
}

/// Backward to the input: `dx = ∂L/∂x` from `dy = ∂L/∂y` (overwrites dx).
pub fn conv_backward_data(
    gpu: &Gpu,
    s: &ConvShape,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Vec<Dispatch>> {
    let tile = pick_tile(gpu, Pass::BackwardData, s)?;
    conv_backward_data_with(gpu, s, tile, dy, w, dx)
}

/// Backward to the input with an explicit tile. Two dispatches: the weight re-layout into a
/// scratch buffer owned by the dispatches, then the implicit GEMM.
pub fn conv_backward_data_with(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    dy: &Tensor,
    w: &Tensor,
    dx: &Tensor,
) -> Result<Vec<Dispatch>> {
    s.validate()?;
    check_len("dy", dy, s.y_shape().iter().product())?;
    check_len("w", w, s.w_shape().iter().product())?;
    check_len("dx", dx, s.x_shape().iter().product())?;
    if super::space_to_depth::applies(s) {
        return super::space_to_depth::backward_data(gpu, s, tile, dy, w, dx);
    }
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    if let Some(f) = dx_as_forward(s).filter(|f| runs_ok(f, tile)) {
        // Stride 1: dX is the forward conv over dy with mirrored, transposed weights, which
        // the row-run forward kernel computes with fewer fetches.
        let (wf, d0) = wtrans_mode(gpu, s, w, true)?;
        let mut ds = vec![d0];
        ds.extend(conv_forward_with(gpu, &f, tile, dy, &wf, None, dx)?);
        return Ok(ds);
    }
    let (wt, d0) = wtrans(gpu, s, w)?;

    let v = vec_width(cog);
    let tex = tile.tex && v == 4;
    let mut uploads = Vec::new();
    let mdy = mirror_if(gpu, dy, tex, &mut uploads)?;
    let mwt = mirror_if(gpu, &wt, tex, &mut uploads)?;
    let key = format!(
        "conv_bwd_data/tm{}_tn{}_wg{}_v{v}_t{tex}",
        tile.tm, tile.tn, tile.wg
    );
    let k = gpu.kernel(&key, || {
        (
            bwd_data_source(tile, v),
            "main",
            vec![
                read_slot(&mdy),
                read_slot(&mwt),
                Slot::ReadWrite,
                Slot::Uniform,
            ],
        )
    })?;
    let (hp, wp) = (s.h.div_ceil(s.stride), s.w.div_ceil(s.stride));
    let mp = s.n * hp * wp;
    let ntile = cg.div_ceil(tile.tn as usize);
    let params = gpu.uniform(&params20(
        s,
        [u(cg), u(cog), u(ntile), 0, u(hp), u(wp), u(mp), 0],
    ));
    let groups = grid_xz(
        mp.div_ceil(tile.tm as usize),
        tile.wg,
        s.stride * s.stride * s.groups * ntile,
    )?;
    let d1 = Dispatch::with_uploads(
        gpu,
        &k,
        &[
            read_res(&mdy, &dy.buf),
            read_res(&mwt, &wt.buf),
            Res::Buf(&dx.buf),
            Res::Buf(&params),
        ],
        groups,
        uploads,
    )?;
    Ok(vec![d0, d1])
}

/// Backward to the weights: `dw = ∂L/∂w` (`accumulate`: `dw += ∂L/∂w`).
pub fn conv_backward_weights(
    gpu: &Gpu,
    s: &ConvShape,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let tile = pick_tile(gpu, Pass::BackwardWeights, s)?;
    conv_backward_weights_with(gpu, s, tile, x, dy, dw, accumulate)
}

/// Pixels one invocation of the backward-to-weights sums in one running sum, at most: its
/// rounding grows like √chunk·u for terms of one sign (`trainer/tests/precision.rs`, batch
/// 128): short-run tiles summed 64->64 @8's 8192 pixels in one chunk, 50 u; now 3.9 u. Long-run
/// tiles' 2300-pixel chunks at 16->16 @32: 5.4 u, now 2.2 u. Cost: dW 0.87–0.94× the GF/s at
/// ResNet-20's shapes (more partial sums to write and reduce; 256 cost 0.8×).
const MAX_WEIGHT_CHUNK: usize = 512;
/// Partial-sum floats the backward-to-weights may allocate (64 MiB); above it chunks grow.
const MAX_WEIGHT_PARTIALS: usize = 16 << 20;

/// How many pixel chunks the backward-to-weights splits its reduction into: enough
/// invocations to fill the device, chunks short enough to keep the sums accurate
/// (`MAX_WEIGHT_CHUNK`), long enough that the partial sums stay small.
pub fn weight_chunks(gpu: &Gpu, s: &ConvShape, tile: Tile) -> (usize, usize) {
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    let tiles =
        s.kh * s.kw * cg.div_ceil(tile.tn as usize) * cog.div_ceil(tile.tm as usize) * s.groups;
    let pix = s.n * s.out_h() * s.out_w();
    let (target, min_chunk): (usize, usize) = if gpu.is_cpu() { (512, 64) } else { (32768, 32) };
    let len = s.cout * s.kh * s.kw * cg;
    let nchunks = target
        .div_ceil(tiles)
        .max(pix.div_ceil(MAX_WEIGHT_CHUNK))
        .min(MAX_WEIGHT_PARTIALS / len.max(1))
        .clamp(1, pix.div_ceil(min_chunk).max(1));
    let chunk = pix.div_ceil(nchunks);
    (pix.div_ceil(chunk), chunk)
}

/// Backward to the weights with an explicit tile. Two dispatches: per-chunk partial sums into
/// a scratch buffer owned by the dispatches, then an in-order (deterministic) reduction.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward_weights_with(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    s.validate()?;
    check_len("x", x, s.x_shape().iter().product())?;
    check_len("dy", dy, s.y_shape().iter().product())?;
    check_len("dw", dw, s.w_shape().iter().product())?;
    if super::space_to_depth::applies(s) {
        return super::space_to_depth::backward_weights(gpu, s, tile, x, dy, dw, accumulate);
    }
    if row_kernel(s) && row_tile_ok(s, tile.tn, tile.tm) {
        return conv_backward_weights_row(gpu, s, tile, x, dy, dw, accumulate);
    }
    let (cg, cog) = (s.cin / s.groups, s.cout / s.groups);
    let v = vec_width(cg);
    let tn = tile.tn.div_ceil(v) * v;
    let tile = Tile { tn, ..tile };
    let dv = vec_width(cog).min(vec_width(tile.tm as usize));
    let dot = dot_form(s, tile);
    let mut uploads = Vec::new();
    let mx = mirror_if(gpu, x, tile.tex && v == 4, &mut uploads)?;
    let mdy = mirror_if(gpu, dy, tile.tex && dv == 4, &mut uploads)?;
    let key = format!(
        "conv_bwd_weights/tm{}_tn{}_wg{}_v{v}_d{dv}_t{}_dot{dot}",
        tile.tm, tile.tn, tile.wg, tile.tex
    );
    let k = gpu.kernel(&key, || {
        (
            if dot {
                bwd_weights_dot_source(tile)
            } else {
                bwd_weights_source(tile, v, dv)
            },
            "main",
            vec![
                read_slot(&mx),
                read_slot(&mdy),
                Slot::ReadWrite,
                Slot::Uniform,
            ],
        )
    })?;
    let (nchunks, chunk) = weight_chunks(gpu, s, tile);
    let pix = s.n * s.out_h() * s.out_w();
    let ctiles = cg.div_ceil(tile.tn as usize);
    let ntile = cog.div_ceil(tile.tm as usize);
    let len = dw.len();
    ensure!(
        nchunks * len < (1 << 31),
        "conv {s:?}: partial sums too large"
    );
    let part = gpu.zeros(&[nchunks * len]);
    let params = gpu.uniform(&params20(
        s,
        [
            u(cg),
            u(cog),
            u(ntile),
            u(ctiles),
            u(chunk),
            u(nchunks),
            u(pix),
            0,
        ],
    ));
    let groups = grid_xz(nchunks * s.kh * s.kw * ctiles, tile.wg, s.groups * ntile)?;
    let d0 = Dispatch::with_uploads(
        gpu,
        &k,
        &[
            read_res(&mx, &x.buf),
            read_res(&mdy, &dy.buf),
            Res::Buf(&part.buf),
            Res::Buf(&params),
        ],
        groups,
        uploads,
    )?;
    let d1 = weights_reduce(gpu, &part, dw, nchunks, accumulate)?;
    Ok(vec![d0, d1])
}

/// The in-order sum of `nchunks` partial weight gradients into `dw`.
fn weights_reduce(
    gpu: &Gpu,
    part: &Tensor,
    dw: &Tensor,
    nchunks: usize,
    accumulate: bool,
) -> Result<Dispatch> {
    let len = dw.len();
    let kr = gpu.kernel("conv_bwd_weights_reduce", || {
        (
            BWD_W_REDUCE.to_string(),
            "main",
            vec![Slot::Read, Slot::ReadWrite, Slot::Uniform],
        )
    })?;
    let pr = gpu.uniform(&[u(len), u(nchunks), accumulate as u32, 0]);
    Dispatch::new(gpu, &kr, &[&part.buf, &dw.buf, &pr], grid_1d(len, 64))
}

/// Backward to the weights through the row kernel (checked by `conv_backward_weights_with`):
/// per-chunk partial sums over whole output rows, then the in-order reduction.
fn conv_backward_weights_row(
    gpu: &Gpu,
    s: &ConvShape,
    tile: Tile,
    x: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    accumulate: bool,
) -> Result<Vec<Dispatch>> {
    let mut uploads = Vec::new();
    let mx = mirror_if(gpu, x, tile.tex, &mut uploads)?;
    let mdy = mirror_if(gpu, dy, tile.tex, &mut uploads)?;
    let key = format!(
        "conv_bwd_weights_row/tm{}_tp{}_wg{}_c{}_k{}_p{}_t{}",
        tile.tm, tile.tn, tile.wg, s.cin, s.kw, s.pad, tile.tex
    );
    let k = gpu.kernel(&key, || {
        (
            bwd_weights_row_source(s, tile),
            "main",
            vec![
                read_slot(&mx),
                read_slot(&mdy),
                Slot::ReadWrite,
                Slot::Uniform,
            ],
        )
    })?;
    let rows = s.n * s.out_h();
    let ntile = s.cout.div_ceil(tile.tm as usize);
    let target: usize = if gpu.is_cpu() { 512 } else { 32768 };
    let nchunks = target.div_ceil(s.kh * ntile).clamp(1, rows);
    let rpc = rows.div_ceil(nchunks);
    let nchunks = rows.div_ceil(rpc);
    let len = dw.len();
    ensure!(
        nchunks * len < (1 << 31),
        "conv {s:?}: partial sums too large"
    );
    let part = gpu.zeros(&[nchunks * len]);
    let nseg = s.out_w().div_ceil(tile.tn as usize);
    let params = gpu.uniform(&params20(
        s,
        [u(nseg), u(ntile), u(rpc), u(nchunks), u(rows), 0, 0, 0],
    ));
    let groups = grid_xz(nchunks * s.kh, tile.wg, ntile)?;
    let d0 = Dispatch::with_uploads(
        gpu,
        &k,
        &[
            read_res(&mx, &x.buf),
            read_res(&mdy, &dy.buf),
            Res::Buf(&part.buf),
            Res::Buf(&params),
        ],
        groups,
        uploads,
    )?;
    let d1 = weights_reduce(gpu, &part, dw, nchunks, accumulate)?;
    Ok(vec![d0, d1])
}
