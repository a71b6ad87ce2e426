#!/usr/bin/env python3
"""Hold many idle TCP connections open against an echo server and watch its memory.

usage: idle_conns.py -p PORT [--pid SERVER_PID] [-n 10000] [--hold 3] [--sample 100]
                     [--batch 500] [--host 127.0.0.1]

1. Reads the server's VmRSS (from /proc/PID/status) before connecting.
2. Opens N connections in batches of --batch non-blocking connects (each batch's handshakes
   complete before the next batch starts, so at most --batch SYNs are in flight; a server
   that accepts more slowly than that can still overflow its listen queue, which shows up
   as SYN drops in the report), then waits until the server holds them all (its open
   descriptor count, when --pid is given).
3. Holds them idle for --hold seconds and reads VmRSS again ("held").
4. Checks that no connection was closed by the server, then every --sample-th connection
   sends 8 bytes and must get the same 8 bytes back; reads VmRSS once more ("after echo").

Prints a readable report and one machine line starting with "RESULT ". Everything is
bounded in time. The script raises its own open-file limit as far as the hard limit
allows; the caller should run `ulimit -n 65536` first (for this script and the server).
"""

import argparse
import errno
import os
import resource
import selectors
import socket
import sys
import time

PROBE = b"idle-ok!"  # 8 bytes


def rss_kb(pid):
    """VmRSS of pid in KiB, or None."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def fd_count(pid):
    """Open descriptors of pid, or None if we cannot look."""
    if pid is None:
        return None
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def listen_drops():
    """The kernel's ListenOverflows + ListenDrops counters (system wide), or None.

    They grow when a SYN is dropped because a listen queue is full: the client then waits
    for the SYN retransmit (1 s, then 2 s, ...), so bursts of connects get slow."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            try:
                return int(table["ListenOverflows"]) + int(table["ListenDrops"])
            except (KeyError, ValueError):
                return None
    return None


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def connect_batch(addr, count, timeout):
    """Starts `count` non-blocking connects and waits for them; returns (socks, errors)."""
    sel = selectors.DefaultSelector()
    pending = {}
    ok, errors = [], {}

    def fail(code):
        name = errno.errorcode.get(code, str(code))
        errors[name] = errors.get(name, 0) + 1

    for _ in range(count):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            fail(e.errno or 0)
            continue
        s.setblocking(False)
        rc = s.connect_ex(addr)
        if rc == 0:
            ok.append(s)
        elif rc in (errno.EINPROGRESS, errno.EAGAIN):
            sel.register(s, selectors.EVENT_WRITE)
            pending[s.fileno()] = s
        else:
            fail(rc)
            s.close()
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            sel.unregister(s)
            del pending[s.fileno()]
            rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc == 0:
                ok.append(s)
            else:
                fail(rc)
                s.close()
    for s in pending.values():
        fail(errno.ETIMEDOUT)
        sel.unregister(s)
        s.close()
    sel.close()
    return ok, errors


