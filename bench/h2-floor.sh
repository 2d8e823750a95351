#!/usr/bin/env bash
# bench/h2-floor.sh: user-space instructions per h2c request answered 401,
# counted by valgrind's callgrind, for HTTP/2 stacks on their own and for
# the whole proxies: what the HTTP/2 layer alone costs with each library
# the gateway could serve HTTP/2 with, against what HAProxy and our gateway
# spend on the whole request.
#
#   ./bench/h2-floor.sh
#
# Rows (h2load -m4 over 16 connections, 4,000 requests after 2,000
# unmeasured, one thread or worker each):
#   - ours: the gateway with the seed scenario's filters (auth + router),
#     the profile-guided build with BENCH_PGO=1, else the plain release
#     build, or GATEWAY_BIN;
#   - HAProxy: its `http-request return` on a missing Authorization, as in
#     bench/run.sh;
#   - the probes of bench/h2-floor (its own Cargo project, built here into
#     $CARGO_TARGET_DIR/h2-floor): the same 401 from the `h2` crate driven
#     directly, from hyper's HTTP/2 server over it (the gateway's stack),
#     and from libnghttp2 driven from a tokio task. Plain release builds,
#     the gateway's allocator;
#   - nghttpd (nghttp2's own server, if installed: apt-get install -y
#     nghttp2-server) serving a 13-byte file: 200, not 401.
# A probe's figure is a floor for that library: a server built on it does
# at least that work, plus its own.
#
# Deterministic to about 1%; the kernel's share and the cache are not in
# it (bench/run.sh measures those). Needs: valgrind, nginx, haproxy, h2load,
# curl, cargo. BENCH_REQUESTS=4000 changes the count; BENCH_KEEP_TMP=1
# keeps the profiles. The table also goes to bench/results/h2-floor-latest.md.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FILTER_DIR=${FILTER_DIR:-$TARGET_DIR/wasm32-unknown-unknown/release}
REQUESTS=${BENCH_REQUESTS:-4000}
W=1
# Read by the sourced helpers; unused here.
CONNS=16 H2_CONNS=16 H2_STREAMS=4 IDLE=0

source "$ROOT/bench/lib.sh"
source "$ROOT/bench/targets.sh"
for tool in valgrind callgrind_control nginx haproxy h2load curl cargo; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y valgrind nginx-light haproxy nghttp2-client curl)"
done
GATEWAY_BIN=${GATEWAY_BIN:-$(default_gateway_bin)}
[[ -x $GATEWAY_BIN ]] || die "no gateway at $GATEWAY_BIN (cargo build --release -p gateway)"

TMP=$(mktemp -d -t gateway-h2-floor.XXXXXX)
chmod 755 "$TMP"
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building the probes (bench/h2-floor)"
PROBES=$TARGET_DIR/h2-floor/release
(cd "$ROOT/bench/h2-floor" && CARGO_TARGET_DIR=$TARGET_DIR/h2-floor cargo build --release --locked) \
    >"$TMP/build.log" 2>&1 || {
    tail -n 20 "$TMP/build.log" >&2
    die "the probes did not build"
}

start_upstream_pair
BENCH_SKIP_BUILD=1 prepare_filters || die "build the filters first (README, benchmarks)"

