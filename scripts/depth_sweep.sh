#!/usr/bin/env bash
# Depth sweep (paper Fig. 5): plain ResNets (fixed:1) and TSC-ResNets (lstm) at several depths,
# trained with the same budget on CIFAR-10; writes OUT/sweep.csv and OUT/sweep.png (test
# accuracy against depth). Each run is an ordinary run folder OUT/<mode>-d<depth>/; running the
# script again resumes unfinished runs and reuses finished ones. See docs/ANALYSES.md.
#
# Settings through the environment (defaults: the smallest setting, about 30 minutes on a
# CPU-only machine with lavapipe):
#   DEPTHS=8,14,20  MODES=fixed:1,lstm  EPOCHS=1  WIDTH=0.5  CIFAR_BATCHES=1  BATCH=128
#   DATA=../shared/data/cifar10  OUT=runs/depth-sweep  MAX_STEPS=0 (0: whole epochs)
# Extra arguments are passed to `trainer sweep` (e.g. --lr 0.05 --seed 1).
set -euo pipefail
cd "$(dirname "$0")/.."
DEPTHS=${DEPTHS:-8,14,20}
MODES=${MODES:-fixed:1,lstm}
EPOCHS=${EPOCHS:-1}
WIDTH=${WIDTH:-0.5}
CIFAR_BATCHES=${CIFAR_BATCHES:-1}
BATCH=${BATCH:-128}
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-runs/depth-sweep}
MAX_STEPS=${MAX_STEPS:-0}
cargo build --release -p tsc-trainer
exec target/release/trainer sweep \
    --depths "$DEPTHS" --modes "$MODES" \
    --dataset cifar10 --data "$DATA" --cifar-batches "$CIFAR_BATCHES" \
    --epochs "$EPOCHS" --width "$WIDTH" --batch "$BATCH" --max-steps "$MAX_STEPS" \
    --out "$OUT" "$@"
