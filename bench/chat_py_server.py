#!/usr/bin/env python3
"""A chat server as the course's exercise produces it: one thread per client, a lock around
the client list, each line relayed to every other client. The first line is the nickname.
For scale in bench/chat.sh, not for use.

usage: chat_py_server.py PORT   (prints "listening on HOST:PORT" first, like socklab)
"""
import socket
import sys
import threading

clients = []
lock = threading.Lock()


def handle(conn):
    f = conn.makefile("rb")
    nick = f.readline().strip().decode(errors="replace")
    with lock:
        clients.append(conn)
    try:
        for line in f:
            msg = ("<%s> " % nick).encode() + line
            with lock:
                others = [c for c in clients if c is not conn]
            for c in others:
                try:
                    c.sendall(msg)
                except OSError:
                    pass
    finally:
        with lock:
            clients.remove(conn)
        conn.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(sys.argv[1])))
    srv.listen(4096)
    print("listening on %s:%d" % srv.getsockname(), flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
