#!/usr/bin/env bash
# bench/routes.sh: large configurations against small ones, in one run:
# 10,000 routes against one, 1,000 clusters of 3 endpoints against one,
# 100 filters loaded (one of them run per request) against one, and a
# folder of 100 filters against a folder of one. Prints req/s and the
# ratios, resident memory (and per route, per cluster), start-up (cold and
# warm compile cache) and reload times.
#
#   ./bench/routes.sh                       # about 5 minutes with the defaults
#   BENCH_DURATION=2s BENCH_ROUNDS=1 ./bench/routes.sh   # a quick check
#
# Every gateway runs with one worker and the access log off; wrk -t1 -c16
# drives /ping on each in turn, the cases interleaved over the rounds
# (order rotated), and each req/s figure is the median over the rounds.
# The route that matches /ping is the last of the table, and the cluster it
# goes to is the last defined; the upstream is nginx (one worker) on three
# ports answering "pong".
#
# Environment (all optional):
#   BENCH_DURATION=10s   each measured wrk run
#   BENCH_WARMUP=2s      unmeasured wrk run per case before the first round
#   BENCH_ROUNDS=3       rounds over all cases
#   BENCH_CONNS=16       wrk connections
#   BENCH_RELOADS=3      reloads (SIGHUP) timed per case; the median is shown
#   BENCH_CASES="base routes clusters filter1 filters100 folder1 folder100"
#   BENCH_SKIP_BUILD=1   use what is built; GATEWAY_BIN, FILTER_WASM as below
#   GATEWAY_BIN=path     default $CARGO_TARGET_DIR/release/gateway
#   FILTER_WASM=path     default .../wasm32-unknown-unknown/release/filter_headers.wasm
#   BENCH_KEEP_TMP=1     keep the temp dir (configs, logs, wrk output)
# Needs nginx, wrk and curl (apt-get install -y nginx-light wrk curl).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-16}
RELOADS=${BENCH_RELOADS:-3}
CASES=${BENCH_CASES:-base routes clusters filter1 filters100 folder1 folder100}
GATEWAY_BIN=${GATEWAY_BIN:-$TARGET_DIR/release/gateway}
FILTER_WASM=${FILTER_WASM:-$TARGET_DIR/wasm32-unknown-unknown/release/filter_headers.wasm}
# lib.sh's report and drivers read these; this script has its own.
THREADS=1 H2_CONNS=0 H2_STREAMS=0

source "$ROOT/bench/lib.sh"
source "$ROOT/bench/large_configs.sh"

for t in nginx wrk curl awk; do
    command -v "$t" >/dev/null || die "missing $t (apt-get install -y nginx-light wrk curl)"
done
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building: cargo build --release -p gateway, and the headers filter for wasm32"
    (cd "$ROOT" && cargo build -q --release -p gateway &&
        CARGO_PROFILE_RELEASE_DEBUG=false cargo build -q --release \
            --target wasm32-unknown-unknown -p filter-headers) >&2
fi
[[ -x $GATEWAY_BIN ]] || die "no gateway binary at $GATEWAY_BIN"
[[ -f $FILTER_WASM ]] || die "no filter module at $FILTER_WASM"

LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
TMP=$(mktemp -d -t gateway-bench-routes.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/raw"
trap cleanup EXIT
trap 'exit 130' INT TERM

UP1=$(free_port) UP2=$(free_port) UP3=$(free_port)
render_upstream3 >"$TMP/upstream.conf"
start upstream nginx -e "$TMP/upstream.err" -p "$TMP" -c "$TMP/upstream.conf"
wait_http "$UP1" && wait_http "$UP2" && wait_http "$UP3" || die "upstream nginx did not start"
log "upstream: nginx, 1 worker, on :$UP1 :$UP2 :$UP3"
make_modules 100

# Start-up (cold, then warm) and checks; the gateways stay up.
cases=($CASES)
for c in "${cases[@]}"; do
    prepare_case "$c"
done

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    log "round $ROUND of $ROUNDS"
    for ((i = 0; i < ${#cases[@]}; i++)); do
        c=${cases[$(((i + ROUND - 1) % ${#cases[@]}))]}
        if ((ROUND == 1)); then
            wrk -t1 -c"$CONNS" -d"$WARMUP" "http://127.0.0.1:${PORT[$c]}/ping" >/dev/null 2>&1 || true
        fi
        measure_case "$c"
        if ((ROUND == 1)); then
            RSS_KIB[$c]=$(rss_kib "$c")
        fi
    done
done

# Reloads last, so that what they leave behind cannot skew the req/s.
for c in "${cases[@]}"; do
    reload_case "$c"
done

LOAD_AT_END=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
print_large_report | tee "$TMP/report.md"
mkdir -p "$ROOT/bench/results"
cp "$TMP/report.md" "$ROOT/bench/results/routes-latest.md"
log "table written to bench/results/routes-latest.md"
