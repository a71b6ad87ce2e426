#!/usr/bin/env bash
# bench/echo.sh: echo server benchmark for socklab, against the C measuring sticks.
#
# Builds socklab (release) and the C sticks from /work/shared/bench, then in ONE run
# measures four TCP echo servers on 127.0.0.1:
#   socklab async      socklab echo serve --model async   (tokio, one worker per usable core)
#   socklab threads    socklab echo serve --model threads (one OS thread per client)
#   C echo_epoll       single-threaded epoll server: the practical limit, the 1.00x reference
#   Python threaded    bench/py_echo_threaded.py (socket + threading, as a student writes it)
# with the C `pingpong` load client:
#   1. 64-byte ping-pong over 1 and over 100 connections: round trips/s, p50/p99 latency
#   2. one-connection streaming throughput through the echo (MB/s, one direction)
# and prints each figure with its ratio to the C server. Then:
#   3. bench/idle_conns.py holds 10,000 idle connections against socklab async and
#      echo_epoll and reports the server's RSS.
#
# The measurements run in ROUNDS interleaved rounds (every server once per round, in a
# rotating order) and the tables show the median of the rounds, with the spread of the main
# figure, because a shared or virtual machine drifts by tens of percent over a minute.
# On a machine with 2 or more cores the server runs on core 0 and the load generator on
# core 1 (taskset), so the servers are compared on one core each. Compare ratios within a
# run, not absolute figures across runs or machines.
#
# Environment (all optional):
#   ROUNDS=3                    interleaved rounds; medians are reported
#   DURATION=3  WARMUP=1        seconds measured / warm-up seconds per ping-pong run
#   MANY_CONNS=100              connections for the concurrent ping-pong run
#   STREAM_BYTES=2147483648     bytes for each streaming run (2 GiB); STREAM_TIMEOUT=30 caps
#                               it in seconds (MB/s is then over what got through)
#   IDLE_CONNS=10000 IDLE_HOLD=3   idle-connection test; IDLE_CONNS=0 skips it
#   IDLE_SERVERS="async c"      servers for the idle-connection test
#   SERVERS="async threads c python"   servers for the throughput part
#   PIN=1  SERVER_CPU=0  CLIENT_CPU=1  pinning (PIN=0 disables it)
#   BUSY_PCT=25                 flag runs where other work used this much CPU (% of a core)
#   QUIET_BUDGET=60             seconds in all the script may wait for other work to calm down
#                               before a run (0: never wait; busy runs are flagged either way)
#   CARGO_TARGET_DIR            where cargo builds (default: the repo's target/)
#   SHARED_BENCH=../shared/bench      where the C sources are (beside the repository)
#   SOCKLAB_BACKLOG=4096        socklab's --backlog (echo_epoll listens with 4096; socklab's
#                               default is 1024, and a 10,000-connection burst can overflow it)
# Quick run: ROUNDS=1 DURATION=2 WARMUP=0.5 STREAM_BYTES=268435456 IDLE_CONNS=2000 bash bench/echo.sh
#
# Output and logs go to bench/out/ (ignored by git).

set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="$BENCH/out"
LOGS="$OUT/logs"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-3}"
WARMUP="${WARMUP:-1}"
MSG_SIZE="${MSG_SIZE:-64}"
MANY_CONNS="${MANY_CONNS:-100}"
STREAM_BYTES="${STREAM_BYTES:-2147483648}"
STREAM_TIMEOUT="${STREAM_TIMEOUT:-30}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
IDLE_HOLD="${IDLE_HOLD:-3}"
IDLE_SERVERS="${IDLE_SERVERS:-async c}"
SERVERS="${SERVERS:-async threads c python}"
PIN="${PIN:-1}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
BUSY_PCT="${BUSY_PCT:-25}"
QUIET_BUDGET="${QUIET_BUDGET:-60}"
SHARED_BENCH="${SHARED_BENCH:-$ROOT/../shared/bench}"
SOCKLAB_BACKLOG="${SOCKLAB_BACKLOG:-4096}"
NOFILE_WANT=65536

CBENCH="$OUT/cbench"
ECHO_EPOLL="$CBENCH/build/echo_epoll"
PINGPONG="$CBENCH/build/pingpong"
PY_SERVER="$BENCH/py_echo_threaded.py"
IDLE_CLIENT="$BENCH/idle_conns.py"
CLK_TCK="$(getconf CLK_TCK)"

