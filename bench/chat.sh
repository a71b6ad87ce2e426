#!/usr/bin/env bash
# bench/chat.sh: the chat server beside `ncat --chat` and a student-style Python chat server, in
# one run.
#
# bench/chat_load.c (C, epoll, one thread; not the client under test) opens CLIENTS connections
# in one room, each sending RATE messages per second with its send time in the payload, and
# reads everything: delivered messages per second (each message reaches CLIENTS - 1 others) and
# end-to-end latency p50/p99. Three loads: 100 clients x 10 msg/s (the latency target: p99 under
# 10 ms), 1,000 clients x 1 msg/s (999,000 deliveries/s offered) and 1,000 clients x 3 msg/s
# (2,997,000/s offered: past ncat's capacity, near socklab's and near what chat_load can read on
# one core; the throughput comparison). Then the server's RSS holding 10,000 idle clients (each
# has sent its nickname). Servers on core 0, load on core 1.
#
#   socklab   socklab chat serve -q --flood off   (flood control off: the load is the point)
#   ncat      ncat --chat -m 20000                (Debian's ncat; -m lifts its 100-client cap)
#   socklab-irc  the same socklab server, with chat_load speaking IRC to it
#   python    bench/chat_py_server.py             (a thread per client, a lock around the list)
#   ngircd    ngircd, configured here on a free port (IRC: chat_load registers with NICK/USER,
#             JOINs #load and sends PRIVMSG; ngircd's built-in flood penalty, which cannot be
#             turned off, holds each client to about 1 message a second)
#   socklab-cluster  two socklab servers joined by --cluster through a redis-server (all three
#             on the server core), chat_load's clients spread over both: what the cluster costs
#             beside one socklab server (target: at least 0.5x)
#
# Environment: SECONDS_RUN=5 WARMUP=1 IDLE=10000 SERVERS="socklab ncat python"
#              LOADS="100x10 1000x1 1000x3"
# Quick: SECONDS_RUN=2 IDLE=2000 bash bench/chat.sh
set -euo pipefail
# SRV_PIN, CLI_PIN, SRV_PID and SRV_PORT are lib.sh's (set or read by start_server).
# shellcheck disable=SC2034,SC2153
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_RUN="${SECONDS_RUN:-5}"
WARMUP="${WARMUP:-1}"
IDLE="${IDLE:-10000}"
SERVERS="${SERVERS:-socklab socklab-irc socklab-cluster ncat python ngircd}"
LOADS="${LOADS:-100x10 1000x1 1000x3}"
need gcc taskset ncat python3 ngircd redis-server redis-cli -- \
    "apt-get install gcc util-linux ncat python3 ngircd redis-server redis-tools"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
SRV_PIN=()
CLI_PIN=()
if [[ "$(nproc)" -ge 2 ]]; then
    # shellcheck disable=SC2034 # read by lib.sh's start_server
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
fi
build_socklab
LOAD="$LOGS/chat_load"
gcc -O2 -Wall -o "$LOAD" "$BENCH/chat_load.c"

start() { # NAME: starts that server, sets SRV_PID and SRV_PORT
    case "$1" in
    socklab | socklab-irc) start_server "$1" "" "$SOCKLAB" chat serve -p 0 -q --flood off ;;
    ncat)
        # ncat takes no port 0: pick a free one. (It stalls, then quits with "getpeername ...
        # QUITTING", if clients stop reading while others connect; chat_load reads all along.)
        local p
        p="$(free_port)"
        start_server ncat "$p" ncat --chat -m 20000 -l 127.0.0.1 "$p"
        ;;
    python) start_server python "" python3 "$BENCH/chat_py_server.py" 0 ;;
    socklab-cluster)
        local rp ports=() i
        rp="$(free_port)"
        start_server redis "$rp" redis-server --port "$rp" --bind 127.0.0.1 --save '' \
            --appendonly no
        EXTRA_PIDS+=("$SRV_PID")
        for i in a b; do
            start_server "socklab-$i" "" "$SOCKLAB" chat serve -p 0 -q --flood off \
                --cluster "redis://127.0.0.1:$rp"
            EXTRA_PIDS+=("$SRV_PID")
            ports+=("$SRV_PORT")
        done
        # Both linked (each renews its presence key) before the load starts.
        for ((i = 0; i < 100; i++)); do
            [[ "$(redis-cli -p "$rp" --scan --pattern 'socklab:chat:server:*' | wc -l)" -ge 2 ]] && break
            sleep 0.1
        done
        SRV_PORT="${ports[0]},${ports[1]}"
        ;;
    ngircd)
        local p conf="$LOGS/ngircd.conf"
        p="$(free_port)"
        cat >"$conf" <<EOF
