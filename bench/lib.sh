# bench/lib.sh: helpers for bench/run.sh (sourced, not run). Process
# control, free ports, readiness checks and the load drivers live here; the
# proxies' configurations are in bench/targets.sh; the table in bench/report.sh.

PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

need_tools() {
    local missing=() t
    for t in nginx haproxy wrk h2load curl awk sort; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    if ((${#missing[@]})); then
        log "missing: ${missing[*]}"
        log "install: apt-get install -y nginx-light libnginx-mod-http-lua haproxy wrk nghttp2-client curl"
        exit 1
    fi
    NGINX_LUA=$(find_nginx_module ngx_http_lua_module.so) ||
        die "nginx Lua module not found; install: apt-get install -y libnginx-mod-http-lua"
    NGINX_NDK=$(find_nginx_module ndk_http_module.so) ||
        die "nginx NDK module not found; install: apt-get install -y libnginx-mod-http-ndk"
}

find_nginx_module() {
    local dir
    for dir in /usr/lib/nginx/modules /usr/lib64/nginx/modules /usr/local/nginx/modules /etc/nginx/modules; do
        [[ -f $dir/$1 ]] && {
            echo "$dir/$1"
            return 0
        }
    done
    return 1
}

# A random port below the kernel's ephemeral range (so no outgoing
# connection can be holding it) that no socket uses and that this run has
# not handed out yet. Bounded: 200 tries.
USED_PORTS=" "
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
((EPHEMERAL_LOW > 20000)) || EPHEMERAL_LOW=61000 # odd setup: use the top of the range
free_port() {
    local i port lo=10000 hi=$EPHEMERAL_LOW
    ((hi == 61000)) && lo=61000 hi=65535
    for ((i = 0; i < 200; i++)); do
        port=$((lo + RANDOM % (hi - lo)))
        [[ $USED_PORTS == *" $port "* ]] && continue
        if command -v ss >/dev/null; then
            [[ -n $(ss -Htan "( sport = :$port )" 2>/dev/null) ]] && continue
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            continue
        fi
        USED_PORTS+="$port "
        echo "$port"
        return 0
    done
    die "no free port found"
}

# start NAME CMD ARGS...: runs CMD in the background, output in $TMP/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_${name//-/_}=$!"
}

# stop NAME: SIGTERM, then SIGKILL after 3 s.
stop() {
    local var="PID_${1//-/_}" pid
    pid=${!var:-}
    [[ -n $pid ]] || return 0
    stop_pid "$pid"
    eval "unset $var"
}

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}

# start_upstream_pair: the neutral upstream pair every benchmark proxies
# to (nginx, one worker, a fixed "pong" on $UP1 and $UP2, h2c on $UP_H2).
start_upstream_pair() {
    UP1=$(free_port)
    UP2=$(free_port)
    UP_H2=$(free_port)
    render_upstream_nginx >"$TMP/upstream.conf"
    start upstream nginx -e "$TMP/upstream.err" -p "$TMP" -c "$TMP/upstream.conf"
    wait_http "$UP1" && wait_http "$UP2" || die "upstream nginx did not start (see $TMP/upstream.err)"
}

# wait_http PORT [curl options]: until the port answers any HTTP status,
# at most ~15 s.
wait_http() {
    local port=$1 i code
    shift
    for ((i = 0; i < 150; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "http://127.0.0.1:$port/" || true)
        [[ $code != 000 ]] && return 0
        sleep 0.1
    done
    return 1
}

# default_gateway_bin: the gateway a benchmark measures unless GATEWAY_BIN
# says otherwise: the profile-guided build with BENCH_PGO=1, else the plain
# release build.
default_gateway_bin() {
    if [[ ${BENCH_PGO:-0} == 1 ]]; then
        echo "$TARGET_DIR/pgo/release/gateway"
    else
        echo "$TARGET_DIR/release/gateway"
    fi
}

# gateway_description: the measured binary, its version and build, and the
# tree, for a report's header.
gateway_description() {
    local build=""
    [[ $GATEWAY_BIN == */pgo/release/* ]] && build=", profile-guided build"
    echo "$GATEWAY_BIN ($("$GATEWAY_BIN" --version 2>/dev/null || echo 'not built')$build), tree at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
}

# wait_https PORT: until the port answers any HTTP status over TLS, at most ~15 s.
wait_https() {
    local i code
    for ((i = 0; i < 150; i++)); do
        code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "https://localhost:$1/" \
            --resolve "localhost:$1:127.0.0.1" || true)
        [[ $code != 000 ]] && return 0
        sleep 0.1
    done
    return 1
}

# make_localhost_cert DIR: a self-signed ECDSA P-256 certificate for
# localhost and 127.0.0.1, as DIR/cert.pem and DIR/key.pem.
make_localhost_cert() {
    mkdir -p "$1"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1/key.pem" -out "$1/cert.pem" -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$1/openssl.log" 2>&1 ||
        die "openssl could not make the certificate (see $1/openssl.log)"
}

# expect PORT H2(0|1) PATH WANT_STATUS [curl options]: one request, checked.
expect() {
    local port=$1 h2=$2 path=$3 want=$4 got
    shift 4
    local opts=(-s -o /dev/null -w '%{http_code}' --max-time 3)
    ((h2)) && opts+=(--http2-prior-knowledge)
    got=$(curl "${opts[@]}" "$@" "http://127.0.0.1:$port$path" || true)
    if [[ $got != "$want" ]]; then
        log "  check failed: $path ($([[ $h2 == 1 ]] && echo h2c || echo http/1.1)) $* -> $got, want $want"
        return 1
    fi
}

# check_decisions PORT H2PORT: the seed scenario's three answers on both protocols.
check_decisions() {
    local port=$1 h2port=$2 ok=0 h2 p
    for h2 in 0 1; do
        p=$port
        ((h2)) && p=$h2port
        expect "$p" "$h2" /ping 200 -H "$AUTH_HEADER" || ok=1
        expect "$p" "$h2" /ping 401 || ok=1
        expect "$p" "$h2" /other 404 -H "$AUTH_HEADER" || ok=1
    done
    check_alternates "$port" || ok=1
    return $ok
}

# check_alternates PORT: two /ping on one keep-alive connection reach both
# upstreams (balancing per request, as the scenario wants).
check_alternates() {
    local ports
    ports=$(curl -s --max-time 3 -H "$AUTH_HEADER" "http://127.0.0.1:$1/ping" "http://127.0.0.1:$1/ping" |
        grep -o 'pong from [0-9]*' | awk '{print $3}' | sort -u | wc -l)
    if [[ $ports != 2 ]]; then
        log "  check failed: two /ping on one connection reached $ports upstream(s), want 2"
        return 1
    fi
}

# --- CPU and memory of the target's processes --------------------------------
# TARGET_PIDS (set by each bench_*) lists the target's top processes; their
# children (nginx workers) count too.

all_pids() {
    local p
    for p in ${TARGET_PIDS:-}; do
        echo "$p"
        pgrep -P "$p" 2>/dev/null || true
    done
}

# cpu_ticks: user + system CPU time of the target's processes, in clock ticks.
cpu_ticks() {
    local p total=0 t
    for p in $(all_pids); do
        # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends
        # the command name (which may hold spaces).
        t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || continue
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

# rss_kib: resident memory of the target's processes, in KiB.
rss_kib() {
    local p total=0 r
    for p in $(all_pids); do
        r=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${r:-0}))
    done
    echo "$total"
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# add_cpu OUT TICKS_BEFORE: appends CPU microseconds per request to the
# result line in OUT (requests = req/s x the run's seconds).
add_cpu() {
    local out=$1 before=$2 after
    after=$(cpu_ticks)
    awk -v d=$((after - before)) -v hz="$CLK_TCK" -v s="$(secs "$DURATION")" '
        $1 == "n/a" { print $0 " n/a"; next }
        { printf "%s %.1f\n", $0, (d / hz * 1e6) / ($1 * s) }' "$out" >"$out.cpu" && mv "$out.cpu" "$out"
}

# measure_idle KEY PORT: holds $IDLE keep-alive connections (each made one
# request, answered 401 by the proxy) and writes the target's resident
# memory per connection, in KiB, to $TMP/raw/idle.KEY.
measure_idle() {
    local key=$1 port=$2 before after
    ((IDLE > 0)) || return 0
    [[ -e $TMP/raw/idle.$key ]] && return 0 # once per target and worker count
    before=$(rss_kib)
    coproc IDLER { python3 "$ROOT/bench/idle.py" "$port" "$IDLE" 2>&1; }
    local line=""
    read -r -t 120 line <&"${IDLER[0]}" || true
    if [[ $line == ready* ]]; then
        after=$(rss_kib)
        awk -v b="$before" -v a="$after" -v n="$IDLE" 'BEGIN { printf "%.2f %d %d\n", (a - b) / n, b, a }' \
            >"$TMP/raw/idle.$key"
        log "  idle: $IDLE connections, resident $before -> $after KiB"
    else
        log "  idle: the client did not hold $IDLE connections: $line"
    fi
    kill "$IDLER_PID" 2>/dev/null || true
    wait "$IDLER_PID" 2>/dev/null || true
}

# --- load drivers -------------------------------------------------------------
# Each writes one line "rps p50_ms p99_ms bad cpu_us_per_request" to
# $TMP/raw/TARGET.PROTO.CASE.rROUND; combine_rounds then keeps the median run
# of each in $TMP/raw/TARGET.PROTO.CASE. bad counts responses with an
# unexpected class plus socket errors.

# SCHEME (http or https) is the scheme of the drivers' URLs; bench/tls.sh sets https.
SCHEME=${SCHEME:-http}

# run_wrk TARGET CASE PORT
# WRK_PROTO (default h1) names the result; WRK_HEADER, when set, is one more
# request header (bench/tls.sh: "Connection: close", a new connection per request).
run_wrk() {
    local target=$1 case=$2 port=$3 out="$TMP/raw/$1.${WRK_PROTO:-h1}.$2.r$ROUND"
    local args=(-t"$THREADS" -c"$CONNS" -d"$DURATION" --latency)
    [[ $case == ping ]] && args+=(-H "$AUTH_HEADER")
    [[ -n ${WRK_HEADER:-} ]] && args+=(-H "$WRK_HEADER")
    log "  wrk    $target $case: ${args[*]} $SCHEME://127.0.0.1:$port/ping"
    local ticks
    ticks=$(cpu_ticks)
    timeout $(($(secs "$DURATION") + 30)) wrk "${args[@]}" "$SCHEME://127.0.0.1:$port/ping" >"$out.txt" 2>&1 || true
    awk -v case="$case" '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/) return v * 1000
            return v + 0
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /requests in/ { total = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ {
            for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { sub(",", "", $i); sockerr += $i }
        }
        END {
            if (rps == "") { print "n/a n/a n/a n/a"; exit }
            bad = (case == "ping") ? non2xx + sockerr : (total - non2xx) + sockerr
            printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad
        }' "$out.txt" >"$out"
    add_cpu "$out" "$ticks"
}

# run_h2load TARGET CASE PORT
run_h2load() {
    local target=$1 case=$2 port=$3 out="$TMP/raw/$1.h2.$2.r$ROUND"
    local args=(-t"$THREADS" -c"$H2_CONNS" -m"$H2_STREAMS" -D "$DURATION" --log-file="$out.log")
    [[ $case == ping ]] && args+=(-H "$AUTH_HEADER")
    log "  h2load $target $case: ${args[*]/--log-file=*/} $SCHEME://127.0.0.1:$port/ping"
    local ticks
    ticks=$(cpu_ticks)
    timeout $(($(secs "$DURATION") + 30)) h2load "${args[@]}" "$SCHEME://127.0.0.1:$port/ping" >"$out.txt" 2>&1 || true
    local rps bad
    rps=$(awk '/^finished in/ { gsub(",", ""); print $4 }' "$out.txt")
    # status codes: A 2xx, B 3xx, C 4xx, D 5xx ; requests: ... F failed, E errored
    bad=$(awk -v case="$case" '
        /^status codes:/ { s2 = $3; s3 = $5; s4 = $7; s5 = $9 }
        /^requests:/ { for (i = 1; i <= NF; i++) if ($i ~ /^errored/) err = $(i - 1) }
        END { print ((case == "ping") ? s3 + s4 + s5 : s2 + s3 + s5) + err }' "$out.txt")
    if [[ -z $rps || ! -s $out.log ]]; then
        echo "n/a n/a n/a n/a n/a" >"$out"
        return
    fi
    # The log has one line per request: start time, status, duration in us.
    cut -f3 "$out.log" | sort -n | awk -v rps="$rps" -v bad="$bad" '
        { v[NR] = $1 }
        END {
            i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
            i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
            printf "%.0f %.3f %.3f %d\n", rps, v[i50] / 1000, v[i99] / 1000, bad
        }' >"$out"
    rm -f "$out.log"
    add_cpu "$out" "$ticks"
}

# Seconds in a wrk/h2load duration such as 10s, 2m, 500ms (rounded up).
secs() {
    local d=$1
    case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
    esac
}

# measure TARGET H1PORT H2PORT [cases]: warm-up, then every protocol x case,
# recorded under TARGET-wW (the worker count); then, once per worker count,
# the idle-connection memory.
measure() {
    local target=$1-w$W port=$2 h2port=$3 cases=${4:-ping 401}
    timeout $(($(secs "$WARMUP") + 30)) wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -H "$AUTH_HEADER" \
        "http://127.0.0.1:$port/ping" >/dev/null 2>&1 || true
    local c
    for c in $cases; do run_wrk "$target" "$c" "$port"; done
    if [[ -n $h2port ]]; then
        for c in $cases; do run_h2load "$target" "$c" "$h2port"; done
    fi
    [[ $1 == direct || $1 == core || $1 == ours_log ]] || measure_idle "$target" "$port"
}

# combine_rounds: for every TARGET.PROTO.CASE, the round with the median
# req/s (its own p50 and p99 with it, so a row is one real run), and the sum
# of bad responses over all rounds. Rounds that produced nothing are ignored.
combine_rounds() {
    local key f
    for key in $(find "$TMP/raw" -name '*.r[0-9]*' ! -name '*.txt' ! -name '*.log' |
        sed 's/\.r[0-9]*$//' | sort -u); do
        for f in "$key".r[0-9]*; do
            [[ $f == *.txt || $f == *.log ]] && continue
            awk '$1 != "n/a"' "$f"
        done | sort -n -k1,1 | awk -v all="$key" '
            { row[NR] = $0; bad += $4 }
            END {
                if (NR == 0) { print "n/a n/a n/a n/a n/a"; exit }
                split(row[int((NR + 1) / 2)], m, " ")
                printf "%s %s %s %d %s\n", m[1], m[2], m[3], bad, m[5]
            }' >"$key"
    done
}

source "$ROOT/bench/targets.sh"
source "$ROOT/bench/report.sh"