# ---------------------------------------------------------------- servers (start_server, stop_server: bench/lib.sh)
# start_by_key KEY LOGNAME: starts server KEY; sets SRV_PID and SRV_PORT.
start_by_key() {
	local port
	case "$1" in
	async | threads)
		start_server "$2" "" "$SOCKLAB" echo serve -p 0 -b 127.0.0.1 --model "$1" -q --grace 1s \
			--backlog "$SOCKLAB_BACKLOG"
		;;
	c)
		port="$(free_port)"
		start_server "$2" "$port" "$ECHO_EPOLL" "$port" 127.0.0.1
		;;
	python) start_server "$2" "" python3 "$PY_SERVER" 0 ;;
	*) die "unknown server $1 (use async, threads, c, python)" ;;
	esac
}

label_of() {
	case "$1" in
	async) echo "socklab async" ;;
	threads) echo "socklab threads" ;;
	c) echo "C echo_epoll" ;;
	python) echo "Python threaded" ;;
	esac
}

# ---------------------------------------------------------------- machine load
# Busy CPU ticks of the whole machine (all cores; user, nice, system, irq, softirq, steal).
machine_ticks() {
	local _cpu user nice system _idle _iowait irq softirq steal _rest
	read -r _cpu user nice system _idle _iowait irq softirq steal _rest </proc/stat
	echo $((user + nice + system + irq + softirq + steal))
}

# Busy CPU over the next half second, in % of one core (all cores together).
busy_now() {
	local a b
	a="$(machine_ticks)"
	sleep 0.5
	b="$(machine_ticks)"
	echo $(((b - a) * 200 / CLK_TCK))
}

# Before a run: wait while other work keeps the machine busy, within QUIET_BUDGET overall.
QUIET_WAITED=0
wait_quiet() {
	local b
	while true; do
		b="$(busy_now)"
		[[ "$b" -ge "$BUSY_PCT" && "$QUIET_WAITED" -lt "$QUIET_BUDGET" ]] || return 0
		[[ "$QUIET_WAITED" -gt 0 ]] || log "   machine busy (${b}% of a core): waiting for it to calm down"
		sleep 1.5
		QUIET_WAITED=$((QUIET_WAITED + 2))
	done
}

# CPU ticks (user+system, all threads) used so far by PID.
cpu_ticks() {
	local stat rest
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || {
		echo 0
		return
	}
	rest="${stat##*) }"
	# shellcheck disable=SC2086 # split on purpose
	set -- $rest
	echo $((${12} + ${13})) # utime, stime (fields 14 and 15 of the full line)
}

# ---------------------------------------------------------------- measuring
# R["KEY,TAG,ROUND"] holds the client's RESULT line plus the CPU shares appended as
# srv_pct= cli_pct= oth_pct= (percent of one core over the whole client run).
declare -A R=()
RESULTS_FILE="$OUT/results.txt"

# run_client KEY TAG ROUND PID CMD...: runs the load client pinned to the client core.
run_client() {
	local key="$1" tag="$2" round="$3" pid="$4" t0 t1 m0 m1 out rc=0 real user sys line
	shift 4
	wait_quiet
	m0="$(machine_ticks)"
	t0="$(cpu_ticks "$pid")"
	out="$(
		TIMEFORMAT='%R %U %S'
		{ time "${CLI_PIN[@]}" "$@" 2>&1; } 2>&1
	)" || rc=$?
	t1="$(cpu_ticks "$pid")"
	m1="$(machine_ticks)"
	read -r real user sys <<<"$(tail -n1 <<<"$out")"
	line="$(grep -m1 '^RESULT ' <<<"$out" || true)"
	[[ -n "$line" ]] || line="RESULT error=no_result"
	[[ $rc -eq 0 ]] || line+=" client_rc=$rc"
	# oth: everything else the machine did meanwhile (other processes, plus loopback softirq
	# work the kernel charges to neither process); a busy machine makes figures unreliable.
	line+="$(awk -v s="$((t1 - t0))" -v m="$((m1 - m0))" -v u="$user" -v y="$sys" \
		-v hz="$CLK_TCK" -v r="$real" 'BEGIN {
		if (r <= 0) { print " srv_pct=na cli_pct=na oth_pct=na"; exit }
		o = (m - s) / hz - (u + y); if (o < 0) o = 0
		printf " srv_pct=%.0f cli_pct=%.0f oth_pct=%.0f", s / hz / r * 100, (u + y) / r * 100, o / r * 100 }')"
	R["$key,$tag,$round"]="$line"
	printf 'round=%s server=%s run=%s %s\n' "$round" "$key" "$tag" "$line" >>"$RESULTS_FILE"
}

