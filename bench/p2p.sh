#!/usr/bin/env bash
# bench/p2p.sh: the UDP p2p chat's goodput (1 KiB messages, one way) on loopback with 0 %, 1 %
# and 10 % loss (through `socklab impair`, each way), beside the same bytes over TCP with nc.
#
# Peer A reads N lines of 1,023 bytes (plus the newline) from a file and exits once every one
# is acknowledged; peer B prints them to a file; the time is A's, from start to exit. For each
# loss rate: messages/s, MB/s of text, the ratio to 0 % loss, A's and B's CPU time per message
# (user + system, from /proc), retransmissions. TCP: `nc -N` sends the same file to `nc -l`
# over loopback (no loss: netem is not available here). Everything on loopback, bounded by N.
#
# Environment: N=20000 LOSSES="0 1 10"
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${N:-20000}"
LOSSES="${LOSSES:-0 1 10}"
need nc python3 -- "apt-get install netcat-openbsd python3"
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
        "$SOCKLAB" impair --listen "127.0.0.1:$pr" --to "127.0.0.1:$pb" --loss "$loss%" \
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

printf '\np2p chat, %s messages of 1 KiB one way on loopback (the time until the sender has every acknowledgement)\n' "$N"
printf '  %-8s %12s %8s %9s %12s %12s %10s\n' loss "messages/s" "MB/s" "x 0%" "CPU a us" "CPU b us" retransmit
for loss in $LOSSES; do
    printf '  %-8s %12s %8s %9s %12s %12s %10s\n' "$loss%" "${RATE[$loss]}" \
        "$(awk -v r="${RATE[$loss]}" 'BEGIN { printf "%.1f", r * 1024 / 1e6 }')" \
        "$(awk -v r="${RATE[$loss]}" -v b="${RATE[0]:-0}" 'BEGIN { if (b > 0) printf "%.2fx", r / b; else print "na" }')" \
        "${CPU_A[$loss]}" "${CPU_B[$loss]}" "${RETX[$loss]:-na}"
done
printf '  %-8s %12s %8s   (nc over TCP, no loss)\n' tcp "$tcp" \
    "$(awk -v r="$tcp" 'BEGIN { printf "%.1f", r * 1024 / 1e6 }')"
printf 'Targets: >= 50,000 messages/s at 0%% loss; at 10%% loss at least half of that.\n'
