//! `trainer bench ...`: throughput measurements (never timed tests).

use crate::gpu::conv::{
    conv_backward_data_with, conv_backward_weights_with, conv_forward_with, pick_tile, ConvShape,
    Pass, Tile,
};
use crate::gpu::gemm::gemm_with;
use crate::gpu::tune::tune;
use crate::gpu::{Dispatch, Gpu};
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
    /// Use this tile (`TMxTN`, `TMxTN/wgWG`, either with `/tex` or `/buf` to read operands
    /// through texture mirrors or storage buffers) for every conv kernel instead of the
    /// adapter's.
    #[arg(long)]
    pub tile: Option<String>,
    /// Only the shapes whose name contains this (e.g. `stem`, `@8`).
    #[arg(long)]
    pub only: Option<String>,
    /// Which network's conv shapes: `resnet20` (default), `imagenet` (ResNet-50's 7×7
    /// stride-2 stem, its 1×1 and stride-2 1×1 convs, and a 3×3 of similar FLOPs to the stem;
    /// use a small `--batch`) or `resnext` (ResNeXt-29 8×16d's grouped 3×3 convs, each with
    /// the ungrouped conv of its shape for comparison).
    #[arg(long, default_value = "resnet20")]
    pub shapes: String,
    /// Also time every kernel with this tile (same syntax as `--tile`), alternating with the
    /// main tile run by run, and print the time ratio: an A/B that shares the machine's noise.
    #[arg(long)]
    pub versus: Option<String>,
    /// Size of the square matrix multiply timed as the ceiling (0: skip).
    #[arg(long, default_value_t = 1024)]
    pub gemm: usize,
}

/// CPU seconds this process has used (all threads), from /proc/self/stat; `None` elsewhere.
/// On CPU adapters the driver's worker threads do the GPU work, so CPU time per run measures a
/// kernel's cost independently of other processes competing for the cores.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // fields after the ")" that closes the command name: state is field 3, utime 14, stime 15
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ
}

/// Wall seconds of one run of `ds` (record, submit, wait for completion).
fn time_once(gpu: &Gpu, ds: &[Dispatch]) -> Result<f64> {
    let mut rec = gpu.recorder();
    for d in ds {
        rec.run(d);
    }
    let t0 = std::time::Instant::now();
    rec.submit();
    gpu.wait()?;
    Ok(t0.elapsed().as_secs_f64())
}

/// Median wall seconds of `a` and of `b`, timed alternately `reps` times each after a warm-up.
fn alternate(gpu: &Gpu, a: &[Dispatch], b: &[Dispatch], reps: usize) -> Result<(f64, f64)> {
    let t = measure_round_robin(gpu, &[a, b], reps)?;
    Ok((t[0].wall, t[1].wall))
}

