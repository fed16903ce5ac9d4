//! Convolution and GEMM kernels against the f64 references (`tsc_trainer::reference::conv`),
//! and the references' backward passes against central finite differences.
//! Inputs are fresh random numbers each run; the seed is printed.

use tsc_trainer::gpu::conv::{
    budget_tile_for, conv_backward_data_with, conv_backward_weights_with, conv_forward_with,
    default_tile_for, row_kernel, tile_cap, ConvShape, Pass, Tile,
};
use tsc_trainer::gpu::gemm::{default_gemm_tile, gemm_with};
use tsc_trainer::gpu::tune::candidates_for;
use tsc_trainer::gpu::{Dispatch, Gpu, Tensor};
use tsc_trainer::reference::conv as r;

struct Rng(u64);
impl Rng {
    /// A generator for test `tag`: seeded from the clock, or replayed from `CONV_SEED`
    /// (decimal or `0x` hex, as printed).
    fn new(tag: u64) -> Rng {
        let replay = std::env::var("CONV_SEED").ok().and_then(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        });
        let seed = replay.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64;
            t ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
        println!("seed {seed:#x} (CONV_SEED={seed:#x} replays)");
        Rng(seed | 1)
    }
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    /// Values rounded to f32, so the GPU and the reference see the same numbers.
    fn vec(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.next() as f32 as f64).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() + 1.0) * 0.5 * n as f64) as usize % n
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// max |got − want| / max |want|.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-30f64, |m, v| m.max(v.abs()));
    let mut e = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        let d = (*g as f64 - w).abs();
        if d.is_nan() {
            return f64::INFINITY;
        }
        e = e.max(d);
    }
    e / scale
}

fn run(gpu: &Gpu, ds: &[Dispatch]) {
    let mut rec = gpu.recorder();
    for d in ds {
        rec.run(d);
    }
    rec.submit();
}

fn up(gpu: &Gpu, v: &[f64], shape: &[usize]) -> Tensor {
    gpu.upload(&f32s(v), shape)
}

/// Awkward shapes: odd channel counts (scalar and vec4 paths), spatial 7 and 9, batch 1 and 3,
/// k 1, 3 and 7 (and a 1×3), stride 1 and 2 (the 1×1 stride-2 projection and bottleneck
/// conv1, the 7×7 stride-2 stem), pad 0, 1 and 3, groups 1 and 2; the shapes the row
/// kernels take (`row_kernel`).
fn shapes() -> Vec<ConvShape> {
    let c = |n, h, w, cin, cout, kh, kw, stride, pad, groups| ConvShape {
        n,
        h,
        w,
        cin,
        cout,
        kh,
        kw,
        stride,
        pad,
        groups,
    };
    vec![
        c(1, 7, 7, 3, 5, 3, 3, 1, 1, 1),
        c(3, 9, 9, 17, 16, 3, 3, 2, 1, 1),
        c(3, 9, 7, 8, 12, 3, 3, 2, 0, 2),
        c(1, 9, 9, 16, 17, 1, 1, 2, 0, 1),
        c(3, 7, 7, 10, 6, 1, 1, 1, 1, 2),
        c(2, 8, 8, 16, 32, 3, 3, 2, 1, 1),
        c(1, 7, 9, 5, 3, 1, 3, 1, 1, 1),
        c(3, 9, 9, 16, 16, 3, 3, 1, 1, 1),
        // operands over TEX_W (4096) texels: texture mirrors span rows, the last one partial
        c(2, 20, 20, 32, 32, 3, 3, 1, 1, 1),
        // row-run forward (stride 1, output rows a whole number of 32-pixel tiles): padded,
        // unpadded, and padded rows that read nothing (kh 1, pad 1)
        c(1, 6, 32, 8, 8, 3, 3, 1, 1, 1),
        c(1, 5, 34, 4, 8, 3, 3, 1, 0, 1),
        c(2, 3, 32, 4, 8, 1, 3, 1, 1, 1),
        // row-run forward with stride 2 (runs of 2·32 + 1 columns, every other one per tap;
        // 16-pixel segments by default when output rows are 16 wide): padded, unpadded
        c(1, 4, 64, 8, 8, 3, 3, 2, 1, 1),
        c(1, 5, 65, 4, 8, 3, 3, 2, 0, 1),
        c(2, 4, 32, 16, 8, 3, 3, 2, 1, 1),
        // multi-row run forward (fewer than 4 output channels: 4 output rows per invocation):
        // the dX of 3-input-channel convs with 32-wide rows (a partial last block of rows;
        // pad 1, and pad 0, i.e. 2 over dy), a stride-2 forward with 3 output channels, and
        // a grouped forward with 2 output channels per group
        c(2, 6, 32, 3, 8, 3, 3, 1, 1, 1),
        c(1, 7, 32, 3, 4, 3, 3, 1, 0, 1),
        c(1, 5, 64, 4, 3, 3, 3, 2, 1, 1),
        c(1, 5, 32, 8, 4, 3, 3, 1, 1, 2),
        // stride-1 dX through the row-run forward over dy (mirrored weights, pad k−1−pad)
        c(1, 4, 32, 8, 4, 3, 3, 1, 0, 1),
        // row kernels (few input channels, stride 1): the stem, partial row segments with
        // pad 0, one input channel, pad 2 with a partial output-channel tile
        c(2, 8, 8, 3, 16, 3, 3, 1, 1, 1),
        c(1, 6, 12, 3, 8, 3, 3, 1, 0, 1),
        c(2, 5, 4, 1, 4, 3, 3, 1, 1, 1),
        c(1, 5, 6, 2, 12, 3, 3, 1, 2, 1),
        // space-to-depth (`space_to_depth::applies`): the ImageNet stem (7×7, stride 2, pad
        // 3, one tap prepended) on an odd-sized RGB input; stride 3 on one channel (9 of 12
        // channels real: a partial vec4; two taps prepended) with trailing input rows and
        // columns no output reads; a pad that is a whole block (no tap prepended). Their
        // inner convs have 12 channels and at most 8 outputs, as the stem's: no new kernels.
        c(2, 13, 11, 3, 8, 7, 7, 2, 3, 1),
        c(2, 13, 10, 1, 8, 7, 7, 3, 1, 1),
        c(1, 12, 9, 3, 6, 7, 7, 2, 2, 1),
    ]
}