# count LABEL PORT STATUS CMD...: starts CMD under callgrind, waits for
# STATUS on h2c, loads it and prints instructions per request.
count() {
    local label=$1 port=$2 status=$3 i code
    shift 3
    local out="$TMP/callgrind.$label"
    valgrind --tool=callgrind --callgrind-out-file="$out.%p" --instr-atstart=no "$@" \
        >"$TMP/valgrind.$label.log" 2>&1 &
    local pid=$!
    # Runs in a command substitution: stops its process itself.
    fail() {
        stop_pid "$pid"
        die "$label: $*"
    }
    local url="http://127.0.0.1:$port/ping"
    # Under valgrind start-up takes seconds; bounded at a minute.
    for ((i = 0; i < 120; i++)); do
        code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        [[ $code == "$status" ]] && break
        sleep 0.5
    done
    [[ $code == "$status" ]] || fail "answered $code, not $status (see $TMP/valgrind.$label.log)"
    h2load -n 1000 -c 16 -m 4 "$url" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    h2load -n 1000 -c 16 -m 4 "$url" >/dev/null
    # callgrind acts on a command when the process next runs: one request
    # after the zeroing makes it run, so the count starts at the load.
    callgrind_control -z "$pid" >/dev/null 2>&1
    curl -s --http2-prior-knowledge -o /dev/null --max-time 5 "$url" || true
    h2load -n "$REQUESTS" -c 16 -m 4 "$url" >"$TMP/h2load.$label.log"
    callgrind_control -d "$pid" >/dev/null 2>&1
    grep -q "$REQUESTS done, .* 0 errored, 0 timeout" "$TMP/h2load.$label.log" ||
        fail "not every request was answered: $(grep '^requests:' "$TMP/h2load.$label.log")"
    stop_pid "$pid"
    local total
    total=$(awk '/^(summary|totals):/ { print $2; exit }' "$(ls -S "$out".*.1 | head -1)")
    echo $((total / (REQUESTS + 1)))
}

declare -A IR
FRONT_H1=$(free_port)
FRONT_H2=$FRONT_H1
ADMIN=$(free_port)
{
    render_gateway 1
    # valgrind cannot map the filter host's default reservation.
    printf '\n[wasm]\nmax_instances = 4\n'
} >"$TMP/gateway.toml"
IR[ours]=$(RUST_LOG=warn count ours "$FRONT_H1" 401 "$GATEWAY_BIN" --config "$TMP/gateway.toml")

FRONT_H1=$(free_port)
FRONT_H2=$(free_port)
# valgrind keeps some descriptors for itself: HAProxy may not ask for all.
render_haproxy | sed "s/^\( *ulimit-n\) .*/\1 $(($(ulimit -n) - 64))/" >"$TMP/haproxy.cfg"
IR[haproxy]=$(count haproxy "$FRONT_H2" 401 haproxy -db -f "$TMP/haproxy.cfg")

for probe in h2-direct hyper-h2 nghttp2; do
    port=$(free_port)
    IR[$probe]=$(count "$probe" "$port" 401 "$PROBES/$probe" "$port")
done

if command -v nghttpd >/dev/null; then
    mkdir -p "$TMP/www"
    printf 'unauthorized\n' >"$TMP/www/ping"
    port=$(free_port)
    IR[nghttpd]=$(count nghttpd "$port" 200 nghttpd --no-tls -d "$TMP/www" "$port")
fi

ratio() { awk -v a="$1" -v b="${IR[haproxy]}" 'BEGIN { printf "%.2f", a / b }'; }
row() {
    if [[ -n ${IR[$1]:-} ]]; then
        printf '| %s | %s | %s | %s |\n' "$2" "$3" "${IR[$1]}" "$(ratio "${IR[$1]}")"
    fi
}
table() {
    printf '# HTTP/2 stacks: instructions per h2c request\n\n'
    printf 'h2c, one thread, %s requests (h2load -c16 -m4) after 2,000 unmeasured;\n' "$REQUESTS"
    printf 'user-space instructions per request (callgrind). ours: %s\n\n' "$(gateway_description)"
    printf '| server | does | instructions | vs HAProxy |\n|---|---|---:|---:|\n'
    row ours ours "the whole request: auth + router filters, access log off"
    row haproxy HAProxy "the whole request: http-request rules"
    row h2-direct "h2 crate, driven directly" "HTTP/2 only: a fixed 401"
    row hyper-h2 "hyper's HTTP/2 server on the h2 crate" "HTTP/2 only: a fixed 401"
    row nghttp2 "libnghttp2, from a tokio task" "HTTP/2 only: a fixed 401"
    row nghttpd "nghttpd (nghttp2's server)" "a 13-byte file (200)"
}
mkdir -p "$ROOT/bench/results"
echo
table | tee "$ROOT/bench/results/h2-floor-latest.md"
