# bench/large_configs.sh: the cases of bench/routes.sh (sourced, not run):
# their generated configurations, start-up and reload timing, the wrk
# driver and the table.

declare -A PORT RSS_KIB START_COLD START_WARM RELOAD_MS
declare -A CASE_TEXT=(
    [base]="1 route, 1 cluster of 3 endpoints"
    [routes]="10,000 routes (exact, prefix, host, *.host), /ping last"
    [clusters]="1,000 clusters of 3 endpoints, /ping to the last"
    [filter1]="1 route filter loaded and run"
    [filters100]="100 route filters loaded (100 routes), 1 run"
    [folder1]="folder of 1 filter (run by every request)"
    [folder100]="folder of 100 filters (all run by every request)"
)
# Which case each one is compared with.
declare -A BASELINE=([routes]=base [clusters]=base [filter1]=base [filters100]=filter1 [folder100]=folder1)

# The upstream: nginx, one worker, "pong" to everything on three ports (a
# cluster's three endpoints).
render_upstream3() {
    nginx_common upstream
    cat <<EOF
worker_processes 1;
events { worker_connections 8192; }
http {
$(nginx_http_common upstream)
    server {
        listen 127.0.0.1:$UP1;
        listen 127.0.0.1:$UP2;
        listen 127.0.0.1:$UP3;
        # Every path: a 404 in the checks can only come from the gateway.
        location / { default_type text/plain; return 200 "pong"; }
    }
}
EOF
}

# make_modules N: N different modules (so the compile cache holds N
# entries, as with N real filters): the headers filter, each with its own
# custom section "bench-variant" (ignored by the runtime) appended.
make_modules() {
    mkdir -p "$TMP/modules"
    local i
    for ((i = 0; i < $1; i++)); do
        cp "$FILTER_WASM" "$TMP/modules/$i.wasm"
        # section id 0, size 19: name length 13, "bench-variant", 5 digits.
        printf '\x00\x13\x0dbench-variant%05d' "$i" >>"$TMP/modules/$i.wasm"
    done
}

# The headers filter's settings: a response header shows it ran.
FILTER_CONFIG='{"response": {"set": {"x-bench-filter": "ran"}}}'

ENDPOINTS() { echo "[\"127.0.0.1:$UP1\", \"127.0.0.1:$UP2\", \"127.0.0.1:$UP3\"]"; }

# render CASE: the case's gateway.toml on stdout.
render() {
    local c=$1 i
    cat <<EOF
[runtime]
workers = 1
[access_log]
enabled = false
[wasm]
cache_dir = "$TMP/cache-$c"
# A reload instantiates the new chains while the old ones still hold
# their instances: room for both generations of 100 filters.
max_instances = 1024
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:${PORT[$c]}"
EOF
    case $c in
    folder1 | folder100) echo "filters_dir = \"$TMP/folder-$c\"" ;;
    esac
    local cluster=c0
    case $c in
    routes)
        for ((i = 1; i < 10000; i++)); do
            case $((i % 4)) in
            0) printf '[[listener.route]]\npath = "/svc/%d/items"\ncluster = "c0"\n' "$i" ;;
            1) printf '[[listener.route]]\npath_prefix = "/api/v%d"\ncluster = "c0"\n' "$i" ;;
            2) printf '[[listener.route]]\npath_prefix = "/"\nhost = "h%d.example.com"\ncluster = "c0"\n' "$i" ;;
            3) printf '[[listener.route]]\npath_prefix = "/"\nhost = "*.w%d.example.com"\ncluster = "c0"\n' "$i" ;;
            esac
        done
        ;;
    clusters) cluster=c999 ;;
    filters100)
        for ((i = 0; i < 99; i++)); do
            printf '[[listener.route]]\npath = "/f%d"\ncluster = "c0"\n' "$i"
            printf "[[listener.route.filter]]\nname = \"f%d\"\npath = \"%s\"\nconfig = '%s'\n" \
                "$i" "$TMP/modules/$i.wasm" "$FILTER_CONFIG"
        done
        ;;
    esac
    printf '[[listener.route]]\npath = "/ping"\ncluster = "%s"\n' "$cluster"
    case $c in
    filter1 | filters100)
        printf "[[listener.route.filter]]\nname = \"f99\"\npath = \"%s\"\nconfig = '%s'\n" \
            "$TMP/modules/99.wasm" "$FILTER_CONFIG"
        ;;
    esac
    local n=1
    [[ $c == clusters ]] && n=1000
    for ((i = 0; i < n; i++)); do
        printf '[[cluster]]\nname = "c%d"\nendpoints = %s\n' "$i" "$(ENDPOINTS)"
    done
}

