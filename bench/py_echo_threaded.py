#!/usr/bin/env python3
"""Threaded TCP echo server, written the way a student would for the course exercise.

One thread per client, blocking recv(65536) / sendall. Used by bench/echo.sh as the
"plain Python" point of comparison.

usage: py_echo_threaded.py PORT        (PORT 0 picks a free port)
Prints "listening on 127.0.0.1:PORT" first, then serves until killed.
"""

import signal
import socket
import sys
import threading


def handle(conn):
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                conn.sendall(data)
            except OSError:
                return


def main():
    if len(sys.argv) != 2:
        print("usage: py_echo_threaded.py PORT", file=sys.stderr)
        sys.exit(2)
    port = int(sys.argv[1])
    # Exit quietly on SIGTERM (the benchmark stops us that way).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    host, real_port = srv.getsockname()
    print(f"listening on {host}:{real_port}", flush=True)

    while True:
        conn, _addr = srv.accept()
        # Same as the other servers: small messages leave at once.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = threading.Thread(target=handle, args=(conn,), daemon=True)
        t.start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
