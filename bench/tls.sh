#!/usr/bin/env bash
# bench/tls.sh: TLS termination, our gateway against nginx and HAProxy, on
# loopback. No filters, no Lua: each target terminates TLS and proxies /ping
# to the same neutral nginx upstream pair (keep-alive pool, round robin), so
# TLS (and the proxying around it) is what is compared.
#
#   ./bench/tls.sh                      # from the repository root or anywhere
#   BENCH_DURATION=30s ./bench/tls.sh   # longer runs
#
# One self-signed ECDSA P-256 certificate for localhost (made with openssl in
# the temp dir) serves all three targets, TLS 1.2 and 1.3, ALPN h2 and
# http/1.1, 2 workers/threads each. Measured, per target:
#   h1   requests/s over TLS, HTTP/1.1 keep-alive        (wrk https, -c$BENCH_CONNS)
#   h2   requests/s over TLS, HTTP/2 chosen by ALPN      (h2load https, -c -m)
#   hs   handshakes/s: a new TLS connection per request  (wrk -H "Connection: close")
#   full full TLS handshakes/s, never resumed            (parallel `openssl s_time -new`)
# nginx (ssl_session_cache off, ssl_session_tickets off) and HAProxy
# (no-tls-tickets, tune.ssl.cachesize 0) cannot resume sessions; our gateway
# runs rustls with its defaults (an in-memory session cache and TLS 1.3
# tickets), so a client that resumes (wrk does) resumes there. Before
# measuring, each target is probed with `openssl s_client -sess_out/-sess_in`
# and the report says which resume; the `full` row is the like-for-like handshake one.
# The table (req/s, p50, p99, ratios ours/peer) goes to stdout and
# bench/results/tls-latest.md.
#
# Environment (all optional; the shared ones as in bench/run.sh):
#   BENCH_DURATION=10s  BENCH_WARMUP=2s  BENCH_ROUNDS=1  BENCH_THREADS=2
#   BENCH_CONNS=64  BENCH_H2_CONNS=16  BENCH_H2_STREAMS=4  BENCH_NOTE=text
#   BENCH_SKIP_BUILD=1  GATEWAY_BIN=path  BENCH_KEEP_TMP=1  BENCH_PGO=1 (as run.sh)
#   BENCH_HS_CONNS=32      connections of the wrk handshake run (hs)
#   BENCH_STIME_PROCS=4    parallel `openssl s_time -new` clients (full)
#   BENCH_TARGETS="ours nginx haproxy"
#
# Needs: nginx (with the ssl and http2 modules: nginx-light has both), haproxy
# (built with OpenSSL), wrk, h2load, curl, openssl. On Debian/Ubuntu:
#   apt-get install -y nginx-light haproxy wrk nghttp2-client curl openssl
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
HS_CONNS=${BENCH_HS_CONNS:-32}
STIME_PROCS=${BENCH_STIME_PROCS:-4}
TARGETS=${BENCH_TARGETS:-ours nginx haproxy}
ROUNDS=${BENCH_ROUNDS:-1}
FILTER_DIR=${FILTER_DIR:-$TARGET_DIR/wasm32-unknown-unknown/release}
AUTH_HEADER='Authorization: Basic x' # sent on /ping like run.sh; nobody here checks it
SCHEME=https

source "$ROOT/bench/lib.sh"
# BENCH_PGO=1: the profile-guided build (scripts/build-pgo.sh), as released.
GATEWAY_BIN=${GATEWAY_BIN:-$(default_gateway_bin)}

need_tls_tools() {
    local missing=() t
    for t in nginx haproxy wrk h2load curl openssl awk sort; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}"
        log "install: apt-get install -y nginx-light haproxy wrk nghttp2-client curl openssl"
        exit 1
    fi
}

need_tls_tools
LOAD_AT_START=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
TMP=$(mktemp -d -t gateway-bench-tls.XXXXXX)
chmod 755 "$TMP" # nginx workers may run as another user and read from here
mkdir -p "$TMP/raw" "$TMP/tls"
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- one certificate for all: ECDSA P-256, self-signed, localhost -------------
make_localhost_cert "$TMP/tls"
cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/both.pem" # HAProxy's crt: cert and key in one file
CERT=$TMP/tls/cert.pem KEY=$TMP/tls/key.pem
log "certificate: ECDSA P-256, CN=localhost, in $TMP/tls"

# --- the neutral upstream pair, as in run.sh ----------------------------------
start_upstream_pair
log "upstream pair (nginx, 1 worker) on 127.0.0.1:$UP1 and :$UP2"

