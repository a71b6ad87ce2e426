#!/usr/bin/env bash
# bench/http.sh: the static HTTP server beside nginx, lighttpd and `python3 -m http.server`,
# in one run.
#
# Serves one directory (a 1 KiB index.html, a 100 KiB file, a 64 MiB file) with
#   socklab       socklab http serve DIR -q --no-access-log (its open-file cache on, the default)
#   socklab-log   the same with --access-log FILE
#   nginx         Debian's nginx: sendfile on, access_log off, one worker (it is pinned to one
#                 core), keepalive_requests 100000
#   nginx-log     the same, access_log FILE (combined format)
#   nginx-ofc     the same as nginx plus open_file_cache max=10000 inactive=20s;
#                 open_file_cache_valid 1s (one nginx process serves all three on three ports)
#   lighttpd      Debian's lighttpd: sendfile backend, max-keep-alive-requests 100000, no log
#   lighttpd-log  the same with mod_accesslog to FILE
#   python        python3 -m http.server (ThreadingHTTPServer, as shipped)
# and loads each with wrk on loopback: requests/s and p50/p99 latency for the 1 KiB and
# 100 KiB files (CONNS connections; 1k-c1: one connection), MB/s for the 64 MiB file (4
# connections). The 1 KiB file is also loaded over HTTPS (row 1k-tls: socklab
# --tls-cert/--tls-key and nginx's `listen ssl`, one ECDSA P-256 certificate made by openssl
# for both, wrk's keep-alive connections, so the handshakes are CONNS and the rest is record
# encryption). Every figure is printed with its ratio to nginx (to nginx-log on the 1k-log
# row), and so is each server's CPU time per request (user + system, from /proc), a figure
# this VM's drift disturbs less than requests/s, and its system calls per request (perf stat
# on raw_syscalls:sys_enter while wrk runs; "na" without perf). Servers run on core 0, wrk on
# core 1 (taskset); ROUNDS rounds, each file measured on its servers back to back; medians.
#
# Environment: ROUNDS=2 DURATION=10 CONNS=50 CARGO_TARGET_DIR, ROWS="1k 1k-log 1k-c1 100k 64m
# 1k-tls" (a subset measures only those rows; quick: ROUNDS=1 DURATION=3)
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
need wrk nginx lighttpd taskset python3 openssl -- "apt-get install wrk nginx lighttpd util-linux python3 openssl (and linux-perf for the syscall column)"
mkdir -p "$WWW" "$OUT/nginx" "$OUT/tls" "$OUT/lighttpd"

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
# Files of a published site are not being written: an hour-old mtime (socklab keeps the
# bytes of small files only once their mtime is over a second old).
old = os.stat(www).st_mtime - 3600
for name in ("index.html", "100k.bin"):
    os.utime(os.path.join(www, name), (old, old))
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
rm -f "$OUT/socklab-access.log" "$OUT/nginx/access.log" "$OUT/lighttpd/access.log"
start_server socklab-log "" "$SOCKLAB" http serve "$WWW" -p 0 -q --access-log "$OUT/socklab-access.log"
PID_SOCKLAB_LOG=$SRV_PID P_SOCKLAB_LOG=$SRV_PORT
start_server socklab-tls "" "$SOCKLAB" http serve "$WWW" -p 0 -q --no-access-log --tls-cert "$CERT" --tls-key "$KEY"
PID_SOCKLAB_TLS=$SRV_PID P_SOCKLAB_TLS=$SRV_PORT
P_NGINX=$(free_port)
P_NGINX_TLS=$(free_port)
NGINX_LOG_PORT=$(free_port) NGINX_OFC_PORT=$(free_port) NGINX_LOG_FILE="$OUT/nginx/access.log" \
    write_nginx_conf "$OUT/nginx" "$WWW" "$P_NGINX" "$P_NGINX_TLS" "$CERT" "$KEY"
P_NGINX_LOG=$(awk '/listen/ { n++ } n == 3 && /listen/ { sub(/.*:/, ""); sub(/;.*/, ""); print; exit }' "$OUT/nginx/nginx.conf")
P_NGINX_OFC=$(awk '/listen/ { n++ } n == 4 && /listen/ { sub(/.*:/, ""); sub(/;.*/, ""); print; exit }' "$OUT/nginx/nginx.conf")
start_server nginx "$P_NGINX" nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log"
PID_NGINX=$SRV_PID
# lighttpd: its defaults plus what a fair peer needs (keep-alive as long as nginx's, sendfile).
write_lighttpd_conf() { # FILE PORT [ACCESS_LOG]
    cat >"$1" <<CONF
server.document-root = "$WWW"
server.bind = "127.0.0.1"
server.port = $2
server.max-keep-alive-requests = 100000
server.max-keep-alive-idle = 30
server.network-backend = "sendfile"
server.max-fds = 8192
server.errorlog = "$OUT/lighttpd/error-$2.log"
include_shell "/usr/share/lighttpd/create-mime.conf.pl"
CONF
    if [[ -n "${3:-}" ]]; then
        printf 'server.modules += ("mod_accesslog")\naccesslog.filename = "%s"\n' "$3" >>"$1"
    fi
}
P_LIGHTTPD=$(free_port)
write_lighttpd_conf "$OUT/lighttpd/plain.conf" "$P_LIGHTTPD"
start_server lighttpd "$P_LIGHTTPD" lighttpd -D -f "$OUT/lighttpd/plain.conf"
PID_LIGHTTPD=$SRV_PID
P_LIGHTTPD_LOG=$(free_port)
write_lighttpd_conf "$OUT/lighttpd/log.conf" "$P_LIGHTTPD_LOG" "$OUT/lighttpd/access.log"
start_server lighttpd-log "$P_LIGHTTPD_LOG" lighttpd -D -f "$OUT/lighttpd/log.conf"
PID_LIGHTTPD_LOG=$SRV_PID
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

