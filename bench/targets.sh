# bench/targets.sh: the four targets of bench/run.sh (sourced, not run). Each
# bench_* starts its target on fresh ports, checks that it makes the seed
# scenario's decisions, measures it, and stops it so the next one has the CPUs.

# Directives every nginx here needs to live entirely in $TMP.
nginx_common() {
    local name=$1
    # Workers drop to "nobody" when the master is root; keep them as the
    # caller so they can use the temp dir.
    [[ $(id -u) == 0 ]] && echo "user root root;"
    cat <<EOF
daemon off;
master_process on;
pid $TMP/$name.pid;
error_log $TMP/$name.err warn;
EOF
}

nginx_http_common() {
    local name=$1
    cat <<EOF
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path $TMP/$name-body;
    proxy_temp_path $TMP/$name-proxy;
    fastcgi_temp_path $TMP/$name-fastcgi;
    uwsgi_temp_path $TMP/$name-uwsgi;
    scgi_temp_path $TMP/$name-scgi;
EOF
}

# The upstream pair: fixed answers, one worker, HTTP/1.1 on two ports and h2c
# on a third (for the "direct" HTTP/2 row).
render_upstream_nginx() {
    nginx_common upstream
    cat <<EOF
worker_processes 1;
events { worker_connections 8192; }
http {
$(nginx_http_common upstream)
    server {
        listen 127.0.0.1:$UP1;
        listen 127.0.0.1:$UP2;
        listen 127.0.0.1:$UP_H2 http2;
        location = /ping { default_type text/plain; return 200 "pong from \$server_port"; }
        location / { return 404; }
    }
}
EOF
}