/// Parse `TMxTN` or `TMxTN/wgWG` (default workgroup 8 on CPU adapters, 64 on GPUs).
fn parse_tile(gpu: &Gpu, s: &str) -> Result<Tile> {
    let (s, tex) = match (s.strip_suffix("/tex"), s.strip_suffix("/buf")) {
        (Some(d), _) => (d, true),
        (_, Some(d)) => (d, false),
        _ => (s, gpu.is_cpu()),
    };
    let (dims, wg) = match s.split_once("/wg") {
        Some((d, w)) => (d, w.parse()?),
        None => (s, if gpu.is_cpu() { 8 } else { 64 }),
    };
    let (tm, tn) = dims
        .split_once('x')
        .ok_or_else(|| anyhow::anyhow!("--tile wants TMxTN, got '{s}'"))?;
    Ok(Tile {
        tm: tm.parse()?,
        tn: tn.parse()?,
        wg,
        tex,
    })
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

/// ImageNet ResNet-50 convolutions at batch `n` (with how often each occurs): the 7×7
/// stride-2 stem, stride-2 1×1s (projection, original-layout bottleneck conv1), plain 1×1s,
/// and 3×3s, so the stem's GF/s can be read against generic convs of similar FLOPs.
pub fn imagenet_convs(n: usize) -> Vec<(&'static str, ConvShape, usize)> {
    let sq = ConvShape::square;
    vec![
        ("stem 7x7/2 3->64 @224", sq(n, 224, 3, 64, 7, 2, 3), 1),
        ("3x3 64->64 @56", sq(n, 56, 64, 64, 3, 1, 1), 3),
        ("1x1 256->64 @56", sq(n, 56, 256, 64, 1, 1, 0), 2),
        ("1x1 64->256 @56", sq(n, 56, 64, 256, 1, 1, 0), 3),
        ("1x1/2 256->512 @56 (proj)", sq(n, 56, 256, 512, 1, 2, 0), 1),
        (
            "1x1/2 256->128 @56 (conv1)",
            sq(n, 56, 256, 128, 1, 2, 0),
            1,
        ),
        ("3x3 128->128 @28", sq(n, 28, 128, 128, 3, 1, 1), 4),
    ]
}

/// ResNeXt-29 (8×16d, CIFAR) grouped 3×3 convolutions at batch `n`, each next to the
/// ungrouped conv of the same shape, so GF/s compare per FLOP: cardinality 8 of width 16,
/// 32 and 64 per group at 32, 16 and 8 pixels (the stride-2 grouped convs open stages 2, 3).
pub fn resnext_convs(n: usize) -> Vec<(&'static str, ConvShape, usize)> {
    let c = |hw, ch, stride, groups| ConvShape {
        groups,
        ..ConvShape::square(n, hw, ch, ch, 3, stride, 1)
    };
    vec![
        ("g8 3x3 128 @32", c(32, 128, 1, 8), 3),
        ("3x3 128 @32 (ungrouped)", c(32, 128, 1, 1), 0),
        ("g8 3x3/2 256 @32", c(32, 256, 2, 8), 1),
        ("g8 3x3 256 @16", c(16, 256, 1, 8), 2),
        ("3x3 256 @16 (ungrouped)", c(16, 256, 1, 1), 0),
        ("g8 3x3/2 512 @16", c(16, 512, 2, 8), 1),
        ("g8 3x3 512 @8", c(8, 512, 1, 8), 2),
        ("3x3 512 @8 (ungrouped)", c(8, 512, 1, 1), 0),
    ]
}

/// One timing: wall seconds (median) and, on CPU adapters, CPU seconds per run.
struct Timing {
    wall: f64,
    cpu: Option<f64>,
}

impl Timing {
    /// GFLOP/s by wall time, and the estimate for an otherwise idle machine:
    /// `flops / (cpu seconds / cores)` (CPU adapters only).
    fn gflops(&self, flops: f64, cores: f64) -> (f64, Option<f64>) {
        (
            flops / self.wall / 1e9,
            self.cpu.map(|c| flops / (c / cores) / 1e9),
        )
    }
}

/// Time every dispatch list round-robin: one warm-up run each (pipeline JIT), then `reps`
/// rounds of one run of each, so every kernel and the GEMM ceiling see the same phases of a
/// machine whose speed drifts (a VM's drifts by ±30% over minutes). Per list: the median wall
/// time and, on CPU adapters, the CPU seconds per run summed over the rounds.
fn measure_round_robin(gpu: &Gpu, lists: &[&[Dispatch]], reps: usize) -> Result<Vec<Timing>> {
    for ds in lists {
        time_once(gpu, ds)?;
    }
    let reps = reps.max(1);
    let mut walls = vec![Vec::with_capacity(reps); lists.len()];
    let mut cpu = vec![Some(0.0f64); lists.len()];
    for _ in 0..reps {
        for (i, ds) in lists.iter().enumerate() {
            let c0 = cpu_seconds();
            walls[i].push(time_once(gpu, ds)?);
            cpu[i] = match (cpu[i], c0, cpu_seconds()) {
                (Some(sum), Some(a), Some(b)) => Some(sum + b - a),
                _ => None,
            };
        }
    }
    Ok(walls
        .into_iter()
        .zip(cpu)
        .map(|(mut w, c)| {
            w.sort_by(|a, b| a.total_cmp(b));
            Timing {
                wall: w[w.len() / 2],
                cpu: c.filter(|_| gpu.is_cpu()).map(|c| c / reps as f64),
            }
        })
        .collect())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.1}"))
}