# System calls a process makes while wrk runs (perf stat on the raw_syscalls tracepoint, all
# of the process's threads), or "na" without perf or permission.
PERF_OK=""
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
    PERF_OK=1
fi
count_syscalls() { # pid seconds -> count
    if [[ -z "$PERF_OK" ]]; then
        echo na
        return
    fi
    local pids
    pids=$(printf '%s,' "$1" $(pgrep -P "$1"))
    perf stat -x, -e raw_syscalls:sys_enter -p "${pids%,}" -- sleep "$2" 2>&1 | awk -F, '/raw_syscalls/ { print $1 + 0 }'
}

run_wrk() { # port path conns server_pid [scheme] -> "rps p50_us p99_us MBps cpu_us_per_request syscalls_per_request"
    local c0 c1 out sc
    c0=$(cpu_ticks "$4")
    # The syscall count covers the middle of the run (from 1 s to DURATION-1 s); its
    # requests are estimated from the run's rate.
    (sleep 1; count_syscalls "$4" $((DURATION - 2)) >"$OUT/syscalls") &
    out=$(taskset -c 1 wrk -t1 -c"$3" -d"${DURATION}s" --latency "${5:-http}://127.0.0.1:$1/$2" 2>&1)
    wait
    c1=$(cpu_ticks "$4")
    sc=$(cat "$OUT/syscalls" 2>/dev/null || echo na)
    echo "$out" | awk -v ticks=$((c1 - c0)) -v hz="$HZ" -v sc="${sc:-na}" -v secs=$((DURATION - 2)) '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
        function mb(v) { if (v ~ /GB$/) return v * 1024; if (v ~ /MB$/) return v + 0; if (v ~ /KB$/) return v / 1024; return v / 1048576 }
        /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } / 50%/ { p50 = us($2) } / 99%/ { p99 = us($2) } /Transfer\/sec/ { mbs = mb($2) }
        END { printf "%s %s %s %s %s %s\n", rps + 0, p50 + 0, p99 + 0, mbs + 0, (n > 0) ? ticks / hz * 1e6 / n : 0,
              (sc == "na" || rps == 0) ? "na" : sprintf("%.2f", sc / (rps * secs)) }'
}

declare -A R
# Which servers each row loads, and the one its ratios are against.
servers_of() {
    case $1 in
        1k) echo "socklab nginx nginx-ofc lighttpd python" ;;
        1k-log) echo "socklab-log nginx-log lighttpd-log" ;;
        1k-c1) echo "socklab nginx lighttpd" ;;
        100k | 64m) echo "socklab nginx lighttpd python" ;;
        1k-tls) echo "socklab nginx" ;;
    esac
}
base_of() { [[ $1 == 1k-log ]] && echo nginx-log || echo nginx; }
ROWS="${ROWS:-1k 1k-log 1k-c1 100k 64m 1k-tls}"
# Files outer, servers inner: the runs being compared are seconds apart, not a whole round, so
# this VM's drift (10-30 % over minutes) hits them alike.
for r in $(seq "$ROUNDS"); do
    for key in $ROWS; do
        case $key in
            1k | 1k-log | 1k-tls) file=index.html conns=$CONNS ;;
            1k-c1) file=index.html conns=1 ;;
            100k) file=100k.bin conns=$CONNS ;;
            64m) file=64m.bin conns=4 ;;
        esac
        echo "== round $r/$ROUNDS: $key"
        for srv in $(servers_of "$key"); do
            scheme=http
            case $srv-$key in
                socklab-1k-tls) p=$P_SOCKLAB_TLS pid=$PID_SOCKLAB_TLS scheme=https ;;
                nginx-1k-tls) p=$P_NGINX_TLS pid=$PID_NGINX scheme=https ;;
                socklab-log-*) p=$P_SOCKLAB_LOG pid=$PID_SOCKLAB_LOG ;;
                socklab-*) p=$P_SOCKLAB pid=$PID_SOCKLAB ;;
                nginx-log-*) p=$P_NGINX_LOG pid=$PID_NGINX ;;
                nginx-ofc-*) p=$P_NGINX_OFC pid=$PID_NGINX ;;
                nginx-*) p=$P_NGINX pid=$PID_NGINX ;;
                lighttpd-log-*) p=$P_LIGHTTPD_LOG pid=$PID_LIGHTTPD_LOG ;;
                lighttpd-*) p=$P_LIGHTTPD pid=$PID_LIGHTTPD ;;
                python-*) p=$P_PYTHON pid=$PID_PYTHON ;;
            esac
            R[$srv-$key-$r]=$(run_wrk "$p" "$file" "$conns" "$pid" "$scheme")
        done
    done