measure_server() {
	local key="$1" round="$2" pid port
	log "== round $round/$ROUNDS: $(label_of "$key")"
	start_by_key "$key" "$key-round$round"
	pid="$SRV_PID"
	port="$SRV_PORT"
	log "   listening on 127.0.0.1:$port (pid $pid); ping-pong, 1 connection"
	run_client "$key" pp1 "$round" "$pid" "$PINGPONG" -p "$port" -m pingpong -c 1 \
		-d "$DURATION" -w "$WARMUP" -s "$MSG_SIZE"
	log "   ping-pong, $MANY_CONNS connections"
	run_client "$key" ppN "$round" "$pid" "$PINGPONG" -p "$port" -m pingpong -c "$MANY_CONNS" \
		-d "$DURATION" -w "$WARMUP" -s "$MSG_SIZE"
	log "   stream, $STREAM_BYTES bytes"
	run_client "$key" stream "$round" "$pid" "$PINGPONG" -p "$port" -m stream \
		-b "$STREAM_BYTES" -t "$STREAM_TIMEOUT"
	stop_server "$pid"
}

# ---------------------------------------------------------------- aggregating
# The values of FIELD over the rounds for KEY,TAG (space separated, "na" left out).
values() {
	local key="$1" tag="$2" field="$3" r v out=""
	for ((r = 1; r <= ROUNDS; r++)); do
		[[ -n "${R[$key,$tag,$r]:-}" ]] || continue
		v="$(kv "${R[$key,$tag,$r]}" "$field")"
		[[ "$v" == na ]] || out+=" $v"
	done
	printf '%s' "${out# }"
}

spread() { # values...: (max - min) / median, in percent
	[[ $# -gt 1 ]] || {
		printf -- '-'
		return
	}
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (m + 0 == 0) { printf "-"; exit }
		printf "%.0f%%", (v[NR] - v[1]) / m * 100 }'
}

# med KEY TAG FIELD: the median of FIELD over the rounds.
med() {
	local v
	v="$(values "$1" "$2" "$3")"
	# shellcheck disable=SC2086 # split on purpose
	median $v
}

spr() {
	local v
	v="$(values "$1" "$2" "$3")"
	# shellcheck disable=SC2086 # split on purpose
	spread $v
}

ratio() { # value reference
	awk -v v="$1" -v r="$2" 'BEGIN {
		if (v == "na" || r == "na" || r + 0 == 0) { print "-"; exit }
		printf "%.2fx", v / r }'
}

num() { # pretty number: thousands separators for big ones, one decimal for small ones
	awk -v v="$1" 'BEGIN {
		if (v == "na" || v == "") { print "-"; exit }
		if (v + 0 >= 1000) {
			s = sprintf("%.0f", v); out = ""
			while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
			print s out
		} else printf "%.1f\n", v }'
}

pct() { [[ "$1" == na ]] && printf -- '-' || printf '%.0f' "$1"; }

# Notes on one RESULT line that make its figure suspect.
problems_of() {
	local line="$1" p="" e
	e="$(kv "$line" error)"
	if [[ "$e" == 2 && "$(kv "$line" mode)" == stream ]]; then
		p+=" hit the ${STREAM_TIMEOUT}s cap (partial)"
	elif [[ "$e" != na && "$e" != 0 ]]; then
		p+=" error=$e"
	fi
	e="$(kv "$line" errors)"
	[[ "$e" == na || "$e" == 0 ]] || p+=" errors=$e"
	e="$(kv "$line" mismatches)"
	[[ "$e" == na || "$e" == 0 ]] || p+=" MISMATCHES=$e"
	e="$(kv "$line" opened)"
	[[ "$e" == na || "$e" == "$(kv "$line" conns)" ]] || p+=" opened=$e"
	e="$(kv "$line" client_rc)"
	[[ "$e" == na ]] || p+=" rc=$e"
	e="$(kv "$line" oth_pct)"
	[[ "$e" == na || "$e" -lt "$BUSY_PCT" ]] || p+=" busy"
	printf '%s' "${p# }"
}

