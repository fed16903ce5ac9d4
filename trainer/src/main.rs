//! `trainer`: train, evaluate, export and inspect time-stepping-controlled ResNets on any GPU.

use anyhow::Result;
use clap::{Parser, Subcommand};
use tsc_trainer::gpu::{list_adapters, Gpu};

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "Train TSC-ResNets on any GPU (wgpu: Vulkan/Metal/DX12)"
)]
struct Cli {
    /// GPU adapter to use: an index or a name substring from `trainer devices`
    /// (default: $TSC_ADAPTER, else the best adapter found).
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the GPU adapters wgpu sees, with backend and limits.
    Devices,
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// Time conv forward / backward-to-input / backward-to-weights at ResNet-20's shapes.
    Kernels(tsc_trainer::bench::KernelArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Devices => devices(),
        Cmd::Bench {
            what: Bench::Kernels(args),
        } => {
            let gpu = Gpu::new(cli.adapter.as_deref())?;
            tsc_trainer::bench::kernels(&gpu, &args)
        }
    }
}

fn devices() -> Result<()> {
    let all = list_adapters();
    if all.is_empty() {
        anyhow::bail!(
            "no GPU adapter found: install a Vulkan driver (on Debian/Ubuntu without a GPU: apt-get install mesa-vulkan-drivers)"
        );
    }
    for a in all {
        println!(
            "[{}] {} ({:?}, {:?}) driver: {}\n    max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, invocations/workgroup {}",
            a.index,
            a.name,
            a.device_type,
            a.backend,
            a.driver,
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup
        );
    }
    Ok(())
}
