#!/usr/bin/env bash
# bench/http-get.sh: `socklab http get` beside curl and wget, downloading one big file from nginx
# on loopback, in one run.
#
# nginx (Debian's; sendfile on, access_log off, one worker pinned to core 0) serves a file of
# SIZE random bytes made under bench/out/http-get/ (kept between runs). Each round downloads it
# once with each client (pinned to core 1; the order rotates every round), writing to a file
# under bench/out/http-get/dl/, then checks the copy byte for byte (cmp) and deletes it:
#   socklab   socklab http get URL -O FILE -q      (release build)
#   curl      curl -sS -o FILE URL
#   wget      wget -q -O FILE URL
# GNU time gives each run's elapsed time and peak RSS. Prints, per client, the median MiB/s over
# ROUNDS, its ratio to curl, and the median and max peak RSS.
#
# Environment: SIZE=1G ROUNDS=5 CARGO_TARGET_DIR TOOLS="socklab curl wget"
#   (quick check: SIZE=64M ROUNDS=1; TOOLS="curl wget" checks the script without socklab)
# Every download is bounded by `timeout` (LIMIT seconds, default 600); nginx and the partial
# downloads are removed on exit, whatever happens.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=bench/nginx.sh
. "$BENCH/nginx.sh"
SIZE="${SIZE:-1G}"
ROUNDS="${ROUNDS:-5}"
LIMIT="${LIMIT:-600}"
OUT="$BENCH/out/http-get"
WWW="$OUT/www"
DL="$OUT/dl"
LOGS="$OUT"
# Loopback only, no proxy in between.
unset http_proxy https_proxy no_proxy all_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY

need nginx curl wget taskset timeout python3 cmp -- "apt-get install nginx curl wget util-linux coreutils python3 diffutils"
if ! /usr/bin/time -f %M true >/dev/null 2>&1; then die "GNU time is not installed (apt-get install time)"; fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, not '$ROUNDS'"
BYTES=$(numfmt --from=iec "$SIZE" 2>/dev/null) || die "SIZE must look like 64M or 1G, not '$SIZE'"
(( BYTES > 0 && BYTES <= 8 << 30 )) || die "SIZE must be between 1 byte and 8G"
read -r -a TOOLS <<< "${TOOLS:-socklab curl wget}"
for t in "${TOOLS[@]}"; do
    case $t in socklab | curl | wget) ;; *) die "TOOLS may name socklab, curl and wget, not '$t'" ;; esac
done

mkdir -p "$WWW" "$DL" "$OUT/nginx"
on_exit() {
    cleanup
    rm -f "$DL"/*.bin
}
trap on_exit EXIT

if [[ " ${TOOLS[*]} " == *" socklab "* ]]; then
    echo "== building socklab (release)"
    build_socklab
    "$SOCKLAB" http get --help >/dev/null 2>&1 || die "$SOCKLAB has no 'http get' yet (TOOLS=\"curl wget\" runs the others)"
fi

FILE="$WWW/file.bin"
if [[ ! -f "$FILE" ]] || [[ "$(stat -c %s "$FILE")" != "$BYTES" ]]; then
    echo "== making $SIZE of random bytes in $FILE"
    head -c "$BYTES" /dev/urandom > "$FILE.tmp"
    mv "$FILE.tmp" "$FILE"
fi

# nginx on core 0 on a free port; another one if that port was taken in between.
SRV_PIN=(taskset -c 0)
PORT=""
for _ in 1 2 3 4 5; do
    p=$(free_port)
    write_nginx_conf "$OUT/nginx" "$WWW" "$p"
    : > "$OUT/nginx/error.log"
    if try_start_server nginx "$p" nginx -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/error.log"; then
        PORT=$p
        break
    fi
    grep -q "Address already in use" "$OUT/nginx/error.log" || die "nginx did not start: $(cat "$OUT/nginx/error.log")"
done
[[ -n "$PORT" ]] || die "nginx could not bind a free port"
URL="http://127.0.0.1:$PORT/file.bin"

declare -A SECS RSS
run_one() { # tool round
    local tool=$1 r=$2 dest="$DL/$1.bin" tf="$OUT/time.txt"
    local -a cmd
    case $tool in
        socklab) cmd=("$SOCKLAB" http get "$URL" -O "$dest" -q) ;;
        curl) cmd=(curl -sS -o "$dest" "$URL") ;;
        wget) cmd=(wget -q -O "$dest" "$URL") ;;
    esac
    rm -f "$dest" "$dest.part"
    local t0=$EPOCHREALTIME t1
    if ! taskset -c 1 /usr/bin/time -f '%M' -o "$tf" timeout "$LIMIT" "${cmd[@]}"; then
        die "$tool failed in round $r ($(cat "$tf" 2>/dev/null))"
    fi
    t1=$EPOCHREALTIME
    cmp -s "$dest" "$FILE" || die "$tool saved a file that differs from the original (round $r)"
    rm -f "$dest"
    SECS[$tool-$r]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
    RSS[$tool-$r]=$(tail -1 "$tf")
    printf '   %-8s %8.3f s %10.1f MiB/s %8.1f MB peak RSS\n' "$tool" "${SECS[$tool-$r]}" \
        "$(mibps "${SECS[$tool-$r]}")" "$(awk -v k="${RSS[$tool-$r]}" 'BEGIN { print k / 1024 }')"
}
mibps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.1f", (s > 0) ? b / 1048576 / s : 0 }'; }

for r in $(seq "$ROUNDS"); do
    echo "== round $r/$ROUNDS: $SIZE from nginx on loopback"
    for i in "${!TOOLS[@]}"; do
        run_one "${TOOLS[$(( (i + r - 1) % ${#TOOLS[@]} ))]}" "$r"
    done
done

col() { local -n m=$1; local t=$2 r; for r in $(seq "$ROUNDS"); do echo "${m[$t-$r]}"; done; }

echo
echo "Download of $SIZE ($BYTES bytes) from nginx on 127.0.0.1 (sendfile), client on core 1, medians of $ROUNDS"
printf '  %-8s %10s %8s %16s %14s\n' client "MiB/s" xcurl "median RSS MB" "max RSS MB"
# The medians are over word-split lists on purpose (SC2046).
curl_rate=0
# shellcheck disable=SC2046
if [[ " ${TOOLS[*]} " == *" curl "* ]]; then curl_rate=$(mibps "$(median $(col SECS curl))"); fi
for t in "${TOOLS[@]}"; do
    # shellcheck disable=SC2046
    rate=$(mibps "$(median $(col SECS "$t"))")
    # shellcheck disable=SC2046
    rss_med=$(median $(col RSS "$t"))
    rss_max=$(col RSS "$t" | sort -g | tail -1)
    printf '  %-8s %10.1f %7.2fx %16.1f %14.1f\n' "$t" "$rate" \
        "$(awk -v a="$rate" -v b="$curl_rate" 'BEGIN { print (b > 0) ? a / b : 0 }')" \
        "$(awk -v k="$rss_med" 'BEGIN { print k / 1024 }')" "$(awk -v k="$rss_max" 'BEGIN { print k / 1024 }')"
done
echo "Targets (issue 5): socklab >= 1.0x curl's throughput; socklab peak RSS < 16 MB whatever SIZE."
