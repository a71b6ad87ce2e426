#!/usr/bin/env bash
# bench/calc.sh: calculator server benchmark.
#
# Builds socklab (release) and the load generator bench/calc_load.c (C, epoll, one thread),
# then measures on 127.0.0.1:
#   socklab     socklab calc serve -p 0 -q   (tokio; pinned to one core)
#   python      bench/calc_py_server.py      (threads + blocking sockets, as the course's
#                                             exercise produces it; for scale)
# with CONNS concurrent clients, each repeating the transaction 3, 4, + and checking the
# replies OK, OK, OK 7, in two modes:
#   lockstep    one line in flight per client (send a line, wait for its reply)
#   pipeline    a whole transaction per write ("3\n4\n+\n"), then its three replies
# and reports transactions/s and lines/s (replies/s), the median of ROUNDS interleaved rounds,
# with the CPU used during the measured window, in % of one core, by the server, by the load
# generator, and by everything else on the machine. The load generator is not the bottleneck
# when its CPU stays well below 100% while the server's is near 100%.
#
# On a machine with 2 or more cores the server runs on core 0 and the load generator on
# core 1 (taskset). Compare figures within a run, not across machines.
#
# Environment (all optional):
#   ROUNDS=3  DURATION=5  WARMUP=1   rounds (medians reported), seconds measured / warm-up
#   CONNS=100                        concurrent clients
#   MODES="lockstep pipeline"        client modes
#   SERVERS="socklab python"         servers
#   PIN=1  SERVER_CPU=0  CLIENT_CPU=1   pinning (PIN=0 disables it)
#   BUSY_PCT=25                      flag runs where other work used this much CPU (% of a core)
#   CARGO_TARGET_DIR                 where cargo builds (default: the repo's target/)
# Quick run: ROUNDS=1 DURATION=2 bash bench/calc.sh
#
# Output and logs go to bench/out/ (ignored by git); the table also goes to
# bench/out/calc_results.txt.

set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="$BENCH/out"
LOGS="$OUT/logs"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
CONNS="${CONNS:-100}"
MODES="${MODES:-lockstep pipeline}"
SERVERS="${SERVERS:-socklab python}"
PIN="${PIN:-1}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
BUSY_PCT="${BUSY_PCT:-25}"

LOAD="$OUT/calc_load"
PY_SERVER="$BENCH/calc_py_server.py"
RESULTS="$OUT/calc_results.txt"

mkdir -p "$LOGS"

# ---------------------------------------------------------------- build
log "building socklab (release) and the load generator"
build_socklab
gcc -O2 -Wall -Wextra -o "$LOAD" "$BENCH/calc_load.c" || die "cannot compile calc_load.c"
command -v python3 >/dev/null || die "python3 is needed for the Python server"

if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null && [[ "$(nproc)" -ge 2 ]]; then
	SRV_PIN=(taskset -c "$SERVER_CPU")
	CLI_PIN=(taskset -c "$CLIENT_CPU")
	PINNING="server on core $SERVER_CPU, load generator on core $CLIENT_CPU"
else
	PINNING="not pinned"
fi

# ---------------------------------------------------------------- servers
# start_by_key KEY LOGNAME: starts server KEY (start_server, bench/lib.sh); sets SRV_PID and
# SRV_PORT from its "listening on HOST:PORT" line.
start_by_key() {
	case "$1" in
	socklab) start_server "$2" "" "$SOCKLAB" calc serve -p 0 -q --grace 1s ;;
	python) start_server "$2" "" python3 "$PY_SERVER" 0 ;;
	*) die "unknown server $1 (use socklab or python)" ;;
	esac
}

label_of() {
	case "$1" in
	socklab) echo "socklab calc serve" ;;
	python) echo "Python threaded" ;;
	esac
}

# ---------------------------------------------------------------- measuring
declare -A R=()
BUSY_RUNS=0

log "$CONNS clients, ${DURATION}s measured after ${WARMUP}s warm-up, $ROUNDS round(s); $PINNING"
read -r -a server_list <<<"$SERVERS"
for ((round = 1; round <= ROUNDS; round++)); do
	# Rotate the order each round so that no server always runs first.
	n=${#server_list[@]}
	for ((k = 0; k < n; k++)); do
		key="${server_list[$(((k + round - 1) % n))]}"
		start_by_key "$key" "calc-$key-round$round"
		for mode in $MODES; do
			line="$("${CLI_PIN[@]}" "$LOAD" 127.0.0.1 "$SRV_PORT" "$CONNS" "$DURATION" "$WARMUP" \
				"$mode" "$SRV_PID" 2>>"$LOGS/calc-load.stderr" | grep '^RESULT' || true)"
			[[ -n "$line" ]] || die "the load generator failed against $key ($mode); see $LOGS/calc-load.stderr"
			R["$key,$mode,$round"]="$line"
			busy=""
			if [[ "$(kv "$line" oth_pct)" -ge "$BUSY_PCT" ]]; then
				busy=" (busy machine: other work used $(kv "$line" oth_pct)% of a core)"
				BUSY_RUNS=$((BUSY_RUNS + 1))
			fi
			log "  round $round  $(label_of "$key")  $mode: $(kv "$line" tps) transactions/s, cpu server $(kv "$line" srv_pct)% client $(kv "$line" cli_pct)%$busy"
		done
		stop_server "$SRV_PID"
	done
done

# ---------------------------------------------------------------- report
{
	printf 'calc benchmark: %s clients, transaction 3 4 + (3 lines), %ss x %s rounds, medians; %s\n' \
		"$CONNS" "$DURATION" "$ROUNDS" "$PINNING"
	printf '%-20s %-9s %14s %12s %14s %8s %8s %8s\n' server mode "transactions/s" "lines/s" \
		"tps min-max" "srv cpu" "cli cpu" "other"
	for key in "${server_list[@]}"; do
		for mode in $MODES; do
			vals() { for ((r = 1; r <= ROUNDS; r++)); do kv "${R[$key,$mode,$r]}" "$1"; echo; done; }
			# The medians are over word-split lists on purpose.
			# shellcheck disable=SC2046
			tps="$(median $(vals tps))"
			# shellcheck disable=SC2046
			lps="$(median $(vals lps))"
			lo="$(vals tps | sort -n | head -1)"
			hi="$(vals tps | sort -n | tail -1)"
			# shellcheck disable=SC2046
			printf '%-20s %-9s %14s %12s %14s %7s%% %7s%% %7s%%\n' "$(label_of "$key")" "$mode" \
				"$tps" "$lps" "$lo-$hi" "$(median $(vals srv_pct))" "$(median $(vals cli_pct))" \
				"$(median $(vals oth_pct))"
		done
	done
	if [[ "$BUSY_RUNS" -gt 0 ]]; then
		printf 'note: %s run(s) shared the machine with other work (>= %s%% of a core); rerun when quiet\n' \
			"$BUSY_RUNS" "$BUSY_PCT"
	fi
} | tee "$RESULTS"
