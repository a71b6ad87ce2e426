#!/usr/bin/env bash
# bench/simple.sh: the RFC simple services measured beside xinetd's built-ins, in one run.
#
# Measures requests per second of daytime (RFC 867) and time (RFC 868) over UDP with a
# closed-loop load generator (bench/udp_load.c: 32 sockets, one request in flight each), and
# daytime over TCP in connections per second (../shared/bench pingpong -m connect), for
# `socklab daytime|time serve` and for xinetd's INTERNAL services on the same machine.
# Servers run on core 0 and the load on core 1 (taskset); ROUNDS interleaved rounds, medians.
#
# socklab's UDP reflection guard would (rightly) throttle one source to 20 replies/s, so the
# benchmark starts it with --rate/--burst high enough not to interfere; say so in reports.
#
# Environment: ROUNDS=3 DURATION=3 WARMUP=1 CONNS=32 XINETD_BASE=41000 CARGO_TARGET_DIR
#              SHARED_BENCH=../shared/bench
# The medians are computed over word-split lists on purpose.
# shellcheck disable=SC2046
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-3}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-32}"
XINETD_BASE="${XINETD_BASE:-41000}"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
OUT="$BENCH/out/simple"
LOGS="$OUT"
mkdir -p "$OUT"
need xinetd -- "apt-get install xinetd"
need taskset ss -- "util-linux, iproute2"

echo "== building socklab (release) and the load generators"
build_socklab
cc -O2 -Wall -Wextra -o "$OUT/udp_load" "$BENCH/udp_load.c"
cc -O2 -Wall -Wextra -o "$OUT/pingpong" "$SHARED_BENCH/pingpong.c"

SRV_PIN=(taskset -c 0)
CLI_PIN=(taskset -c 1)

for p in $((XINETD_BASE + 13)) $((XINETD_BASE + 37)); do
    if ss -Hltun "sport = :$p" | grep -q .; then die "port $p is busy; set XINETD_BASE"; fi
done
cat > "$OUT/xinetd.conf" <<CONF
defaults
{
    instances = UNLIMITED
    cps = 1000000 1
}
CONF
for spec in "daytime stream tcp no 13" "daytime dgram udp yes 13" "time dgram udp yes 37"; do
    read -r name type proto wait port <<<"$spec"
    cat >> "$OUT/xinetd.conf" <<CONF
service $name
{
    type = INTERNAL UNLISTED
    id = $name-$type
    socket_type = $type
    protocol = $proto
    user = root
    wait = $wait
    port = $((XINETD_BASE + port))
    bind = 127.0.0.1
    instances = UNLIMITED
    per_source = UNLIMITED
}
CONF
done
# xinetd is ready when its TCP daytime port accepts (then its UDP services are bound too).
start_server xinetd $((XINETD_BASE + 13)) xinetd -dontfork -f "$OUT/xinetd.conf" -pidfile "$OUT/xinetd.pid"

# socklab: the reflection guard opened up (see above); each prints its address first.
start_socklab() { # NAME ARGS...: sets SRV_PORT
    start_server "socklab-$1" "" "$SOCKLAB" "${@:2}" -p 0 -q --rate 1000000000 --burst 1000000000
}
start_socklab daytime-udp daytime serve -u; S_DAYTIME_UDP=$SRV_PORT
start_socklab time-udp time serve -u; S_TIME_UDP=$SRV_PORT
start_socklab daytime-tcp daytime serve; S_DAYTIME_TCP=$SRV_PORT
X_DAYTIME_UDP=$((XINETD_BASE + 13))
X_TIME_UDP=$((XINETD_BASE + 37))
X_DAYTIME_TCP=$((XINETD_BASE + 13))

declare -A RES
udp() { "${CLI_PIN[@]}" "$OUT/udp_load" -p "$1" -c "$CONNS" -d "$DURATION" -w "$WARMUP" | sed -n 's/.*rps=\([0-9.]*\).*lost=\([0-9]*\).*/\1 \2/p'; }
tcp() { "${CLI_PIN[@]}" "$OUT/pingpong" -m connect -p "$1" -c "$CONNS" -d "$DURATION" -w "$WARMUP" -s 0 | tr ' ' '\n' | sed -n 's/^rps=//p;s/^cps=//p;s/^conns_per_s=//p' | head -1; }

for r in $(seq "$ROUNDS"); do
    echo "== round $r/$ROUNDS"
    RES[sd$r]=$(udp "$S_DAYTIME_UDP"); RES[xd$r]=$(udp "$X_DAYTIME_UDP")
    RES[st$r]=$(udp "$S_TIME_UDP");    RES[xt$r]=$(udp "$X_TIME_UDP")
    RES[sc$r]=$(tcp "$S_DAYTIME_TCP"); RES[xc$r]=$(tcp "$X_DAYTIME_TCP")
done

col() { local k=$1; for r in $(seq "$ROUNDS"); do echo "${RES[$k$r]}" | awk '{print $1}'; done; }
lost() { local k=$1 n=0; for r in $(seq "$ROUNDS"); do n=$((n + $(echo "${RES[$k$r]}" | awk '{print ($2 == "" ? 0 : $2)}'))); done; echo $n; }

echo
echo "Simple services, socklab beside xinetd's built-ins (server on core 0, load on core 1;"
echo "$ROUNDS rounds of ${DURATION}s, medians; UDP: $CONNS sockets with one request in flight each)"
printf '  %-28s %14s %14s %8s %10s\n' "measurement" "socklab" "xinetd" "ratio" "lost(s/x)"
row() {
    local label=$1 s x
    s=$(median $(col "$2")); x=$(median $(col "$3"))
    printf '  %-28s %14.0f %14.0f %7.2fx %10s\n' "$label" "$s" "$x" "$(awk -v a="$s" -v b="$x" 'BEGIN{print (b > 0) ? a / b : 0}')" "$(lost "$2")/$(lost "$3")"
}
row "daytime/udp requests/s" sd xd
row "time/udp requests/s" st xt
row "daytime/tcp connections/s" sc xc
