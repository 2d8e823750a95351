#!/usr/bin/env bash
# examples/demo.sh: the seed scenario on this machine, end to end.
#
#   ./examples/demo.sh          # build, start, show the checks, run until Ctrl-C
#   ./examples/demo.sh --once   # the same, then stop; exit 1 if a check failed
#
# Builds the gateway, the bundled auth and router filters (wasm) and the
# pingpong upstream; copies the filters into examples/seed/; starts pingpong on
# 127.0.0.1:8080 and :8181 and the gateway with examples/demo.toml (HTTP on
# :8000, TCP on :8001, admin on :9901); then runs the article's curl commands
# and checks their answers. Needs rustup (scripts/setup-toolchain.sh installs
# the pinned toolchain and the wasm target first) and curl.
# Environment: CARGO_TARGET_DIR (default ./target), DEMO_SKIP_BUILD=1.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ONCE=0
case ${1:-} in
--once) ONCE=1 ;;
"") ;;
-h | --help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
*)
    echo "usage: $0 [--once]" >&2
    exit 2
    ;;
esac

if [[ -t 1 ]]; then
    BOLD=$'\033[1m' GREEN=$'\033[32m' RED=$'\033[31m' RESET=$'\033[0m'
else
    BOLD='' GREEN='' RED='' RESET=''
fi
say() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$RESET"; }
die() {
    printf 'demo: %s\n' "$*" >&2
    exit 1
}

command -v curl >/dev/null || die "curl not found (apt-get install -y curl)"

# --- build ---------------------------------------------------------------------
if [[ ${DEMO_SKIP_BUILD:-0} != 1 ]]; then
    say "checking the Rust toolchain pinned in rust-toolchain.toml and its wasm32 target (installing what is missing)"
    ./scripts/setup-toolchain.sh || die "the toolchain setup failed (see above)"
    # The filters first: they take seconds, and a broken wasm setup shows
    # here rather than after the gateway's long build.
    say "building the auth and router filters (wasm32-unknown-unknown, release)"
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
        cargo build --release --target wasm32-unknown-unknown -p filter-auth -p filter-router
    say "building the gateway and the pingpong upstream (release; the first build takes several minutes)"
    cargo build --release -p gateway
    cargo build --release -p gateway-examples --bin pingpong
fi
WASM_DIR=$TARGET_DIR/wasm32-unknown-unknown/release
for f in auth router; do
    [[ -f $WASM_DIR/filter_$f.wasm ]] || die "missing $WASM_DIR/filter_$f.wasm (build failed?)"
done
cp "$WASM_DIR/filter_auth.wasm" examples/seed/10-auth.wasm
cp "$WASM_DIR/filter_router.wasm" examples/seed/20-router.wasm
GATEWAY=$TARGET_DIR/release/gateway
PINGPONG=$TARGET_DIR/release/pingpong

# --- start -----------------------------------------------------------------------
for port in 8000 8001 8080 8181 9901; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use (another demo running?)"
    fi
done

LOGS=$(mktemp -d -t gateway-demo.XXXXXX)
PIDS=()
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PINGPONG" --listen 127.0.0.1:8080 --listen 127.0.0.1:8181 >"$LOGS/pingpong.log" 2>&1 &
PIDS+=($!)
"$GATEWAY" check --config examples/demo.toml || die "gateway check rejected examples/demo.toml"
"$GATEWAY" --config examples/demo.toml --address-file "$LOGS/addresses.json" >"$LOGS/gateway.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")

say "waiting for the gateway (admin http://127.0.0.1:9901/ready, at most 30 s)"
ready=0
for ((i = 0; i < 300; i++)); do
    kill -0 "$GATEWAY_PID" 2>/dev/null || break
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 http://127.0.0.1:9901/ready || true) == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.1
done
if ((!ready)); then
    echo "gateway not ready; its log ($LOGS/gateway.log):" >&2
    tail -n 40 "$LOGS/gateway.log" >&2 || true
    exit 1
fi
echo "ready: $(cat "$LOGS/addresses.json" 2>/dev/null || echo '(no address file)')"

