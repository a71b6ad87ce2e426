#!/usr/bin/env bash
# bench/rexec.sh: `socklab rexec` beside OpenSSH (Debian's sshd and ssh), on loopback, in one run.
#
# Both servers are started by this script on 127.0.0.1 with throw-away keys in a temporary
# directory (on tmpfs, /dev/shm, when there is one), and both run commands as the current user:
#   socklab  socklab rexec serve --users FILE -p 0 --host-key TMP --log TMP --allow-root (as root)
#            client: SOCKLAB_PASSWORD=… socklab rexec run bench@127.0.0.1:PORT --known-hosts TMP
#            -- CMD. Login: a password checked against an Argon2id hash (19 MiB, 2 passes, by
#            design), TLS 1.3 (TLS13_AES_256_GCM_SHA384, X25519, Ed25519 host key).
#   ssh      /usr/sbin/sshd -D -e -f CONFIG -p PORT -h TMP/ssh_host_ed25519_key, the config:
#            ListenAddress 127.0.0.1, UsePAM no, PasswordAuthentication no, StrictModes no,
#            PermitRootLogin prohibit-password, AuthorizedKeysFile TMP (an Ed25519 user key).
#            client: ssh -F /dev/null (OpenSSH's built-in defaults, not /etc/ssh/ssh_config)
#            -i KEY -p PORT -o BatchMode=yes … 127.0.0.1 CMD. Login: public key. The cipher is
#            OpenSSH's default, printed (ssh -v); the throughput part adds a row with ssh pinned
#            to AES-256-GCM (SSH_ALT_CIPHER), the like-for-like of socklab's suite.
# Every client run has stdin from /dev/null and its stdout into /dev/null, and is bounded by
# `timeout LIMIT`. With PIN=1 (and 2 cores or more) the servers, and so the commands they
# start, run on core 0 and the clients on core 1.
#
# 1. One-shot commands: `run -- true` and `ssh … true`, N of each (default 100) in a row,
#    alternating socklab and ssh so drift hits both alike, after one warm-up each (which also
#    records the host keys). Wall time of the client process: median, p99 (nearest rank), mean;
#    the ratio socklab/ssh and ssh/socklab. Target: socklab's median ≤ 0.5× ssh's. Beside it,
#    each side's CPU time per command (user + system; the client's from bash's `times`, the
#    server side's from /proc: the server process with its reaped children), which this VM's
#    drift disturbs less than wall time.
#    Then where socklab's time goes, from the server's JSON log (per-session timestamps) and
#    the client's wall time: TLS handshake, authentication (the AUTH frame, then Argon2id), the
#    EXEC and the command, the end of the session, and what is outside the session (client
#    process start, TCP connect, exit). Argon2id alone is measured apart (`rexec passwd add`
#    minus `rexec passwd list`, the same parameters as a login's check), and socklab's median
#    without the authentication phase is put beside ssh's. On ssh's side, sshd runs the command
#    with the user's login shell, and Debian's bash reads ~/.bashrc when SSH_CLIENT is set:
#    that shell is timed apart with and without SSH_CLIENT (and /bin/sh, which socklab runs),
#    and ssh's median less the difference is printed with its ratio too.
# 2. Throughput: `cat FILE` of SIZE random bytes (default 1G, on tmpfs when there is one)
#    through the channel, the client's stdout into /dev/null. One warm-up run of each method
#    counts the bytes (wc -c) and is not measured; then ROUNDS rounds (default 3), every method
#    once per round in a rotating order. Printed: median and best MB/s (10^6 bytes/s), the
#    ratio to ssh (default cipher), "net" MB/s (the time less the method's one-shot median
#    of part 1: connect, login, start), the client's CPU time (GNU time), the server side's CPU
#    time (the server process with its reaped children: `sh -c cat` and cat for socklab, the
#    per-connection sshd processes, the shell and cat for sshd), and peak RSS: the clients'
#    (GNU time) and the socklab server's VmHWM before and after the runs (the logins' Argon2id
#    takes 19 MiB), and its RSS at the end. Target: socklab ≥ 1.0× ssh.
#
# Environment: N=100 SIZE=1G ROUNDS=3 LIMIT=60 (seconds per client run) PIN=1
#              SSH_ALT_CIPHER=aes256-gcm@openssh.com (empty: no pinned-cipher row)
#              SSH_OPTS="" (more ssh options for every ssh run, word-split; e.g.
#              SSH_OPTS="-o KexAlgorithms=curve25519-sha256", socklab's X25519 without ssh's
#              default post-quantum hybrid, whose key generation costs the client ~60 ms of CPU)
#   (quick check: N=10 SIZE=64M ROUNDS=1)
# Output and logs go to bench/out/rexec/ (ignored by git); the temporary directory, with the
# keys and the file, is removed on exit. As root, sshd needs /run/sshd: the script makes it when
# it is missing and removes it on exit.
# The medians are computed over word-split lists on purpose.
# shellcheck disable=SC2046
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N="${N:-100}"
SIZE="${SIZE:-1G}"
ROUNDS="${ROUNDS:-3}"
LIMIT="${LIMIT:-60}"
PIN="${PIN:-1}"
SSH_ALT_CIPHER="${SSH_ALT_CIPHER-aes256-gcm@openssh.com}"
SSH_OPTS="${SSH_OPTS:-}"
SSHD=/usr/sbin/sshd