def closed_by_server(socks):
    """Connections that are readable before we sent anything: EOF or reset by the server."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    dead = set()
    for key, _ in sel.select(timeout=0):
        s = key.fileobj
        try:
            data = s.recv(64)
            if not data:
                dead.add(s)
        except BlockingIOError:
            pass
        except OSError:
            dead.add(s)
    sel.close()
    return dead


def echo_sample(socks, timeout):
    """Sends PROBE on every socket in socks and checks the echo; returns (ok, failed)."""
    sel = selectors.DefaultSelector()
    got = {}
    failed = 0
    for s in socks:
        try:
            if s.send(PROBE) != len(PROBE):
                failed += 1
                continue
        except OSError:
            failed += 1
            continue
        got[s] = b""
        sel.register(s, selectors.EVENT_READ)
    ok = 0
    deadline = time.monotonic() + timeout
    while got and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            try:
                data = s.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                failed += 1
            else:
                got[s] += data
                if len(got[s]) < len(PROBE):
                    continue
                if got[s] == PROBE:
                    ok += 1
                else:
                    failed += 1
            sel.unregister(s)
            del got[s]
    failed += len(got)  # no (complete) answer in time
    sel.close()
    return ok, failed


def mb(kb):
    return "n/a" if kb is None else f"{kb / 1024:.1f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-p", "--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--pid", type=int, help="server PID, for VmRSS and descriptor counts")
    ap.add_argument("-n", "--conns", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=3.0, help="seconds to hold them idle")
    ap.add_argument("--sample", type=int, default=100, help="echo on every Nth connection")
    ap.add_argument("--batch", type=int, default=500, help="connects in flight at once")
    ap.add_argument("--timeout", type=float, default=10.0, help="per batch and for the echo")
    args = ap.parse_args()

    limit = raise_nofile(args.conns + 256)
    if limit != resource.RLIM_INFINITY and limit < args.conns + 16:
        print(f"warning: open-file limit is {limit}, too low for {args.conns} connections "
              "(run `ulimit -n 65536` first)", file=sys.stderr)

    addr = (args.host, args.port)
    rss0 = rss_kb(args.pid)
    fds0 = fd_count(args.pid)

    drops0 = listen_drops()
    t0 = time.monotonic()
    socks, errors = [], {}
    while len(socks) + sum(errors.values()) < args.conns:
        want = min(args.batch, args.conns - len(socks) - sum(errors.values()))
        ok, errs = connect_batch(addr, want, args.timeout)
        socks.extend(ok)
        for k, v in errs.items():
            errors[k] = errors.get(k, 0) + v
        if errs and not ok:
            break  # nothing gets through any more; stop instead of spinning
    if sum(errors.values()) and len(socks) + sum(errors.values()) < args.conns:
        errors["not_tried"] = args.conns - len(socks) - sum(errors.values())
    connect_s = time.monotonic() - t0
    drops1 = listen_drops()
    syn_drops = None if drops0 is None or drops1 is None else drops1 - drops0

    # The kernel completes handshakes on its own; wait (bounded) until the server has
    # actually accepted them, judged by its descriptor count.
    accepted = None
    if fds0 is not None:
        deadline = time.monotonic() + args.timeout
        while True:
            accepted = (fd_count(args.pid) or 0) - fds0
            if accepted >= len(socks) or time.monotonic() >= deadline:
                break
            time.sleep(0.05)

    time.sleep(args.hold)
    rss_held = rss_kb(args.pid)
    fds_held = fd_count(args.pid)
    if fds_held is not None and fds0 is not None:
        accepted = fds_held - fds0

    dead = closed_by_server(socks)
    alive = [s for s in socks if s not in dead]
    sample = alive[:: max(1, args.sample)]
    echo_ok, echo_failed = echo_sample(sample, args.timeout)
    rss_echo = rss_kb(args.pid)

    failed = sum(errors.values())
    print(f"target {args.host}:{args.port}, {args.conns} connections in batches of {args.batch}")
    print(f"  established    {len(socks)} in {connect_s:.2f} s, failed {failed}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(errors.items()))})" if errors else ""))
    if syn_drops is not None:
        print(f"  listen queue   {syn_drops} SYNs dropped while connecting (kernel ListenOverflows"
              " + ListenDrops, system wide); each costs that client a 1 s+ SYN retransmit")
    if accepted is not None:
        print(f"  server holds   {accepted} more descriptors than before")
    print(f"  after {args.hold:g} s idle: {len(dead)} closed by the server")
    print(f"  echo sample    {echo_ok}/{len(sample)} answered correctly, {echo_failed} failed")
    if args.pid is not None:
        print(f"  server VmRSS   before {mb(rss0)}, holding {mb(rss_held)}, after echo {mb(rss_echo)}")

    def kv(v):
        return "na" if v is None else str(v)

    print(
        "RESULT"
        f" conns={args.conns} established={len(socks)} failed={failed}"
        f" closed_by_server={len(dead)} server_accepted={kv(accepted)}"
        f" echo_sample={len(sample)} echo_ok={echo_ok} echo_failed={echo_failed}"
        f" rss_before_kb={kv(rss0)} rss_held_kb={kv(rss_held)} rss_after_echo_kb={kv(rss_echo)}"
        f" connect_s={connect_s:.2f} syn_drops={kv(syn_drops)}",
        flush=True,
    )
    for s in socks:
        s.close()
    ok = failed == 0 and not dead and echo_failed == 0 and len(socks) == args.conns
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
