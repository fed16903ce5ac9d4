//! `trainer bench ...`: throughput measurements (never timed tests).

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
}

/// Time the conv kernels at ResNet-20's shapes (filled in by the conv kernels work).
pub fn kernels(gpu: &Gpu, args: &KernelArgs) -> Result<()> {
    println!(
        "device: {}, batch {}, reps {}",
        gpu.describe(),
        args.batch,
        args.reps
    );
    anyhow::bail!("bench kernels: not implemented yet")
}