need ssh ssh-keygen python3 taskset timeout numfmt -- "apt-get install openssh-server openssh-client python3 util-linux coreutils"
[[ -x "$SSHD" ]] || die "$SSHD is not installed (apt-get install openssh-server)"
if ! /usr/bin/time -f %M true >/dev/null 2>&1; then die "GNU time is not installed (apt-get install time)"; fi
[[ "$N" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, not '$N'"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$LIMIT" =~ ^[1-9][0-9]*$ ]] || die "LIMIT must be a positive number of seconds, not '$LIMIT'"
BYTES=$(numfmt --from=iec "$SIZE" 2>/dev/null) || die "SIZE must look like 64M or 1G, not '$SIZE'"
(( BYTES > 0 && BYTES <= 8 << 30 )) || die "SIZE must be between 1 byte and 8G"

OUT="$BENCH/out/rexec"
LOGS="$OUT"
mkdir -p "$OUT"
if [[ -d /dev/shm && -w /dev/shm ]]; then TMPBASE=/dev/shm; else TMPBASE="${TMPDIR:-/tmp}"; fi
WORK="$(mktemp -d "$TMPBASE/socklab-bench-rexec.XXXXXX")"
MADE_RUN_SSHD=0
on_exit() {
    cleanup
    rm -rf "$WORK"
    if [[ "$MADE_RUN_SSHD" == 1 ]]; then rmdir /run/sshd 2>/dev/null || true; fi
}
trap on_exit EXIT

if [[ "$PIN" == 1 && "$(nproc)" -ge 2 ]]; then
    SRV_PIN=(taskset -c 0)
    CLI_PIN=(taskset -c 1)
    PINNING="servers (and their commands) on core 0, clients on core 1"
else
    PINNING="not pinned"
fi

echo "== building socklab (release)"
build_socklab

# ---------------------------------------------------------------- keys and servers
echo "== keys, users and servers in $WORK ($(stat -f -c %T "$WORK"))"
ssh-keygen -q -t ed25519 -N '' -C socklab-bench-host -f "$WORK/ssh_host_ed25519_key"
ssh-keygen -q -t ed25519 -N '' -C socklab-bench-user -f "$WORK/user_key"
cp "$WORK/user_key.pub" "$WORK/authorized_keys"
SSH_PORT=$(free_port)
cat > "$WORK/sshd_config" <<EOF
ListenAddress 127.0.0.1
HostKey $WORK/ssh_host_ed25519_key
AuthorizedKeysFile $WORK/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
PidFile $WORK/sshd.pid
EOF
# sshd started as root separates privileges and needs its empty directory.
if [[ "$(id -u)" == 0 && ! -d /run/sshd ]]; then
    mkdir -m 0755 /run/sshd
    MADE_RUN_SSHD=1
