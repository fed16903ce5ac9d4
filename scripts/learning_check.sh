#!/usr/bin/env bash
# Learning check on real data (run by hand, not in CI): a CIFAR ResNet on CIFAR-10 from
# ../shared/data/cifar10, reporting test accuracy, images/s and wall time.
#   ARCH=cifar (default) DEPTH=20: the basic ResNet-20; ARCH=cifar-bottleneck DEPTH=29: the
#   bottleneck ResNet-29 (1x1-3x3-1x1, widths 64/128/256).
#   ARCH=cifar-resnext: grouped bottlenecks (CARDINALITY, BASE_WIDTH); SE=R adds a
#   squeeze-excitation unit (reduction R) to every block of any ARCH.
#   STEPS=fixed:1 (default, the plain ResNet) | indp | 2fc | lstm.
# Default data: data_batch_1 alone (10,000 images) for 15 epochs; FULL=1 uses all five
# training batches for 10 epochs.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/cifar10}
STEPS=${STEPS:-fixed:1}
ARCH=${ARCH:-cifar}
case "$ARCH" in cifar-bottleneck|cifar-resnext) DEPTH=${DEPTH:-29} ;; *) DEPTH=${DEPTH:-20} ;; esac
EXTRA=()
[ -n "${CARDINALITY:-}" ] && EXTRA+=(--groups "$CARDINALITY")
[ -n "${BASE_WIDTH:-}" ] && EXTRA+=(--base-width "$BASE_WIDTH")
[ -n "${SE:-}" ] && EXTRA+=(--se "$SE")
if [ "${FULL:-0}" = 1 ]; then BATCHES=1,2,3,4,5; EPOCHS=${EPOCHS:-10}; else BATCHES=1; EPOCHS=${EPOCHS:-15}; fi
RUN=${RUN:-runs/cifar10-${ARCH}${DEPTH}${SE:+-se$SE}-${STEPS/:/-}-b${BATCHES//,/}}
[ -f "$DATA/test_batch.bin" ] || { echo "CIFAR-10 not found in $DATA (set DATA=...)"; exit 1; }
cargo build --release -p tsc-trainer
start=$(date +%s)
target/release/trainer train --dataset cifar10 --data "$DATA" --cifar-batches "$BATCHES" \
    --arch "$ARCH" --depth "$DEPTH" --steps "$STEPS" --epochs "$EPOCHS" --batch 128 --lr 0.1 \
    --seed 0 "${EXTRA[@]}" --out "$RUN"
echo "wall time: $(( $(date +%s) - start )) s; per-epoch numbers in $RUN/metrics.csv"
