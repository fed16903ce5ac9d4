#!/usr/bin/env bash
# The project's whole test suite: installs what is missing (scripts/setup.sh), then runs
# every test. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== core builds for the Cortex-M4F (no_std, no allocator)"
cargo build -p tsc-core --release --target thumbv7em-none-eabihf

echo "== core tests (debug build: overflow checks on for the parser)"
cargo test -p tsc-core

echo "== workspace tests (GPU tests run on the first Vulkan adapter: lavapipe without a GPU)"
cargo test --workspace --release --exclude tsc-core

if [ -f firmware-demo/Cargo.toml ]; then
    echo "== firmware demo in QEMU against core on the host"
    ./scripts/firmware-test.sh
fi