fi
"$SSHD" -t -f "$WORK/sshd_config" -h "$WORK/ssh_host_ed25519_key" || die "sshd rejects the config $WORK/sshd_config"
start_server sshd "$SSH_PORT" "$SSHD" -D -e -f "$WORK/sshd_config" -p "$SSH_PORT" -h "$WORK/ssh_host_ed25519_key"
SSHD_PID=$SRV_PID

PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$PASSWORD" | "$SOCKLAB" rexec passwd "$WORK/users" add bench --password-stdin 2>/dev/null ||
    die "socklab rexec passwd failed"
ROOT_FLAG=()
[[ "$(id -u)" != 0 ]] || ROOT_FLAG=(--allow-root)
SL_LOG="$OUT/rexec_server.jsonl"
: > "$SL_LOG"
start_server socklab "" "$SOCKLAB" rexec serve --users "$WORK/users" -p 0 "${ROOT_FLAG[@]}" \
    --host-key "$WORK/hk.pem" --log "$SL_LOG"
SL_PID=$SRV_PID
SL_PORT=$SRV_PORT
export SOCKLAB_PASSWORD="$PASSWORD"

SSH=(ssh -F /dev/null -i "$WORK/user_key" -p "$SSH_PORT" -o StrictHostKeyChecking=no
    -o UserKnownHostsFile="$WORK/ssh_known_hosts" -o BatchMode=yes -o LogLevel=ERROR
    -o IdentitiesOnly=yes -o IdentityAgent=none -o ControlMaster=no)
# shellcheck disable=SC2206 # word-split on purpose
SSH+=($SSH_OPTS)
SL=("$SOCKLAB" rexec run "bench@127.0.0.1:$SL_PORT" --known-hosts "$WORK/known_hosts" --accept-new)

# The command line of METHOD for the remote command CMD.
cmdline() { # method cmd... -> CMD_ARGV
    local m=$1
    shift
    case $m in
        socklab) CMD_ARGV=("${SL[@]}" -- "$@") ;;
        ssh) CMD_ARGV=("${SSH[@]}" 127.0.0.1 "$@") ;;
        ssh-aes) CMD_ARGV=("${SSH[@]}" -o Ciphers="$SSH_ALT_CIPHER" 127.0.0.1 "$@") ;;
        *) die "no method $m" ;;
    esac
}

# What each side negotiated.
SSH_V="$(ssh -v "${SSH[@]:1}" 127.0.0.1 true </dev/null 2>&1)" || die "ssh to 127.0.0.1:$SSH_PORT failed: $(grep -v '^debug' <<<"$SSH_V" | tail -3)"
SSH_KEX=$(sed -n 's/^debug1: kex: algorithm: \(.*\)/\1/p' <<<"$SSH_V" | head -1)
SSH_CIPHER=$(sed -n 's/^debug1: kex: server->client cipher: \([^ ]*\).*/\1/p' <<<"$SSH_V" | head -1)
SSH_HOSTKEY=$(sed -n 's/^debug1: kex: host key algorithm: \(.*\)/\1/p' <<<"$SSH_V" | head -1)
SSH_VERSION="$(ssh -V 2>&1)"
if [[ -n "$SSH_ALT_CIPHER" ]]; then
    "${SSH[@]}" -o Ciphers="$SSH_ALT_CIPHER" 127.0.0.1 true </dev/null ||
        die "ssh with -o Ciphers=$SSH_ALT_CIPHER failed (SSH_ALT_CIPHER= skips that row)"
fi

ms_since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) * 1000 }'; }
# The nearest-rank percentile P of the values.
pct() {
    local p=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v p="$p" '{ v[NR] = $1 } END {
        if (NR == 0) { print "na"; exit } i = int(NR * p / 100); if (i < NR * p / 100) i++; if (i < 1) i = 1; print v[i] }'
}
mean() { printf '%s\n' "$@" | awk '{ s += $1 } END { printf "%.3f", NR ? s / NR : 0 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0) ? a / b : 0 }'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "le") ? (v <= t) : (v >= t); print ok ? "met" : "MISSED" }'; }

