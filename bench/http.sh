#!/usr/bin/env bash
# bench/http.sh: the static HTTP server beside nginx and `python3 -m http.server`, in one run.
#
# Serves one directory (a 1 KiB index.html, a 100 KiB file, a 64 MiB file) with
#   socklab   socklab http serve DIR -q --no-access-log
#   nginx     Debian's nginx: sendfile on, access_log off, one worker per core the server may
#             use (it is pinned to one core here, so one worker), keepalive_requests 100000
#   python    python3 -m http.server (single-threaded ThreadingHTTPServer, as shipped)
# and loads each with wrk on loopback: requests/s and p50/p99 latency for the 1 KiB and
# 100 KiB files (CONNS connections), MB/s for the 64 MiB file (4 connections). Every figure is
# printed with its ratio to nginx. Servers run on core 0, wrk on core 1 (taskset); ROUNDS
# interleaved rounds, medians.
#
# Environment: ROUNDS=2 DURATION=10 CONNS=50 CARGO_TARGET_DIR  (quick: ROUNDS=1 DURATION=3)
# The medians are computed over word-split lists on purpose.
# shellcheck disable=SC2046
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-50}"
OUT="$HERE/out/http"
WWW="$OUT/www"
die() { echo "bench/http.sh: $*" >&2; exit 1; }
for tool in wrk nginx taskset python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install wrk nginx)"
done
mkdir -p "$WWW" "$OUT/nginx"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== building socklab (release) and the document root"
(cd "$ROOT" && cargo build --release --quiet)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/socklab"
python3 - "$WWW" <<'PY'
import os, sys
www = sys.argv[1]
head = "<!doctype html><html><head><meta charset=utf-8><title>bench</title></head><body><p>"
tail = "</p></body></html>\n"
with open(os.path.join(www, "index.html"), "w") as f:
    f.write(head + "x" * (1024 - len(head) - len(tail)) + tail)
with open(os.path.join(www, "100k.bin"), "wb") as f:
    f.write(os.urandom(100 * 1024))
big = os.path.join(www, "64m.bin")
if not os.path.exists(big) or os.path.getsize(big) != 64 << 20:
    with open(big, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# socklab
taskset -c 0 "$BIN" http serve "$WWW" -p 0 -q --no-access-log >"$OUT/socklab.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$OUT/socklab.log" && break; sleep 0.05; done
P_SOCKLAB=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$OUT/socklab.log" | head -1)
[[ -n "$P_SOCKLAB" ]] || die "socklab did not start: $(cat "$OUT/socklab.log")"

# nginx
P_NGINX=$(free_port)
cat > "$OUT/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path $OUT/nginx/body;
    proxy_temp_path $OUT/nginx/proxy;
    fastcgi_temp_path $OUT/nginx/fastcgi;
    uwsgi_temp_path $OUT/nginx/uwsgi;
    scgi_temp_path $OUT/nginx/scgi;
    server {
        listen 127.0.0.1:$P_NGINX;
        root $WWW;
    }
}
CONF
taskset -c 0 nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log" &
PIDS+=($!)

# python
P_PYTHON=$(free_port)
taskset -c 0 python3 -m http.server "$P_PYTHON" --bind 127.0.0.1 --directory "$WWW" >"$OUT/python.log" 2>&1 &
PIDS+=($!)
sleep 1

run_wrk() { # port path conns -> "rps p50_us p99_us MBps"
    taskset -c 1 wrk -t1 -c"$3" -d"${DURATION}s" --latency "http://127.0.0.1:$1/$2" 2>&1 | awk '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
        function mb(v) { if (v ~ /GB$/) return v * 1024; if (v ~ /MB$/) return v + 0; if (v ~ /KB$/) return v / 1024; return v / 1048576 }
        /Requests\/sec/ { rps = $2 } / 50%/ { p50 = us($2) } / 99%/ { p99 = us($2) } /Transfer\/sec/ { mbs = mb($2) }
        END { printf "%s %s %s %s\n", rps + 0, p50 + 0, p99 + 0, mbs + 0 }'
}

declare -A R
for r in $(seq "$ROUNDS"); do
    for srv in socklab nginx python; do
        case $srv in socklab) p=$P_SOCKLAB ;; nginx) p=$P_NGINX ;; python) p=$P_PYTHON ;; esac
        echo "== round $r/$ROUNDS: $srv"
        R[$srv-1k-$r]=$(run_wrk "$p" index.html "$CONNS")
        R[$srv-100k-$r]=$(run_wrk "$p" 100k.bin "$CONNS")
        R[$srv-64m-$r]=$(run_wrk "$p" 64m.bin 4)
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
field() { local key=$1 f=$2; for r in $(seq "$ROUNDS"); do echo "${R[$key-$r]}" | awk -v f="$f" '{print $f}'; done; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0) ? a / b : 0 }'; }

echo
echo "Static files over HTTP/1.1 keep-alive, wrk -t1 on core 1, servers on core 0, ${DURATION}s runs, medians of $ROUNDS"
printf '  %-9s %-9s %12s %7s %10s %10s %12s %7s\n' server file "requests/s" "xnginx" "p50 us" "p99 us" "MB/s" "xnginx"
for file in 1k 100k 64m; do
    n_rps=$(median $(field "nginx-$file" 1)); n_mbs=$(median $(field "nginx-$file" 4))
    for srv in socklab nginx python; do
        rps=$(median $(field "$srv-$file" 1)); p50=$(median $(field "$srv-$file" 2))
        p99=$(median $(field "$srv-$file" 3)); mbs=$(median $(field "$srv-$file" 4))
        printf '  %-9s %-9s %12.0f %7s %10.0f %10.0f %12.1f %7s\n' "$srv" "$file" "$rps" "$(ratio "$rps" "$n_rps")" "$p50" "$p99" "$mbs" "$(ratio "$mbs" "$n_mbs")"
    done
done
echo "Targets: socklab >= 1.0x nginx requests/s on 1k (access log off); >= 0.9x nginx MB/s on 64m."
