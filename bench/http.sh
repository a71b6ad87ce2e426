#!/usr/bin/env bash
# bench/http.sh: the static HTTP server beside nginx and `python3 -m http.server`, in one run.
#
# Serves one directory (a 1 KiB index.html, a 100 KiB file, a 64 MiB file) with
#   socklab   socklab http serve DIR -q --no-access-log
#   nginx     Debian's nginx: sendfile on, access_log off, one worker per core the server may
#             use (it is pinned to one core here, so one worker), keepalive_requests 100000
#   python    python3 -m http.server (single-threaded ThreadingHTTPServer, as shipped)
# and loads each with wrk on loopback: requests/s and p50/p99 latency for the 1 KiB and
# 100 KiB files (CONNS connections), MB/s for the 64 MiB file (4 connections). The 1 KiB file
# is also loaded over HTTPS (row 1k-tls: socklab --tls-cert/--tls-key and nginx's `listen
# ssl`, one ECDSA P-256 certificate made by openssl for both, wrk's keep-alive connections, so
# the handshakes are CONNS and the rest is record encryption). Every figure is
# printed with its ratio to nginx, and so is each server's CPU time per request (user + system,
# from /proc), a figure this VM's drift disturbs less than requests/s. Servers run on core 0,
# wrk on core 1 (taskset); ROUNDS rounds, each file measured on the three servers back to back;
# medians.
#
# Environment: ROUNDS=2 DURATION=10 CONNS=50 CARGO_TARGET_DIR  (quick: ROUNDS=1 DURATION=3)
# The medians are computed over word-split lists on purpose.
# shellcheck disable=SC2046
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/nginx.sh
. "$BENCH/nginx.sh"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-50}"
OUT="$BENCH/out/http"
WWW="$OUT/www"
LOGS="$OUT"
need wrk nginx taskset python3 openssl -- "apt-get install wrk nginx util-linux python3 openssl"
mkdir -p "$WWW" "$OUT/nginx" "$OUT/tls"

echo "== building socklab (release) and the document root"
build_socklab
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

# One certificate and key for both HTTPS servers.
CERT="$OUT/tls/cert.pem" KEY="$OUT/tls/key.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$KEY" -out "$CERT" 2>/dev/null || die "openssl req failed"
chmod 600 "$KEY"

# The servers on core 0, each waited for until it serves.
SRV_PIN=(taskset -c 0)
start_server socklab "" "$SOCKLAB" http serve "$WWW" -p 0 -q --no-access-log
PID_SOCKLAB=$SRV_PID P_SOCKLAB=$SRV_PORT
start_server socklab-tls "" "$SOCKLAB" http serve "$WWW" -p 0 -q --no-access-log --tls-cert "$CERT" --tls-key "$KEY"
PID_SOCKLAB_TLS=$SRV_PID P_SOCKLAB_TLS=$SRV_PORT
P_NGINX=$(free_port)
P_NGINX_TLS=$(free_port)
write_nginx_conf "$OUT/nginx" "$WWW" "$P_NGINX" "$P_NGINX_TLS" "$CERT" "$KEY"
start_server nginx "$P_NGINX" nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log"
PID_NGINX=$SRV_PID
P_PYTHON=$(free_port)
start_server python "$P_PYTHON" python3 -m http.server "$P_PYTHON" --bind 127.0.0.1 --directory "$WWW"
PID_PYTHON=$SRV_PID

# CPU time (user + system, clock ticks) of a process and its children (nginx's worker is a child
# of its master). /proc/PID/stat sums all the process's threads, ended ones too (Python's
# http.server ends a thread per connection).
cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(pgrep -P "$1"); do
        [[ -r /proc/$pid/stat ]] && total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