# --- the article's commands ------------------------------------------------------
FAILED=0
# show SHOWN CMD...: prints the command as a reader would type it (SHOWN),
# runs CMD (the same, plus -s and status output) and prints its output.
show() {
    printf '\n$ %s\n' "$1"
    shift
    OUT=$("$@" 2>&1 || true)
    printf '%s\n' "$OUT"
}
check() {
    if eval "$2"; then
        printf '   %sok%s   %s\n' "$GREEN" "$RESET" "$1"
    else
        printf '   %sFAIL%s %s\n' "$RED" "$RESET" "$1"
        FAILED=1
    fi
}
# same_server "A B ": both requests of one connection went to one server.
same_server() {
    local a b
    read -r a b <<<"$1"
    [[ -n $a && $a == "$b" ]]
}
W=$'\n[%{http_code}]'
H='Authorization: Basic x'
AUTH="'$H'"

say "the L7 listener (HTTP on :8000)"
show "curl -H $AUTH localhost:8000/ping" curl -s -w "$W" -H "$H" localhost:8000/ping
check "with Authorization, /ping is answered by an upstream" '[[ $OUT == *"pong from "*"[200]" ]]'
show "curl localhost:8000/ping" curl -s -w "$W" localhost:8000/ping
check "without Authorization: 401" '[[ $OUT == *"[401]" ]]'
show "curl -H $AUTH localhost:8000/other" curl -s -w "$W" -H "$H" localhost:8000/other
check "another path: 404" '[[ $OUT == *"[404]" ]]'

say "four requests on one keep-alive connection: each one balanced (L7)"
FOUR="localhost:8000/ping localhost:8000/ping localhost:8000/ping localhost:8000/ping"
# shellcheck disable=SC2086 # four URLs
show "curl -s -H $AUTH $FOUR" curl -s -w $'\n' -H "$H" $FOUR
PORTS=$(grep -o 'pong from [0-9]*' <<<"$OUT" | awk '{print $3}' | tr '\n' ' ')
check "four pongs, alternating between 8080 and 8181 ($PORTS)" \
    '[[ $PORTS == "8080 8181 8080 8181 " || $PORTS == "8181 8080 8181 8080 " ]]'
# num_connects is 1 for a transfer that opened a connection, 0 for one that reused it.
CONNS=$(curl -s -w '%{num_connects}' -H "$H" -o /dev/null localhost:8000/ping -o /dev/null localhost:8000/ping \
    -o /dev/null localhost:8000/ping -o /dev/null localhost:8000/ping || true)
check "over a single connection (new connections per request: $CONNS)" '[[ $CONNS == 1000 ]]'

if grep -q '^protocol = "tcp"' examples/demo.toml; then
    say "the L4 listener (TCP on :8001): balanced per connection"
    show "curl -s localhost:8001/ping localhost:8001/ping" curl -s -w $'\n' localhost:8001/ping localhost:8001/ping
    FIRST=$(grep -o 'pong from [0-9]*' <<<"$OUT" | awk '{print $3}' | tr '\n' ' ')
    show "curl -s localhost:8001/ping localhost:8001/ping" curl -s -w $'\n' localhost:8001/ping localhost:8001/ping
    SECOND=$(grep -o 'pong from [0-9]*' <<<"$OUT" | awk '{print $3}' | tr '\n' ' ')
    check "one server per connection, the next connection on the other ($FIRST| $SECOND)" \
        'same_server "$FIRST" && same_server "$SECOND" && [[ $FIRST != "$SECOND" ]]'
else
    say "the L4 listener (TCP on :8001): not in examples/demo.toml yet, skipped"
fi
echo
echo "logs: $LOGS (pingpong.log shows which server got each request)"
if ((ONCE)); then
    ((FAILED)) && { echo "demo: some checks failed" >&2; exit 1; }
    echo "demo: all checks passed"
    exit 0
fi
((FAILED)) && echo "demo: some checks failed (see above); still running"
say "running: try the commands above yourself; Ctrl-C stops everything"
wait "$GATEWAY_PID" || true