[Global]
	Name = bench.socklab.test
	Info = socklab bench
	Listen = 127.0.0.1
	Ports = $p
	PidFile = $LOGS/ngircd.pid
	MotdPhrase = bench
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 16
	PingTimeout = 600
	PongTimeout = 600
[Options]
	PAM = no
	Ident = no
	DNS = no
EOF
        start_server ngircd "$p" ngircd -n -f "$conf"
        ;;
    esac
}

dialect() { # NAME: the load generator's mode for that server
    case "$1" in
    ngircd | socklab-irc) echo irc ;;
    *) echo lines ;;
    esac
}

ratio() { # A B: A/B as "1.23x", or na
    if [[ "$1" != na && "$2" != na && "$2" != 0 && -n "$1" && -n "$2" ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
    else
        echo na
    fi
}

declare -A RES
EXTRA_PIDS=()
for load in $LOADS; do
    clients="${load%x*}" rate="${load#*x}"
    for s in $SERVERS; do
        log "== $s: $clients clients x $rate msg/s"
        start "$s"
        line="$(timeout $((SECONDS_RUN + WARMUP + 180)) "${CLI_PIN[@]}" "$LOAD" 127.0.0.1 "$SRV_PORT" \
            "$clients" "$rate" "$SECONDS_RUN" "$WARMUP" "$(dialect "$s")" \
            2>"$LOGS/chat_load.$s.$clients.stderr" || true)"
        stop_server "$SRV_PID"
        for p in "${EXTRA_PIDS[@]}"; do
            stop_server "$p"
        done
        EXTRA_PIDS=()
        RES["$s $load"]="${line:-RESULT dps=na ontime_dps=na p50_us=na p99_us=na errors=na}"
    done
done

idle_rss="na"
if [[ " $SERVERS " == *" socklab "* && "$IDLE" -gt 0 ]]; then
    log "== socklab: $IDLE idle clients"
    start socklab
    idle="$(timeout 120 python3 "$BENCH/chat_idle.py" "$SRV_PORT" "$SRV_PID" "$IDLE" 3 || true)"
    stop_server "$SRV_PID"
    idle_rss="$(kv "$idle" rss_kib)"
fi

printf '\nChat, one room, %ss measured after %ss; servers on core 0, chat_load on core 1\n' \
    "$SECONDS_RUN" "$WARMUP"
printf '  %-15s %-14s %12s %7s %14s %7s %10s %10s %6s\n' server load "delivered/s" xncat \
    "within 100ms/s" xncat "p50 us" "p99 us" errors
for load in $LOADS; do
    clients="${load%x*}" rate="${load#*x}"
    base="$(kv "${RES["ncat $load"]:-}" dps)"
    base_on="$(kv "${RES["ncat $load"]:-}" ontime_dps)"
    for s in $SERVERS; do
        l="${RES["$s $load"]}"
        dps="$(kv "$l" dps)"
        on="$(kv "$l" ontime_dps)"
        printf '  %-15s %-14s %12s %7s %14s %7s %10s %10s %6s\n' "$s" "$clients x $rate/s" \
            "$dps" "$(ratio "$dps" "$base")" "$on" "$(ratio "$on" "$base_on")" \
            "$(kv "$l" p50_us)" "$(kv "$l" p99_us)" "$(kv "$l" errors)"
    done
done
if [[ " $SERVERS " == *" socklab-cluster "* && " $SERVERS " == *" socklab "* ]]; then
    for load in $LOADS; do
        printf '  cluster of two / one server at %s: delivered %s, within 100 ms %s\n' "$load" \
            "$(ratio "$(kv "${RES["socklab-cluster $load"]}" dps)" "$(kv "${RES["socklab $load"]}" dps)")" \
            "$(ratio "$(kv "${RES["socklab-cluster $load"]}" ontime_dps)" \
                "$(kv "${RES["socklab $load"]}" ontime_dps)")"
    done
fi
if [[ "$idle_rss" != na ]]; then
    printf '  socklab holding %s idle clients: RSS %s MiB\n' "$IDLE" "$((idle_rss / 1024))"
fi
printf 'Targets: socklab >= 5x ncat delivered/s at 1,000 clients; p99 < 10 ms at 100 x 10/s; %s\n' \
    "10,000 idle clients < 100 MB; the cluster >= 0.5x one server."