# ---------------------------------------------------------------- 1. one-shot commands
# The CPU time (user + system, seconds) of this shell's ended children, from the builtin
# `times` written before and after a run (no process in between, so none counted twice).
cpu_of_times() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.4f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"; }
declare -A CLI_CPU=([socklab]=0 [ssh]=0)
one_shot() { # method -> LAST_MS (its wall time); adds its client CPU to CLI_CPU[method]
    local m=$1 t0 t1 rc=0
    cmdline "$m" true
    times > "$OUT/times.before"
    t0=$EPOCHREALTIME
    "${CLI_PIN[@]}" timeout "$LIMIT" "${CMD_ARGV[@]}" </dev/null >/dev/null 2>"$OUT/client.stderr" || rc=$?
    t1=$EPOCHREALTIME
    times > "$OUT/times.after"
    [[ $rc == 0 ]] || die "$m true failed (exit $rc): $(tail -3 "$OUT/client.stderr")"
    LAST_MS=$(ms_since "$t0" "$t1")
    CLI_CPU[$m]=$(awk -v c="${CLI_CPU[$m]}" -v a="$(cpu_of_times "$OUT/times.before")" \
        -v b="$(cpu_of_times "$OUT/times.after")" 'BEGIN { printf "%.4f", c + b - a }')
}
# Argon2id alone: `passwd add` hashes once with the server's parameters; `passwd list` reads
# the same file without hashing. The difference is one hash (a login's check costs the same).
# Timed on the servers' core, between the one-shot runs (so under the same conditions).
A_ADD=()
A_LIST=()
argon_sample() {
    local t0
    t0=$EPOCHREALTIME
    printf 'pw%s\n' "$RANDOM" | "${SRV_PIN[@]}" "$SOCKLAB" rexec passwd "$WORK/argon_users" add u --password-stdin 2>/dev/null
    A_ADD+=("$(ms_since "$t0" "$EPOCHREALTIME")")
    t0=$EPOCHREALTIME
    "${SRV_PIN[@]}" "$SOCKLAB" rexec passwd "$WORK/argon_users" list >/dev/null
    A_LIST+=("$(ms_since "$t0" "$EPOCHREALTIME")")
}

echo "== one-shot warm-up (not counted; records the host keys)"
one_shot socklab
one_shot ssh
# The harness's own share, in both figures: taskset, timeout and a process that does nothing.
FLOOR=()
for _ in 1 2 3 4 5 6 7 8 9 10; do
    t0=$EPOCHREALTIME
    "${CLI_PIN[@]}" timeout "$LIMIT" true </dev/null >/dev/null
    FLOOR+=("$(ms_since "$t0" "$EPOCHREALTIME")")
done
HZ=$(getconf CLK_TCK)
# CPU ticks of a server with its reaped children (utime stime cutime cstime).
srv_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"; }
srv_of() { if [[ $1 == socklab ]]; then echo "$SL_PID"; else echo "$SSHD_PID"; fi; }
CLI_CPU=([socklab]=0 [ssh]=0)
LOG_MARK=$(wc -l < "$SL_LOG")
T_SL=()
T_SSH=()
SRV0_SL=$(srv_ticks "$SL_PID") SRV0_SSH=$(srv_ticks "$SSHD_PID")
ARGON_EVERY=$(( N >= 10 ? N / 10 : 1 ))
echo "== one-shot: $N runs of each, alternating"
for ((i = 1; i <= N; i++)); do
    if (( i % 2 )); then order=(socklab ssh); else order=(ssh socklab); fi
    for m in "${order[@]}"; do
        one_shot "$m"
        if [[ $m == socklab ]]; then T_SL+=("$LAST_MS"); else T_SSH+=("$LAST_MS"); fi
    done
    (( i % ARGON_EVERY )) || argon_sample
    if (( i % 25 == 0 || i == N )); then
        log "   $i/$N: last socklab ${T_SL[-1]} ms, ssh ${T_SSH[-1]} ms"
    fi
