#!/usr/bin/env bash
# bench/run.sh: our gateway (auth + router proxy-wasm filters) against
# nginx + Lua, HAProxy, and the upstream reached directly, on loopback.
#
#   ./bench/run.sh                      # from the repository root or anywhere
#   BENCH_DURATION=30s ./bench/run.sh   # longer runs
#
# Every target makes the decisions of the seed scenario: no Authorization
# header -> 401 before any upstream is asked; /ping -> proxied to a pair of
# upstreams (round robin, keep-alive pool); anything else -> 404. Each target
# is driven on two paths, `/ping` with `Authorization: Basic x` (proxied) and
# `/ping` without it (401 answered by the proxy), with wrk (HTTP/1.1
# keep-alive) and h2load (HTTP/2 cleartext, prior knowledge). The table
# (req/s, p50, p99, ratios ours/peer) goes to stdout and bench/results/latest.md.
#
# Environment (all optional):
#   BENCH_DURATION=10s     length of each measured run (wrk -d, h2load -D)
#   BENCH_ROUNDS=3         rounds over all targets (order rotated); the table
#                          shows each row's median-throughput round
#   BENCH_WORKERS="1 2"    worker counts; every proxy runs with the same count
#                          (nginx worker_processes, HAProxy nbthread, ours workers)
#   BENCH_IDLE=9000        idle keep-alive connections held open for the memory
#                          row (0: skip it; HAProxy needs two descriptors per
#                          connection, so 9,000 fits the common 20,000 limit)
#   BENCH_NOTE=text        a line for the report (e.g. which build was measured)
#   BENCH_WARMUP=2s        unmeasured wrk run before each target's measurements
#   BENCH_THREADS=2        client threads (wrk -t, h2load -t)
#   BENCH_CONNS=64         HTTP/1.1 connections (wrk -c)
#   BENCH_H2_CONNS=16      HTTP/2 connections (h2load -c)
#   BENCH_H2_STREAMS=4     concurrent streams per HTTP/2 connection (h2load -m)
#   BENCH_TARGETS="ours ours_log core nginx haproxy direct"   which targets to run
#                          (ours_log: ours with its access log written to a file;
#                          core: our gateway without filters, route table only)
#   BENCH_SKIP_BUILD=1     do not run cargo; use what is already built
#   BENCH_PGO=1            measure the profile-guided build (scripts/build-pgo.sh,
#                          built unless BENCH_SKIP_BUILD=1; about 19 minutes)
#   GATEWAY_BIN=path       gateway binary (default: $CARGO_TARGET_DIR/release/gateway,
#                          or $CARGO_TARGET_DIR/pgo/release/gateway with BENCH_PGO=1)
#   FILTER_DIR=path        folder with filter_auth.wasm and filter_router.wasm
#                          (default: $CARGO_TARGET_DIR/wasm32-unknown-unknown/release)
#   BENCH_KEEP_TMP=1       keep the temp dir (configs, logs, raw outputs)
#
# Needs: nginx with the Lua module, haproxy, wrk, h2load, curl. On Debian/Ubuntu:
#   apt-get install -y nginx-light libnginx-mod-http-lua haproxy wrk nghttp2-client curl
# Every process it starts lives in a temp dir and is stopped on exit.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-64}
H2_CONNS=${BENCH_H2_CONNS:-16}
H2_STREAMS=${BENCH_H2_STREAMS:-4}
TARGETS=${BENCH_TARGETS:-ours ours_log core nginx haproxy direct}
ROUNDS=${BENCH_ROUNDS:-3}
WORKER_COUNTS=${BENCH_WORKERS:-1 2}
IDLE=${BENCH_IDLE:-9000}
FILTER_DIR=${FILTER_DIR:-$TARGET_DIR/wasm32-unknown-unknown/release}
AUTH_HEADER='Authorization: Basic x'

source "$ROOT/bench/lib.sh"
# BENCH_PGO=1: the profile-guided build (scripts/build-pgo.sh), as released.
GATEWAY_BIN=${GATEWAY_BIN:-$(default_gateway_bin)}

need_tools
LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
TMP=$(mktemp -d -t gateway-bench.XXXXXX)
chmod 755 "$TMP" # nginx workers may run as another user and read from here
mkdir -p "$TMP/raw"
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the neutral upstream pair: nginx, one worker, a fixed "pong" -------------
start_upstream_pair
log "upstream pair (nginx, 1 worker) on 127.0.0.1:$UP1 and :$UP2, h2c on :$UP_H2"

# Holding thousands of idle connections needs the descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Rounds interleave the targets (rotating their order) so that a burst of
# other work on the machine spreads over all of them instead of one.
targets=($TARGETS)
for W in $WORKER_COUNTS; do
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        log "workers $W, round $ROUND of $ROUNDS"
        for ((i = 0; i < ${#targets[@]}; i++)); do
            target=${targets[$(((i + ROUND - 1) % ${#targets[@]}))]}
            case $target in
            ours) bench_ours ;;
            ours_log) bench_ours log ;;
            core) bench_core ;;
            nginx) bench_nginx ;;
            haproxy) bench_haproxy ;;
            direct) bench_direct ;;
            *) die "unknown target '$target' in BENCH_TARGETS" ;;
            esac
        done
    done
done
combine_rounds
LOAD_AT_END=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

print_report | tee "$TMP/report.md"
mkdir -p "$ROOT/bench/results"
cp "$TMP/report.md" "$ROOT/bench/results/latest.md"
log "table written to bench/results/latest.md"
