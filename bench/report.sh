# bench/report.sh: the results table of bench/run.sh (sourced, not run).
# Reads $TMP/raw/TARGET.PROTO.CASE ("rps p50_ms p99_ms bad") and prints
# markdown: one row per target, protocol and path, then ours/peer ratios.

declare -A LABEL=([ours]="ours (auth+router wasm)" [ours_log]="ours, access log on" [core]="ours, no filters (route table)" [nginx]="nginx + Lua" [haproxy]="HAProxy" [direct]="direct (no proxy)")
declare -A PROTO_LABEL=([h1]="HTTP/1.1 (wrk -c$CONNS)" [h2]="h2c (h2load -c$H2_CONNS -m$H2_STREAMS)")
declare -A CASE_LABEL=([ping]="/ping + auth -> proxied 200" [401]="/ping no auth -> 401")

# field TARGET PROTO CASE N: the Nth value of a result, or n/a.
field() {
    local f="$TMP/raw/$1.$2.$3"
    if [[ -s $f ]]; then awk -v n="$4" '{ print $n }' "$f"; else echo n/a; fi
}

# ratio A B: A/B to two decimals, or n/a.
ratio() {
    if [[ $1 == n/a || $2 == n/a ]] || awk -v b="$2" 'BEGIN { exit !(b == 0) }'; then
        echo n/a
    else
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
    fi
}

print_report() {
    local t p c w
    echo "# Gateway benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Loopback, $(nproc) CPUs shared by clients, proxies and upstream ($(uname -sr))."
    echo "Each run $DURATION after a $WARMUP warm-up; client threads $THREADS; $ROUNDS round(s), targets interleaved,"
    echo "each row the round with the median req/s."
    echo "Upstream: nginx, 1 worker, two ports, fixed \"pong\". Every proxy runs with the same worker count"
    echo "(nginx worker_processes, HAProxy nbthread, ours [runtime] workers): $WORKER_COUNTS."
    echo "Versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}'),"
    echo "$(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $(h2load --version | head -1),"
    echo "gateway: $(gateway_description)."
    echo "Load average (1/5/15 min) at the start: $LOAD_AT_START; at the end: $LOAD_AT_END"
    echo "(anything else running on the machine skews every number)."
    [[ -n ${BENCH_NOTE:-} ]] && echo "Note: $BENCH_NOTE"
    echo "\`bad\` counts responses of the wrong class plus socket errors (should be 0)."
    echo "CPU µs/req: user + system CPU time of the target's processes (from /proc) over the requests served."
    echo
    echo "| workers | target | protocol | request | req/s | p50 ms | p99 ms | CPU µs/req | bad |"
    echo "|---:|---|---|---|---:|---:|---:|---:|---:|"
    for w in $WORKER_COUNTS; do
        for p in h1 h2; do
            for c in ping 401; do
                for t in ours ours_log core nginx haproxy direct; do
                    local k=$t-w$w
                    [[ -e $TMP/raw/$k.$p.$c ]] || continue
                    echo "| $w | ${LABEL[$t]} | ${PROTO_LABEL[$p]} | ${CASE_LABEL[$c]} | $(field $k $p $c 1) | $(field $k $p $c 2) | $(field $k $p $c 3) | $(field $k $p $c 5) | $(field $k $p $c 4) |"
                done
            done
        done
    done
    local us
    for us in ours ours_log core; do
        local any=0
        for w in $WORKER_COUNTS; do [[ -e $TMP/raw/$us-w$w.h1.ping ]] && any=1; done
        ((any)) || continue
        echo
        echo "Ratios, ${LABEL[$us]} / peer at the same worker count (req/s: higher is better for us;"
        echo "p99 and CPU per request: lower is better for us)."
        echo
        echo "| workers | protocol | request | req/s vs nginx+Lua | req/s vs HAProxy | p99 vs nginx+Lua | p99 vs HAProxy | CPU/req vs nginx+Lua | CPU/req vs HAProxy |"
        echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
        for w in $WORKER_COUNTS; do
            for p in h1 h2; do
                for c in ping 401; do
                    [[ -e $TMP/raw/$us-w$w.$p.$c ]] || continue
                    local row="| $w | ${PROTO_LABEL[$p]} | ${CASE_LABEL[$c]} |" n
                    for n in 1 3 5; do
                        for t in nginx haproxy; do
                            row+=" $(ratio "$(field $us-w$w $p $c $n)" "$(field $t-w$w $p $c $n)") |"
                        done
                    done
                    echo "$row"
                done
            done
        done
    done
    if ls "$TMP"/raw/idle.* >/dev/null 2>&1; then
        echo
        echo "Idle keep-alive connections: $IDLE held open (each made one request, answered 401),"
        echo "resident memory of the target's processes before and after."
        echo
        echo "| workers | target | KiB per connection | resident before (KiB) | after (KiB) |"
        echo "|---:|---|---:|---:|---:|"
        for w in $WORKER_COUNTS; do
            for t in ours nginx haproxy; do
                local f=$TMP/raw/idle.$t-w$w
                [[ -s $f ]] || continue
                echo "| $w | ${LABEL[$t]} | $(awk '{print $1 " | " $2 " | " $3}' "$f") |"
            done
        done
    fi
    local missing=1
    for w in $WORKER_COUNTS; do [[ -e $TMP/raw/ours-w$w.h1.ping ]] && missing=0; done
    if ((missing)); then
        echo
        echo "**Our gateway with its filters was not measured in this run** (not built, not serving,"
        echo "or not making the scenario's decisions; the run's log says which)."
    fi
}
