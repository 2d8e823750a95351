# bench/report.sh: the results table of bench/run.sh (sourced, not run).
# Reads $TMP/raw/TARGET.PROTO.CASE ("rps p50_ms p99_ms bad") and prints
# markdown: one row per target, protocol and path, then ours/peer ratios.

declare -A LABEL=([ours]="ours (auth+router wasm)" [core]="ours, no filters (route table)" [nginx]="nginx + Lua" [haproxy]="HAProxy" [direct]="direct (no proxy)")
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
    local t p c
    echo "# Gateway benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Loopback, $(nproc) CPUs shared by clients, proxies and upstream ($(uname -sr))."
    echo "Each run $DURATION after a $WARMUP warm-up; client threads $THREADS; $ROUNDS round(s), targets interleaved,"
    echo "each row the round with the median req/s."
    echo "Upstream: nginx, 1 worker, two ports, fixed \"pong\". Proxies: 2 workers/threads each."
    echo "Versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | awk '{print "HAProxy " $3}'),"
    echo "$(wrk -v 2>&1 | head -1 | awk '{print "wrk " $2}'), $(h2load --version | head -1),"
    echo "gateway: $GATEWAY_BIN ($("$GATEWAY_BIN" --version 2>/dev/null || echo 'not built')), tree at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "Load average (1/5/15 min) at the start: $LOAD_AT_START; at the end: $LOAD_AT_END"
    echo "(anything else running on the machine skews every number)."
    [[ -n ${BENCH_NOTE:-} ]] && echo "Note: $BENCH_NOTE"
    echo "\`bad\` counts responses of the wrong class plus socket errors (should be 0)."
    echo
    echo "| target | protocol | request | req/s | p50 ms | p99 ms | bad |"
    echo "|---|---|---|---:|---:|---:|---:|"
    for p in h1 h2; do
        for c in ping 401; do
            for t in ours core nginx haproxy direct; do
                [[ -e $TMP/raw/$t.$p.$c ]] || continue
                echo "| ${LABEL[$t]} | ${PROTO_LABEL[$p]} | ${CASE_LABEL[$c]} | $(field $t $p $c 1) | $(field $t $p $c 2) | $(field $t $p $c 3) | $(field $t $p $c 4) |"
            done
        done
    done
    local us
    for us in ours core; do
        [[ -e $TMP/raw/$us.h1.ping ]] || continue
        echo
        echo "Ratios, ${LABEL[$us]} / peer (req/s: higher is better for us; p99: lower is better for us)."
        echo
        echo "| protocol | request | req/s vs nginx+Lua | req/s vs HAProxy | req/s vs direct | p99 vs nginx+Lua | p99 vs HAProxy | p99 vs direct |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|"
        for p in h1 h2; do
            for c in ping 401; do
                [[ -e $TMP/raw/$us.$p.$c ]] || continue
                local row="| ${PROTO_LABEL[$p]} | ${CASE_LABEL[$c]} |" n
                for n in 1 3; do
                    for t in nginx haproxy direct; do
                        row+=" $(ratio "$(field $us $p $c $n)" "$(field $t $p $c $n)") |"
                    done
                done
                echo "$row"
            done
        done
    done
    if [[ ! -e $TMP/raw/ours.h1.ping ]]; then
        echo
        echo "**Our gateway with its filters was not measured in this run** (not built, not serving,"
        echo "or not making the scenario's decisions; the run's log says which)."
    fi
}
