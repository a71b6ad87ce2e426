#!/usr/bin/env bash
# bench/transfer.sh: `socklab transfer` beside nc and `socklab http`, and the alternatives of
# docs/TRANSFER.md, on loopback, in one run.
#
# 1. Throughput: one file of SIZE random bytes (default 1G), receiver pinned to core 0, sender
#    to core 1, every copy checked with cmp and deleted. Each round runs every method once (the
#    order rotates):
#      socklab   socklab transfer serve --dir RX   /  socklab transfer send ADDR FILE
#                (SHA-256 on both sides, the file renamed into place only once verified)
#      nc        nc -l 127.0.0.1 PORT > RX/nc.bin  /  nc -N 127.0.0.1 PORT < FILE
#      http      socklab http serve DIR            /  socklab http get URL -O RX/http.bin
#    Printed: median and best MB/s (10^6 bytes) over ROUNDS, the ratios to nc, and the peak RSS
#    of both sides (GNU time for the processes that end; VmHWM for the long-lived servers).
#    On the 2-core VM this was written on, writing 1 GiB into tmpfs takes 0.4 s or 1.5 s from
#    one run to the next (dd alone, same file), for every method alike: read the best figures
#    beside the medians.
#    The receiving directory is on tmpfs (/dev/shm) when there is one, so the disk is not
#    measured; a received file is deleted before the next run, so every run writes into pages
#    the previous one freed. (The first run of all pays tmpfs's first touch of 1 GiB; it is a
#    warm-up and not counted.)
# 2. A text while the file is in flight: `socklab transfer chat` gets `/send FILE`, and 300 ms
#    later a line; the time from writing that line into chat's stdin to the receiver printing
#    it (target: 50 ms), and whether it came before the file's line.
# 3. The alternatives (bench/transfer_alt.py, Python, one process per side): one connection
#    per item, delimiter + base64, length prefix, MIME multipart, and the typed frames in
#    Python; on ALT_SIZE (default 100M) and TEXTS texts (default 10,000). Then socklab itself
#    on the same workload (chat with half the texts, the file, the other half).
#
# Environment: SIZE=1G ROUNDS=5 ALT_SIZE=100M TEXTS=10000 LIMIT=300 (seconds per run)
#   (quick check: SIZE=64M ROUNDS=1 ALT_SIZE=10M TEXTS=1000)
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE="${SIZE:-1G}"
ROUNDS="${ROUNDS:-5}"
ALT_SIZE="${ALT_SIZE:-100M}"
TEXTS="${TEXTS:-10000}"
LIMIT="${LIMIT:-300}"

need nc python3 taskset timeout cmp numfmt -- "apt-get install netcat-openbsd python3 util-linux coreutils diffutils"
if ! /usr/bin/time -f %M true >/dev/null 2>&1; then die "GNU time is not installed (apt-get install time)"; fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
[[ "$TEXTS" =~ ^[1-9][0-9]*$ ]] || die "TEXTS must be a positive integer, not '$TEXTS'"
BYTES=$(numfmt --from=iec "$SIZE" 2>/dev/null) || die "SIZE must look like 64M or 1G, not '$SIZE'"
ALT_BYTES=$(numfmt --from=iec "$ALT_SIZE" 2>/dev/null) || die "ALT_SIZE must look like 100M"
(( BYTES > 0 && BYTES <= 8 << 30 )) || die "SIZE must be between 1 byte and 8G"

if [[ -d /dev/shm && -w /dev/shm ]]; then WORK=/dev/shm/socklab-bench-transfer; else WORK="$BENCH/out/transfer"; fi
OUT="$BENCH/out/transfer"
LOGS="$OUT"
SRC="$WORK/src"
RX="$WORK/rx"
mkdir -p "$SRC" "$RX" "$OUT"
on_exit() {
    cleanup
    rm -rf "$RX"
}
trap on_exit EXIT

echo "== building socklab (release)"
build_socklab

