# shellcheck shell=bash
# bench/lib.sh: what every bench/*.sh shares. Source it first:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It sets BENCH (this directory), ROOT (the repository), TARGET_DIR (absolute; exported as
# CARGO_TARGET_DIR), SOCKLAB (the release binary), LOGS (bench/out/logs unless set before),
# SRV_PIN=() and CLI_PIN=() (the commands that pin a server and a load generator, empty until
# the script pins), and installs traps: `cleanup` on exit, exit 130 on Ctrl-C and 143 on SIGTERM
# (a script with more to undo sets its own EXIT trap and calls `cleanup` from it).
#
#   log MSG...                    one line on stderr
#   die MSG...                    "bench/SCRIPT: MSG" on stderr, then exit 1
#   need TOOL... -- HINT          die unless every TOOL is on the PATH (HINT: how to install them)
#   median [VALUE...]             the median of numbers: the middle one, or the mean of the middle
#                                 two; "na" when there is none
#   kv LINE KEY                   the value of KEY=VALUE among LINE's words, or "na"
#   free_port                     a loopback TCP port that was free a moment ago
#   build_socklab                 cargo build --release of the socklab binary into TARGET_DIR
#   start_server NAME PORT CMD... runs CMD pinned with SRV_PIN, output in LOGS/NAME.stdout and
#                                 LOGS/NAME.stderr, and waits (10 s at most) until it serves: with
#                                 an empty PORT until it prints `listening on HOST:PORT` first on
#                                 stdout, with a PORT until that TCP port accepts. Sets SRV_PID and
#                                 SRV_PORT; dies if the server exits or does not start.
#   try_start_server NAME PORT CMD...  the same, but returns 1 (the server stopped) instead of dying
#   stop_server PID               stop_pid, and forget it
#   stop_pid PID                  SIGTERM, up to 5 s for it to exit, then SIGKILL; reaps it
#   is_running PID                true while PID is alive (a zombie is not)
#   cleanup                       stops every server start_server started and that still runs

# The variables are for the scripts that source this file.
# shellcheck disable=SC2034
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in
/*) ;;
*) TARGET_DIR="$PWD/$TARGET_DIR" ;;
esac
export CARGO_TARGET_DIR="$TARGET_DIR"
SOCKLAB="$TARGET_DIR/release/socklab"
LOGS="${LOGS:-$BENCH/out/logs}"
SRV_PIN=()
CLI_PIN=()
SERVER_PIDS=()
SRV_PID=""
SRV_PORT=""

log() { printf '%s\n' "$*" >&2; }

die() {
    log "bench/$(basename "$0"): $*"
    exit 1
}

need() {
    local missing=()
    while [[ $# -gt 0 && "$1" != -- ]]; do
        command -v "$1" >/dev/null || missing+=("$1")
        shift
    done
    [[ "${1:-}" != -- ]] || shift
    [[ ${#missing[@]} -eq 0 ]] || die "${missing[*]} not installed${1:+ ($1)}"
}

median() {
    [[ $# -gt 0 ]] || {
        echo na
        return
    }
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.15g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

kv() {
    local w
    for w in $1; do
        if [[ "$w" == "$2="* ]]; then
            printf '%s' "${w#*=}"
            return 0
        fi
    done
    printf 'na'
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

build_socklab() {
    (cd "$ROOT" && cargo build --release --quiet --bin socklab) || die "cargo build failed"
    [[ -x "$SOCKLAB" ]] || die "no binary at $SOCKLAB"
}

is_running() {
    local st
    st="$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)"
    [[ -n "$st" && "$st" != Z ]]
}

stop_pid() {
    local pid="$1" i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        is_running "$pid" || break
        sleep 0.1
    done
    if is_running "$pid"; then
        log "server $pid ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

try_start_server() {
    local name="$1" port="$2" i line=""
    shift 2
    mkdir -p "$LOGS"
    "${SRV_PIN[@]}" "$@" >"$LOGS/$name.stdout" 2>"$LOGS/$name.stderr" &
    SRV_PID=$!
    SRV_PORT=""
    SERVER_PIDS+=("$SRV_PID")
    for ((i = 0; i < 100; i++)); do
        if ! is_running "$SRV_PID"; then
            stop_server "$SRV_PID"
            return 1
        fi
        if [[ -z "$port" ]]; then
            line="$(grep -m1 '^listening on ' "$LOGS/$name.stdout" || true)"
            if [[ -n "$line" ]]; then
                SRV_PORT="${line##*:}"
                return 0
            fi
        elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            SRV_PORT="$port"
            return 0
        fi
        sleep 0.1
    done
    stop_server "$SRV_PID"
    return 1
}

start_server() {
    local name="$1"
    try_start_server "$@" ||
        die "$name did not start serving within 10 s; see $LOGS/$name.stderr: $(tail -n 3 "$LOGS/$name.stderr")"
}

stop_server() {
    local pid="$1" p keep=()
    stop_pid "$pid"
    for p in "${SERVER_PIDS[@]}"; do
        [[ "$p" == "$pid" ]] || keep+=("$p")
    done
    SERVER_PIDS=("${keep[@]}")
}

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        stop_pid "$pid"
    done
    SERVER_PIDS=()
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
