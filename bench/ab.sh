#!/usr/bin/env bash
# bench/ab.sh: two (or more) builds or configurations of our gateway against
# each other, in many interleaved rounds, for effects smaller than the
# noise of one bench/run.sh run.
#
#   ./bench/ab.sh A B [C ...]
#
# Each variant is a gateway binary, optionally with a TOML file appended to
# the benchmark's configuration (the seed scenario of bench/run.sh, auth +
# router filters):
#
#   ./bench/ab.sh target/pgo/release/gateway /tmp/gateway-new
#   ./bench/ab.sh target/release/gateway target/release/gateway:extra.toml
#
# Every round runs every variant (order rotated) on every row; a variant's
# gateway is started afresh for each round and checked for the scenario's
# answers first. The report gives, per row and variant, the median req/s,
# CPU µs per request and p99 over the rounds, the spread of req/s, and each
# variant's medians as a ratio to the first variant's; the table also goes
# to bench/results/ab-latest.md.
#
# Environment (all optional; the clients are bench/run.sh's):
#   BENCH_ROUNDS=8         rounds
#   BENCH_WORKERS=1        the gateway's workers (one count)
#   BENCH_DURATION=4s      each measured run
#   BENCH_WARMUP=1s        unmeasured wrk run after each start
#   AB_ROWS="h1-401 h1-ping"   rows: h1 (wrk) or h2 (h2load), 401 (no auth,
#                          answered by the auth filter) or ping (proxied)
#   BENCH_THREADS, BENCH_CONNS, BENCH_H2_CONNS, BENCH_H2_STREAMS: as bench/run.sh
#   FILTER_DIR=path        folder with filter_auth.wasm and filter_router.wasm
#   BENCH_KEEP_TMP=1       keep the temp dir (configs, logs, raw outputs)
#
# It builds nothing: build the binaries and the filters first.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DURATION=${BENCH_DURATION:-4s}
WARMUP=${BENCH_WARMUP:-1s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-64}
H2_CONNS=${BENCH_H2_CONNS:-16}
H2_STREAMS=${BENCH_H2_STREAMS:-4}
ROUNDS=${BENCH_ROUNDS:-8}
W=${BENCH_WORKERS:-1}
ROWS=${AB_ROWS:-h1-401 h1-ping}
FILTER_DIR=${FILTER_DIR:-$TARGET_DIR/wasm32-unknown-unknown/release}
AUTH_HEADER='Authorization: Basic x'
export BENCH_SKIP_BUILD=1

source "$ROOT/bench/lib.sh"

(($# >= 2)) || die "usage: bench/ab.sh BINARY[:EXTRA.toml] BINARY[:EXTRA.toml] ..."
[[ $W =~ ^[1-9][0-9]*$ ]] || die "BENCH_WORKERS must be one worker count, not '$W'"
VARIANTS=("$@")
for v in "${VARIANTS[@]}"; do
    bin=${v%%:*}
    [[ -x $bin ]] || die "no gateway binary at $bin"
    if [[ $v == *:* ]]; then
        [[ -f ${v#*:} ]] || die "no configuration file at ${v#*:}"
    fi
done
for row in $ROWS; do
    [[ $row =~ ^h[12]-(401|ping)$ ]] || die "unknown row '$row' (h1-401, h1-ping, h2-401, h2-ping)"
done

need_tools
command -v python3 >/dev/null || die "python3 is needed for the summary"
LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
TMP=$(mktemp -d -t gateway-ab.XXXXXX)
chmod 755 "$TMP"
mkdir -p "$TMP/raw"
trap cleanup EXIT
trap 'exit 130' INT TERM

start_upstream_pair
log "upstream pair (nginx, 1 worker) on 127.0.0.1:$UP1 and :$UP2"
prepare_filters || die "the filters are not built (see above)"

# One variant's run of every row, recorded as v<index> for round $ROUND.
run_variant() {
    local index=$1 spec=$2
    GATEWAY_BIN=${spec%%:*}
    GATEWAY_EXTRA=""
    [[ $spec == *:* ]] && GATEWAY_EXTRA=${spec#*:}
    log "v$index: $spec (workers = $W)"
    start_gateway 1 || die "v$index did not start (see above)"
    check_decisions "$FRONT_H1" "$FRONT_H1" || die "v$index: its answers differ from the scenario"
    timeout $(($(secs "$WARMUP") + 30)) wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "$AUTH_HEADER" \
        "http://127.0.0.1:$FRONT_H1/ping" >/dev/null 2>&1 || true
    local row
    for row in $ROWS; do
        case $row in
        h1-*) run_wrk "v$index" "${row#*-}" "$FRONT_H1" ;;
        h2-*) run_h2load "v$index" "${row#*-}" "$FRONT_H1" ;;
        esac
    done
    stop gateway
}

for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    log "round $ROUND of $ROUNDS"
    for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
        k=$(((i + ROUND - 1) % ${#VARIANTS[@]}))
        run_variant "$((k + 1))" "${VARIANTS[$k]}"
    done
done
LOAD_AT_END=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

{
    echo "# Gateway A/B: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "$(nproc) CPUs, $ROUNDS rounds, variants interleaved (order rotated), workers = $W,"
    echo "each run $DURATION after a $WARMUP warm-up; wrk -t$THREADS -c$CONNS, h2load -t$THREADS -c$H2_CONNS -m$H2_STREAMS."
    echo "Load average at the start: $LOAD_AT_START; at the end: $LOAD_AT_END."
    echo
    for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
        echo "- v$((i + 1)): ${VARIANTS[$i]}"
    done
    echo
    python3 - "$TMP/raw" "${#VARIANTS[@]}" $ROWS <<'PY'
import os, statistics, sys
raw, n, rows = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("| row | variant | req/s median | req/s min-max | CPU µs/req median | p99 ms median | bad | vs v1: req/s, CPU, p99 |")
print("|---|---|---:|---:|---:|---:|---:|---|")
for row in rows:
    proto, case = row.split("-")
    first = None
    for v in range(1, n + 1):
        runs = []
        prefix = f"v{v}.{proto}.{case}.r"
        for name in sorted(os.listdir(raw)):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                fields = open(os.path.join(raw, name)).read().split()
                if len(fields) >= 5 and fields[0] != "n/a":
                    runs.append([float(x) for x in fields[:5]])
        if not runs:
            print(f"| {row} | v{v} | n/a | | | | | |")
            continue
        rps = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[4] for r in runs)
        p99 = statistics.median(r[2] for r in runs)
        bad = int(sum(r[3] for r in runs))
        lo, hi = min(r[0] for r in runs), max(r[0] for r in runs)
        if first is None:
            first = (rps, cpu, p99)
            rel = "1 (the base)"
        else:
            rel = f"{rps / first[0]:.3f}, {cpu / first[1]:.3f}, {p99 / first[2]:.3f}"
        print(f"| {row} | v{v} | {rps:.0f} | {lo:.0f}-{hi:.0f} | {cpu:.2f} | {p99:.2f} | {bad} | {rel} |")
PY
} | tee "$TMP/ab.md"
mkdir -p "$ROOT/bench/results"
cp "$TMP/ab.md" "$ROOT/bench/results/ab-latest.md"
log "table written to bench/results/ab-latest.md"
