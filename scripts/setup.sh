#!/usr/bin/env bash
# Install what building and testing need beyond the Rust toolchain, only where missing:
# a Vulkan driver (lavapipe, Mesa's CPU implementation, when there is no GPU driver),
# QEMU for the firmware demo, and the Cortex-M4F Rust target. Idempotent and quiet.
set -euo pipefail

need_apt=()
if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
    need_apt+=(mesa-vulkan-drivers)
fi
if [ "${TSC_SKIP_QEMU:-0}" != 1 ] && ! command -v qemu-system-arm >/dev/null 2>&1; then
    need_apt+=(qemu-system-arm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: please install: ${need_apt[*]} (no apt-get on this system)" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -q thumbv7em-none-eabihf; then
    rustup target add thumbv7em-none-eabihf
fi
# lavapipe warns on stderr when this is unset; harmless, but noisy.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