# Notes over the rounds: "r2: busy; r3: errors=1".
problems() {
	local key="$1" tag="$2" r p out=""
	for ((r = 1; r <= ROUNDS; r++)); do
		[[ -n "${R[$key,$tag,$r]:-}" ]] || continue
		p="$(problems_of "${R[$key,$tag,$r]}")"
		[[ -z "$p" ]] || out+="; r$r: $p"
	done
	printf '%s' "${out#; }"
}

# ---------------------------------------------------------------- tables
print_pingpong_table() {
	local tag="$1" title="$2" key ref_rps ref_p50 ref_p99 rps p50 p99 srv
	ref_rps="$(med c "$tag" rps)"
	ref_p50="$(med c "$tag" p50_us)"
	ref_p99="$(med c "$tag" p99_us)"
	echo
	echo "$title"
	printf '  %-16s %13s %6s %7s  %8s %6s  %8s %6s  %4s %4s %4s %7s  %s\n' server "round trips/s" \
		"xC" spread "p50 us" "xC" "p99 us" "xC" "srv%" "cli%" "oth%" "srv us" notes
	for key in $SERVERS; do
		[[ -n "$(values "$key" "$tag" rps)" ]] || continue
		rps="$(med "$key" "$tag" rps)"
		p50="$(med "$key" "$tag" p50_us)"
		p99="$(med "$key" "$tag" p99_us)"
		srv="$(med "$key" "$tag" srv_pct)"
		printf '  %-16s %13s %6s %7s  %8s %6s  %8s %6s  %4s %4s %4s %7s  %s\n' "$(label_of "$key")" \
			"$(num "$rps")" "$(ratio "$rps" "$ref_rps")" "$(spr "$key" "$tag" rps)" \
			"$(num "$p50")" "$(ratio "$p50" "$ref_p50")" \
			"$(num "$p99")" "$(ratio "$p99" "$ref_p99")" \
			"$(pct "$srv")" "$(pct "$(med "$key" "$tag" cli_pct)")" \
			"$(pct "$(med "$key" "$tag" oth_pct)")" \
			"$(awk -v s="$srv" -v r="$rps" 'BEGIN { if (s == "na" || r == "na" || r + 0 == 0) print "-"
				else printf "%.1f", s / 100 / r * 1e6 }')" "$(problems "$key" "$tag")"
	done
}

print_stream_table() {
	local key ref mbps
	ref="$(med c stream MBps)"
	echo
	echo "Streaming, 1 connection, $(awk -v b="$STREAM_BYTES" 'BEGIN { printf "%g GiB", b / 2^30 }')" \
		"echoed per run (MB/s in one direction, 1 MB = 10^6 B)"
	printf '  %-16s %13s %6s %7s  %8s  %4s %4s %4s  %s\n' server "MB/s" "xC" spread "seconds" \
		"srv%" "cli%" "oth%" notes
	for key in $SERVERS; do
		[[ -n "$(values "$key" stream MBps)" ]] || continue
		mbps="$(med "$key" stream MBps)"
		printf '  %-16s %13s %6s %7s  %8s  %4s %4s %4s  %s\n' "$(label_of "$key")" \
			"$(num "$mbps")" "$(ratio "$mbps" "$ref")" "$(spr "$key" stream MBps)" \
			"$(med "$key" stream secs)" "$(pct "$(med "$key" stream srv_pct)")" \
			"$(pct "$(med "$key" stream cli_pct)")" "$(pct "$(med "$key" stream oth_pct)")" \
			"$(problems "$key" stream)"
	done
}

# ---------------------------------------------------------------- idle connections
IDLE_LINES=()

idle_test() {
	local key="$1" line out rc=0 pid port
	log "== idle connections: $(label_of "$key"), $IDLE_CONNS connections"
	start_by_key "$key" "$key-idle"
	pid="$SRV_PID"
	port="$SRV_PORT"
	sleep 0.3 # let the server settle before the "before" RSS
	out="$("${CLI_PIN[@]}" python3 "$IDLE_CLIENT" -p "$port" --pid "$pid" -n "$IDLE_CONNS" \
		--hold "$IDLE_HOLD" --sample 100 --batch 500 2>&1)" || rc=$?
	printf '%s\n' "$out" >"$LOGS/idle-$key.txt"
	line="$(grep -m1 '^RESULT ' <<<"$out" || echo "RESULT error=no_result")"
	[[ $rc -eq 0 ]] || line+=" client_rc=$rc"
	printf 'idle server=%s %s\n' "$key" "$line" >>"$RESULTS_FILE"
	IDLE_LINES+=("$key|$line")
	stop_server "$pid"
}