done

field() { local key=$1 f=$2; for r in $(seq "$ROUNDS"); do echo "${R[$key-$r]}" | awk -v f="$f" '{print $f}'; done; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "na" || b == "na" || b <= 0) print "na"; else printf "%.2fx", a / b }'; }
med() { local m; m=$(median $(field "$1" "$2" | grep -v na)); echo "$m"; }

echo
echo "Static files over HTTP/1.1 keep-alive, wrk -t1 on core 1, servers on core 0, ${DURATION}s runs, medians of $ROUNDS"
echo "(xbase: against nginx, or nginx-log on the 1k-log row; cpu us/req: the server's user+system CPU"
echo " time per request, which this VM's drift disturbs less, its ratio base/server: above 1.0x is cheaper)"
printf '  %-12s %-7s %11s %7s %8s %8s %9s %7s %10s %7s %9s\n' server file "requests/s" "xbase" "p50 us" "p99 us" "MB/s" "xbase" "cpu us/req" "xbase" "syscall/req"
for file in $ROWS; do
    base=$(base_of "$file")
    b_rps=$(med "$base-$file" 1); b_mbs=$(med "$base-$file" 4); b_cpu=$(med "$base-$file" 5)
    for srv in $(servers_of "$file"); do
        rps=$(med "$srv-$file" 1); p50=$(med "$srv-$file" 2)
        p99=$(med "$srv-$file" 3); mbs=$(med "$srv-$file" 4); cpu=$(med "$srv-$file" 5); sc=$(med "$srv-$file" 6)
        printf '  %-12s %-7s %11.0f %7s %8.0f %8.0f %9.1f %7s %10.2f %7s %9s\n' "$srv" "$file" "$rps" "$(ratio "$rps" "$b_rps")" "$p50" "$p99" "$mbs" "$(ratio "$mbs" "$b_mbs")" "$cpu" "$(ratio "$b_cpu" "$cpu")" "$sc"
    done
done
rps() { med "$1-$2" 1; }
echo
echo "Targets (issue 15), requests/s ratios:"
printf '  1k, logs off:          socklab/nginx     %s (>= 1.3x)   socklab/lighttpd %s\n' "$(ratio "$(rps socklab 1k)" "$(rps nginx 1k)")" "$(ratio "$(rps socklab 1k)" "$(rps lighttpd 1k)")"
printf '  1k, logs to a file:    socklab/nginx     %s (>= 1.3x)   socklab/lighttpd %s\n' "$(ratio "$(rps socklab-log 1k-log)" "$(rps nginx-log 1k-log)")" "$(ratio "$(rps socklab-log 1k-log)" "$(rps lighttpd-log 1k-log)")"
printf '  1k, open_file_cache:   socklab/nginx-ofc %s (>= 1.0x)\n' "$(ratio "$(rps socklab 1k)" "$(rps nginx-ofc 1k)")"
printf '  1k, one connection:    socklab/nginx     %s (>= 1.15x)  socklab/lighttpd %s\n' "$(ratio "$(rps socklab 1k-c1)" "$(rps nginx 1k-c1)")" "$(ratio "$(rps socklab 1k-c1)" "$(rps lighttpd 1k-c1)")"
printf '  100k:                  socklab/nginx     %s (>= 1.0x)   socklab/lighttpd %s\n' "$(ratio "$(rps socklab 100k)" "$(rps nginx 100k)")" "$(ratio "$(rps socklab 100k)" "$(rps lighttpd 100k)")"
printf '  64m (MB/s):            socklab/nginx     %s (>= 1.0x)   socklab/lighttpd %s\n' "$(ratio "$(med socklab-64m 4)" "$(med nginx-64m 4)")" "$(ratio "$(med socklab-64m 4)" "$(med lighttpd-64m 4)")"
printf '  1k over TLS:           socklab/nginx     %s (>= 1.0x)\n' "$(ratio "$(rps socklab 1k-tls)" "$(rps nginx 1k-tls)")"
printf '  the log costs socklab %s of its requests/s, nginx %s, lighttpd %s (target: no more than nginx, <= 25 %%)\n' \
    "$(awk -v a="$(rps socklab-log 1k-log)" -v b="$(rps socklab 1k)" 'BEGIN { printf "%.0f %%", (1 - a / b) * 100 }')" \
    "$(awk -v a="$(rps nginx-log 1k-log)" -v b="$(rps nginx 1k)" 'BEGIN { printf "%.0f %%", (1 - a / b) * 100 }')" \
    "$(awk -v a="$(rps lighttpd-log 1k-log)" -v b="$(rps lighttpd 1k)" 'BEGIN { printf "%.0f %%", (1 - a / b) * 100 }')"