# --- checks over TLS ------------------------------------------------------------
# check_tls PORT: /ping 200 and /other 404 on HTTP/1.1 and on h2 (ALPN), the
# certificate verified against itself, and per-request round robin.
check_tls() {
    local port=$1 ok=0 v want got path code
    local base=(-s --max-time 3 --cacert "$CERT" --resolve "localhost:$port:127.0.0.1")
    for v in 1.1 2; do
        for path in /ping /other; do
            want=200
            [[ $path == /other ]] && want=404
            got=$(curl "${base[@]}" "--http$v" -o /dev/null -w '%{http_code} %{http_version}' \
                -H "$AUTH_HEADER" "https://localhost:$port$path" || true)
            if [[ $got != "$want $v" ]]; then
                log "  check failed: $path over TLS, HTTP/$v -> '$got', want '$want $v'"
                ok=1
            fi
        done
    done
    code=$(curl "${base[@]}" --http1.1 "https://localhost:$port/ping" "https://localhost:$port/ping" |
        grep -o 'pong from [0-9]*' | awk '{print $3}' | sort -u | wc -l)
    if [[ $code != 2 ]]; then
        log "  check failed: two /ping on one TLS connection reached $code upstream(s), want 2"
        ok=1
    fi
    return $ok
}

# probe_resumption TARGET PORT: does the target resume TLS 1.3 sessions?
# One connection sends a request (so the client reads the tickets that come
# after the handshake) and saves its session; three more offer it. (s_client
# -reconnect does not wait for TLS 1.3 tickets: it never resumes.) Writes
# yes/no to $TMP/raw/TARGET.resumes.
probe_resumption() {
    local sess=$TMP/tls/$1.session reused=0 i
    local base=(-connect "127.0.0.1:$2" -servername localhost -tls1_3)
    (sleep 0.5; printf 'GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n') |
        timeout 5 openssl s_client "${base[@]}" -sess_out "$sess" -quiet >/dev/null 2>&1 || true
    for ((i = 0; i < 3; i++)); do
        [[ -s $sess ]] || break
        timeout 5 openssl s_client "${base[@]}" -sess_in "$sess" </dev/null 2>/dev/null |
            grep -q '^Reused' && reused=$((reused + 1))
    done
    if ((reused > 0)); then echo yes; else echo no; fi >"$TMP/raw/$1.resumes"
    # rustls takes a TLS 1.3 ticket out of its cache when it is used: 1 of 3 is "yes".
    log "  TLS 1.3 session resumption: $reused of 3 connections offering the saved session resumed it"
}

# run_stime TARGET PORT: full handshakes/s with STIME_PROCS parallel
# `openssl s_time -new` (no session reuse; each connection a GET /ping).
# One line "cps n/a n/a n/a" like the other drivers (s_time has no latencies).
run_stime() {
    local target=$1 port=$2 out="$TMP/raw/$1.full.ping.r$ROUND" s i
    s=$(secs "$DURATION")
    log "  s_time $target: $STIME_PROCS x openssl s_time -new -time $s -www /ping"
    local clients=() t0 t1
    t0=$(date +%s.%N)
    for ((i = 1; i <= STIME_PROCS; i++)); do
        timeout $((s + 30)) openssl s_time -connect "127.0.0.1:$port" -new -time "$s" -www /ping \
            >"$out.$i.txt" 2>&1 &
        clients+=($!)
        PIDS+=($!)
    done
    for i in "${clients[@]}"; do wait "$i" 2>/dev/null || true; done
    t1=$(date +%s.%N)
    # "N connections in T real seconds, ..." per client (T in whole seconds,
    # too coarse): all connections over the wall time of the run. s_time
    # checks no status, hence no "bad" count.
    cat "$out".[0-9]*.txt | awk -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
        / connections in .* real seconds/ { n++; conns += $1 }
        END { if (n == 0) print "n/a n/a n/a n/a"; else printf "%.0f n/a n/a n/a\n", conns / wall }' >"$out"
}

# measure_tls TARGET PORT
measure_tls() {
    local target=$1 port=$2
    probe_resumption "$target" "$port"
    timeout $(($(secs "$WARMUP") + 30)) wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" \
        "https://127.0.0.1:$port/ping" >/dev/null 2>&1 || true
    run_wrk "$target" ping "$port"
    run_h2load "$target" ping "$port"
    grep -q '^Application protocol: h2' "$TMP/raw/$target.h2.ping.r$ROUND.txt" ||
        log "  h2load did not negotiate h2 with $target (see BENCH_KEEP_TMP=1 raw output)"
    CONNS=$HS_CONNS WRK_PROTO=hs WRK_HEADER='Connection: close' run_wrk "$target" ping "$port"
    run_stime "$target" "$port"
}