FILE="$SRC/file.bin"
if [[ ! -f "$FILE" ]] || [[ "$(stat -c %s "$FILE")" != "$BYTES" ]]; then
    echo "== making $SIZE of random bytes in $FILE"
    head -c "$BYTES" /dev/urandom > "$FILE.tmp"
    mv "$FILE.tmp" "$FILE"
fi
IMG="$SRC/image.png"
if [[ ! -f "$IMG" ]] || [[ "$(stat -c %s "$IMG")" != "$ALT_BYTES" ]]; then
    echo "== making a $ALT_SIZE 'image' (a PNG signature, then random bytes) in $IMG"
    { printf '\x89PNG\r\n\x1a\n'; head -c $(( ALT_BYTES - 8 )) /dev/urandom; } > "$IMG.tmp"
    mv "$IMG.tmp" "$IMG"
fi

SRV_PIN=(taskset -c 0)
start_server transfer "" "$SOCKLAB" transfer serve --dir "$RX" -p 0
TX_PID=$SRV_PID
TX_ADDR="127.0.0.1:$SRV_PORT"
start_server http "" "$SOCKLAB" http serve "$SRC" -p 0 -q
HTTP_PID=$SRV_PID
URL="http://127.0.0.1:$SRV_PORT/file.bin"

hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.1f", (s > 0) ? b / 1e6 / s : 0 }'; }

declare -A SECS RSS_TX RSS_RX
run_one() { # method round (round 0: the warm-up)
    local m=$1 r=$2 tf="$OUT/time.txt" rtf="$OUT/rtime.txt" dest t0 t1 nc_pid port
    case $m in
        socklab)
            dest="$RX/file.bin"
            t0=$EPOCHREALTIME
            taskset -c 1 /usr/bin/time -f '%M' -o "$tf" timeout "$LIMIT" \
                "$SOCKLAB" transfer send "$TX_ADDR" "$FILE" -q > "$OUT/send.out" ||
                die "socklab transfer send failed in round $r: $(cat "$OUT/send.out")"
            t1=$EPOCHREALTIME
            grep -q verified "$OUT/send.out" || die "socklab did not confirm the file: $(cat "$OUT/send.out")"
            RSS_RX[$m-$r]=$(hwm "$TX_PID")
            ;;
        nc)
            dest="$RX/nc.bin"
            port=$(free_port)
            # (No probe connection: nc -l takes one connection only.)
            taskset -c 0 /usr/bin/time -f '%M' -o "$rtf" timeout "$LIMIT" nc -l 127.0.0.1 "$port" > "$dest" &
            nc_pid=$!
            sleep 0.3
            t0=$EPOCHREALTIME
            taskset -c 1 /usr/bin/time -f '%M' -o "$tf" timeout "$LIMIT" nc -N 127.0.0.1 "$port" < "$FILE" ||
                die "nc failed in round $r"
            wait "$nc_pid" || die "nc -l failed in round $r"
            t1=$EPOCHREALTIME
            RSS_RX[$m-$r]=$(tail -1 "$rtf")
            ;;
        http)
            dest="$RX/http.bin"
            t0=$EPOCHREALTIME
            taskset -c 1 /usr/bin/time -f '%M' -o "$tf" timeout "$LIMIT" \
                "$SOCKLAB" http get "$URL" -O "$dest" -q || die "socklab http get failed in round $r"
            t1=$EPOCHREALTIME
            RSS_RX[$m-$r]=$(hwm "$HTTP_PID")
            ;;
    esac
    cmp -s "$dest" "$FILE" || die "$m delivered a file that differs from the original (round $r)"
    rm -f "$dest"
    SECS[$m-$r]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    RSS_TX[$m-$r]=$(tail -1 "$tf")
    if (( r > 0 )); then
        printf '   %-8s %8.3f s %9s MB/s   sender %6.1f MB, receiver %6.1f MB peak RSS\n' "$m" "${SECS[$m-$r]}" \
            "$(mbps "${SECS[$m-$r]}")" "$(awk -v k="${RSS_TX[$m-$r]}" 'BEGIN { print k / 1024 }')" \
            "$(awk -v k="${RSS_RX[$m-$r]}" 'BEGIN { print k / 1024 }')"
    fi
}