mib() { awk -v k="$1" 'BEGIN { if (k == "na" || k == "") print "-"; else printf "%.1f", k / 1024 }'; }

print_idle_table() {
	local entry key line b h e per
	echo
	echo "Idle connections: $IDLE_CONNS opened in batches of 500, held ${IDLE_HOLD}s, then an 8-byte" \
		"echo on every 100th (server VmRSS in MiB = 2^20 B)"
	echo "  SYN drops = kernel ListenOverflows+ListenDrops while connecting (listen queue full;" \
		"each costs a 1 s+ SYN retransmit)"
	printf '  %-16s %11s %6s %6s %8s %9s %9s  %8s %8s %8s  %s\n' server established failed closed \
		"echo ok" "connect s" "SYN drops" "RSS idle" "RSS held" "RSS echo" "RSS per conn"
	for entry in "${IDLE_LINES[@]}"; do
		key="${entry%%|*}"
		line="${entry#*|}"
		b="$(kv "$line" rss_before_kb)"
		h="$(kv "$line" rss_held_kb)"
		e="$(kv "$line" rss_after_echo_kb)"
		per="$(awk -v b="$b" -v h="$h" -v n="$(kv "$line" established)" 'BEGIN {
			if (b == "na" || h == "na" || n + 0 == 0) print "-"; else printf "%.2f KiB", (h - b) / n }')"
		printf '  %-16s %11s %6s %6s %8s %9s %9s  %8s %8s %8s  %s\n' "$(label_of "$key")" \
			"$(kv "$line" established)" "$(kv "$line" failed)" "$(kv "$line" closed_by_server)" \
			"$(kv "$line" echo_ok)/$(kv "$line" echo_sample)" "$(kv "$line" connect_s)" \
			"$(kv "$line" syn_drops)" "$(mib "$b")" "$(mib "$h")" "$(mib "$e")" "$per"
	done
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT" "$LOGS"
: >"$RESULTS_FILE"

command -v python3 >/dev/null || die "python3 is needed"
command -v cargo >/dev/null || die "cargo is needed"
[[ -f "$SHARED_BENCH/pingpong.c" ]] || die "no C sources in $SHARED_BENCH (set SHARED_BENCH)"
[[ "$ROUNDS" -ge 1 ]] || die "ROUNDS must be at least 1"

# Descriptor limit for the servers and clients started below (they inherit it).
if ! ulimit -n "$NOFILE_WANT" 2>/dev/null; then
	hard="$(ulimit -Hn)"
	ulimit -n "$hard"
	log "note: cannot raise the open-file limit to $NOFILE_WANT; using the hard limit $hard"
fi
NOFILE="$(ulimit -n)"
if [[ "$IDLE_CONNS" -gt 0 && "$NOFILE" != unlimited && "$NOFILE" -lt $((IDLE_CONNS + 64)) ]]; then
	die "open-file limit $NOFILE is too low for IDLE_CONNS=$IDLE_CONNS"
fi

log "== building socklab (release) in $TARGET_DIR"
build_socklab

