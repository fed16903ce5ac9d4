#!/usr/bin/env bash
# Builds the firmware demo for the Cortex-M4F and runs it in QEMU (docs/FIRMWARE.md).
#
#   scripts/firmware-run.sh [MODEL [IMAGES]]
#
# MODEL / IMAGES default to $TSC_MODEL / $TSC_IMAGES, else the committed
# firmware-demo/models/default.tscm and its default-images.bin. Exits with the firmware's
# status (0: every image ran).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
if [ $# -ge 1 ]; then export TSC_MODEL="$(abs "$1")"; elif [ -n "${TSC_MODEL:-}" ]; then export TSC_MODEL="$(abs "$TSC_MODEL")"; fi
if [ $# -ge 2 ]; then export TSC_IMAGES="$(abs "$2")"; elif [ -n "${TSC_IMAGES:-}" ]; then export TSC_IMAGES="$(abs "$TSC_IMAGES")"; fi
cd "$root/firmware-demo"
exec cargo run --release
