#!/usr/bin/env bash
# The firmware demo in QEMU against tsc-core on the host (tests/firmware.rs), with the
# firmware's output in the log. TSC_FIRMWARE_REQUIRE=1 turns a missing QEMU or Cortex-M
# target into a failure instead of a skip (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
TSC_FIRMWARE_REQUIRE="${TSC_FIRMWARE_REQUIRE:-1}" \
    cargo test -p tsc-tests --release --test firmware -- --nocapture