log "== building the C measuring sticks in $CBENCH"
mkdir -p "$CBENCH"
cp "$SHARED_BENCH"/Makefile "$SHARED_BENCH"/*.c "$CBENCH"/
make -s -C "$CBENCH" >"$LOGS/cbench-make.log" 2>&1 || {
	cat "$LOGS/cbench-make.log" >&2
	die "building the C sticks failed"
}

NCPU="$(nproc)"
PIN_NOTE="not pinned ($NCPU core(s))"
if [[ "$PIN" != 0 && "$NCPU" -ge 2 ]]; then
	command -v taskset >/dev/null || die "taskset is needed for pinning (or set PIN=0)"
	SRV_PIN=(taskset -c "$SERVER_CPU")
	CLI_PIN=(taskset -c "$CLIENT_CPU")
	PIN_NOTE="server pinned to core $SERVER_CPU, load generator to core $CLIENT_CPU (taskset -c)"
fi

BUSY_BEFORE="$(busy_now)"
if [[ "$BUSY_BEFORE" -ge "$BUSY_PCT" ]]; then
	log "warning: the machine is already ${BUSY_BEFORE}% busy (of one core) before the benchmark;" \
		"figures will be noisy"
fi

started="$(date +%s)"
read -r -a server_list <<<"$SERVERS"
for ((round = 1; round <= ROUNDS; round++)); do
	n="${#server_list[@]}"
	for ((i = 0; i < n; i++)); do # rotate the order each round
		measure_server "${server_list[$(((i + round - 1) % n))]}" "$round"
	done
done
if [[ "$IDLE_CONNS" -gt 0 ]]; then
	for key in $IDLE_SERVERS; do
		idle_test "$key"
	done
fi
elapsed=$(($(date +%s) - started))

# ---- report
rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | head -c1 || true)"
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
echo
echo "socklab echo benchmark  $(date '+%Y-%m-%d %H:%M:%S %Z')"
echo "  socklab ${rev}${dirty:+ + uncommitted changes in src}, $(uname -sr), ${cpu_model:-unknown CPU}," \
	"$NCPU core(s)"
echo "  $PIN_NOTE"
echo "  socklab runs with --backlog $SOCKLAB_BACKLOG (echo_epoll listens with 4096, Python with 1024)"
echo "  $ROUNDS interleaved round(s); medians shown; spread = (max - min) / median of the main figure"
echo "  ping-pong: ${MSG_SIZE}-byte messages, ${WARMUP}s warm-up + ${DURATION}s measured per run;" \
	"open-file limit $NOFILE"
echo "  xC = ratio to the C echo_epoll server in this run (round trips, MB/s: higher is better;" \
	"latency: lower is better)"
echo "  srv% / cli% = CPU used by the server / the load client during the run, in % of one core;"
echo "  srv us = server CPU time per round trip in microseconds (srv% / round trips/s; lower is leaner)"
echo "  oth% = the rest of the machine's busy CPU (other processes, loopback softirq work);" \
	"'busy' marks rounds with oth% >= $BUSY_PCT"
echo "  machine busy before the run: ${BUSY_BEFORE}% of one core; waited ${QUIET_WAITED}s in all" \
	"for other work to calm down"

print_pingpong_table pp1 "Ping-pong, 1 connection"
print_pingpong_table ppN "Ping-pong, $MANY_CONNS concurrent connections"
print_stream_table
[[ ${#IDLE_LINES[@]} -eq 0 ]] || print_idle_table

# ---- targets from the issue
echo
echo "Targets"
if [[ -n "$(values async ppN rps)" && -n "$(values c ppN rps)" ]]; then
	a="$(med async ppN rps)"
	c="$(med c ppN rps)"
	verdict="$(awk -v a="$a" -v c="$c" 'BEGIN {
		if (a == "na" || c == "na" || c + 0 == 0) { print "n/a"; exit }
		r = a / c; printf "%.2fx -> %s", r, (r >= 0.9 ? "MET" : "NOT MET") }')"
	per_round=""
	for ((r = 1; r <= ROUNDS; r++)); do
		per_round+=" $(ratio "$(kv "${R[async,ppN,$r]:-}" rps)" "$(kv "${R[c,ppN,$r]:-}" rps)")"
	done
	echo "  socklab async at $MANY_CONNS connections >= 0.90x C round trips/s: $verdict" \
		"(per round:$per_round)"
fi
for entry in "${IDLE_LINES[@]}"; do
	[[ "${entry%%|*}" == async ]] || continue
	line="${entry#*|}"
	ok="$(awk -v h="$(kv "$line" rss_held_kb)" -v n="$(kv "$line" established)" -v want="$IDLE_CONNS" \
		-v e="$(kv "$line" echo_failed)" -v d="$(kv "$line" closed_by_server)" 'BEGIN {
		if (h == "na") { print "n/a"; exit }
		good = (h / 1024 < 100 && n == want && e == 0 && d == 0)
		printf "%.1f MiB (%.1f MB) with %s/%s held -> %s", h / 1024, h * 1.024 / 1000, n, want,
			(good ? "MET" : "NOT MET") }')"
	echo "  socklab async holds $IDLE_CONNS idle connections with RSS < 100 MiB: $ok"
done
echo
echo "Run took ${elapsed}s (excluding builds). Raw RESULT lines: $RESULTS_FILE; server logs: $LOGS/"
