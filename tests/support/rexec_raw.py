"""Raw `socklab rexec` sessions for the tests, Python stdlib only (ssl, socket, struct):
things socklab's own client will not do.

  rexec_raw.py brute HOST PORT USER CONNS      CONNS connections in parallel, 3 wrong
                                               passwords each; one JSON line per answer
  rexec_raw.py timing HOST PORT USER GHOST N   N wrong-password tries for USER and N for the
                                               unknown GHOST, alternating, each from its own
                                               127.0.x.y source (so the brake never applies)
  rexec_raw.py hostile HOST PORT               protocol violations; one JSON line each with
                                               what the server answered
  rexec_raw.py grace HOST PORT                 connects, sends nothing; prints the answer
  rexec_raw.py hold HOST PORT SOURCE N SECS    N TCP connections from SOURCE, no TLS, held
                                               SECS seconds; says how many the server closed
  rexec_raw.py stall HOST PORT USER CMD SECS   logs in (SOCKLAB_PASSWORD), runs CMD and never
                                               reads its output for SECS seconds
"""

import json
import socket
import ssl
import struct
import sys
import threading
import time

AUTH, EXEC, STDIN, STDIN_EOF, SIGNAL, BYE = 1, 2, 3, 4, 5, 6
AUTH_OK, AUTH_FAIL, STDOUT, STDERR, EXIT, WINDOW, ERROR = 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["socklab-rexec/1"])
    return ctx


def connect(host, port, source=None, timeout=20):
    raw = socket.create_connection((host, port), timeout=timeout, source_address=source)
    return context().wrap_socket(raw, server_hostname="socklab-rexec")


def frame(kind, value=b""):
    return struct.pack(">BI", kind, len(value)) + value


def auth(user, password):
    u = user.encode()
    return frame(AUTH, bytes([len(u)]) + u + password.encode())


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    """(type, value), or None at the end of the stream."""
    try:
        head = recv_exact(s, 5)
    except (ConnectionError, ssl.SSLError, OSError):
        return None
    if head is None:
        return None
    kind, length = struct.unpack(">BI", head)
    value = recv_exact(s, length)
    if value is None:
        return None
    return kind, value


def brute(host, port, user, conns):
    start = time.monotonic()
    lock = threading.Lock()

    def worker(i):
        try:
            s = connect(host, int(port))
        except OSError as e:
            with lock:
                print(json.dumps({"conn": i, "error": str(e)}), flush=True)
            return
        for k in range(3):
            s.sendall(auth(user, "wrong-%d-%d" % (i, k)))
            f = read_frame(s)
            t = time.monotonic() - start
            with lock:
                if f is None:
                    print(json.dumps({"conn": i, "try": k, "t": t, "closed": True}), flush=True)
                    return
                kind, v = f
                rec = {"conn": i, "try": k, "t": t, "kind": kind}
                if kind == AUTH_FAIL and len(v) == 5:
                    rec["tries_left"] = v[0]
                    rec["retry_after_ms"] = struct.unpack(">I", v[1:])[0]
                print(json.dumps(rec), flush=True)
        # After the third failure the server closes.
        f = read_frame(s)
        with lock:
            print(json.dumps({"conn": i, "after_third": "eof" if f is None else f[0]}), flush=True)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(int(conns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def timing(host, port, user, ghost, n):
    for i in range(int(n)):
        for who, net in ((user, 10), (ghost, 11)):
            s = connect(host, int(port), source=("127.0.%d.%d" % (net, 10 + i), 0))
            t0 = time.monotonic()
            s.sendall(auth(who, "not-the-password"))
            f = read_frame(s)
            dt = time.monotonic() - t0
            print(json.dumps({"user": who, "ms": dt * 1000, "answer": f[1].hex() if f else None,
                              "kind": f[0] if f else None}), flush=True)
            s.close()


def hostile(host, port):
    cases = [
        ("exec_before_auth", frame(EXEC, b"\x00id")),
        ("stdout_from_client", frame(STDOUT, b"x")),
        ("unknown_type", frame(0x42, b"")),
        ("huge_length", struct.pack(">BI", AUTH, 0xFFFFFFFF)),
        ("user_past_end", frame(AUTH, b"\x09ana")),
        ("bad_user_name", frame(AUTH, b"\x03a/bpw")),
        ("password_too_long", frame(AUTH, b"\x03ana" + b"x" * 1025)),
    ]
    for name, data in cases:
        s = connect(host, int(port))
        s.sendall(data)
        f = read_frame(s)
        rec = {"case": name}
        if f is not None:
            rec["kind"] = f[0]
            rec["code"] = f[1][0] if f[1] else None
            rec["reason"] = f[1][1:].decode("utf-8", "replace")
            rec["then"] = "eof" if read_frame(s) is None else "more"
        else:
            rec["kind"] = None
        print(json.dumps(rec), flush=True)
        s.close()


def grace(host, port):
    s = connect(host, int(port))
    t0 = time.monotonic()
    f = read_frame(s)
    print(json.dumps({"after_s": time.monotonic() - t0, "kind": f[0] if f else None,
                      "code": f[1][0] if f else None,
                      "then": "eof" if read_frame(s) is None else "more"}), flush=True)


def stall(host, port, user, cmd, secs):
    import os
    s = connect(host, int(port))
    s.sendall(auth(user, os.environ["SOCKLAB_PASSWORD"]))
    f = read_frame(s)
    assert f is not None and f[0] == AUTH_OK, f
    s.sendall(frame(EXEC, b"\x00" + cmd.encode()))
    time.sleep(float(secs))
    # Then read what is left: the server gave up on us.
    got, end = 0, None
    s.settimeout(10)
    while True:
        f = read_frame(s)
        if f is None:
            break
        got += 1
        end = f[0]
    print(json.dumps({"frames_after": got, "last": end}), flush=True)


def hold(host, port, source, n, secs):
    socks = []
    for _ in range(int(n)):
        s = socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
        socks.append(s)
    print(json.dumps({"opened": len(socks)}), flush=True)
    time.sleep(1.0)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(json.dumps({"closed_at_once": closed}), flush=True)
    time.sleep(float(secs))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"brute": brute, "timing": timing, "hostile": hostile, "grace": grace, "stall": stall, "hold": hold}[cmd](*args)
