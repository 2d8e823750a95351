#!/usr/bin/env bash
# bench/startup.sh: gateway start-up time with 10 filters in its folder,
# cold (empty compile cache: every module compiled) and warm (compiled code
# taken from the cache; the log must show no compilation).
#
#   ./bench/startup.sh            # builds what it needs (release)
#   RUNS=5 ./bench/startup.sh     # runs per case (default 3)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WASM_ENV=(CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo)

./scripts/setup-toolchain.sh
echo "building the gateway and the filters (release)" >&2
cargo build -q --release -p gateway
env "${WASM_ENV[@]}" cargo build -q --release --target wasm32-unknown-unknown \
    -p filter-auth -p filter-router -p filter-headers -p filter-ratelimit
env "${WASM_ENV[@]}" cargo build -q --release --target wasm32-unknown-unknown \
    --manifest-path tests/wasm/Cargo.toml --target-dir "$TARGET_DIR"
W=$TARGET_DIR/wasm32-unknown-unknown/release
GW=$TARGET_DIR/release/gateway

TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/filters"
i=0
for m in filter_auth filter_router filter_headers filter_ratelimit tw_local_response \
         tw_header_mutation tw_body_rewrite tw_shared_counter tw_version_stamp tw_tick_counter; do
    i=$((i + 1))
    cp "$W/$m.wasm" "$TMP/filters/$(printf '%02d' $i)-$m.wasm"
done
cat >"$TMP/gateway.toml" <<TOML
[wasm]
cache_dir = "$TMP/cache"
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:0"
filters_dir = "filters"
TOML

# One start: milliseconds from exec to the address file (written when
# every listener is bound and every filter loaded), and the compile count.
start_once() {
    rm -f "$TMP/addr.json"
    local t0 t1
    t0=$(date +%s%N)
    RUST_LOG=info "$GW" --config "$TMP/gateway.toml" --address-file "$TMP/addr.json" 2>"$TMP/log" &
    local pid=$!
    for _ in $(seq 1 30000); do
        [[ -f $TMP/addr.json ]] && break
        kill -0 $pid 2>/dev/null || { cat "$TMP/log" >&2; exit 1; }
        sleep 0.001
    done
    t1=$(date +%s%N)
    kill $pid; wait $pid 2>/dev/null || true
    echo "$(( (t1 - t0) / 1000000 )) $(grep -c 'module compiled' "$TMP/log" || true) $(grep -c 'filter loaded' "$TMP/log" || true)"
}

printf '| case | run | start-up (ms) | modules compiled | filters loaded |\n|---|---:|---:|---:|---:|\n'
for run in $(seq 1 "$RUNS"); do
    rm -rf "$TMP/cache"
    read -r ms compiled loaded < <(start_once)
    printf '| cold | %d | %d | %d | %d |\n' "$run" "$ms" "$compiled" "$loaded"
    read -r ms compiled loaded < <(start_once)
    printf '| warm | %d | %d | %d | %d |\n' "$run" "$ms" "$compiled" "$loaded"
done