METHODS=(socklab nc http)
echo "== warm-up (not counted): one run of each"
for m in "${METHODS[@]}"; do run_one "$m" 0; done
for r in $(seq "$ROUNDS"); do
    echo "== round $r/$ROUNDS: $SIZE on loopback"
    for i in "${!METHODS[@]}"; do
        run_one "${METHODS[$(( (i + r - 1) % ${#METHODS[@]} ))]}" "$r"
    done
done

col() { local -n mm=$1; local t=$2 r; for r in $(seq "$ROUNDS"); do echo "${mm[$t-$r]}"; done; }
echo
echo "1. $SIZE ($BYTES bytes) on 127.0.0.1, receiver on core 0, sender on core 1, medians of $ROUNDS"
printf '  %-8s %10s %8s %10s %8s %16s %18s\n' method "MB/s" "x nc" "best MB/s" "x nc" "sender RSS MB" "receiver RSS MB"
# shellcheck disable=SC2046
nc_rate=$(mbps "$(median $(col SECS nc))")
nc_best=$(mbps "$(col SECS nc | sort -g | head -1)")
for m in "${METHODS[@]}"; do
    # shellcheck disable=SC2046
    rate=$(mbps "$(median $(col SECS "$m"))")
    best=$(mbps "$(col SECS "$m" | sort -g | head -1)")
    printf '  %-8s %10.1f %7.2fx %10.1f %7.2fx %16.1f %18.1f\n' "$m" "$rate" \
        "$(awk -v a="$rate" -v b="$nc_rate" 'BEGIN { print (b > 0) ? a / b : 0 }')" \
        "$best" "$(awk -v a="$best" -v b="$nc_best" 'BEGIN { print (b > 0) ? a / b : 0 }')" \
        "$(col RSS_TX "$m" | sort -g | tail -1 | awk '{ print $1 / 1024 }')" \
        "$(col RSS_RX "$m" | sort -g | tail -1 | awk '{ print $1 / 1024 }')"
done
sha_rate=$(python3 - "$FILE" <<'PY'
import hashlib, sys, time
h, t = hashlib.sha256(), time.perf_counter()
with open(sys.argv[1], 'rb') as f:
    while b := f.read(1 << 20):
        h.update(b)
print(f"{__import__('os').path.getsize(sys.argv[1]) / 1e6 / (time.perf_counter() - t):.1f}")
PY
)
echo "  SHA-256 alone on one core (Python hashlib, OpenSSL): $sha_rate MB/s: the ceiling of any"
echo "  sender or receiver that hashes every byte on the one core it has."
echo "Targets (issue 14): socklab >= 0.9x nc with verification on; RSS < 16 MB on each side."
echo "(The servers' figure is their VmHWM over the whole bench; nc's receiver is GNU time's.)"

