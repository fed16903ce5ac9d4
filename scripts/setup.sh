#!/usr/bin/env bash
# Install what building and testing need beyond the Rust toolchain, only where missing:
# a Vulkan driver (lavapipe, Mesa's CPU implementation, when there is no GPU driver),
# QEMU for the firmware demo, and the Cortex-M4F Rust target. Idempotent and quiet: when
# everything is there it runs neither apt-get nor rustup (so it works without root).
#
# Sourced by scripts/test.sh and scripts/quickstart.sh (it exports XDG_RUNTIME_DIR), or run.
#
#   scripts/setup.sh --dry-run      # (or TSC_SETUP_DRY_RUN=1) print what it would install
#                                   # and exit 0, changing nothing
#
# Environment:
#   TSC_SKIP_QEMU=1          do not require qemu-system-arm
#   TSC_SETUP_ICD_DIRS=A:B   folders searched for Vulkan ICD manifests (*.json); default
#                            /usr/share/vulkan/icd.d:/etc/vulkan/icd.d:/usr/local/share/vulkan/icd.d
#   VK_ICD_FILENAMES, VK_DRIVER_FILES  (the Vulkan loader's own variables: manifest files, or
#                            folders of them, colon separated) count as a driver when one exists
#   TSC_SETUP_PATH           PATH used to look for qemu-system-arm (tests fake it)
#   TSC_SETUP_RUST_TARGETS   installed Rust targets, space separated, instead of asking rustup
#                            (tests)
set -euo pipefail

# 0 when a Vulkan ICD manifest exists: a *.json in one of the ICD folders (an empty or
# missing folder is fine), or an existing entry of VK_ICD_FILENAMES / VK_DRIVER_FILES.
tsc_have_vulkan_icd() {
    local list entry dir entries dirs
    for list in "${VK_ICD_FILENAMES:-}" "${VK_DRIVER_FILES:-}"; do
        [ -n "$list" ] || continue
        IFS=: read -r -a entries <<<"$list"
        for entry in "${entries[@]}"; do
            if [ -n "$entry" ] && [ -f "$entry" ]; then
                return 0
            fi
            if [ -n "$entry" ] && [ -d "$entry" ] && compgen -G "$entry/*.json" >/dev/null; then
                return 0
            fi
        done
    done
    IFS=: read -r -a dirs <<<"${TSC_SETUP_ICD_DIRS-/usr/share/vulkan/icd.d:/etc/vulkan/icd.d:/usr/local/share/vulkan/icd.d}"
    for dir in "${dirs[@]}"; do
        # compgen -G succeeds only when the glob matches something; a missing or empty folder
        # is simply no match (unlike `ls A/*.json B/*.json`, which fails if either is empty).
        if [ -n "$dir" ] && compgen -G "$dir/*.json" >/dev/null; then
            return 0
        fi
    done
    return 1
}

tsc_have_cmd() {
    PATH="${TSC_SETUP_PATH:-$PATH}" command -v "$1" >/dev/null 2>&1
}

# The apt packages this machine lacks, space separated (empty when none).
missing_packages() {
    local need=()
    if ! tsc_have_vulkan_icd; then
        need+=(mesa-vulkan-drivers)
    fi
    if [ "${TSC_SKIP_QEMU:-0}" != 1 ] && ! tsc_have_cmd qemu-system-arm; then
        need+=(qemu-system-arm)
    fi
    echo "${need[*]}"
}

# "thumbv7em-none-eabihf" when the Cortex-M4F target is not installed, else empty.
missing_rust_targets() {
    local installed
    if [ -n "${TSC_SETUP_RUST_TARGETS+set}" ]; then
        installed="$TSC_SETUP_RUST_TARGETS"
    else
        # Captured, not piped into `grep -q`: with pipefail, rustup's SIGPIPE would read as
        # "not installed" and trigger a needless (networked) `rustup target add`.
        installed="$(rustup target list --installed 2>/dev/null || true)"
    fi
    case " $(printf '%s' "$installed" | tr -s '[:space:]' ' ') " in
        *" thumbv7em-none-eabihf "*) ;;
        *) echo thumbv7em-none-eabihf ;;
    esac
}

tsc_setup_main() {
    local dry="${TSC_SETUP_DRY_RUN:-0}" arg
    for arg in "$@"; do
        case "$arg" in
            --dry-run) dry=1 ;;
            *) echo "setup: unknown argument $arg (only --dry-run)" >&2; return 2 ;;
        esac
    done
    local pkgs targets
    pkgs="$(missing_packages)"
    targets="$(missing_rust_targets)"
    if [ "$dry" = 1 ]; then
        echo "setup: dry run: apt packages: ${pkgs:-none}"
        echo "setup: dry run: rust targets: ${targets:-none}"
        return 0
    fi
    if [ -n "$pkgs" ]; then
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "setup: please install: $pkgs (no apt-get on this system)" >&2
            return 1
        fi
        local SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        echo "setup: installing $pkgs"
        # `env` after sudo: sudo's env_reset would drop an exported DEBIAN_FRONTEND.
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
        # shellcheck disable=SC2086 # word splitting intended: one argument per package
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs >/dev/null
    fi
    if [ -n "$targets" ]; then
        if ! command -v rustup >/dev/null 2>&1; then
            echo "setup: please add the Rust target $targets (no rustup on this system)" >&2
            return 1
        fi
        rustup target add "$targets"
    fi
    # lavapipe warns on stderr when this is unset; harmless, but noisy.
    export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
}

# Sourced (scripts/test.sh, scripts/quickstart.sh): the positional parameters are the
# caller's, so they are not parsed (use TSC_SETUP_DRY_RUN=1); the exports stay in the caller.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    tsc_setup_main
else
    tsc_setup_main "$@"
    exit $?
fi