# start_case CASE: starts its gateway; START_MS is the time from exec to
# the address file (written once every listener is bound and every filter
# loaded).
start_case() {
    local c=$1 t0 t1
    rm -f "$TMP/$c.addr"
    t0=$(date +%s%N)
    RUST_LOG="warn,gateway::server::reload=info" start "gw_$c" "$GATEWAY_BIN" \
        --config "$TMP/$c.toml" --address-file "$TMP/$c.addr"
    # Bounded: 10 minutes (a cold start compiles every module).
    local var="PID_gw_$c" deadline=$((t0 + 600 * 1000000000))
    while [[ ! -f $TMP/$c.addr ]]; do
        kill -0 "${!var}" 2>/dev/null || die "gateway $c exited: $(tail -n 5 "$TMP/gw_$c.log")"
        (($(date +%s%N) < deadline)) || die "gateway $c not ready after 10 minutes"
        sleep 0.001
    done
    t1=$(date +%s%N)
    START_MS=$(((t1 - t0) / 1000000))
}

# prepare_case CASE: config, cold and warm start, checks.
prepare_case() {
    local c=$1 i
    PORT[$c]=$(free_port)
    if [[ $c == folder* ]]; then
        mkdir -p "$TMP/folder-$c"
        local n=1
        [[ $c == folder100 ]] && n=100
        for ((i = 100 - n; i < 100; i++)); do
            cp "$TMP/modules/$i.wasm" "$TMP/folder-$c/$(printf '%03d' "$i")-headers.wasm"
            echo "config = '$FILTER_CONFIG'" >"$TMP/folder-$c/$(printf '%03d' "$i")-headers.toml"
        done
    fi
    render "$c" >"$TMP/$c.toml"
    "$GATEWAY_BIN" check --config "$TMP/$c.toml" >"$TMP/$c.check" 2>&1 ||
        die "gateway check rejected the $c config: $(tail -n 3 "$TMP/$c.check")"
    rm -rf "$TMP/cache-$c"
    start_case "$c"
    START_COLD[$c]=$START_MS
    stop "gw_$c"
    start_case "$c"
    START_WARM[$c]=$START_MS
    check_case "$c"
    log "$c: start ${START_COLD[$c]} ms cold, ${START_WARM[$c]} ms warm"
}

# reload_case CASE: reload times, then the checks again (a reload must
# leave the gateway serving as before).
reload_case() {
    RELOAD_MS[$1]=$(time_reloads "$1")
    check_case "$1"
    log "$1: reload ${RELOAD_MS[$1]} ms"
}

# check_case CASE: /ping answers 200 (with the filter's header where a
# filter runs); in the 10,000-route table a route from the middle works too.
check_case() {
    local c=$1 port=${PORT[$1]} headers
    headers=$(curl -s -D - -o /dev/null --max-time 5 "http://127.0.0.1:$port/ping" || true)
    [[ $headers == "HTTP/1.1 200"* ]] || die "$c: /ping did not answer 200: ${headers%%$'\r'*}"
    if [[ $c == filter* || $c == folder* ]]; then
        grep -qi '^x-bench-filter: ran' <<<"$headers" || die "$c: the filter did not run on /ping"
    fi
    if [[ $c == routes ]]; then
        expect "$port" 0 /anything 200 -H "Host: h5002.example.com" || die "$c: a host route failed"
        expect "$port" 0 /x 200 -H "Host: a.w5003.example.com" || die "$c: a wildcard route failed"
        expect "$port" 0 /api/v5001x 404 || die "$c: a prefix matched inside a segment"
    fi
}

