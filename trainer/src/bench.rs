//! `trainer bench ...`: throughput measurements (never timed tests).

use crate::gpu::conv::{
    conv_backward_data_with, conv_backward_weights_with, conv_forward_with, pick_tile, ConvShape,
    Pass, Tile,
};
use crate::gpu::gemm::gemm_with;
use crate::gpu::tune::{time_dispatches, tune};
use crate::gpu::Gpu;
use anyhow::Result;

/// Options of `trainer bench kernels`.
#[derive(clap::Args, Debug)]
pub struct KernelArgs {
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Timed repetitions per kernel (median reported).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Time every candidate tile per shape and kernel (prints them) and report the fastest.
    #[arg(long)]
    pub tune: bool,
    /// Size of the square matrix multiply timed as the ceiling (0: skip).
    #[arg(long, default_value_t = 1024)]
    pub gemm: usize,
}

/// ResNet-20's convolutions at batch `n` (3×3, pad 1) with how often each occurs in the net.
pub fn resnet20_convs(n: usize) -> Vec<(&'static str, ConvShape, usize)> {
    let c = |hw, cin, cout, stride| ConvShape::square(n, hw, cin, cout, 3, stride, 1);
    vec![
        ("stem 3->16 @32", c(32, 3, 16, 1), 1),
        ("16->16 @32", c(32, 16, 16, 1), 6),
        ("16->32 s2 @32", c(32, 16, 32, 2), 1),
        ("32->32 @16", c(16, 32, 32, 1), 5),
        ("32->64 s2 @16", c(16, 32, 64, 2), 1),
        ("64->64 @8", c(8, 64, 64, 1), 5),
    ]
}

/// Time the conv kernels at ResNet-20's shapes and a square GEMM as the device's ceiling.
pub fn kernels(gpu: &Gpu, args: &KernelArgs) -> Result<()> {
    println!(
        "device: {}, batch {}, reps {}",
        gpu.describe(),
        args.batch,
        args.reps
    );
    println!(
        "FLOPs per conv kernel (fwd, dX and dW alike): 2·N·Ho·Wo·Cout·kh·kw·Cin/G; GEMM: 2·M·N·K"
    );
    println!(
        "time: median of {} runs (submit to completion) after one warm-up run\n",
        args.reps
    );

    let mut ceiling = 0.0f64;
    if args.gemm > 0 {
        let s = args.gemm;
        let a = gpu.zeros(&[s, s]);
        let b = gpu.zeros(&[s, s]);
        let c = gpu.zeros(&[s, s]);
        gpu.fill(&a, 0.5);
        gpu.fill(&b, 0.25);
        let tiles: &[(u32, u32, u32)] = if gpu.is_cpu() {
            &[(16, 16, 8), (32, 32, 8)]
        } else {
            &[(4, 4, 64), (8, 8, 64), (4, 8, 64)]
        };
        for &(tm, tn, wg) in tiles {
            let t = Tile { tm, tn, wg };
            let ds = gemm_with(gpu, t, s, s, s, &a, &b, &c)?;
            let sec = time_dispatches(gpu, &ds, args.reps)?;
            let gf = 2.0 * (s as f64).powi(3) / sec / 1e9;
            println!(
                "gemm {s}x{s}x{s} tile {t}: {:.2} ms, {gf:.1} GFLOP/s",
                sec * 1e3
            );
            ceiling = ceiling.max(gf);
        }
        println!("ceiling (best GEMM): {ceiling:.1} GFLOP/s\n");
    }

    println!(
        "{:<16} {:>4} {:<6} {:<11} {:>9} {:>9} {:>8}",
        "shape", "x", "kernel", "tile", "ms", "GFLOP/s", "% ceil"
    );
    let (mut total_s, mut total_flop) = (0.0f64, 0.0f64);
    let mut per_kind = [0.0f64; 3];
    for (name, s, mult) in resnet20_convs(args.batch) {
        let x = gpu.zeros(&s.x_shape());
        let w = gpu.zeros(&s.w_shape());
        let y = gpu.zeros(&s.y_shape());
        gpu.fill(&x, 0.5);
        gpu.fill(&w, 0.01);
        gpu.fill(&y, 0.25);
        // dX and dW get their own outputs so the runs do not depend on each other.
        let dx = gpu.zeros(&s.x_shape());
        let dw = gpu.zeros(&s.w_shape());
        for (i, (pass, label)) in [
            (Pass::Forward, "fwd"),
            (Pass::BackwardData, "dX"),
            (Pass::BackwardWeights, "dW"),
        ]
        .into_iter()
        .enumerate()
        {
            let tile = if args.tune {
                let r = tune(gpu, pass, &s, args.reps.min(3))?;
                let all: Vec<String> = r
                    .iter()
                    .map(|(t, sec)| format!("{t} {:.2} ms", sec * 1e3))
                    .collect();
                println!("  tune {name} {label}: {}", all.join(", "));
                r[0].0
            } else {
                pick_tile(gpu, pass, &s)?
            };
            let ds = match pass {
                Pass::Forward => conv_forward_with(gpu, &s, tile, &x, &w, None, &y)?,
                Pass::BackwardData => conv_backward_data_with(gpu, &s, tile, &y, &w, &dx)?,
                Pass::BackwardWeights => {
                    conv_backward_weights_with(gpu, &s, tile, &x, &y, &dw, false)?
                }
            };
            let sec = time_dispatches(gpu, &ds, args.reps)?;
            let gf = s.flops() / sec / 1e9;
            let pct = if ceiling > 0.0 {
                format!("{:.0}%", 100.0 * gf / ceiling)
            } else {
                "-".into()
            };
            println!(
                "{name:<16} {:>4} {label:<6} {:<11} {:>9.2} {gf:>9.1} {pct:>8}",
                format!("x{mult}"),
                tile.to_string(),
                sec * 1e3
            );
            total_s += mult as f64 * sec;
            total_flop += mult as f64 * s.flops();
            per_kind[i] += mult as f64 * sec;
        }
    }
    println!(
        "\nResNet-20 step, all convs fwd + dX + dW with multiplicities: {:.1} ms ({:.1} GFLOP/s overall; \
         fwd {:.1} ms, dX {:.1} ms, dW {:.1} ms) => conv-only bound {:.0} images/s",
        total_s * 1e3,
        total_flop / total_s / 1e9,
        per_kind[0] * 1e3,
        per_kind[1] * 1e3,
        per_kind[2] * 1e3,
        args.batch as f64 / total_s
    );
    println!("(the stem's dX is included although training never needs it)");
    Ok(())
}