/// Time the conv kernels at ResNet-20's shapes and a square GEMM as the device's ceiling.
pub fn kernels(gpu: &Gpu, args: &KernelArgs) -> Result<()> {
    anyhow::ensure!(
        args.batch >= 1,
        "--batch {}: must be at least 1",
        args.batch
    );
    anyhow::ensure!(args.reps >= 1, "--reps {}: must be at least 1", args.reps);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
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
        "time: median of {} rounds, each running every kernel below once (submit to \
         completion), after one warm-up run each",
        args.reps
    );
    if gpu.is_cpu() {
        println!(
            "CPU adapter: 'GF/s' is by wall time and drops when other processes share the cores; \
             'idle GF/s' = FLOPs / (process CPU seconds per run / {cores} cores), a rough \
             idle-machine estimate (optimistic when hyperthread siblings are busy)"
        );
    }
    println!();

    // The GEMM ceiling's dispatch lists, with what each is.
    let mut gemms: Vec<(String, Vec<Dispatch>)> = Vec::new();
    let gemm_flops = 2.0 * (args.gemm as f64).powi(3);
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
            let t = Tile {
                tm,
                tn,
                wg,
                tex: false,
            };
            gemms.push((
                format!("gemm {s}^3 (C = A·B) tile {t}"),
                gemm_with(gpu, t, s, s, s, &a, &b, &c)?,
            ));
        }
        // The same product through the conv forward kernel (1x1 conv over M "pixels":
        // C = A·Bᵀ), which accumulates dot products along K instead of outer products.
        let cs = ConvShape::square(s, 1, s, s, 1, 1, 0);
        let ctiles: &[(u32, u32, u32)] = if gpu.is_cpu() {
            &[(16, 16, 8), (32, 16, 8)]
        } else {
            &[(4, 4, 64), (8, 4, 64)]
        };
        for &(tm, tn, wg) in ctiles {
            let t = Tile {
                tm,
                tn,
                wg,
                tex: gpu.is_cpu(),
            };
            gemms.push((
                format!("gemm {s}^3 as 1x1 conv fwd (C = A·Bᵀ) tile {t}"),
                conv_forward_with(gpu, &cs, t, &a, &b, None, &c)?,
            ));
        }
    }

    // Every conv kernel's dispatch list (the `--versus` A/Bs run here, as they are built).
    struct Conv {
        name: &'static str,
        mult: usize,
        pass: usize,
        label: &'static str,
        tile: Tile,
        flops: f64,
        ds: Vec<Dispatch>,
    }
    let mut convs: Vec<Conv> = Vec::new();
    let shapes = match args.shapes.as_str() {
        "resnet20" => resnet20_convs(args.batch),
        "imagenet" => imagenet_convs(args.batch),
        "resnext" => resnext_convs(args.batch),
        other => anyhow::bail!("--shapes '{other}': expected resnet20, imagenet or resnext"),
    };
    for (_, s, _) in &shapes {
        let per_image = [s.x_shape(), s.y_shape()]
            .iter()
            .map(|d| d.iter().product::<usize>() / s.n.max(1))
            .max()
            .unwrap_or(1);
        let what = format!("{}x{}x{} -> {} conv's tensors", s.h, s.w, s.cin, s.cout);
        gpu.check_batch_fits(s.n, per_image, &what)?;
    }
    for (name, s, mult) in shapes {
        if args
            .only
            .as_ref()
            .is_some_and(|o| !name.contains(o.as_str()))
        {
            continue;
        }
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
            let tile = if let Some(t) = &args.tile {
                parse_tile(gpu, t)?
            } else if args.tune {
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
            let build = |tile: Tile| -> Result<Vec<Dispatch>> {
                Ok(match pass {
                    Pass::Forward => conv_forward_with(gpu, &s, tile, &x, &w, None, &y)?,
                    Pass::BackwardData => conv_backward_data_with(gpu, &s, tile, &y, &w, &dx)?,
                    Pass::BackwardWeights => {
                        conv_backward_weights_with(gpu, &s, tile, &x, &y, &dw, false)?
                    }
                })
            };
            let ds = build(tile)?;
            if let Some(v) = &args.versus {
                let other = parse_tile(gpu, v)?;
                let (a, b) = alternate(gpu, &ds, &build(other)?, args.reps)?;
                println!(
                    "  {name} {label}: {tile} {:.2} ms vs {other} {:.2} ms (ratio {:.2}, medians of {} alternating runs)",
                    a * 1e3,
                    b * 1e3,
                    b / a,
                    args.reps.max(1)
                );
            }
            convs.push(Conv {
                name,
                mult,
                pass: i,
                label,
                tile,
                flops: s.flops(),
                ds,
            });
        }
    }

    let lists: Vec<&[Dispatch]> = gemms
        .iter()
        .map(|(_, ds)| &ds[..])
        .chain(convs.iter().map(|c| &c.ds[..]))
        .collect();
    // Every kernel above, compiled on all cores before the first timed round.
    let prepared = gpu.prepare()?;
    if prepared.kernels > 0 {
        println!("{prepared}");
    }
    let times = measure_round_robin(gpu, &lists, args.reps)?;
    let (gemm_times, conv_times) = times.split_at(gemms.len());

    let (mut ceiling, mut ceiling_idle) = (0.0f64, 0.0f64);
    for ((what, _), t) in gemms.iter().zip(gemm_times) {
        let (gf, idle) = t.gflops(gemm_flops, cores);
        println!(
            "{what}: {:.2} ms, {gf:.1} GF/s, idle {} GF/s",
            t.wall * 1e3,
            fmt_opt(idle)
        );
        ceiling = ceiling.max(gf);
        ceiling_idle = ceiling_idle.max(idle.unwrap_or(0.0));
    }
    if !gemms.is_empty() {
        println!(
            "ceiling (best GEMM): {ceiling:.1} GF/s by wall time, {ceiling_idle:.1} GF/s idle\n"
        );
    }

    println!(
        "{:<15} {:>3} {:<4} {:<10} {:>8} {:>7} {:>6} {:>9} {:>6}",
        "shape", "x", "pass", "tile", "ms", "GF/s", "%ceil", "idle GF/s", "%ceil"
    );
    let pct = |v: f64, c: f64| {
        if c > 0.0 {
            format!("{:.0}%", 100.0 * v / c)
        } else {
            "-".into()
        }
    };
    let (mut total_s, mut total_cpu, mut total_flop) = (0.0f64, 0.0f64, 0.0f64);
    let mut per_kind = [0.0f64; 3];
    for (c, t) in convs.iter().zip(conv_times) {
        let (gf, idle) = t.gflops(c.flops, cores);
        println!(
            "{:<15} {:>3} {:<4} {:<10} {:>8.2} {gf:>7.1} {:>6} {:>9} {:>6}",
            c.name,
            format!("x{}", c.mult),
            c.label,
            c.tile.to_string(),
            t.wall * 1e3,
            pct(gf, ceiling),
            fmt_opt(idle),
            idle.map_or("-".into(), |v| pct(v, ceiling_idle)),
        );
        let m = c.mult as f64;
        total_s += m * t.wall;
        total_cpu += m * t.cpu.unwrap_or(0.0);
        total_flop += m * c.flops;
        per_kind[c.pass] += m * t.wall;
    }
    let what = match args.shapes.as_str() {
        "resnet20" => "ResNet-20 step, all convs",
        "resnext" => "ResNeXt-29's grouped 3×3 convs (the ungrouped ones, x0, are for comparison)",
        _ => "the listed ResNet-50 convs (a sample, not the whole net)",
    };
    println!(
        "\n{what} fwd + dX + dW with multiplicities: {:.1} ms ({:.1} GF/s; \
         fwd {:.1} ms, dX {:.1} ms, dW {:.1} ms) => conv-only bound {:.0} images/s",
        total_s * 1e3,
        total_flop / total_s / 1e9,
        per_kind[0] * 1e3,
        per_kind[1] * 1e3,
        per_kind[2] * 1e3,
        args.batch as f64 / total_s
    );
    if gpu.is_cpu() && total_cpu > 0.0 {
        let idle_s = total_cpu / cores;
        println!(
            "idle-machine estimate: {:.1} ms ({:.1} GF/s) => {:.0} images/s",
            idle_s * 1e3,
            total_flop / idle_s / 1e9,
            args.batch as f64 / idle_s
        );
    }
    println!("(the stem's dX is included although training never needs it)");
    Ok(())
}