# time_reloads CASE: the median of $RELOADS reloads, in ms from SIGHUP to
# the "config reloaded" log line (the gateway waits 150 ms for a burst of
# file events to settle before it reads the file; that is included).
time_reloads() {
    local c=$1 var="PID_gw_$1" log="$TMP/gw_$1.log" r n t0 i times=()
    for ((r = 0; r < RELOADS; r++)); do
        n=$(grep -c "config reloaded" "$log" || true)
        t0=$(date +%s%N)
        kill -HUP "${!var}"
        for ((i = 0; i < 30000; i++)); do
            (($(grep -c "config reloaded" "$log" || true) > n)) && break
            sleep 0.001
        done
        times+=($((($(date +%s%N) - t0) / 1000000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

rss_kib() {
    local var="PID_gw_$1"
    awk '/^VmRSS:/ { print $2 }' "/proc/${!var}/status"
}

# measure_case CASE: one wrk run; req/s and bad responses to $TMP/raw.
measure_case() {
    local c=$1 out="$TMP/raw/$1.r$ROUND" txt="$TMP/raw/$1.wrk$ROUND.txt"
    log "  wrk -t1 -c$CONNS -d$DURATION $c"
    timeout $(($(secs "$DURATION") + 30)) wrk -t1 -c"$CONNS" -d"$DURATION" \
        "http://127.0.0.1:${PORT[$c]}/ping" >"$txt" 2>&1 || true
    awk '/^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { bad += $NF }
        /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { sub(",", "", $i); bad += $i } }
        END { printf "%.0f %d\n", rps, bad }' "$txt" >"$out"
}

# median_rps CASE: the median req/s over the rounds; bad responses summed.
median_rps() {
    cat "$TMP/raw/$1".r[0-9]* 2>/dev/null | grep -v '^$' | sort -n | awk '
        { v[NR] = $1; bad += $2 }
        END { if (NR == 0) print "n/a 0"; else print v[int((NR + 1) / 2)], bad }'
}

print_large_report() {
    local c rps bad base pct
    echo "# Large configurations: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Loopback, $(nproc) CPUs shared by wrk, the gateways and the upstream. One worker, access log off;"
    echo "wrk -t1 -c$CONNS, $DURATION per run, $ROUNDS round(s) interleaved, median req/s shown."
    echo "Load average at start: $LOAD_AT_START; at end: $LOAD_AT_END."
    echo
    echo "| case | req/s | vs | ratio | bad | RSS MiB | start cold ms | start warm ms | reload ms |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
    declare -A RPS
    for c in "${cases[@]}"; do
        read -r rps bad < <(median_rps "$c")
        RPS[$c]=$rps
        base=${BASELINE[$c]:-}
        pct=n/a
        [[ -n $base && -n ${RPS[$base]:-} ]] && pct=$(ratio "$rps" "${RPS[$base]}")
        printf '| %s: %s | %s | %s | %s | %s | %.1f | %s | %s | %s |\n' "$c" "${CASE_TEXT[$c]}" \
            "$rps" "${base:--}" "$pct" "$bad" "$(awk -v k="${RSS_KIB[$c]:-0}" 'BEGIN { print k / 1024 }')" \
            "${START_COLD[$c]}" "${START_WARM[$c]}" "${RELOAD_MS[$c]}"
    done
    echo
    if [[ -n ${RSS_KIB[routes]:-} && -n ${RSS_KIB[base]:-} ]]; then
        echo "Resident memory per route: $(((RSS_KIB[routes] - RSS_KIB[base]) * 1024 / 9999)) bytes (10,000-route table against 1 route)."
    fi
    if [[ -n ${RSS_KIB[clusters]:-} && -n ${RSS_KIB[base]:-} ]]; then
        echo "Resident memory per cluster of 3 endpoints: $(((RSS_KIB[clusters] - RSS_KIB[base]) * 1024 / 999)) bytes."
    fi
    echo
    echo "ratio: req/s of the case over req/s of the case it is compared with (1.00 = same cost; the goal is >= 0.95)."
    echo "Start: exec to ready (every listener bound, every filter loaded); cold with an empty compile cache, warm from it."
    echo "Reload: SIGHUP to \"config reloaded\", including the 150 ms the gateway lets file events settle."
}
