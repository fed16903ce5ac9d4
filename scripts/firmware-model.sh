#!/usr/bin/env bash
# Test images for the firmware demo, for any model (docs/FIRMWARE.md).
#
#   scripts/firmware-model.sh MODEL IMAGES [--count N] [--digits FILE] [--cifar FILE] [--random SEED]
#       writes IMAGES (the firmware's test-image file) for MODEL: 8x8x1 models get the last N
#       records of data/digits/digits.bin, 32x32x3 models the first N of a CIFAR-10 binary
#       batch (--cifar test_batch.bin); other shapes need --random SEED. N defaults to 10.
#   scripts/firmware-model.sh --placeholder
#       recreates the committed placeholder firmware-demo/models/default.tscm (random-weight
#       digits ResNet-8, folded) and default-images.bin.
#
# Then: TSC_MODEL=MODEL TSC_IMAGES=IMAGES scripts/firmware-run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# Run from the repository root so that firmware-demo/.cargo/config.toml (Cortex-M target)
# does not apply to this host tool.
cd "$root"
tool=(cargo run -q --release --manifest-path firmware-demo/tools/Cargo.toml --)
if [ "${1:-}" = "--placeholder" ]; then
    shift
    exec "${tool[@]}" placeholder firmware-demo/models/default.tscm \
        firmware-demo/models/default-images.bin "$@"
fi
if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
exec "${tool[@]}" images "$@"
