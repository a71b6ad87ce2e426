#!/usr/bin/env bash
# test.sh: the test command. The integration tests run socklab against real peers (nc, Python,
# curl, wget, nginx, tinyproxy, xinetd, rdate, slowhttptest, Chromium, Firefox ESR, irtt, tcpdump, tshark,
# brotli, zstd, REDbot), so this script first makes sure those programs are installed, then runs
# `cargo test`.
#
#   ./test.sh                    install what is missing, then every test (unit, integration, doc)
#   ./test.sh http_server        the same, then `cargo test http_server` (arguments go to cargo)
#   ./test.sh --no-install       only list what is missing (exit 0 if nothing, 1 otherwise)
#
# Missing programs are installed with apt-get (Debian and Ubuntu package names), as root or
# through non-interactive sudo; `apt-get update` runs only when something must be installed.
# Where that is not possible the script names the packages to install and exits 1.
# Python peers from PyPI (REDbot) go into their own virtualenv under target/ (python3 -m venv,
# then pip install), made when missing; no root needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# PROGRAM  PACKAGE(S)  what needs it. A program counts as present when it is on the PATH (with
# the sbin directories added, as root has them) and, for nc, when it is the OpenBSD netcat.
PEERS=(
    "cc            gcc,libc6-dev   building the ring crate (rustls) and linking"
    "nc            netcat-openbsd  echo, calc, simple, cli: nc -N (half-close), -u, -z as the classic client"
    "python3       python3         echo, calc, simple, http_*: Python socket peers, http.client, the test origins and proxy"
    "curl          curl            http_server, http_client_interop, cli: curl as client and reference downloader"
    "wget          wget            http_server: wget downloads"
    "nginx         nginx           http_client_interop: nginx origin (static files, ranges, gzip, https)"
    "tinyproxy     tinyproxy-bin   http_client_interop: tinyproxy as the http proxy (absolute form, CONNECT, auth)"
    "slowhttptest  slowhttptest    http_server: the slowloris attack"
    "xinetd        xinetd          simple: socklab's clients against xinetd's built-in services"
    "rdate         rdate           simple: rdate against the time server"
    "chromium      chromium        http_browser: headless Chromium renders pages, screenshots"
    "firefox-esr   firefox-esr     http_browser: headless Firefox screenshots"
    "ii            ii              chat_irc: a real IRC client, scripted through its files"
    "irssi         irssi           chat_irc: irssi in tmux, registration, collision, messages both ways"
    "tmux          tmux            chat_irc: a terminal for irssi"
    "ngircd        ngircd          chat_irc: the same scripted IRC session against ngircd"
    "irtt          irtt            rtt: irtt's server and client measure the same impaired path as socklab rtt"
    "nft           nftables        rtt: a firewall (in a private network namespace) that rejects probes"
    "pnmtojpeg     netpbm          transfer: real PNG and JPEG encoders and decoders for the images sent"
    "tcpdump       tcpdump         rexec: a capture of a login and a command, searched for the secrets"
    "tshark        tshark          rexec: decrypts that capture with the client's SSLKEYLOGFILE"
    "argon2        argon2          rexec: the reference Argon2 tool makes a hash the users file takes"
    "openssl       openssl         rexec: s_client recomputes the host key's fingerprint"
    "redis-server  redis-server    chat_cluster: the cluster's Redis, killed and restarted by the tests"
    "redis-cli     redis-tools     chat_cluster: checks on the cluster's keys"
    "kill          procps          cli, http_server, support: signals to servers (/usr/bin/kill)"
    "ip            iproute2        echo, simple: loopback up inside a private network namespace; chat: ss shows keepalive timers"
    "unshare       util-linux      echo, simple: unshare -n (private network namespace; needs root)"
    "setpriv       util-linux      cli, simple, http_server: run socklab as an unprivileged user"
    "script        bsdutils        http_client_interop: a pseudo-terminal for the progress bar"
    "bash          bash            cli, echo, simple: shell pipelines around socklab"
    "gzip          gzip            http_precompressed: gzip -k makes FILE.gz"
    "brotli        brotli          http_precompressed: brotli -k makes FILE.br"
    "zstd          zstd            http_precompressed: zstd -k makes FILE.zst"
)

# VIRTUALENV  PIP REQUIREMENT  what needs it. Each is made under target/ when its bin/python
# is missing. The version is pinned: a newer linter may add notes the tests did not expect.
PIP_PEERS=(
    "target/redbot-venv  redbot==2.7.1  http_redbot: REDbot lints socklab's HTTP answers"
)

