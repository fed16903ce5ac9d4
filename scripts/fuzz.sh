#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600) and prints, per target,
# libFuzzer's executions, coverage (cov/ft of its last status line), corpus size and
# crashes. The corpora core/fuzz/corpus/<target> and trainer/fuzz/corpus/<target> are used
# and grown in place (minimise before committing: docs/CORE.md, "Fuzzing"); crash inputs
# land in <crate>/fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    # e.g. scripts/fuzz.sh 30 parse_fixed
#
# cargo-fuzz needs a nightly compiler: `cargo +nightly` when rustup has a nightly
# toolchain, else the stable one with RUSTC_BOOTSTRAP=1. cargo-fuzz itself is installed
# (`cargo install cargo-fuzz`) when missing. Extra libFuzzer flags: FUZZ_ARGS="-max_len=8192".
# Exit status 1 when a target crashed (or failed to build).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-600}
shift || true
case "$SECS" in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
ONLY=("$@")

# Captured first: piping rustup into `grep -q` could fail on SIGPIPE under pipefail.
toolchains="$(rustup toolchain list 2>/dev/null || true)"
if grep -q '^nightly' <<<"$toolchains"; then
    TC=(+nightly)
    echo "fuzz: toolchain nightly"
else
    TC=()
    export RUSTC_BOOTSTRAP=1
    echo "fuzz: no nightly toolchain: stable with RUSTC_BOOTSTRAP=1"
fi
if ! cargo "${TC[@]}" fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Targets: the [[bin]] names of each fuzz crate.
targets_of() { sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' "$1/Cargo.toml" | grep -v -- '-fuzz$'; }
selected() {
    [ ${#ONLY[@]} -eq 0 ] && return 0
    local t
    for t in "${ONLY[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

LOGS=$(mktemp -d)
rows=()
status=0
for pkg in core trainer; do
    crate=$pkg/fuzz
    for t in $(targets_of "$crate"); do
        selected "$t" || continue
        mkdir -p "$crate/corpus/$t" "$crate/artifacts/$t"
        log="$LOGS/$pkg-$t.log"
        before=$(find "$crate/artifacts/$t" -type f | wc -l)
        echo "== $crate $t: ${SECS}s (log $log)"
        rc=0
        # From the package folder, so cargo-fuzz finds its fuzz/ crate the standard way.
        (cd "$pkg" && cargo "${TC[@]}" fuzz run "$t" "fuzz/corpus/$t" -- \
            -max_total_time="$SECS" -timeout=30 -print_final_stats=1 ${FUZZ_ARGS:-}) \
            >"$log" 2>&1 || rc=$?
        after=$(find "$crate/artifacts/$t" -type f | wc -l)
        crashes=$((after - before))
        # libFuzzer's status lines: "#N <event> cov: C ft: F corp: ..."; the last one wins.
        last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
        cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
        corp=$(find "$crate/corpus/$t" -type f | wc -l)
        note=""
        if [ "$crashes" -gt 0 ]; then
            # shellcheck disable=SC2012 # names are libFuzzer's crash-<sha1>, no odd characters
            note="crash: $crate/artifacts/$t/$(ls -t "$crate/artifacts/$t" | head -1)"
            status=1
        elif [ "$rc" -ne 0 ]; then
            note="exit $rc (see the log)"
            status=1
        fi
        echo "   ${last:-no status line}"
        rows+=("$(printf '%-28s %12s %7s %7s %7s %7s  %s' "$pkg/$t" "${execs:-?}" \
            "${cov:-?}" "${ft:-?}" "$corp" "$crashes" "$note")")
    done
done
if [ ${#rows[@]} -eq 0 ]; then
    echo "fuzz: no target matches ${ONLY[*]}" >&2
    exit 2
fi
echo
printf '%-28s %12s %7s %7s %7s %7s\n' target executions cov ft corpus crashes
printf '%s\n' "${rows[@]}"
echo "logs: $LOGS"
exit $status
