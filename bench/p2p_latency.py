#!/usr/bin/env python3
"""bench/p2p_latency.py: one-way message latency, from the moment a line is written to the
sender's input to the moment the receiver's output shows it, at a paced rate.

    p2p_latency.py p2p --socklab BIN --pa PORT --pb PORT [--relay PORT --loss PCT] [options]
    p2p_latency.py nc  --port PORT [options]
    p2p_latency.py tcp [options]

p2p: peer b (`socklab p2p chat --listen PB --peer PA --nick b`, stdin /dev/null) prints
`<a> TEXT` for each message; peer a (`--listen PA --peer PB --nick a`) reads the lines from a
pipe. With --relay, `socklab impair --listen RELAY --to PB --loss PCT%` stands between them
(both peers name the relay as --peer). nc: `nc -l PORT` prints what `nc -N` reads from a pipe,
over TCP on loopback. tcp: this process writes each line on a TCP connection to itself
(TCP_NODELAY unless --nagle) and reads it on the other end: the kernel's share alone. nc sets
no TCP_NODELAY: a line written while the one before is unacknowledged waits for the receiver's
(delayed) ACK, which shows in its figures.

Each line is `SEQ TIMESTAMP padding` (--size bytes with its newline), TIMESTAMP being
time.monotonic_ns() just before the write. Lines are written at SEQ / RATE seconds after the
start (one at a time, never in bursts; when the sender is late the next goes at once, and the
lateness is reported). One thread, one select() loop: it writes when a line is due and reads
every output (the receiver's, stamping each line with monotonic_ns() as it arrives, and the
sender's, thrown away) the rest of the time, so no process ever stalls on a full pipe, and
the writes are non-blocking for the same reason. At the end the sender's input is closed:
peer a exits once everything is acknowledged (nc -N once the data is sent); then peer b and
the relay get SIGINT. Every wait has a deadline; every process started is killed on the way
out if it is still running.

Prints one line: sent=N got=N lost=N p50_us= p99_us= max_us= late_max_us= late_1ms=N
retx=N a_rc=N (retx and a_rc for p2p only), and logs the processes' stderr in --logs.
"""

import argparse
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time

mono = time.monotonic_ns


