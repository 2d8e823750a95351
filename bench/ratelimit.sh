#!/usr/bin/env bash
# bench/ratelimit.sh: what the rate limit's global mode (Redis) costs per
# request, against the local mode and no rate limit, in one run.
#
#   ./bench/ratelimit.sh                          # 3 rounds of 10 s per mode
#   BENCH_DURATION=2s BENCH_ROUNDS=1 ./bench/ratelimit.sh   # a quick check
#
# Three gateways (one worker each, access log off) answer every path with
# a direct 200: `none` without filters, `local` behind the bundled
# ratelimit filter in local mode, `global` behind it in global mode with a
# redis-server started here. Limits are far above the load, so every
# request is admitted and the figures are the filter's own cost: the
# global mode decides from its local allowance and reconciles with Redis
# on its timer, never on the request path (except a key's first request).
# wrk -t1 -c16 drives each in turn, modes interleaved over the rounds; the
# table shows req/s, p50 and p99 (median-throughput round of each mode).
#
# Environment (all optional):
#   BENCH_DURATION=10s  BENCH_ROUNDS=3  BENCH_CONNS=16  BENCH_KEEP_TMP=1
#   BENCH_SKIP_BUILD=1  GATEWAY_BIN=path  FILTER_WASM=path (filter_ratelimit.wasm)
# Needs wrk, curl and redis-server (apt-get install -y wrk curl redis-server).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-16}
GATEWAY_BIN=${GATEWAY_BIN:-$TARGET_DIR/release/gateway}
FILTER_WASM=${FILTER_WASM:-$TARGET_DIR/wasm32-unknown-unknown/release/filter_ratelimit.wasm}
THREADS=1 H2_CONNS=0 H2_STREAMS=0 SCHEME=http AUTH_HEADER='x-bench: 1'

source "$ROOT/bench/lib.sh"

for t in wrk curl awk redis-server redis-cli; do
    command -v "$t" >/dev/null || die "missing $t (apt-get install -y wrk curl redis-server)"
done
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "building: cargo build --release -p gateway, and the ratelimit filter for wasm32"
    (cd "$ROOT" && cargo build -q --release -p gateway &&
        CARGO_PROFILE_RELEASE_DEBUG=false cargo build -q --release \
            --target wasm32-unknown-unknown -p filter-ratelimit) >&2
fi
[[ -x $GATEWAY_BIN ]] || die "no gateway binary at $GATEWAY_BIN"
[[ -f $FILTER_WASM ]] || die "no filter module at $FILTER_WASM"

TMP=$(mktemp -d -t gateway-bench-ratelimit.XXXXXX)
mkdir -p "$TMP/raw"
trap cleanup EXIT
trap 'exit 130' INT TERM

REDIS_PORT=$(free_port)
start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$TMP"
for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
    sleep 0.1
done

# gateway_config MODE PORT: one worker, a direct 200, the filter per mode.
gateway_config() {
    local mode=$1 port=$2 filter=""
    case $mode in
    local) filter='{"capacity": 1000000000, "per_second": 1000000000}' ;;
    global) filter='{"capacity": 1000000000, "per_second": 1000000000, "global": {"limit": 1000000000}}' ;;
    esac
    cat <<CONF
[runtime]
workers = 1
[access_log]
enabled = false
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:$port"
$([[ -n $filter ]] && printf '[[listener.filter]]\nname = "ratelimit"\npath = "%s"\nconfig = %s\n' "$FILTER_WASM" "'$filter'")
[[listener.route]]
path_prefix = "/"
[listener.route.direct]
status = 200
body = "ok"
[[cluster]]
name = "redis"
protocol = "redis"
endpoints = ["127.0.0.1:$REDIS_PORT"]
CONF
}

MODES=(none local global)
declare -A PORT
for mode in "${MODES[@]}"; do
    PORT[$mode]=$(free_port)
    gateway_config "$mode" "${PORT[$mode]}" >"$TMP/$mode.toml"
    start "gw-$mode" "$GATEWAY_BIN" --config "$TMP/$mode.toml"
    wait_http "${PORT[$mode]}" || die "gateway ($mode) did not start; see $TMP/gw-$mode.log"
    expect "${PORT[$mode]}" 0 /ping 200 || die "gateway ($mode) does not answer 200"
done

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    for ((k = 0; k < ${#MODES[@]}; k++)); do
        mode=${MODES[$(((k + ROUND - 1) % ${#MODES[@]}))]}
        pid_var="PID_gw_$mode"
        TARGET_PIDS=${!pid_var}
        run_wrk "$mode" ping "${PORT[$mode]}"
    done
done

# The median-throughput round of each mode: req/s p50 p99 (ms).
printf '\n| mode | req/s | p50 ms | p99 ms | vs none req/s |\n|---|---|---|---|---|\n'
base=""
for mode in "${MODES[@]}"; do
    row=$(for ((r = 1; r <= ROUNDS; r++)); do cat "$TMP/raw/$mode.h1.ping.r$r"; done |
        sort -n | awk '{r[NR] = $0} END {print r[int((NR + 1) / 2)]}')
    read -r rps p50 p99 bad _ <<<"$row"
    [[ ${bad:-0} == 0 ]] || log "$mode: $bad requests not answered 200 (limit reached or errors)"
    [[ -z $base ]] && base=$rps
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
    printf '| %s | %s | %s | %s | %s |\n' "$mode" "$rps" "$p50" "$p99" "$ratio"
done
synced=$(redis-cli -p "$REDIS_PORT" --scan --pattern 'ratelimit:*' 2>/dev/null | wc -l || true)
log "Redis keys written by the global mode: $synced (the timer reconciled with Redis)"
