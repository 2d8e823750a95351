#!/usr/bin/env bash
# scripts/test.sh: every test of the workspace (unit, integration: real
# binary, real sockets, real wasm), after making sure the pinned toolchain
# and the wasm32 target are installed. Extra arguments go to `cargo test`.
#
#   ./scripts/test.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
./scripts/setup-toolchain.sh
cargo test --workspace --no-fail-fast "$@"
