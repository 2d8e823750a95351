#!/usr/bin/env bash
# bench/instructions.sh: user-space instructions per request of our gateway,
# counted by valgrind's callgrind, for comparing two builds of the code on
# a noisy machine. The count is deterministic to about 1% run to run, where
# requests per second and CPU time here swing by 10-20%; it says nothing of
# the kernel's share (syscalls, wake-ups) or of cache misses, so
# bench/run.sh stays the measure of speed.
#
#   ./bench/instructions.sh                       # target/release/gateway
#   ./bench/instructions.sh old-gateway new-gateway   # A/B, same scenario
#
# The scenario is bench/run.sh's (auth + router filters, one worker, the
# same nginx upstream pair): for each binary, 4,000 requests over 16
# connections on each of HTTP/1.1 proxied, HTTP/1.1 401, h2c proxied and
# h2c 401, after 1,000 unmeasured ones. The filter host reserves less
# address space here than by default (valgrind cannot map the default).
#
# Needs: valgrind, nginx, h2load, curl, python3. BENCH_REQUESTS=4000 changes
# the count; BENCH_ACCESS_LOG=1 turns the access log on (to a file);
# BENCH_KEEP_TMP=1 keeps the profiles (callgrind.<row>.<pid>.1), and
# BENCH_DUMP_INSTR=yes has them count per machine instruction.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FILTER_DIR=${FILTER_DIR:-$TARGET_DIR/wasm32-unknown-unknown/release}
REQUESTS=${BENCH_REQUESTS:-4000}
AUTH_HEADER='Authorization: Basic x'
W=1
# Read by the sourced report helpers; unused here.
CONNS=16 H2_CONNS=16 H2_STREAMS=4
BINARIES=("$@")
((${#BINARIES[@]})) || BINARIES=("$TARGET_DIR/release/gateway")

source "$ROOT/bench/lib.sh"
for tool in valgrind callgrind_control callgrind_annotate nginx h2load curl python3; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y valgrind nginx-light nghttp2-client curl)"
done

TMP=$(mktemp -d -t gateway-instructions.XXXXXX)
chmod 755 "$TMP"
trap cleanup EXIT
trap 'exit 130' INT TERM

start_upstream_pair
BENCH_SKIP_BUILD=1 prepare_filters || die "build the filters first (README, benchmarks)"

# count BIN LABEL H2LOAD_ARGS...: instructions per request, to stdout.
count() {
    local bin=$1 label=$2
    shift 2
    FRONT_H1=$(free_port)
    ADMIN=$(free_port)
    {
        render_gateway 1 "${BENCH_ACCESS_LOG:+log}"
        printf '\n[wasm]\nmax_instances = 4\n'
    } >"$TMP/gateway.toml"
    local out="$TMP/callgrind.$label"
    rm -f "$out"*
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out.%p" \
        --instr-atstart=no --dump-instr=${BENCH_DUMP_INSTR:-no} "$bin" --config "$TMP/gateway.toml" \
        >"$TMP/valgrind.log" 2>&1 &
    local pid=$!
    # Under valgrind start-up takes seconds; bounded at a minute.
    local i
    for ((i = 0; i < 120; i++)); do
        curl -s -o /dev/null "http://127.0.0.1:$FRONT_H1/" && break
        sleep 0.5
    done
    local url="http://127.0.0.1:$FRONT_H1/ping"
    h2load -n 1000 -c 16 "$@" "$url" >/dev/null
    callgrind_control -i on "$pid" >/dev/null 2>&1
    h2load -n 1000 -c 16 "$@" "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    h2load -n "$REQUESTS" -c 16 "$@" "$url" >"$TMP/h2load.log"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Every request answered (a 401 counts as "failed" for h2load).
    grep -q "$REQUESTS done, .* 0 errored, 0 timeout" "$TMP/h2load.log" ||
        log "  $label: not every request was answered: $(grep '^requests:' "$TMP/h2load.log")"
    # callgrind acts on a control command only when the process next runs,
    # so the zeroing may land a few hundred requests into the measured
    # load: the total is divided by the requests the profile saw (calls of
    # the per-request service), not by the requests sent.
    local counted total seen
    counted=$(per_request "$(ls -S "$out".*.1 | head -1)")
    read -r total seen <<<"$counted"
    if ((seen == 0)); then
        # The entry point is inlined (a profile-guided build).
        log "  $label: requests not countable in this build; dividing by the $REQUESTS sent"
        seen=$REQUESTS
    else
        log "  $label: $seen requests seen in the profile"
    fi
    echo $((total / seen))
}

# per_request CALLGRIND_FILE: "TOTAL REQUESTS", the requests being the calls
# of the connection service's per-request entry point.
per_request() {
    python3 - "$1" <<'PY'
import re, sys
names, total, calls, pending = {}, 0, 0, False
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if m:
        if m.group(3) is not None:
            names[m.group(2)] = m.group(3)
        name = names.get(m.group(2), "")
        pending = (m.group(1) == "cfn" and "ConnService as hyper::service::service::Service<" in name
                   and name.endswith(">::call"))
    elif pending and line.startswith("calls="):
        calls += int(line.split()[0][len("calls="):])
        pending = False
    elif line.startswith(("totals:", "summary:")):
        total = int(line.split()[1])
print(total, calls)
PY
}

printf '| binary | HTTP/1.1 proxied | HTTP/1.1 401 | h2c proxied | h2c 401 |\n|---|---:|---:|---:|---:|\n'
for bin in "${BINARIES[@]}"; do
    h1=$(count "$bin" h1 --h1 -H "$AUTH_HEADER")
    h1_401=$(count "$bin" h1-401 --h1)
    h2=$(count "$bin" h2 -m 4 -H "$AUTH_HEADER")
    h2_401=$(count "$bin" h2-401 -m 4)
    printf '| %s | %s | %s | %s | %s |\n' "$bin" "$h1" "$h1_401" "$h2" "$h2_401"
done
