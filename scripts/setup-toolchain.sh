#!/usr/bin/env bash
# scripts/setup-toolchain.sh: makes sure the Rust toolchain pinned in
# rust-toolchain.toml and every target it lists (wasm32-unknown-unknown)
# are installed, installing what is missing with rustup.
#
#   ./scripts/setup-toolchain.sh           # install what is missing
#   ./scripts/setup-toolchain.sh --check   # report only; exit 1 if something is missing
#
# rustup installs a pinned toolchain with its targets on first use, but it
# does not add a target missing from a toolchain that is already installed:
# the first wasm build would then stop with "can't find crate for `std`".
# The demo, the tests (scripts/test.sh), CI and the benchmarks run this first.
# Environment: RUSTUP (default: rustup) names the rustup to call.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUSTUP=${RUSTUP:-rustup}
CHECK_ONLY=0
case ${1:-} in
--check) CHECK_ONLY=1 ;;
"") ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

say() { printf 'setup: %s\n' "$*" >&2; }

FILE=$ROOT/rust-toolchain.toml
CHANNEL=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$FILE")
[[ -n $CHANNEL ]] || {
    say "no channel in $FILE"
    exit 1
}
# targets = ["a", "b"] on one line.
read -r -a TARGETS <<<"$(sed -n 's/^targets *= *\[\(.*\)\]/\1/p' "$FILE" | tr -d '",')"

if ! command -v "$RUSTUP" >/dev/null 2>&1; then
    # Without rustup, a toolchain installed another way must already have the targets.
    command -v rustc >/dev/null 2>&1 || {
        say "neither rustup nor rustc found; install rustup: https://rustup.rs"
        exit 1
    }
    sysroot=$(rustc --print sysroot)
    for target in "${TARGETS[@]}"; do
        [[ -d $sysroot/lib/rustlib/$target/lib ]] || {
            say "rustc at $sysroot lacks the $target target and there is no rustup to add it; install rustup: https://rustup.rs"
            exit 1
        }
    done
    say "no rustup; using $(rustc --version) with ${TARGETS[*]}"
    exit 0
fi

missing=0
if "$RUSTUP" toolchain list | grep -q "^$CHANNEL[- ]"; then
    say "toolchain $CHANNEL: installed"
else
    if ((CHECK_ONLY)); then
        say "toolchain $CHANNEL: missing"
        exit 1
    fi
    say "toolchain $CHANNEL: installing (minimal profile, with ${TARGETS[*]:-no extra target})"
    target_args=()
    for target in "${TARGETS[@]}"; do target_args+=(--target "$target"); done
    "$RUSTUP" toolchain install "$CHANNEL" --profile minimal "${target_args[@]}"
fi

installed=$("$RUSTUP" target list --installed --toolchain "$CHANNEL")
for target in "${TARGETS[@]}"; do
    if grep -qx "$target" <<<"$installed"; then
        say "target $target: installed"
    elif ((CHECK_ONLY)); then
        say "target $target: missing (./scripts/setup-toolchain.sh adds it)"
        missing=1
    else
        say "target $target: adding it to toolchain $CHANNEL"
        "$RUSTUP" target add "$target" --toolchain "$CHANNEL"
    fi
done
exit "$missing"
