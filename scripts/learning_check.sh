#!/usr/bin/env bash
# Learning check on real data (run by hand, not in CI): ResNet-20 with fixed:1 (the plain
# ResNet) on CIFAR-10 from ../shared/data/cifar10, reporting test accuracy, images/s and wall
# time. Default: data_batch_1 alone (10,000 images) for 15 epochs; FULL=1 uses all five
# training batches for 10 epochs. STEPS=lstm trains the TSC-ResNet instead.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10}
STEPS=${STEPS:-fixed:1}
if [ "${FULL:-0}" = 1 ]; then BATCHES=1,2,3,4,5; EPOCHS=${EPOCHS:-10}; else BATCHES=1; EPOCHS=${EPOCHS:-15}; fi
RUN=${RUN:-runs/cifar10-r20-${STEPS/:/-}-b${BATCHES//,/}}
[ -f "$DATA/test_batch.bin" ] || { echo "CIFAR-10 not found in $DATA (set DATA=...)"; exit 1; }
cargo build --release -p tsc-trainer
start=$(date +%s)
target/release/trainer train --dataset cifar10 --data "$DATA" --cifar-batches "$BATCHES" \
    --depth 20 --steps "$STEPS" --epochs "$EPOCHS" --batch 128 --lr 0.1 --seed 0 --out "$RUN"
echo "wall time: $(( $(date +%s) - start )) s; per-epoch numbers in $RUN/metrics.csv"