run_wrk() { # port path conns server_pid [scheme] -> "rps p50_us p99_us MBps cpu_us_per_request"
    local c0 c1 out
    c0=$(cpu_ticks "$4")
    out=$(taskset -c 1 wrk -t1 -c"$3" -d"${DURATION}s" --latency "${5:-http}://127.0.0.1:$1/$2" 2>&1)
    c1=$(cpu_ticks "$4")
    echo "$out" | awk -v ticks=$((c1 - c0)) -v hz="$HZ" '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
        function mb(v) { if (v ~ /GB$/) return v * 1024; if (v ~ /MB$/) return v + 0; if (v ~ /KB$/) return v / 1024; return v / 1048576 }
        /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } / 50%/ { p50 = us($2) } / 99%/ { p99 = us($2) } /Transfer\/sec/ { mbs = mb($2) }
        END { printf "%s %s %s %s %s\n", rps + 0, p50 + 0, p99 + 0, mbs + 0, (n > 0) ? ticks / hz * 1e6 / n : 0 }'
}

declare -A R
# Files outer, servers inner: the runs being compared are seconds apart, not a whole round, so
# this VM's drift (10-30 % over minutes) hits them alike.
for r in $(seq "$ROUNDS"); do
    for key in 1k 100k 64m 1k-tls; do
        case $key in
            1k) file=index.html conns=$CONNS servers="socklab nginx python" ;;
            100k) file=100k.bin conns=$CONNS servers="socklab nginx python" ;;
            64m) file=64m.bin conns=4 servers="socklab nginx python" ;;
            1k-tls) file=index.html conns=$CONNS servers="socklab nginx" ;;
        esac
        echo "== round $r/$ROUNDS: $key"
        for srv in $servers; do
            scheme=http
            case $srv-$key in
                socklab-1k-tls) p=$P_SOCKLAB_TLS pid=$PID_SOCKLAB_TLS scheme=https ;;
                nginx-1k-tls) p=$P_NGINX_TLS pid=$PID_NGINX scheme=https ;;
                socklab-*) p=$P_SOCKLAB pid=$PID_SOCKLAB ;;
                nginx-*) p=$P_NGINX pid=$PID_NGINX ;;
                python-*) p=$P_PYTHON pid=$PID_PYTHON ;;
            esac
            R[$srv-$key-$r]=$(run_wrk "$p" "$file" "$conns" "$pid" "$scheme")
        done
    done
done

field() { local key=$1 f=$2; for r in $(seq "$ROUNDS"); do echo "${R[$key-$r]}" | awk -v f="$f" '{print $f}'; done; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", (b > 0) ? a / b : 0 }'; }

echo
echo "Static files over HTTP/1.1 keep-alive, wrk -t1 on core 1, servers on core 0, ${DURATION}s runs, medians of $ROUNDS"
echo "(cpu us/req: the server's user+system CPU time per request, which this VM's drift disturbs less)"
printf '  %-9s %-9s %12s %7s %10s %10s %12s %7s %12s %7s\n' server file "requests/s" "xnginx" "p50 us" "p99 us" "MB/s" "xnginx" "cpu us/req" "xnginx"
for file in 1k 100k 64m 1k-tls; do
    n_rps=$(median $(field "nginx-$file" 1)); n_mbs=$(median $(field "nginx-$file" 4)); n_cpu=$(median $(field "nginx-$file" 5))
    servers="socklab nginx python"
    [[ $file != *-tls ]] || servers="socklab nginx"
    for srv in $servers; do
        rps=$(median $(field "$srv-$file" 1)); p50=$(median $(field "$srv-$file" 2))
        p99=$(median $(field "$srv-$file" 3)); mbs=$(median $(field "$srv-$file" 4)); cpu=$(median $(field "$srv-$file" 5))
        printf '  %-9s %-9s %12.0f %7s %10.0f %10.0f %12.1f %7s %12.1f %7s\n' "$srv" "$file" "$rps" "$(ratio "$rps" "$n_rps")" "$p50" "$p99" "$mbs" "$(ratio "$mbs" "$n_mbs")" "$cpu" "$(ratio "$n_cpu" "$cpu")"
    done
done
echo "Targets: socklab >= 1.0x nginx requests/s on 1k (access log off); >= 0.9x nginx MB/s on 64m;"
echo "         >= 1.0x nginx requests/s on 1k-tls (HTTPS, same certificate, keep-alive)."
echo "1k over TLS with keep-alive: socklab/nginx requests/s $(ratio "$(median $(field socklab-1k-tls 1))" "$(median $(field nginx-1k-tls 1))")"
echo "(the cpu ratio is nginx's CPU per request over the server's: above 1.0x means cheaper than nginx)"