# --- the targets ----------------------------------------------------------------
render_nginx_tls() {
    nginx_common front
    cat <<EOF
worker_processes 2;
events { worker_connections 8192; }
http {
$(nginx_http_common front)
    upstream ping_pong {
        server 127.0.0.1:$UP1;
        server 127.0.0.1:$UP2;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$FRONT ssl http2;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        # Full handshakes only: no session cache, no tickets.
        ssl_session_cache off;
        ssl_session_tickets off;
        location = /ping {
            proxy_pass http://ping_pong;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / { return 404; }
    }
}
EOF
}

render_haproxy_tls() {
    cat <<EOF
global
    nbthread 2
    maxconn 4096
    pidfile $TMP/haproxy.pid
    # Full handshakes only: no session cache, no tickets.
    tune.ssl.cachesize 0
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s
    option http-keep-alive

frontend web
    bind 127.0.0.1:$FRONT ssl crt $TMP/tls/both.pem alpn h2,http/1.1 no-tls-tickets
    http-request return status 404 content-type text/plain string "not found" unless { path /ping }
    default_backend ping_pong

backend ping_pong
    balance roundrobin
    http-reuse always
    server a 127.0.0.1:$UP1
    server b 127.0.0.1:$UP2
EOF
}

render_gateway_tls() {
    cat <<EOF
[runtime]
workers = 2

[admin]
address = "127.0.0.1:$ADMIN"

[access_log]
enabled = false

[[listener]]
name = "web-tls"
protocol = "https"
address = "127.0.0.1:$FRONT"

# rustls defaults otherwise (session cache, TLS 1.3 tickets): not settable here.
[listener.tls]

[[listener.tls.certificate]]
cert = "$CERT"
key = "$KEY"

[[listener.route]]
path = "/ping"
cluster = "ping_pong"

[[listener.route]]
path_prefix = "/"
[listener.route.direct]
status = 404
body = "not found"

[[cluster]]
name = "ping_pong"
endpoints = ["127.0.0.1:$UP1", "127.0.0.1:$UP2"]
balance = "round_robin"
connect_timeout = "1s"
EOF
}

# bench_tls_target NAME: start, wait, check, measure, stop.
bench_tls_target() {
    local name=$1
    FRONT=$(free_port)
    case $name in
    nginx)
        log "nginx (worker_processes 2), TLS termination"
        render_nginx_tls >"$TMP/nginx-tls.conf"
        start nginx nginx -e "$TMP/front.err" -p "$TMP" -c "$TMP/nginx-tls.conf"
        ;;
    haproxy)
        log "HAProxy (nbthread 2), TLS termination"
        render_haproxy_tls >"$TMP/haproxy-tls.cfg"
        haproxy -c -q -f "$TMP/haproxy-tls.cfg" || die "haproxy rejected $TMP/haproxy-tls.cfg"
        start haproxy haproxy -db -f "$TMP/haproxy-tls.cfg"
        ;;
    ours)
        log "ours: gateway, https listener, no filters (workers = 2)"
        if ! prepare_gateway; then
            log "  SKIPPED ours: no gateway binary"
            return 0
        fi
        ADMIN=$(free_port)
        render_gateway_tls >"$TMP/gateway-tls.toml"
        if ! "$GATEWAY_BIN" check --config "$TMP/gateway-tls.toml" >"$TMP/gateway-check.log" 2>&1; then
            log "  SKIPPED ours: 'gateway check' rejected the config:"
            sed 's/^/    /' "$TMP/gateway-check.log" >&2
            return 0
        fi
        RUST_LOG=${RUST_LOG:-warn} start ours "$GATEWAY_BIN" --config "$TMP/gateway-tls.toml"
        ;;
    *) die "unknown target '$name' in BENCH_TARGETS" ;;
    esac
    if ! wait_https "$FRONT"; then
        log "  $name did not answer over TLS on :$FRONT; skipped. Its log:"
        tail -n 30 "$TMP/$name.log" >&2 || true
        stop "$name"
        return 0
    fi
    if check_tls "$FRONT"; then
        log "  checked: 200 /ping, 404 /other over TLS on HTTP/1.1 and h2 (ALPN), per-request round robin"
    else
        log "  $name answers differ (measured anyway)"
    fi
    measure_tls "$name" "$FRONT"
    stop "$name"
}