/// The tiles each pass ships for `s`: the defaults for CPU and GPU adapters (long and short
/// runs), and with `all` every autotune candidate of both (`TSC_AUTOTUNE=1`; their JIT is most
/// of this file's cold-cache time, so the candidates run in the ignored
/// `autotune_candidates_match_reference`: `cargo test --release -p tsc-trainer --test conv --
/// --ignored`).
fn tiles(pass: Pass, s: &ConvShape, all: bool) -> Vec<Tile> {
    // CPU defaults for long runs and the capped tiles short runs take (`budget_tile_for`).
    let mut v = vec![
        default_tile_for(true, pass, s),
        budget_tile_for(true, pass, s, 1),
        budget_tile_for(true, pass, s, (500e9 * s.n as f64 / s.flops()) as u64),
        default_tile_for(false, pass, s),
    ];
    if all {
        v.extend(candidates_for(true, pass, s));
        v.extend(candidates_for(false, pass, s));
    }
    let mut out: Vec<Tile> = Vec::new();
    for t in v {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// (shape, whether to try every autotune candidate tile on it): every shape with the shipped
/// defaults, or (`candidates`) the shapes the candidates are tried on, with them.
fn cases_of(candidates: bool) -> Vec<(ConvShape, bool)> {
    shapes()
        .into_iter()
        .enumerate()
        .filter(|&(i, _)| !candidates || i == 0 || i >= 19)
        .map(|(_, s)| (s, candidates))
        .collect()
}

/// Declare every kernel `pass` runs below and compile them all at once (`Gpu::prepare`: on
/// every core), printing the slowest: most of this file's time is pipeline JIT.
fn precompile(gpu: &Gpu, pass: Pass, cases: &[(ConvShape, bool)]) {
    for &(s, all) in cases {
        let (x, w, y) = (
            gpu.zeros(&s.x_shape()),
            gpu.zeros(&s.w_shape()),
            gpu.zeros(&s.y_shape()),
        );
        for t in tiles(pass, &s, all) {
            match pass {
                Pass::Forward => conv_forward_with(gpu, &s, t, &x, &w, None, &y),
                Pass::BackwardData => conv_backward_data_with(gpu, &s, t, &y, &w, &x),
                Pass::BackwardWeights => conv_backward_weights_with(gpu, &s, t, &x, &y, &w, false),
            }
            .unwrap();
        }
    }
    let p = gpu.prepare_with(false).unwrap();
    println!("{pass:?}: {p}");
    let mut ks = gpu.kernels();
    let cost = |k: &tsc_trainer::gpu::Kernel| {
        let st = k.compile_stats();
        st.helper_s.unwrap_or(0.0) + st.warm_s.unwrap_or(0.0) + st.create_s
    };
    ks.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
    for k in ks.iter().take(12) {
        println!("  {:>6.1} s  {}", cost(k), k.name);
    }
}

#[test]
fn forward_matches_reference() {
    check_forward(&cases_of(false));
}

fn check_forward(cases: &[(ConvShape, bool)]) {
    let gpu = Gpu::new(None).unwrap();
    precompile(&gpu, Pass::Forward, cases);
    let mut rng = Rng::new(1);
    let mut worst = 0.0f64;
    for &(s, all) in cases {
        let x = rng.vec(s.x_shape().iter().product());
        let w = rng.vec(s.w_shape().iter().product());
        let b = rng.vec(s.cout);
        for with_bias in [false, true] {
            let want = r::conv2d_forward(&s, &x, &w, with_bias.then_some(&b[..]));
            let (tx, tw, tb) = (
                up(&gpu, &x, &s.x_shape()),
                up(&gpu, &w, &s.w_shape()),
                up(&gpu, &b, &[s.cout]),
            );
            let ty = gpu.zeros(&s.y_shape());
            for t in tiles(Pass::Forward, &s, all) {
                gpu.fill(&ty, f32::NAN);
                let ds = conv_forward_with(&gpu, &s, t, &tx, &tw, with_bias.then_some(&tb), &ty)
                    .unwrap();
                run(&gpu, &ds);
                let e = rel_err(&gpu.download(&ty).unwrap(), &want);
                println!("fwd {s:?} bias {with_bias} tile {t}: rel err {e:.2e}");
                assert!(e <= 1e-4, "forward {s:?} tile {t}: rel err {e}");
                worst = worst.max(e);
            }
        }
    }
    println!("forward: largest rel err {worst:.2e}");
}

/// Every autotune candidate tile (`TSC_AUTOTUNE=1`) of all three passes on the shapes they
/// are tried on. Ignored by default: cold, their JIT takes lavapipe several minutes.
#[test]
#[ignore]
fn autotune_candidates_match_reference() {
    check_forward(&cases_of(true));
    check_backward_data(&cases_of(true));
    check_backward_weights(&cases_of(true));
}

/// L(x, w) = Σ y ⊙ dy, so ∂L/∂x and ∂L/∂w are the two backwards at dy.
fn loss(s: &ConvShape, x: &[f64], w: &[f64], dy: &[f64]) -> f64 {
    r::conv2d_forward(s, x, w, None)
        .iter()
        .zip(dy)
        .map(|(a, b)| a * b)
        .sum()
}

/// Central differences of `loss` at `k` random coordinates of `x` (`wrt_x`) or `w`, vs `grad`.
fn finite_diff_err(
    rng: &mut Rng,
    s: &ConvShape,
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    grad: &[f32],
    wrt_x: bool,
) -> f64 {
    let h = 1e-3;
    let scale = grad.iter().fold(1e-30f64, |m, g| m.max((*g as f64).abs()));
    let mut e = 0.0f64;
    for _ in 0..12 {
        let i = rng.below(grad.len());
        let (mut xp, mut wp) = (x.to_vec(), w.to_vec());
        let (mut xm, mut wm) = (x.to_vec(), w.to_vec());
        if wrt_x {
            xp[i] += h;
            xm[i] -= h;
        } else {
            wp[i] += h;
            wm[i] -= h;
        }
        let fd = (loss(s, &xp, &wp, dy) - loss(s, &xm, &wm, dy)) / (2.0 * h);
        e = e.max((fd - grad[i] as f64).abs());
    }
    e / scale
}

#[test]
fn backward_data_matches_reference_and_finite_differences() {
    check_backward_data(&cases_of(false));
}

fn check_backward_data(cases: &[(ConvShape, bool)]) {
    let gpu = Gpu::new(None).unwrap();
    precompile(&gpu, Pass::BackwardData, cases);
    let mut rng = Rng::new(2);
    let (mut worst, mut worst_fd) = (0.0f64, 0.0f64);
    for &(s, all) in cases {
        let x = rng.vec(s.x_shape().iter().product());
        let w = rng.vec(s.w_shape().iter().product());
        let dy = rng.vec(s.y_shape().iter().product());
        let want = r::conv2d_backward_data(&s, &dy, &w);
        let (tdy, tw) = (up(&gpu, &dy, &s.y_shape()), up(&gpu, &w, &s.w_shape()));
        let tdx = gpu.zeros(&s.x_shape());
        for t in tiles(Pass::BackwardData, &s, all) {
            gpu.fill(&tdx, f32::NAN);
            let ds = conv_backward_data_with(&gpu, &s, t, &tdy, &tw, &tdx).unwrap();
            run(&gpu, &ds);
            let got = gpu.download(&tdx).unwrap();
            let e = rel_err(&got, &want);
            let fd = finite_diff_err(&mut rng, &s, &x, &w, &dy, &got, true);
            println!("dX {s:?} tile {t}: rel err {e:.2e}, vs finite differences {fd:.2e}");
            assert!(e <= 1e-4, "backward-data {s:?} tile {t}: rel err {e}");
            assert!(
                fd <= 1e-3,
                "backward-data {s:?} tile {t}: finite-difference rel err {fd}"
            );
            worst = worst.max(e);
            worst_fd = worst_fd.max(fd);
        }
    }
    println!("backward data: largest rel err {worst:.2e}, vs finite differences {worst_fd:.2e}");
}

#[test]
fn backward_weights_matches_reference_and_finite_differences() {
    check_backward_weights(&cases_of(false));
}

fn check_backward_weights(cases: &[(ConvShape, bool)]) {
    let gpu = Gpu::new(None).unwrap();
    precompile(&gpu, Pass::BackwardWeights, cases);
    let mut rng = Rng::new(3);
    let (mut worst, mut worst_fd) = (0.0f64, 0.0f64);
    for &(s, all) in cases {
        let x = rng.vec(s.x_shape().iter().product());
        let w = rng.vec(s.w_shape().iter().product());
        let dy = rng.vec(s.y_shape().iter().product());
        let want = r::conv2d_backward_weights(&s, &x, &dy);
        let (tx, tdy) = (up(&gpu, &x, &s.x_shape()), up(&gpu, &dy, &s.y_shape()));
        let tdw = gpu.zeros(&s.w_shape());
        for t in tiles(Pass::BackwardWeights, &s, all) {
            gpu.fill(&tdw, f32::NAN);
            let ds = conv_backward_weights_with(&gpu, &s, t, &tx, &tdy, &tdw, false).unwrap();
            run(&gpu, &ds);
            let got = gpu.download(&tdw).unwrap();
            let e = rel_err(&got, &want);
            let fd = finite_diff_err(&mut rng, &s, &x, &w, &dy, &got, false);
            println!("dW {s:?} tile {t}: rel err {e:.2e}, vs finite differences {fd:.2e}");
            assert!(e <= 1e-4, "backward-weights {s:?} tile {t}: rel err {e}");
            assert!(
                fd <= 1e-3,
                "backward-weights {s:?} tile {t}: finite-difference rel err {fd}"
            );
            worst = worst.max(e);
            worst_fd = worst_fd.max(fd);
            // accumulate: dw = old + grad
            let old = rng.vec(w.len());
            gpu.write(&tdw, &f32s(&old));
            let ds = conv_backward_weights_with(&gpu, &s, t, &tx, &tdy, &tdw, true).unwrap();
            run(&gpu, &ds);
            let sum: Vec<f64> = old.iter().zip(&want).map(|(a, b)| a + b).collect();
            let e = rel_err(&gpu.download(&tdw).unwrap(), &sum);
            assert!(
                e <= 1e-4,
                "backward-weights accumulate {s:?} tile {t}: rel err {e}"
            );
        }
    }
    println!("backward weights: largest rel err {worst:.2e}, vs finite differences {worst_fd:.2e}");
}

#[test]
fn gemm_matches_reference() {
    let gpu = Gpu::new(None).unwrap();
    let mut rng = Rng::new(4);
    let tiles = [
        default_gemm_tile(&gpu),
        Tile {
            tm: 16,
            tn: 16,
            wg: 8,
            tex: false,
        },
        Tile {
            tm: 4,
            tn: 4,
            wg: 64,
            tex: false,
        },
        Tile {
            tm: 8,
            tn: 8,
            wg: 8,
            tex: false,
        },
    ];
    let mut worst = 0.0f64;
    for (m, n, k) in [(37, 20, 19), (5, 7, 3), (64, 36, 16), (9, 7, 12), (1, 4, 1)] {
        let a = rng.vec(m * k);
        let b = rng.vec(k * n);
        let want = r::matmul(m, n, k, &a, &b);
        let (ta, tb, tc) = (
            up(&gpu, &a, &[m, k]),
            up(&gpu, &b, &[k, n]),
            gpu.zeros(&[m, n]),
        );
        for t in tiles {
            gpu.fill(&tc, f32::NAN);
            run(&gpu, &gemm_with(&gpu, t, m, n, k, &ta, &tb, &tc).unwrap());
            let e = rel_err(&gpu.download(&tc).unwrap(), &want);
            println!("gemm {m}x{n}x{k} tile {t}: rel err {e:.2e}");
            assert!(e <= 1e-4, "gemm {m}x{n}x{k} tile {t}: rel err {e}");
            worst = worst.max(e);
        }
    }
    println!("gemm: largest rel err {worst:.2e}");
}

/// Every shader variant compiles (naga validation and pipeline creation), both vector widths.
#[test]
fn every_shader_variant_compiles() {
    let gpu = Gpu::new(None).unwrap();
    // vec4 along channels (16) and scalar (3) for every pass
    for (cin, cout) in [(16, 16), (3, 5)] {
        let s = ConvShape::square(1, 4, cin, cout, 3, 1, 1);
        let (x, w, y) = (
            gpu.zeros(&s.x_shape()),
            gpu.zeros(&s.w_shape()),
            gpu.zeros(&s.y_shape()),
        );
        for cpu in [true, false] {
            conv_forward_with(
                &gpu,
                &s,
                default_tile_for(cpu, Pass::Forward, &s),
                &x,
                &w,
                None,
                &y,
            )
            .unwrap();
            conv_backward_data_with(
                &gpu,
                &s,
                default_tile_for(cpu, Pass::BackwardData, &s),
                &y,
                &w,
                &x,
            )
            .unwrap();
            conv_backward_weights_with(
                &gpu,
                &s,
                default_tile_for(cpu, Pass::BackwardWeights, &s),
                &x,
                &y,
                &w,
                true,
            )
            .unwrap();
        }
    }
    // declared above; pipelines are created (and validated against their layouts) here,
    // without the first dispatch that would make lavapipe JIT them
    let kernels = gpu.kernels();
    assert!(!kernels.is_empty());
    for k in &kernels {
        k.compile(&gpu).unwrap();
    }
    // the stem and the row-kernel test shapes (and the forward of the two 3-channel multi-row
    // dX shapes) go to the row kernels
    assert!(row_kernel(&ConvShape::square(128, 32, 3, 16, 3, 1, 1)));
    assert_eq!(shapes().iter().filter(|s| row_kernel(s)).count(), 6);
    let bad = ConvShape::square(1, 4, 6, 4, 3, 1, 1);
    let bad = ConvShape { groups: 4, ..bad };
    assert!(bad.validate().is_err(), "groups must divide Cin");
}

/// Short runs on CPU adapters take tiles of at most 8 (then 16) a side, long runs the default;
/// GPU adapters always take their default.
#[test]
fn budget_tiles_follow_the_run_length() {
    assert_eq!(tile_cap(0.0), 8);
    assert_eq!(tile_cap(99e9), 8);
    assert_eq!(tile_cap(100e9), 16);
    assert_eq!(tile_cap(1.9e12), 16);
    assert_eq!(tile_cap(2e12), u32::MAX);
    for s in shapes() {
        for pass in [Pass::Forward, Pass::BackwardData, Pass::BackwardWeights] {
            let short = budget_tile_for(true, pass, &s, 10);
            assert!(short.tm <= 8 && short.tn <= 8, "{s:?} {pass:?}: {short}");
            let long = budget_tile_for(true, pass, &s, u64::MAX);
            assert_eq!(long, default_tile_for(true, pass, &s));
            assert_eq!(
                budget_tile_for(false, pass, &s, 10),
                default_tile_for(false, pass, &s)
            );
        }
    }
}
