#!/usr/bin/env bash
# bench/p2p.sh: the UDP p2p chat on loopback, two tables.
#
# 1. Goodput (1 KiB messages, one way) with 0 % loss (direct, and "0r": through the relay with
# no loss, to show what the relay itself costs), 1 % and 10 % loss (through `socklab impair`,
# each way), beside the same bytes over TCP with nc. Peer A reads N lines of 1,023 bytes (plus
# the newline) from a file and exits once every one is acknowledged; peer B prints them to a
# file; the time is A's, from start to exit. For each loss rate: messages/s, MB/s of text, the
# ratio to 0 % loss, A's and B's CPU time per message (user + system, from /proc),
# retransmissions. TCP: `nc -N` sends the same file to `nc -l` over loopback (no loss: netem is
# not available here). Bounded by N.
#
# 2. Latency: 1 KiB lines written to peer A's stdin at LAT_RATE a second for LAT_SECONDS, each
# carrying its send time (CLOCK_MONOTONIC); the time until peer B's stdout shows it, p50, p99
# and max in microseconds, messages never shown, retransmissions. At 0 % loss, at LAT_LOSS %
# through `socklab impair` (retransmissions show in p99), over TCP through `nc -N` | `nc -l`
# (the same pipes and two processes as the chat; nc sets no TCP_NODELAY) and over a TCP
# connection a Python process writes and reads itself (TCP_NODELAY: the kernel's share alone).
# bench/p2p_latency.py does the pacing and the timing (one select() loop that never lets a
# pipe fill; a deadline on every wait). Logs in $LOGS/p2p_lat_*.
#
# Environment: N=20000 LOSSES="0 0r 1 10" LAT_RATE=2000 LAT_SECONDS=5 LAT_LOSS=1
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${N:-20000}"
LOSSES="${LOSSES:-0 0r 1 10}"
LAT_RATE="${LAT_RATE:-2000}"
LAT_SECONDS="${LAT_SECONDS:-5}"
LAT_LOSS="${LAT_LOSS:-1}"
need nc python3 timeout -- "apt-get install netcat-openbsd python3 coreutils"
LAT_COUNT="$(awk -v r="$LAT_RATE" -v s="$LAT_SECONDS" 'BEGIN { n = int(r * s); if (r > 0 && n >= 1) print n }')"
[[ -n "$LAT_COUNT" ]] || die "LAT_RATE=$LAT_RATE and LAT_SECONDS=$LAT_SECONDS make no message"
mkdir -p "$LOGS"
build_socklab
FILE="$LOGS/p2p_lines.txt"
python3 -c "
import sys
line = ('x' * 1000)
sys.stdout.write(''.join(f'{i:022d}{line}\n' for i in range($N)))" >"$FILE"