say() { printf 'test.sh: %s\n' "$*" >&2; }

missing_venvs() { # prints "VENV REQUIREMENT" for each virtualenv not made yet
    local entry venv requirement _what
    for entry in "${PIP_PEERS[@]}"; do
        read -r venv requirement _what <<<"$entry"
        [[ -x "$venv/bin/python" ]] || printf '%s %s\n' "$venv" "$requirement"
    done
}

make_venvs() { # makes each missing virtualenv; exits 1 if one cannot be made
    local venv requirement
    while read -r venv requirement; do
        [[ -n "$venv" ]] || continue
        say "making $venv: python3 -m venv, pip install $requirement"
        if ! python3 -m venv "$venv"; then
            rm -rf "$venv"
            say "python3 -m venv failed (Debian: apt-get install python3-venv)"
            exit 1
        fi
        if ! "$venv/bin/pip" install -q "$requirement"; then
            rm -rf "$venv"
            say "pip install $requirement failed (is PyPI reachable?)"
            exit 1
        fi
    done <<<"$(missing_venvs)"
}

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

present() { # PROGRAM: true when installed (as an executable file, not a shell builtin)
    local path
    path="$(PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" type -P "$1")" || return 1
    case "$1" in
    # netcat-traditional also installs `nc`, without -N: the tests need OpenBSD's.
    nc) "$path" -h 2>&1 | grep -q -- '-N' ;;
    esac
}

missing_packages() { # prints "PROGRAM PACKAGE,..." for each missing program
    local entry program packages _what
    for entry in "${PEERS[@]}"; do
        read -r program packages _what <<<"$entry"
        present "$program" || printf '%s %s\n' "$program" "$packages"
    done
}

cannot_install() { # REASON PACKAGE...
    local reason=$1
    shift
    say "cannot install the missing programs: $reason"
    say "install these packages (as root), then run ./test.sh again:"
    say "  apt-get install --no-install-recommends $*"
    exit 1
}

install() { # PACKAGE...
    local -a as_root=()
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            cannot_install "not root, and sudo cannot run without a password" "$@"
        fi
    fi
    command -v apt-get >/dev/null || cannot_install "no apt-get (the names are Debian's)" "$@"
    say "installing with apt-get: $*"
    # Another apt may hold the lock for a while (unattended upgrades): wait for it.
    local -a apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    "${apt[@]}" update -qq || say "apt-get update failed; trying with the package lists there are"
    "${apt[@]}" install -y -qq --no-install-recommends "$@" ||
        cannot_install "apt-get install failed" "$@"
}

main() {
    local no_install=0
    case "${1:-}" in
    --no-install)
        no_install=1
        shift
        [[ $# -eq 0 ]] || {
            say "--no-install takes no other argument"
            exit 2
        }
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    esac

    command -v cargo >/dev/null || {
        say "cargo is not on the PATH: install Rust first (https://rustup.rs)"
        exit 1
    }

    local lines program packages
    local -a programs=() wanted=() some=()
    lines="$(missing_packages)"
    while read -r program packages; do
        [[ -n "$program" ]] || continue
        programs+=("$program")
        IFS=, read -r -a some <<<"$packages"
        wanted+=("${some[@]}")
    done <<<"$lines"
    # One name per package, in the order first needed.
    mapfile -t wanted < <(printf '%s\n' "${wanted[@]}" | awk 'NF && !seen[$0]++')

    if [[ ${#programs[@]} -eq 0 ]]; then
        [[ $no_install == 0 ]] || say "every program the tests need is installed"
    elif [[ $no_install == 1 ]]; then
        say "missing: ${programs[*]}"
        say "packages: ${wanted[*]}"
        exit 1
    else
        say "missing: ${programs[*]}"
        install "${wanted[@]}"
        lines="$(missing_packages)"
        if [[ -n "$lines" ]]; then
            say "still missing after apt-get install: $(cut -d' ' -f1 <<<"$lines" | tr '\n' ' ')"
            exit 1
        fi
    fi
    lines="$(missing_venvs)"
    if [[ $no_install == 1 ]]; then
        if [[ -n "$lines" ]]; then
            say "missing virtualenvs: $(cut -d' ' -f1 <<<"$lines" | tr '\n' ' ')"
            exit 1
        fi
        exit 0
    fi
    make_venvs

    exec cargo test "$@"
}

main "$@"