echo
echo "2. A text while $SIZE is in flight (socklab transfer chat)"
python3 - "$SOCKLAB" "$TX_ADDR" "$FILE" "$OUT/transfer.stdout" <<'EOF'
import os, subprocess, sys, time
socklab, addr, path, log = sys.argv[1:]
name = os.path.basename(path)
start = os.path.getsize(log)
chat = subprocess.Popen([socklab, 'transfer', 'chat', addr, '-q'], stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
chat.stdin.write(f'/send {path}\n'.encode()); chat.stdin.flush()
time.sleep(0.3)
t0 = time.monotonic()
chat.stdin.write(b'ping while the file goes\n'); chat.stdin.flush()
seen, t1, file_first = False, None, False
deadline = t0 + 300
while time.monotonic() < deadline and not seen:
    with open(log) as f:
        f.seek(start)
        for line in f:
            if 'saved' in line and name in line and not seen:
                file_first = True
            if line.rstrip().endswith('ping while the file goes'):
                seen, t1 = True, time.monotonic()
                break
    time.sleep(0.0005)
chat.stdin.write(b'/quit\n'); chat.stdin.close()
chat.wait(timeout=300)
if not seen:
    sys.exit('the text never arrived')
print(f'  the text arrived {1000 * (t1 - t0):.1f} ms after it was typed'
      f' ({"after" if file_first else "before"} the file was done); target: 50 ms')
EOF
rm -f "$RX"/file*.bin

echo
echo "3. The alternatives on $ALT_SIZE and $TEXTS texts (Python, bench/transfer_alt.py)"
python3 "$BENCH/transfer_alt.py" --file "$IMG" --texts "$TEXTS" --dir "$RX" --timeout "$LIMIT" > "$OUT/alt.jsonl"
# socklab on the same workload: half the texts, the file, the other half, through chat.
python3 - "$TEXTS" "$IMG" > "$OUT/chat.in" <<'EOF'
import sys
n, img = int(sys.argv[1]), sys.argv[2]
for i in range(n // 2): print(f"message {i} from the sender")
print(f"/send {img}")
for i in range(n // 2, n): print(f"message {i} from the sender")
EOF
before=$(grep -c "closed" "$LOGS/transfer.stderr" || true)
t0=$EPOCHREALTIME
cpu0=$(awk '{ print $14 + $15 }' "/proc/$TX_PID/stat")
taskset -c 1 /usr/bin/time -f '%U %S' -o "$OUT/chat.time" timeout "$LIMIT" \
    "$SOCKLAB" transfer chat "$TX_ADDR" -q < "$OUT/chat.in" > "$OUT/chat.out"
t1=$EPOCHREALTIME
sleep 0.2
cpu1=$(awk '{ print $14 + $15 }' "/proc/$TX_PID/stat")
cmp -s "$RX/image.png" "$IMG" || die "socklab's copy of the image differs"
rm -f "$RX"/image*.png
confirmed=$(grep -c "delivered" "$OUT/chat.out" || true)
[[ "$confirmed" == "$TEXTS" ]] || die "socklab confirmed $confirmed of $TEXTS texts"
wire=$(grep "closed" "$LOGS/transfer.stderr" | tail -n +$(( before + 1 )) | tail -1 | sed -n 's/.*: \([0-9]*\) bytes in.*/\1/p')
python3 - "$OUT/alt.jsonl" "$t0" "$t1" "$(cat "$OUT/chat.time")" "$cpu0" "$cpu1" "$wire" "$ALT_BYTES" "$OUT/chat.in" <<'EOF'
import json, sys
alts = [json.loads(l) for l in open(sys.argv[1])]
t0, t1 = float(sys.argv[2]), float(sys.argv[3])
u, s = map(float, sys.argv[4].split())
hz = 100
cpu_rx = (int(sys.argv[6]) - int(sys.argv[5])) / hz
wire = int(sys.argv[7] or 0)
payload = int(sys.argv[8]) + sum(len(l.encode()) - 1 for l in open(sys.argv[9]) if not l.startswith('/send'))
alts.append({'alt': 'socklab (Rust)', 'wire_bytes': wire, 'overhead_bytes': wire - payload,
             'overhead_pct': 100 * (wire - payload) / payload, 'mb_per_s': payload / 1e6 / (t1 - t0),
             'cpu_send_s': u + s, 'cpu_recv_s': cpu_rx, 'interleave': True, 'cut': 'detected',
             'cut_resume': True, 'file_ok': True, 'texts_ok': True, 'text_wait_ms': None})
print(f"  {'alternative':18} {'overhead':>14} {'MB/s':>8} {'CPU send':>9} {'CPU recv':>9}  {'interleave':18} {'cut connection':24} ok")
for a in alts:
    print(f"  {a['alt']:18} {a['overhead_bytes']:>9} {a['overhead_pct']:>3.2f}% {a['mb_per_s']:>8.1f} {a['cpu_send_s']:>8.2f}s {a['cpu_recv_s']:>8.2f}s"
          f"  {str(a['interleave']):18} {a['cut'] + (', resumable' if a.get('cut_resume') else ''):24} {a['file_ok'] and a['texts_ok']}")
    if a.get('text_wait_ms') is not None:
        print(f"  {'':18} a text queued during the file waited {a['text_wait_ms']:.1f} ms")
EOF
echo "(The Python rows compare the formats with each other; the Rust row is socklab itself.)"