done
sleep 0.3 # the last session's disconnect line is written as the server closes it
LOG_END=$(wc -l < "$SL_LOG")
SRV1_SL=$(srv_ticks "$SL_PID") SRV1_SSH=$(srv_ticks "$SSHD_PID")
printf '%s\n' "${T_SL[@]}" > "$OUT/oneshot_socklab_ms.txt"
printf '%s\n' "${T_SSH[@]}" > "$OUT/oneshot_ssh_ms.txt"

# ssh runs the command with the user's login shell, and Debian's bash reads ~/.bashrc when
# SSH_CLIENT is set; socklab runs `sh -c` in a clean environment. Each timed apart on the
# servers' core: the login shell as sshd starts it, the same without SSH_CLIENT, and sh.
LOGIN_SHELL=$(getent passwd "$(id -un)" | cut -d: -f7)
[[ -x "$LOGIN_SHELL" ]] || LOGIN_SHELL=/bin/sh
SH_SSH=()
SH_PLAIN=()
SH_SH=()
for _ in 1 2 3 4 5 6 7; do
    t0=$EPOCHREALTIME
    env -i HOME="$HOME" USER="$(id -un)" SHELL="$LOGIN_SHELL" PATH=/usr/bin:/bin "SSH_CLIENT=127.0.0.1 1 $SSH_PORT" \
        "${SRV_PIN[@]}" "$LOGIN_SHELL" -c true </dev/null >/dev/null 2>&1 || true
    SH_SSH+=("$(ms_since "$t0" "$EPOCHREALTIME")")
    t0=$EPOCHREALTIME
    env -i HOME="$HOME" USER="$(id -un)" SHELL="$LOGIN_SHELL" PATH=/usr/bin:/bin \
        "${SRV_PIN[@]}" "$LOGIN_SHELL" -c true </dev/null >/dev/null 2>&1 || true
    SH_PLAIN+=("$(ms_since "$t0" "$EPOCHREALTIME")")
    t0=$EPOCHREALTIME
    env -i PATH=/usr/bin:/bin "${SRV_PIN[@]}" /bin/sh -c true </dev/null >/dev/null 2>&1 || true
    SH_SH+=("$(ms_since "$t0" "$EPOCHREALTIME")")