targets=($TARGETS)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    ((ROUNDS > 1)) && log "round $ROUND of $ROUNDS"
    for ((i = 0; i < ${#targets[@]}; i++)); do
        bench_tls_target "${targets[$(((i + ROUND - 1) % ${#targets[@]}))]}"
    done
done
combine_rounds
LOAD_AT_END=$(cut -d" " -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# --- the report -----------------------------------------------------------------
declare -A TLS_LABEL=([ours]="ours (https listener, rustls)" [nginx]="nginx" [haproxy]="HAProxy")
declare -A TLS_PROTO=(
    [h1]="HTTP/1.1 keep-alive (wrk -c$CONNS)"
    [h2]="h2 via ALPN (h2load -c$H2_CONNS -m$H2_STREAMS)"
    [hs]="new connection per request (wrk -c$HS_CONNS, Connection: close)"
    [full]="full handshakes (${STIME_PROCS}x openssl s_time -new)"
)

print_tls_report() {
    local t p n bad
    echo "# TLS benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Loopback, $(nproc) CPUs shared by clients, proxies and upstream ($(uname -sr))."
    echo "Each run $DURATION after a $WARMUP warm-up; client threads $THREADS; $ROUNDS round(s), targets interleaved,"
    echo "each row the round with the median req/s."
    echo "TLS termination and proxying of /ping only (no filters, no Lua); 2 workers/threads each; one self-signed"
    echo "ECDSA P-256 certificate; TLS 1.2 and 1.3 allowed (every client here negotiates TLS 1.3), ALPN h2, http/1.1."
    echo "Upstream: nginx, 1 worker, two ports, fixed \"pong\", keep-alive pool from each proxy."
    echo "Versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}'),"
    echo "$(openssl version | awk '{print "OpenSSL " $2}'), $(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $(h2load --version | head -1),"
    echo "gateway: $(gateway_description)."
    echo "Load average (1/5/15 min) at the start: $LOAD_AT_START; at the end: $LOAD_AT_END"
    echo "(anything else running on the machine skews every number)."
    [[ -n ${BENCH_NOTE:-} ]] && echo "Note: $BENCH_NOTE"
    echo
    echo "Session resumption (TLS 1.3, \`openssl s_client -sess_out\`, then \`-sess_in\`):$(for t in ours nginx haproxy; do
        [[ -e $TMP/raw/$t.resumes ]] && printf ' %s %s;' "${TLS_LABEL[$t]}" "$(<"$TMP/raw/$t.resumes")"
    done)"
    echo "wrk resumes the session it was given when it reconnects, so the \"new connection per request\" row is"
    echo "full handshakes only for targets that do not resume; the \"full handshakes\" row never resumes."
    echo "The wrk latencies of that row start after the handshake; s_time gives none."
    echo "\`bad\` counts non-2xx responses plus socket errors (should be 0; s_time checks no status)."
    echo
    echo "| target | test | req/s | p50 ms | p99 ms | bad |"
    echo "|---|---|---:|---:|---:|---:|"
    for p in h1 h2 hs full; do
        for t in ours nginx haproxy; do
            [[ -e $TMP/raw/$t.$p.ping ]] || continue
            bad=$(field $t $p ping 4)
            [[ $p == full ]] && bad=n/a # s_time checks no status
            echo "| ${TLS_LABEL[$t]} | ${TLS_PROTO[$p]} | $(field $t $p ping 1) | $(field $t $p ping 2) | $(field $t $p ping 3) | $bad |"
        done
    done
    if [[ -e $TMP/raw/ours.h1.ping ]]; then
        echo
        echo "Ratios, ours / peer (req/s: higher is better for us; p99: lower is better for us)."
        echo
        echo "| test | req/s vs nginx | req/s vs HAProxy | p99 vs nginx | p99 vs HAProxy |"
        echo "|---|---:|---:|---:|---:|"
        for p in h1 h2 hs full; do
            [[ -e $TMP/raw/ours.$p.ping ]] || continue
            local row="| ${TLS_PROTO[$p]} |"
            for n in 1 3; do
                for t in nginx haproxy; do
                    row+=" $(ratio "$(field ours $p ping $n)" "$(field $t $p ping $n)") |"
                done
            done
            echo "$row"
        done
    else
        echo
        echo "**Our gateway was not measured in this run** (not built or not serving; the run's log says which)."
    fi
}

print_tls_report | tee "$TMP/report.md"
mkdir -p "$ROOT/bench/results"
cp "$TMP/report.md" "$ROOT/bench/results/tls-latest.md"
log "table written to bench/results/tls-latest.md"