# --- nginx + Lua ---------------------------------------------------------------
render_nginx_lua() {
    echo "load_module $NGINX_NDK;"
    echo "load_module $NGINX_LUA;"
    nginx_common front
    cat <<EOF
worker_processes $W;
worker_rlimit_nofile 65536;
events { worker_connections 30000; }
http {
$(nginx_http_common front)
    upstream ping_pong {
        server 127.0.0.1:$UP1;
        server 127.0.0.1:$UP2;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$FRONT_H1;
        # nginx 1.22: a cleartext "http2" listener speaks h2c with prior
        # knowledge only, hence its own port.
        listen 127.0.0.1:$FRONT_H2 http2;
        location / {
            # The same decisions as the auth + router filters, in one Lua hook.
            access_by_lua_block {
                if not ngx.var.http_authorization then
                    return ngx.exit(401)
                end
                if ngx.var.uri ~= "/ping" then
                    return ngx.exit(404)
                end
            }
            proxy_pass http://ping_pong;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}

bench_nginx() {
    log "nginx + Lua (worker_processes $W)"
    FRONT_H1=$(free_port)
    FRONT_H2=$(free_port)
    render_nginx_lua >"$TMP/nginx-lua.conf"
    start nginx nginx -e "$TMP/front.err" -p "$TMP" -c "$TMP/nginx-lua.conf"
    TARGET_PIDS=$PID_nginx
    if ! wait_http "$FRONT_H1"; then
        log "  nginx + Lua did not start; skipped. Its log:"
        cat "$TMP/nginx.log" "$TMP/front.err" >&2 || true
        stop nginx
        return 0
    fi
    check_decisions "$FRONT_H1" "$FRONT_H2" && log "  checked: 200/401/404 on HTTP/1.1 and h2c, per-request round robin" ||
        log "  nginx + Lua answers differ from the scenario (measured anyway)"
    measure nginx "$FRONT_H1" "$FRONT_H2"
    stop nginx
}

# --- HAProxy -------------------------------------------------------------------
render_haproxy() {
    cat <<EOF
global
    nbthread $W
    maxconn 9900
    # Never more descriptors than this shell may hand out (the idle row
    # holds $IDLE connections, one descriptor each).
    ulimit-n $(ulimit -n)
    pidfile $TMP/haproxy.pid

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s
    option http-keep-alive

frontend web
    bind 127.0.0.1:$FRONT_H1
    bind 127.0.0.1:$FRONT_H2 proto h2
    http-request return status 401 content-type text/plain string "unauthorized" unless { req.hdr(authorization) -m found }
    http-request return status 404 content-type text/plain string "not found" unless { path /ping }
    default_backend ping_pong

backend ping_pong
    balance roundrobin
    http-reuse always
    server a 127.0.0.1:$UP1
    server b 127.0.0.1:$UP2
EOF
}

bench_haproxy() {
    log "HAProxy (nbthread $W)"
    FRONT_H1=$(free_port)
    FRONT_H2=$(free_port)
    render_haproxy >"$TMP/haproxy.cfg"
    haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy rejected $TMP/haproxy.cfg"
    start haproxy haproxy -db -f "$TMP/haproxy.cfg"
    TARGET_PIDS=$PID_haproxy
    if ! wait_http "$FRONT_H1"; then
        log "  HAProxy did not start; skipped. Its log:"
        cat "$TMP/haproxy.log" >&2 || true
        stop haproxy
        return 0
    fi
    check_decisions "$FRONT_H1" "$FRONT_H2" && log "  checked: 200/401/404 on HTTP/1.1 and h2c, per-request round robin" ||
        log "  HAProxy answers differ from the scenario (measured anyway)"
    measure haproxy "$FRONT_H1" "$FRONT_H2"
    stop haproxy
}

# --- direct to the upstream --------------------------------------------------
bench_direct() {
    log "direct to the upstream (no proxy; /ping only: the upstream has no 401)"
    expect "$UP1" 0 /ping 200 || die "upstream does not answer /ping"
    TARGET_PIDS=$PID_upstream
    measure direct "$UP1" "$UP_H2" ping
}

# --- ours ------------------------------------------------------------------------
# The router filter's configuration; filters/router/README.md (branch sdk)
# documents it. The route table below makes the same decision on its own.
ROUTER_CONFIG=${BENCH_ROUTER_CONFIG:-'{"routes":[{"path":"/ping","cluster":"ping_pong"}]}'}

# render_gateway WITH_FILTERS(0|1) [log]: our config; without filters only
# the route table decides (no 401: that takes the auth filter). With `log`
# the access log is written to a file.
render_gateway() {
    local log=false
    [[ ${2:-} == log ]] && log=true
    cat <<EOF
[runtime]
workers = $W

[admin]
address = "127.0.0.1:$ADMIN"

# The peers run with their access logs off; ours_log measures ours with it on.
[access_log]
enabled = $log
path = "$TMP/access.log"

[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:$FRONT_H1"
max_connections = 30000
EOF
    if [[ $1 == 1 ]]; then
        cat <<EOF

[[listener.filter]]
name = "auth"
path = "$TMP/seed/10-auth.wasm"
config = '{}'

[[listener.filter]]
name = "router"
path = "$TMP/seed/20-router.wasm"
config = '$ROUTER_CONFIG'
EOF
    fi
    cat <<EOF

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

# Builds the gateway once per run (unless BENCH_SKIP_BUILD=1); non-zero
# with a message when there is no binary to run.
GATEWAY_BUILT=0
prepare_gateway() {
    if ((!GATEWAY_BUILT)) && [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] && command -v cargo >/dev/null; then
        GATEWAY_BUILT=1
        # The pinned toolchain and the wasm32 target, before any build.
        "$ROOT/scripts/setup-toolchain.sh" >"$TMP/setup-toolchain.log" 2>&1 || {
            log "  scripts/setup-toolchain.sh failed:"
            sed 's/^/    /' "$TMP/setup-toolchain.log" >&2
            return 1
        }
        if [[ ${BENCH_PGO:-0} == 1 ]]; then
            log "  building the gateway: scripts/build-pgo.sh, about 19 minutes (log: build-gateway.log)"
            "$ROOT/scripts/build-pgo.sh" >"$TMP/build-gateway.log" 2>&1 || {
                log "  scripts/build-pgo.sh failed:"
                tail -n 15 "$TMP/build-gateway.log" | sed 's/^/    /' >&2
            }
        else
            log "  building the gateway: cargo build --release -p gateway (log: build-gateway.log)"
            (cd "$ROOT" && cargo build --release -p gateway) >"$TMP/build-gateway.log" 2>&1 || {
                log "  cargo build -p gateway failed:"
                tail -n 15 "$TMP/build-gateway.log" | sed 's/^/    /' >&2
            }
        fi
    fi
    [[ -x $GATEWAY_BIN ]] || {
        log "  no gateway binary at $GATEWAY_BIN"
        return 1
    }
}

# Builds the filters (unless BENCH_SKIP_BUILD=1) and copies them to $TMP/seed.
FILTERS_BUILT=0
prepare_filters() {
    if ((!FILTERS_BUILT)) && [[ ${BENCH_SKIP_BUILD:-0} != 1 ]] && command -v cargo >/dev/null; then
        FILTERS_BUILT=1
        log "  building the filters: cargo build --release --target wasm32-unknown-unknown -p filter-auth -p filter-router"
        (cd "$ROOT" && cargo build --release --target wasm32-unknown-unknown -p filter-auth -p filter-router) \
            >"$TMP/build-filters.log" 2>&1 || {
            log "  the filter build failed:"
            tail -n 5 "$TMP/build-filters.log" | sed 's/^/    /' >&2
        }
    fi
    local f
    mkdir -p "$TMP/seed"
    for f in auth router; do
        [[ -f $FILTER_DIR/filter_$f.wasm ]] || {
            log "  no filter at $FILTER_DIR/filter_$f.wasm"
            return 1
        }
    done
    cp "$FILTER_DIR/filter_auth.wasm" "$TMP/seed/10-auth.wasm"
    cp "$FILTER_DIR/filter_router.wasm" "$TMP/seed/20-router.wasm"
}

# start_gateway WITH_FILTERS [log]: writes the config (with the file
# GATEWAY_EXTRA appended when set: bench/ab.sh), checks it, starts the
# gateway and waits for it; non-zero with a message on any failure.
start_gateway() {
    FRONT_H1=$(free_port)
    ADMIN=$(free_port)
    render_gateway "$1" "${2:-}" >"$TMP/gateway.toml"
    if [[ -n ${GATEWAY_EXTRA:-} ]]; then
        printf '\n' >>"$TMP/gateway.toml"
        cat "$GATEWAY_EXTRA" >>"$TMP/gateway.toml"
    fi
    if ! "$GATEWAY_BIN" check --config "$TMP/gateway.toml" >"$TMP/gateway-check.log" 2>&1; then
        log "  'gateway check' rejected the config:"
        sed 's/^/    /' "$TMP/gateway-check.log" >&2
        return 1
    fi
    RUST_LOG=${RUST_LOG:-warn} start gateway "$GATEWAY_BIN" --config "$TMP/gateway.toml" \
        --address-file "$TMP/gateway.addr"
    TARGET_PIDS=$PID_gateway
    if ! wait_http "$FRONT_H1"; then
        log "  the gateway did not answer on :$FRONT_H1 within 15 s. Its log:"
        tail -n 30 "$TMP/gateway.log" | sed 's/^/    /' >&2
        stop gateway
        return 1
    fi
}

# bench_ours [log]: with `log`, the access log is on (target ours_log).
bench_ours() {
    local name=ours
    [[ ${1:-} == log ]] && name=ours_log
    log "$name: gateway with the auth + router filters (workers = $W)"
    if ! prepare_gateway || ! prepare_filters || ! start_gateway 1 "${1:-}"; then
        log "  SKIPPED $name: no gateway with filters to measure (see above)"
        return 0
    fi
    # One port for both protocols: hyper-util's auto builder tells h2c prior
    # knowledge from HTTP/1.1 by the connection preface.
    if ! check_decisions "$FRONT_H1" "$FRONT_H1"; then
        # Numbers for other decisions than the peers' would compare nothing.
        log "  SKIPPED $name: its answers differ from the scenario (see the failed checks above)"
        stop gateway
        return 0
    fi
    log "  checked: 200/401/404 on HTTP/1.1 and h2c, per-request round robin"
    measure "$name" "$FRONT_H1" "$FRONT_H1"
    stop gateway
}

# Our gateway without any filter: the route table alone decides (/ping
# proxied, rest 404; no 401). The cost of the core, to tell the filters' apart.
bench_core() {
    log "core: our gateway without filters, route table only (workers = $W; /ping only)"
    if ! prepare_gateway || ! start_gateway 0; then
        log "  SKIPPED core: no gateway to measure (see above)"
        return 0
    fi
    local ok=0 h2
    for h2 in 0 1; do
        expect "$FRONT_H1" "$h2" /ping 200 -H "$AUTH_HEADER" || ok=1
        expect "$FRONT_H1" "$h2" /other 404 -H "$AUTH_HEADER" || ok=1
    done
    check_alternates "$FRONT_H1" || ok=1
    if ((ok)); then
        log "  SKIPPED core: its answers differ from the scenario (see the failed checks above)"
        stop gateway
        return 0
    fi
    log "  checked: 200/404 on HTTP/1.1 and h2c, per-request round robin"
    measure core "$FRONT_H1" "$FRONT_H1" ping
    stop gateway
}