done
ARGON_MS=$(awk -v a="$(median "${A_ADD[@]}")" -v b="$(median "${A_LIST[@]}")" 'BEGIN { printf "%.1f", a - b }')
ARGON_N=${#A_ADD[@]}

# ---------------------------------------------------------------- 2. throughput
FILE="$WORK/file.bin"
echo "== making $SIZE of random bytes in $FILE ($(stat -f -c %T "$WORK"))"
head -c "$BYTES" /dev/urandom > "$FILE"

METHODS=(socklab ssh)
[[ -z "$SSH_ALT_CIPHER" ]] || METHODS+=(ssh-aes)
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.1f", (s > 0) ? b / 1e6 / s : 0 }'; }

echo "== throughput warm-up (not counted): each method's byte count checked"
for m in "${METHODS[@]}"; do
    cmdline "$m" cat "$FILE"
    got=$("${CLI_PIN[@]}" timeout "$LIMIT" "${CMD_ARGV[@]}" </dev/null 2>"$OUT/client.stderr" | wc -c) ||
        die "$m cat failed: $(tail -3 "$OUT/client.stderr")"
    [[ "$got" == "$BYTES" ]] || die "$m delivered $got bytes of $BYTES: $(tail -3 "$OUT/client.stderr")"
done

hwm_kb() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
SL_HWM0=$(hwm_kb "$SL_PID")
declare -A SECS CCPU SCPU CRSS
tp_one() { # method round
    local m=$1 r=$2 t0 t1 c0 c1 pid u s k rc=0 tf="$OUT/time.txt"
    pid=$(srv_of "$m")
    cmdline "$m" cat "$FILE"
    c0=$(srv_ticks "$pid")
    t0=$EPOCHREALTIME
    "${CLI_PIN[@]}" /usr/bin/time -f '%U %S %M' -o "$tf" timeout "$LIMIT" "${CMD_ARGV[@]}" \
        </dev/null >/dev/null 2>"$OUT/client.stderr" || rc=$?
    t1=$EPOCHREALTIME
    [[ $rc == 0 ]] || die "$m cat failed in round $r (exit $rc; 124: over LIMIT=${LIMIT}s): $(tail -3 "$OUT/client.stderr")"
    # The server side's processes end just after the client; they count once reaped.
    sleep 0.3
    c1=$(srv_ticks "$pid")
    SECS[$m-$r]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    SCPU[$m-$r]=$(awk -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    read -r u s k < <(tail -1 "$tf")
    CCPU[$m-$r]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    CRSS[$m-$r]=$k
    printf '   %-8s %8.3f s %9s MB/s   client CPU %5.2f s, server side CPU %5.2f s\n' "$m" \
        "${SECS[$m-$r]}" "$(mbps "${SECS[$m-$r]}")" "${CCPU[$m-$r]}" "${SCPU[$m-$r]}"
}
for r in $(seq "$ROUNDS"); do
    echo "== round $r/$ROUNDS: cat of $SIZE"
    for i in "${!METHODS[@]}"; do
        tp_one "${METHODS[$(( (i + r - 1) % ${#METHODS[@]} ))]}" "$r"
    done
done
SL_HWM=$(hwm_kb "$SL_PID")
SL_RSS=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SL_PID/status")

# ---------------------------------------------------------------- report
SL_CIPHER=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("event") == "connect": print(e.get("tls"), e.get("cipher")); break' "$SL_LOG")

echo
echo "socklab rexec vs OpenSSH on 127.0.0.1 ($PINNING)"
echo "  socklab: $SL_CIPHER (X25519, Ed25519 host key); login: password, Argon2id"
echo "  ssh:     $SSH_VERSION; kex $SSH_KEX, host key $SSH_HOSTKEY, default cipher $SSH_CIPHER; login: Ed25519 public key"
[[ -z "$SSH_OPTS" ]] || echo "           ssh options added (SSH_OPTS): $SSH_OPTS"
echo
echo "1. One-shot command (\`run -- true\` / \`ssh … true\`), $N runs each, alternating; client wall time"
echo "(CPU: user+system per command, the mean over the $N; server side: the server with its reaped"
echo " children: the command, and for ssh the per-connection sshd processes and the login shell)"
printf '  %-8s %10s %10s %10s %10s %10s %15s %15s\n' method "median ms" "p99 ms" "mean ms" "min ms" "max ms" \
    "client CPU ms" "server CPU ms"
declare -A SRV_CPU=(
    [socklab]=$(awk -v t=$((SRV1_SL - SRV0_SL)) -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.2f", t / hz * 1000 / n }')
    [ssh]=$(awk -v t=$((SRV1_SSH - SRV0_SSH)) -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.2f", t / hz * 1000 / n }')
)
for m in socklab ssh; do
    if [[ $m == socklab ]]; then v=("${T_SL[@]}"); else v=("${T_SSH[@]}"); fi
    printf '  %-8s %10.1f %10.1f %10.1f %10.1f %10.1f %15.1f %15.1f\n' "$m" "$(median "${v[@]}")" "$(pct 99 "${v[@]}")" \
        "$(mean "${v[@]}")" "$(pct 0 "${v[@]}")" "$(pct 100 "${v[@]}")" \
        "$(awk -v c="${CLI_CPU[$m]}" -v n="$N" 'BEGIN { printf "%.2f", c * 1000 / n }')" "${SRV_CPU[$m]}"
done
SL_MED=$(median "${T_SL[@]}") SSH_MED=$(median "${T_SSH[@]}")
SL_P99=$(pct 99 "${T_SL[@]}") SSH_P99=$(pct 99 "${T_SSH[@]}")
echo "  socklab/ssh: median $(ratio "$SL_MED" "$SSH_MED"), p99 $(ratio "$SL_P99" "$SSH_P99")   (lower is better)"
echo "  ssh/socklab: median $(ratio "$SSH_MED" "$SL_MED"), p99 $(ratio "$SSH_P99" "$SL_P99")   (socklab is this many times faster)"
printf '  (both include the harness: taskset + timeout + an empty process, median %.1f ms)\n' "$(median "${FLOOR[@]}")"
SH_SSH_MED=$(median "${SH_SSH[@]}") SH_PLAIN_MED=$(median "${SH_PLAIN[@]}")
RC_MS=$(awk -v a="$SH_SSH_MED" -v b="$SH_PLAIN_MED" 'BEGIN { d = a - b; if (d < 0) d = 0; printf "%.1f", d }')
SSH_NORC=$(awk -v a="$SSH_MED" -v b="$RC_MS" 'BEGIN { printf "%.1f", a - b }')
echo
echo "  ssh's side: sshd runs the command with $(id -un)'s login shell $LOGIN_SHELL (socklab: /bin/sh, clean environment)."
printf '    %-55s %7.1f ms\n' "$LOGIN_SHELL -c true as sshd starts it (SSH_CLIENT set)" "$SH_SSH_MED" \
    "$LOGIN_SHELL -c true without SSH_CLIENT" "$SH_PLAIN_MED" "/bin/sh -c true (what socklab runs)" "$(median "${SH_SH[@]}")"
printf '    %-55s %7.1f ms\n' "the difference: the shell's start-up files for ssh" "$RC_MS"
printf '    ssh less that: ~%.1f ms; socklab/that: %s (ssh/socklab %s)\n' "$SSH_NORC" \
    "$(ratio "$SL_MED" "$SSH_NORC")" "$(ratio "$SSH_NORC" "$SL_MED")"
echo "    (Debian's bash reads ~/.bashrc when SSH_CLIENT is set: $HOME/.bashrc runs for every ssh command)"
echo
echo "  Where socklab's one-shot time goes (medians over the $N runs; server log timestamps):"
python3 - "$SL_LOG" "$LOG_MARK" "$LOG_END" "$OUT/oneshot_socklab_ms.txt" "$ARGON_MS" "$SSH_MED" "$ARGON_N" <<'PY'
import json, statistics, sys
from datetime import datetime
log, mark, end, times = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
argon, ssh_med, argon_n = float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000
sessions = {}
for line in open(log).readlines()[mark:end]:
    e = json.loads(line)
    sessions.setdefault(e["session"], {})[e["event"]] = e
client = [float(l) for l in open(times)]
rows = {k: [] for k in ("tls", "auth", "exec", "cmd", "end", "session", "outside")}
ok = [s for _, s in sorted(sessions.items()) if all(k in s for k in ("connect", "auth", "command", "disconnect"))]
if len(ok) != len(client):
    print(f"    (the log has {len(ok)} complete sessions for {len(client)} runs: no breakdown)")
    sys.exit(0)
for s, wall in zip(ok, client):
    d = s["disconnect"]
    end = ts(d["time"])
    began = end - d["duration_ms"]
    conn, auth = ts(s["connect"]["time"]), ts(s["auth"]["time"])
    start, cmd = ts(s["command"]["start"]), s["command"]["duration_ms"]
    rows["tls"].append(conn - began)
    rows["auth"].append(auth - conn)
    rows["exec"].append(start - auth)
    rows["cmd"].append(cmd)
    rows["end"].append(end - (start + cmd))
    rows["session"].append(d["duration_ms"])
    rows["outside"].append(wall - d["duration_ms"])
med = {k: statistics.median(v) for k, v in rows.items()}
total = statistics.median(client)
names = [
    ("tls", "TLS 1.3 handshake (accept to handshake done)"),
    ("auth", "authentication: AUTH frame, then Argon2id"),
    ("exec", "AUTH_OK to the client, its EXEC, the spawn"),
    ("cmd", "the command (sh -c true), as the server times it"),
    ("end", "EXIT to the client, its BYE, the close"),
    ("outside", "outside the session: client start, TCP connect, exit"),
]
for k, label in names:
    print(f"    {label:55} {med[k]:7.1f} ms  {100 * med[k] / total:5.1f} %")
print(f"    {'client wall time (median)':55} {total:7.1f} ms")
print(f"    Argon2id alone (passwd add minus passwd list, median of {argon_n}): {argon:.1f} ms"
      f" = {100 * argon / total:.0f} % of the one-shot median")
wo = total - med["auth"]
print(f"    socklab without the authentication phase: ~{wo:.1f} ms,"
      f" {wo / ssh_med:.2f}x ssh's median (ssh: {ssh_med:.1f} ms, public key)")
PY

echo
echo "2. Throughput: cat of $SIZE ($BYTES random bytes, on $(stat -f -c %T "$WORK")) through the channel into /dev/null, medians of $ROUNDS"
printf '  %-8s %10s %8s %10s %8s %10s %8s %13s %13s %14s\n' method "MB/s" "x ssh" "best MB/s" "x ssh" "net MB/s" "x ssh" "client CPU s" "server CPU s" "client RSS MB"
col() { local -n mm=$1; local t=$2 r; for r in $(seq "$ROUNDS"); do echo "${mm[$t-$r]}"; done; }
ssh_rate=$(mbps "$(median $(col SECS ssh))")
ssh_best=$(mbps "$(col SECS ssh | sort -g | head -1)")
# Net: less the method's one-shot median (connect, login, start), as measured in part 1.
net_rate() { awk -v b="$BYTES" -v s="$1" -v o="$2" 'BEGIN { t = s - o / 1000; printf "%.1f", (t > 0) ? b / 1e6 / t : 0 }'; }
setup_of() { if [[ $1 == socklab ]]; then echo "$SL_MED"; else echo "$SSH_MED"; fi; }
ssh_net=$(net_rate "$(median $(col SECS ssh))" "$SSH_MED")
for m in "${METHODS[@]}"; do
    rate=$(mbps "$(median $(col SECS "$m"))")
    best=$(mbps "$(col SECS "$m" | sort -g | head -1)")
    net=$(net_rate "$(median $(col SECS "$m"))" "$(setup_of "$m")")
    printf '  %-8s %10.1f %8s %10.1f %8s %10.1f %8s %13.2f %13.2f %14.1f\n' "$m" "$rate" "$(ratio "$rate" "$ssh_rate")" \
        "$best" "$(ratio "$best" "$ssh_best")" "$net" "$(ratio "$net" "$ssh_net")" \
        "$(median $(col CCPU "$m"))" "$(median $(col SCPU "$m"))" \
        "$(col CRSS "$m" | sort -g | tail -1 | awk '{ print $1 / 1024 }')"
done
SL_RATE=$(mbps "$(median $(col SECS socklab))")
echo "  ssh = the default cipher ($SSH_CIPHER)${SSH_ALT_CIPHER:+; ssh-aes = -o Ciphers=$SSH_ALT_CIPHER}"
echo "  net MB/s: the time less the method's one-shot median of part 1 (connect, login, start)"
echo "  server CPU: the server process and its reaped children (socklab: sh -c cat and cat;"
echo "  sshd: the per-connection sshd processes, the login shell and cat)"
printf '  socklab server peak RSS (VmHWM) after the cat runs: %.1f MB (before them: %.1f MB, after the\n' \
    "$(awk -v k="$SL_HWM" 'BEGIN { print k / 1024 }')" "$(awk -v k="$SL_HWM0" 'BEGIN { print k / 1024 }')"
printf '  logins, whose Argon2id takes 19 MiB each); its RSS now: %.1f MB\n' "$(awk -v k="$SL_RSS" 'BEGIN { print k / 1024 }')"
echo
SL_R=$(awk -v a="$SL_MED" -v b="$SSH_MED" 'BEGIN { printf "%.3f", a / b }')
TP_R=$(awk -v a="$SL_RATE" -v b="$ssh_rate" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }')
echo "Targets:"
printf '  one-shot median <= 0.5x ssh:  %.1f ms / %.1f ms = %.2fx  %s\n' "$SL_MED" "$SSH_MED" "$SL_R" "$(verdict "$SL_R" 0.5 le)"
printf '  throughput >= 1.0x ssh:       %.1f / %.1f MB/s = %.2fx  %s\n' "$SL_RATE" "$ssh_rate" "$TP_R" "$(verdict "$TP_R" 1.0 ge)"
echo "(logs: $OUT; socklab's server log: $SL_LOG)"
