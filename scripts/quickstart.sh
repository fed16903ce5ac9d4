#!/usr/bin/env bash
# The main job on a fresh machine: train a TSC-ResNet (LSTM step-size controller) on the
# scikit-learn digits shipped in the repository, export it with BN and the learned steps
# folded into the weights, and run the export through `core` on the CPU, printing accuracy.
# Installs what is missing first (a Vulkan driver: lavapipe when there is no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
TSC_SKIP_QEMU=1 source scripts/setup.sh

RUN=${RUN:-runs/quickstart}
cargo build --release -p tsc-trainer
T=target/release/trainer
rm -rf "$RUN"

echo "== train (GPU: $($T devices 2>/dev/null | head -1 | cut -c1-60))"
$T train --dataset digits --depth 14 --steps lstm --epochs 12 --batch 64 --lr 0.1 --seed 1 --out "$RUN"

echo "== export: fold BatchNorm and the learned Δt into a plain ResNet"
$T export "$RUN/checkpoint.tscm" --out "$RUN/model.tscm"

echo "== learned step sizes (per block: mean, min, max of Δt)"
$T steps "$RUN/checkpoint.tscm" --csv "$RUN/steps.csv"

echo "== the exported model through core on the CPU, on the held-out digits"
$T eval "$RUN/model.tscm" --dataset digits --cpu
