#!/usr/bin/env bash
# scripts/build-pgo.sh: the gateway built with profile-guided optimisation
# (PGO): the binary to release, and the one the benchmarks measure with
# BENCH_PGO=1 (docs/decisions.md).
#
#   ./scripts/build-pgo.sh     # -> $CARGO_TARGET_DIR/pgo/release/gateway
#
# The same source and the same decisions as `cargo build --release`; only
# the compiler's choices (what to inline, how to lay out and order the hot
# blocks) follow what the gateway ran. Three steps:
#   1. an instrumented build (target/pgo-gen) that counts what runs;
#   2. it serves a training load on loopback against an nginx upstream
#      pair: the demo's decisions (auth + router filters: proxied, 401,
#      404, a request with a body) over HTTP/1.1 and h2c, with the access
#      log off and on, the route table alone without filters, and
#      HTTP/1.1 and h2 over TLS;
#   3. llvm-profdata merges the counts, and the optimised build
#      (target/pgo) uses them. It is checked to make the demo's decisions
#      before the script says it is done.
# Two full release builds: about 19 minutes on 2 cores, in their own target
# directories (the plain release build is left as it is).
#
# Needs: llvm-profdata of the LLVM version rustc uses (`rustc -vV`; on
# Debian/Ubuntu `apt-get install -y llvm-22` for LLVM 22, or
# `rustup component add llvm-tools`), nginx, h2load, curl, openssl.
# Environment: LLVM_PROFDATA=path picks the tool; PGO_KEEP_TMP=1 keeps the
# temp dir (configs, logs, raw profiles).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
FILTER_DIR=$TARGET_DIR/wasm32-unknown-unknown/release
AUTH_HEADER='Authorization: Basic x'
W=1
# Read by the sourced report helpers; unused here.
CONNS=32 H2_CONNS=16 H2_STREAMS=4

# The benchmarks' helpers: processes, ports, the upstream pair, configs.
source "$ROOT/bench/lib.sh"

for tool in nginx h2load curl openssl cargo rustc; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y nginx-light nghttp2-client curl openssl)"
done

