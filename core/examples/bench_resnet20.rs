//! Host timing of single-image inference for a random-weight CIFAR ResNet-20 (widths
//! 16/32/64, 32×32×3 input, option-A shortcuts), one thread.
//!
//! `cargo run --release -p tsc-core --features std --example bench_resnet20`
//!
//! Prints the median ms/image over several runs for the folded model (what deployments run)
//! and for the unfolded checkpoint (BN + Δt from an LSTM controller).

use std::time::Instant;

use tsc_core::fold::fold_to_vec;
use tsc_core::testutil::{random_checkpoint, random_input};
use tsc_core::{infer, layers::argmax, Arch, Model, ShortcutKind, StepMode};

fn median_ms(model: &Model<'_>, input: &[f32], runs: usize, iters: usize) -> f64 {
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let mut logits = vec![0.0f32; model.arch().classes];
    // Warm-up.
    infer(model, input, &mut scratch, &mut logits).unwrap();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                infer(model, input, &mut scratch, &mut logits).unwrap();
                std::hint::black_box(&logits);
            }
            t.elapsed().as_secs_f64() * 1e3 / iters as f64
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let _ = argmax(&logits);
    times[times.len() / 2]
}

fn main() {
    let arch = Arch::cifar(3, 16, StepMode::Lstm, ShortcutKind::A);
    let ck_bytes = random_checkpoint(&arch, 2024);
    let ck = Model::parse(&ck_bytes).expect("checkpoint");
    let folded_bytes = fold_to_vec(&ck).expect("fold");
    let folded = Model::parse(&folded_bytes).expect("folded");
    let input = random_input(&arch, 1);
    println!(
        "ResNet-20 (depth 20, widths 16/32/64, 32x32x3), folded file {} bytes, scratch {} f32 ({} KiB)",
        folded_bytes.len(),
        folded.scratch_len(),
        folded.scratch_len() * 4 / 1024
    );
    let f = median_ms(&folded, &input, 11, 10);
    println!("folded:     {f:.3} ms/image (median of 11 runs x 10 images, 1 thread)");
    let u = median_ms(&ck, &input, 5, 4);
    println!("checkpoint: {u:.3} ms/image (median of 5 runs x 4 images, BN + LSTM controller)");
}