cpu_ticks() { # PID: user+system clock ticks so far
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

declare -A RATE CPU_A CPU_B RETX
for loss in $LOSSES; do
    pa="$(free_port)" pb="$(free_port)" pr="$(free_port)"
    relay_pid=""
    peer_a="$pb" peer_b="$pa"
    if [[ "$loss" != 0 ]]; then
        "$SOCKLAB" impair --listen "127.0.0.1:$pr" --to "127.0.0.1:$pb" --loss "${loss%r}%" \
            --seed 1 >"$LOGS/p2p_relay.$loss.out" 2>&1 &
        relay_pid=$!
        peer_a="$pr" peer_b="$pr"
        sleep 0.3
    fi
    "$SOCKLAB" p2p chat --listen "127.0.0.1:$pb" --peer "127.0.0.1:$peer_b" --nick b \
        </dev/null >"$LOGS/p2p_b.$loss.out" 2>"$LOGS/p2p_b.$loss.err" &
    b_pid=$!
    sleep 0.2
    start="$(date +%s.%N)"
    "$SOCKLAB" p2p chat --listen "127.0.0.1:$pa" --peer "127.0.0.1:$peer_a" --nick a \
        <"$FILE" >/dev/null 2>"$LOGS/p2p_a.$loss.err" &
    a_pid=$!
    ticks_b=0
    ticks_a=0
    while kill -0 "$a_pid" 2>/dev/null; do
        # The last reading before each exits (a reading of a process gone is 0: kept out).
        t="$(cpu_ticks "$a_pid")" && [[ "$t" -gt 0 ]] && ticks_a="$t"
        t="$(cpu_ticks "$b_pid")" && [[ "$t" -gt 0 ]] && ticks_b="$t"
        sleep 0.02
    done
    wait "$a_pid" || log "peer a failed at $loss % loss: $(tail -n 2 "$LOGS/p2p_a.$loss.err")"
    end="$(date +%s.%N)"
    wait "$b_pid" || true
    if [[ -n "$relay_pid" ]]; then
        kill -INT "$relay_pid" 2>/dev/null || true
        wait "$relay_pid" 2>/dev/null || true
    fi
    got="$(($(wc -l <"$LOGS/p2p_b.$loss.out") - 1))"
    [[ "$got" == "$N" ]] || log "at $loss % loss b printed $got of $N messages"
    hz="$(getconf CLK_TCK)"
    RATE[$loss]="$(awk -v n="$N" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')"
    CPU_A[$loss]="$(awk -v t="${ticks_a:-0}" -v hz="$hz" -v n="$N" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    CPU_B[$loss]="$(awk -v t="$ticks_b" -v hz="$hz" -v n="$N" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    RETX[$loss]="$(grep -o '[0-9]* retransmitted' "$LOGS/p2p_a.$loss.err" | cut -d' ' -f1)"
done

# TCP, the same file, no loss.
pt="$(free_port)"
nc -l 127.0.0.1 "$pt" >/dev/null &
nc_pid=$!
sleep 0.2
start="$(date +%s.%N)"
nc -N 127.0.0.1 "$pt" <"$FILE"
wait "$nc_pid" || true
end="$(date +%s.%N)"
tcp="$(awk -v n="$N" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')"

# Latency: one run of bench/p2p_latency.py each, its key=value line kept in LAT.
declare -A LAT
latency() { # NAME MODE [ARG...]
    local name="$1" limit
    shift
    # Its own waits are bounded (30 s each beyond the sending); this bounds it as a whole.
    limit="$(awk -v s="$LAT_SECONDS" 'BEGIN { printf "%d", s + 180 }')"
    if ! LAT[$name]="$(timeout --foreground -k 5 "$limit" python3 "$BENCH/p2p_latency.py" "$@" \
        --rate "$LAT_RATE" --count "$LAT_COUNT" --size 1024 --logs "$LOGS" --tag "p2p_lat_$name")"; then
        log "latency run $name failed (see $LOGS/p2p_lat_$name.*.err)"
        LAT[$name]=""
    fi
    local a_rc
    a_rc="$(kv "${LAT[$name]}" a_rc)"
    [[ "$a_rc" == na || "$a_rc" == 0 ]] || log "latency run $name: peer a exited $a_rc"
}
latency p2p0 p2p --socklab "$SOCKLAB" --pa "$(free_port)" --pb "$(free_port)"
latency p2ploss p2p --socklab "$SOCKLAB" --pa "$(free_port)" --pb "$(free_port)" \
    --relay "$(free_port)" --loss "$LAT_LOSS"
latency nc nc --port "$(free_port)"
latency tcp tcp

printf '\np2p chat, %s messages of 1 KiB one way on loopback (the time until the sender has every acknowledgement)\n' "$N"
printf '  %-8s %12s %8s %9s %12s %12s %10s\n' loss "messages/s" "MB/s" "x 0%" "CPU a us" "CPU b us" retransmit
for loss in $LOSSES; do
    name="$loss%"
    [[ "$loss" == *r ]] && name="${loss%r}% relay"
    printf '  %-8s %12s %8s %9s %12s %12s %10s\n' "$name" "${RATE[$loss]}" \
        "$(awk -v r="${RATE[$loss]}" 'BEGIN { printf "%.1f", r * 1024 / 1e6 }')" \
        "$(awk -v r="${RATE[$loss]}" -v b="${RATE[0]:-0}" 'BEGIN { if (b > 0) printf "%.2fx", r / b; else print "na" }')" \
        "${CPU_A[$loss]}" "${CPU_B[$loss]}" "${RETX[$loss]:-na}"
done
printf '  %-8s %12s %8s   (nc over TCP, no loss)\n' tcp "$tcp" \
    "$(awk -v r="$tcp" 'BEGIN { printf "%.1f", r * 1024 / 1e6 }')"
printf 'Targets: >= 50,000 messages/s at 0%% loss; at 10%% loss at least half of that.\n'

printf '\nlatency, 1 KiB messages at %s/s for %s s, sender stdin to receiver stdout (µs)\n' \
    "$LAT_RATE" "$LAT_SECONDS"
printf '  %-18s %9s %9s %9s %7s %10s %6s\n' path p50 p99 max lost retransmit late
lat_row() { # LABEL NAME
    local r="${LAT[$2]}"
    printf '  %-18s %9s %9s %9s %7s %10s %6s\n' "$1" "$(kv "$r" p50_us)" "$(kv "$r" p99_us)" \
        "$(kv "$r" max_us)" "$(kv "$r" lost)" "$(kv "$r" retx)" "$(kv "$r" late_1ms)"
}
lat_row "p2p 0%" p2p0
lat_row "p2p $LAT_LOSS% (impair)" p2ploss
lat_row "tcp (nc)" nc
lat_row "tcp (python)" tcp
printf '  (late: lines written 1 ms or more behind the pace, when the machine was busy; each is\n'
printf '  timed from its actual write. nc sets no TCP_NODELAY; the python pair sets it.)\n'