# --- llvm-profdata of rustc's LLVM (the profile format follows the version) --
LLVM_MAJOR=$(rustc -vV | awk '/^LLVM version/ { split($3, v, "."); print v[1] }')
[[ -n $LLVM_MAJOR ]] || die "rustc -vV names no LLVM version"
find_profdata() {
    local candidate sysroot host
    sysroot=$(rustc --print sysroot)
    host=$(rustc -vV | awk '/^host/ { print $2 }')
    for candidate in "${LLVM_PROFDATA:-}" "llvm-profdata-$LLVM_MAJOR" \
        "/usr/lib/llvm-$LLVM_MAJOR/bin/llvm-profdata" \
        "$sysroot/lib/rustlib/$host/bin/llvm-profdata" llvm-profdata; do
        [[ -n $candidate ]] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" --version 2>/dev/null | grep -q "LLVM version $LLVM_MAJOR\."; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
PROFDATA=$(find_profdata) ||
    die "no llvm-profdata for LLVM $LLVM_MAJOR (rustc's); apt-get install -y llvm-$LLVM_MAJOR, or rustup component add llvm-tools"
log "llvm-profdata: $PROFDATA (LLVM $LLVM_MAJOR)"

TMP=$(mktemp -d -t gateway-pgo.XXXXXX)
chmod 755 "$TMP"
cleanup_pgo() {
    BENCH_KEEP_TMP=${PGO_KEEP_TMP:-0} cleanup
}
trap cleanup_pgo EXIT
trap 'exit 130' INT TERM
# A fixed place (not the temp dir), so that the instrumented build's flags,
# and with them its compiled dependencies, stay the same from run to run.
RAW=$TARGET_DIR/pgo-gen/profiles

# --- the filters and the toolchain ------------------------------------------
"$ROOT/scripts/setup-toolchain.sh" >"$TMP/setup-toolchain.log" 2>&1 || {
    sed 's/^/    /' "$TMP/setup-toolchain.log" >&2
    die "scripts/setup-toolchain.sh failed"
}
log "building the filters (wasm32)"
(cd "$ROOT" && cargo build --release --target wasm32-unknown-unknown -p filter-auth -p filter-router) \
    >"$TMP/build-filters.log" 2>&1 || {
    tail -n 15 "$TMP/build-filters.log" >&2
    die "the filter build failed"
}
BENCH_SKIP_BUILD=1 prepare_filters || die "no filters to train with"

# build DIR RUSTFLAGS: a release build of the gateway into $TARGET_DIR/DIR.
build() {
    local dir=$1 flags=$2
    log "building the gateway into $TARGET_DIR/$dir (RUSTFLAGS=$flags); log: $TMP/build-$dir.log"
    (cd "$ROOT" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$TARGET_DIR/$dir" \
        cargo build --release -p gateway) >"$TMP/build-$dir.log" 2>&1 || {
        tail -n 15 "$TMP/build-$dir.log" >&2
        die "the $dir build failed"
    }
}

# --- 1. the instrumented build ---------------------------------------------
build pgo-gen "-Cprofile-generate=$RAW"
# Build scripts ran instrumented too, and an earlier run may have left
# counts: only this run's training goes into the profile.
rm -rf "$RAW" && mkdir -p "$RAW"

# --- 2. the training load ----------------------------------------------------
start_upstream_pair
make_localhost_cert "$TMP/tls"
head -c 4096 /dev/zero | tr '\0' x >"$TMP/body"

# The demo's listener (bench/targets.sh), served over TLS.
render_tls() {
    render_gateway 1 | sed -e 's/^protocol = "http"$/protocol = "https"/'
    cat <<EOF

[listener.tls]
[[listener.tls.certificate]]
cert = "$TMP/tls/cert.pem"
key = "$TMP/tls/key.pem"
EOF
}

# load ARGS...: one h2load run, every request answered (a 401 or 404
# counts as "failed" for h2load, not as errored).
load() {
    h2load "$@" >"$TMP/h2load.log" 2>&1 || die "h2load $*: $(tail -n 3 "$TMP/h2load.log")"
    grep -q " 0 errored, 0 timeout" "$TMP/h2load.log" ||
        die "h2load $*: $(grep '^requests:' "$TMP/h2load.log")"
}

# serve GATEWAY LABEL RENDER...: starts GATEWAY with the config RENDER
# writes, on fresh ports.
serve() {
    local bin=$1 label=$2
    shift 2
    FRONT_H1=$(free_port)
    ADMIN=$(free_port)
    "$@" >"$TMP/$label.toml"
    RUST_LOG=warn start "gw-$label" "$bin" --config "$TMP/$label.toml"
}

# stop_gateway LABEL: SIGTERM, so the instrumented gateway exits through
# main and writes its counts.
stop_gateway() {
    stop "gw-$1"
}

train() {
    local bin=$TARGET_DIR/pgo-gen/release/gateway url
    # The demo with its filters, access log off.
    serve "$bin" filters render_gateway 1
    wait_http "$FRONT_H1" || die "the instrumented gateway did not start (see $TMP/gw-filters.log)"
    check_decisions "$FRONT_H1" "$FRONT_H1" || die "the instrumented gateway makes the wrong decisions"
    url=http://127.0.0.1:$FRONT_H1
    log "training: HTTP/1.1 and h2c, proxied, 401, 404, a body"
    load --h1 -n 30000 -c 32 -H "$AUTH_HEADER" "$url/ping"
    load --h1 -n 15000 -c 32 "$url/ping"
    load --h1 -n 5000 -c 8 -H "$AUTH_HEADER" "$url/other"
    load --h1 -n 5000 -c 8 -H "$AUTH_HEADER" -d "$TMP/body" "$url/ping"
    load -n 30000 -c 16 -m 4 -H "$AUTH_HEADER" "$url/ping"
    load -n 15000 -c 16 -m 4 "$url/ping"
    load -n 5000 -c 8 -m 4 -H "$AUTH_HEADER" -d "$TMP/body" "$url/ping"
    stop_gateway filters

    log "training: access log on"
    serve "$bin" logged render_gateway 1 log
    wait_http "$FRONT_H1" || die "the instrumented gateway did not start (see $TMP/gw-logged.log)"
    url=http://127.0.0.1:$FRONT_H1
    load --h1 -n 15000 -c 32 -H "$AUTH_HEADER" "$url/ping"
    load -n 15000 -c 16 -m 4 -H "$AUTH_HEADER" "$url/ping"
    stop_gateway logged

    log "training: the route table alone (no filters)"
    serve "$bin" core render_gateway 0
    wait_http "$FRONT_H1" || die "the instrumented gateway did not start (see $TMP/gw-core.log)"
    url=http://127.0.0.1:$FRONT_H1
    load --h1 -n 15000 -c 32 "$url/ping"
    load -n 15000 -c 16 -m 4 "$url/ping"
    stop_gateway core

    log "training: HTTP/1.1 and h2 over TLS"
    serve "$bin" tls render_tls
    wait_https "$FRONT_H1" || die "the instrumented gateway did not start over TLS (see $TMP/gw-tls.log)"
    url=https://127.0.0.1:$FRONT_H1
    load --h1 -n 15000 -c 32 -H "$AUTH_HEADER" "$url/ping"
    load -n 15000 -c 16 -m 4 -H "$AUTH_HEADER" "$url/ping"
    stop_gateway tls
}
train
ls "$RAW"/*.profraw >/dev/null 2>&1 || die "the instrumented gateway wrote no profile into $RAW"

# --- 3. the optimised build ----------------------------------------------------
"$PROFDATA" merge -o "$TMP/gateway.profdata" "$RAW" || die "llvm-profdata merge failed"
mkdir -p "$TARGET_DIR/pgo"
cp "$TMP/gateway.profdata" "$TARGET_DIR/pgo/gateway.profdata"
# Without link-time optimisation: LTO alone takes 10% of the instructions
# off a plain build, but with the profile it loses most of what the
# profile gains (docs/decisions.md).
build pgo "-Cprofile-use=$TARGET_DIR/pgo/gateway.profdata"
BIN=$TARGET_DIR/pgo/release/gateway
serve "$BIN" check render_gateway 1
wait_http "$FRONT_H1" || die "the optimised gateway did not start (see $TMP/gw-check.log)"
check_decisions "$FRONT_H1" "$FRONT_H1" || die "the optimised gateway makes the wrong decisions"
stop_gateway check
log "done: $BIN"
echo "$BIN"