def percentile(sorted_values, p):
    """Nearest rank: the smallest value with at least p % of them at or below it."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


class Failed(Exception):
    pass


class Run:
    def __init__(self, args):
        self.args = args
        self.procs = []  # (name, Popen)
        self.readers = {}  # fd -> name; every output that must be drained
        self.bufs = {}  # fd -> bytes not yet a whole line
        self.recv_fd = None  # the receiver's output
        self.send_fd = None  # the sender's input
        self.sent_at = []  # seq -> monotonic_ns at the write
        self.latency = {}  # seq -> ns
        self.seen = {}  # fd -> lines seen (non-message lines included)
        self.listening = {}  # fd -> "listening on ..." seen

    # Processes.

    def spawn(self, name, argv, stdin):
        err = open(os.path.join(self.args.logs, f"{self.args.tag}.{name}.err"), "wb")
        try:
            p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err,
                                 bufsize=0)
        finally:
            err.close()
        self.procs.append((name, p))
        fd = p.stdout.fileno()
        os.set_blocking(fd, False)
        self.readers[fd] = name
        self.bufs[fd] = b""
        self.seen[fd] = 0
        return p

    def proc(self, name):
        return next(p for n, p in self.procs if n == name)

    def stop(self, name, sig=signal.SIGINT, wait_s=5.0):
        """SIGINT, output drained until it exits (wait_s at most), then SIGKILL."""
        p = self.proc(name)
        if p.poll() is None:
            p.send_signal(sig)
        deadline = mono() + int(wait_s * 1e9)
        while p.poll() is None and mono() < deadline:
            self.pump(0.02)
        if p.poll() is None:
            print(f"p2p_latency: {name} ignored {sig.name}; killing it", file=sys.stderr)
            p.kill()
            p.wait(5)
        self.pump(0)  # what it printed last
        return p.returncode

    def kill_all(self):
        for _, p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass

    # Output.

    def pump(self, timeout_s, wlist=()):
        """Waits up to timeout_s for output (or for room in wlist), reads all there is.
        Returns the writable fds."""
        fds = list(self.readers)
        if not fds and not wlist:
            time.sleep(max(0.0, timeout_s))
            return []
        r, w, _ = select.select(fds, list(wlist), [], max(0.0, timeout_s))
        now = mono()
        for fd in r:
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                del self.readers[fd]
                continue
            self.lines(fd, data, now)
        return w

    def lines(self, fd, data, now):
        buf = self.bufs[fd] + data
        *whole, self.bufs[fd] = buf.split(b"\n")
        for line in whole:
            self.seen[fd] += 1
            if line.startswith(b"listening on "):
                self.listening[fd] = line.decode(errors="replace")
                continue
            if fd != self.recv_fd:
                continue
            words = line.split(b" ", 3)
            if words and words[0].startswith(b"<"):  # `<nick> `, from the chat
                words = words[1:]
            try:
                seq, stamp = int(words[0]), int(words[1])
            except (ValueError, IndexError):
                print(f"p2p_latency: unexpected line {line[:60]!r}", file=sys.stderr)
                continue
            if seq in self.latency:
                print(f"p2p_latency: message {seq} printed twice", file=sys.stderr)
                continue
            self.latency[seq] = now - stamp

    def wait_listening(self, p, what, timeout_s=10.0):
        fd = p.stdout.fileno()
        deadline = mono() + int(timeout_s * 1e9)
        while fd not in self.listening:
            if p.poll() is not None or fd not in self.readers:
                raise Failed(f"{what} exited before listening (see {self.args.logs})")
            if mono() > deadline:
                raise Failed(f"{what} did not print `listening on` in {timeout_s:.0f} s")
            self.pump(0.05)

    # Sending.

    def paced(self):
        a = self.args
        count = a.count
        interval = 1e9 / a.rate
        pad = b"x" * a.size
        late_max = 0
        late_1ms = 0
        pending = b""
        seq = 0
        t0 = mono() + 20_000_000
        hard = t0 + int((count / a.rate + a.timeout) * 1e9)
        while seq < count or pending:
            now = mono()
            if now > hard:
                raise Failed(f"sending did not finish in time ({seq} of {count} lines written)")
            if not pending:
                due = t0 + int(seq * interval)
                if now >= due:
                    late = now - due
                    late_max = max(late_max, late)
                    late_1ms += late >= 1_000_000
                    stamp = mono()
                    head = b"%010d %019d " % (seq, stamp)
                    pending = head + pad[: a.size - 1 - len(head)] + b"\n"
                    self.sent_at.append(stamp)
                    seq += 1
                else:
                    self.pump((due - now) / 1e9)
                    continue
            try:
                n = os.write(self.send_fd, pending)
                pending = pending[n:]
            except BlockingIOError:
                pass
            if pending:  # the sender is not reading: wait for room, reading meanwhile
                self.pump(0.05, wlist=(self.send_fd,))
            else:
                self.pump(0)
        return late_max, late_1ms

    def wait_all(self, timeout_s, also=lambda: True):
        """Reads until every message sent has been printed and also() holds, timeout_s at
        most."""
        deadline = mono() + int(timeout_s * 1e9)
        while mono() < deadline:
            if len(self.latency) >= len(self.sent_at) and also():
                return True
            self.pump(0.02)
        return False

    def result(self, late, extra):
        lat = sorted(self.latency.values())
        sent = len(self.sent_at)

        def us(v):
            return "na" if v is None else f"{v / 1000:.0f}"

        fields = {
            "sent": sent,
            "got": len(lat),
            "lost": sent - len(lat),
            "p50_us": us(percentile(lat, 50)),
            "p99_us": us(percentile(lat, 99)),
            "max_us": us(lat[-1] if lat else None),
            "late_max_us": f"{late[0] / 1000:.0f}",
            "late_1ms": late[1],
        }
        fields.update(extra)
        return " ".join(f"{k}={v}" for k, v in fields.items())


def run_p2p(run, a):
    peer_b = peer_a = None
    if a.relay:
        relay = run.spawn("relay", [a.socklab, "impair", "--listen", f"127.0.0.1:{a.relay}",
                                    "--to", f"127.0.0.1:{a.pb}", "--loss", f"{a.loss}%",
                                    "--seed", "1"], subprocess.DEVNULL)
        run.wait_listening(relay, "the relay")
        peer_a = peer_b = a.relay
    else:
        peer_a, peer_b = a.pb, a.pa
    chat = [a.socklab, "p2p", "chat"]
    b = run.spawn("b", chat + ["--listen", f"127.0.0.1:{a.pb}", "--peer",
                               f"127.0.0.1:{peer_b}", "--nick", "b"], subprocess.DEVNULL)
    run.recv_fd = b.stdout.fileno()
    run.wait_listening(b, "peer b")
    pa = run.spawn("a", chat + ["--listen", f"127.0.0.1:{a.pa}", "--peer",
                                f"127.0.0.1:{peer_a}", "--nick", "a"], subprocess.PIPE)
    run.send_fd = pa.stdin.fileno()
    os.set_blocking(run.send_fd, False)
    run.wait_listening(pa, "peer a")
    time.sleep(0.1)
    run.pump(0)
    late = run.paced()
    pa.stdin.close()  # the end of input: a exits once everything is acknowledged
    run.wait_all(a.timeout, also=lambda: pa.poll() is not None)
    a_rc = run.stop("a", signal.SIGINT)  # only if it did not exit by itself
    run.stop("b")
    if a.relay:
        run.stop("relay")
    retx = "na"
    with open(os.path.join(a.logs, f"{a.tag}.a.err"), errors="replace") as f:
        for line in f:
            if " retransmitted" in line:
                retx = line.split(" retransmitted")[0].split()[-1]
    return run.result(late, {"retx": retx, "a_rc": a_rc})


def listens(port):
    """True once a TCP socket listens on 127.0.0.1:port (from /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            return any(w[1] == want and w[3] == "0A" for w in (l.split() for l in f))
    except OSError:
        return False


def run_nc(run, a):
    server = run.spawn("nc_l", ["nc", "-l", "127.0.0.1", str(a.port)], subprocess.DEVNULL)
    run.recv_fd = server.stdout.fileno()
    deadline = mono() + 10_000_000_000
    while not listens(a.port):
        if server.poll() is not None or mono() > deadline:
            raise Failed(f"nc -l did not listen on {a.port}")
        time.sleep(0.02)
    client = run.spawn("nc", ["nc", "-N", "127.0.0.1", str(a.port)], subprocess.PIPE)
    run.send_fd = client.stdin.fileno()
    os.set_blocking(run.send_fd, False)
    time.sleep(0.2)
    if client.poll() is not None:
        raise Failed("nc did not connect")
    late = run.paced()
    client.stdin.close()
    run.wait_all(a.timeout, also=lambda: client.poll() is not None)
    run.stop("nc", signal.SIGTERM)
    run.stop("nc_l", signal.SIGTERM)
    return run.result(late, {})


def run_tcp(run, a):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    tx = socket.create_connection(lsock.getsockname(), timeout=5)
    rx, _ = lsock.accept()
    lsock.close()
    for s in (tx, rx):
        if not a.nagle:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
    run.recv_fd = rx.fileno()
    run.send_fd = tx.fileno()
    run.readers[rx.fileno()] = "tcp"
    run.bufs[rx.fileno()] = b""
    run.seen[rx.fileno()] = 0
    try:
        late = run.paced()
        tx.shutdown(socket.SHUT_WR)
        run.wait_all(a.timeout)
    finally:
        tx.close()
        rx.close()
    return run.result(late, {})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["p2p", "nc", "tcp"])
    ap.add_argument("--socklab")
    ap.add_argument("--pa", type=int)
    ap.add_argument("--pb", type=int)
    ap.add_argument("--relay", type=int, help="the impair relay's port (p2p through it)")
    ap.add_argument("--loss", default="1", help="the relay's loss, in %%")
    ap.add_argument("--port", type=int, help="nc's port")
    ap.add_argument("--nagle", action="store_true",
                    help="tcp: leave Nagle's algorithm on (no TCP_NODELAY), as nc does")
    ap.add_argument("--rate", type=float, default=2000, help="lines per second")
    ap.add_argument("--count", type=int, default=10000, help="lines in all")
    ap.add_argument("--size", type=int, default=1024, help="bytes a line, newline included")
    ap.add_argument("--timeout", type=float, default=30,
                    help="seconds each wait may take beyond the paced sending")
    ap.add_argument("--logs", default=".")
    ap.add_argument("--tag", default="p2p_latency")
    a = ap.parse_args()
    if a.size < 32 or a.rate <= 0 or a.count < 1:
        ap.error("--size must be at least 32, --rate above 0, --count at least 1")
    if a.mode == "p2p" and not (a.socklab and a.pa and a.pb):
        ap.error("p2p needs --socklab, --pa and --pb")
    if a.mode == "nc" and not a.port:
        ap.error("nc needs --port")
    os.makedirs(a.logs, exist_ok=True)

    def terminated(signum, frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminated)
    run = Run(a)
    try:
        print({"p2p": run_p2p, "nc": run_nc, "tcp": run_tcp}[a.mode](run, a), flush=True)
    except Failed as e:
        print(f"p2p_latency: {e}", file=sys.stderr)
        return 1
    finally:
        run.kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
