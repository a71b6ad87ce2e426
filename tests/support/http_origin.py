#!/usr/bin/env python3
"""Test-only HTTP origin for the `socklab http get` interop tests (stdlib only).

Binds 127.0.0.1 (or the address given as its argument, e.g. ::1) port 0, prints
`listening on 127.0.0.1:PORT` (`listening on [::1]:PORT`) as its first stdout line, then serves
these routes (any method unless said otherwise):

  /blob                 the reference body: BLOB_LEN deterministic bytes (support::noise(BLOB_LEN, 11))
  /redirect/CODE        CODE in 301 302 303 307 308; Location `?to=` or `/echo` (relative)
  /cross                302 to http://localhost:PORT/echo (another host: Authorization must go)
  /chain/N              N > 0: 302 to /chain/N-1 (relative); /chain/0: 200 "end of chain\\n"
  /loop/a, /loop/b      302 to each other
  /echo                 200 JSON {"method", "path", "headers": [[name, value]...], "body"}
  /chunked              chunked body (the text of /chunked-text) with a trailer
  /truncated            Content-Length: 100000, 40000 bytes of the blob, then a clean close
  /http10               an HTTP/1.0 response without Content-Length: the blob, then close
  /status/404           404 with a small text body
  /range-ignored        always 200 with the whole blob, Range or not
  /bad-range            with `Range: bytes=K-` (K >= 100): 206 whose Content-Range starts at
                        K-100 (and the body too); without Range: 200 with the blob
  /flaky                the first request for this exact target gets the head and half the blob,
                        then a connection reset; later ones honour `Range: bytes=K-` (206)
  /gzip                 a text; gzip Content-Encoding when Accept-Encoding allows it
  /__log                JSON list of the requests seen so far: [method, target, range, via]

Every response carries `Connection: close`.
"""

import gzip
import json
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOB_LEN = 262_147


def noise(length, seed):
    """The same xorshift bytes as tests/support/mod.rs `noise`."""
    mask = (1 << 64) - 1
    x = seed | 1
    out = bytearray(length)
    for i in range(length):
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        out[i] = (x >> 24) & 0xFF
    return bytes(out)


BLOB = noise(BLOB_LEN, 11)
TEXT = "".join(f"line {i:05}: the quick brown fox jumps over the lazy dog\n" for i in range(3000)).encode()
CHUNKED_TEXT = "".join(f"chunk line {i}\n" for i in range(500)).encode()

LOCK = threading.Lock()
LOG = []
SEEN = set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "origin.py"
    sys_version = ""

    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    # -- helpers ---------------------------------------------------------------------------------

    def body_in(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def send(self, code, body, ctype="application/octet-stream", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def redirect(self, code, location):
        self.send(code, f"see {location}\n".encode(), "text/plain", [("Location", location)])

    def range_start(self):
        value = self.headers.get("Range") or ""
        if value.startswith("bytes=") and value.endswith("-"):
            try:
                return int(value[6:-1])
            except ValueError:
                return None
        return None

    def reset(self):
        """Aborts the connection with an RST (SO_LINGER 0)."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    # -- dispatch --------------------------------------------------------------------------------

    def handle_any(self):
        body = self.body_in()
        path, _, query = self.path.partition("?")
        with LOCK:
            LOG.append([self.command, self.path, self.headers.get("Range"), self.headers.get("Via")])
        port = self.server.server_address[1]
        if path == "/__log":
            with LOCK:
                data = json.dumps(LOG).encode()
            return self.send(200, data, "application/json")
        if path == "/blob":
            return self.send(200, BLOB)
        if path.startswith("/redirect/"):
            code = int(path.rsplit("/", 1)[1])
            to = query[3:] if query.startswith("to=") else "/echo"
            return self.redirect(code, to)
        if path == "/cross":
            return self.redirect(302, f"http://localhost:{port}/echo")
        if path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n > 0:
                return self.redirect(302, f"/chain/{n - 1}")
            return self.send(200, b"end of chain\n", "text/plain")
        if path == "/loop/a":
            return self.redirect(302, "/loop/b")
        if path == "/loop/b":
            return self.redirect(302, "/loop/a")
        if path == "/echo":
            doc = {
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
            }
            return self.send(200, json.dumps(doc).encode(), "application/json")
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Lines")
            self.send_header("Connection", "close")
            self.end_headers()
            step = 777
            for i in range(0, len(CHUNKED_TEXT), step):
                part = CHUNKED_TEXT[i : i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Lines: 500\r\n\r\n")
            self.close_connection = True
            return None
        if path == "/chunked-text":
            return self.send(200, CHUNKED_TEXT, "text/plain")
        if path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BLOB[:40000])
            self.close_connection = True
            return None
        if path == "/http10":
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + BLOB)
            self.close_connection = True
            return None
        if path == "/status/404":
            return self.send(404, b"no such thing here\n", "text/plain")
        if path == "/range-ignored":
            return self.send(200, BLOB)
        if path == "/bad-range":
            k = self.range_start()
            if k is None or k < 100 or k >= BLOB_LEN:
                return self.send(200, BLOB)
            start = k - 100
            return self.send(
                206,
                BLOB[start:],
                extra=[("Content-Range", f"bytes {start}-{BLOB_LEN - 1}/{BLOB_LEN}")],
            )
        if path == "/flaky":
            with LOCK:
                first = self.path not in SEEN
                SEEN.add(self.path)
            if first:
                self.send_response(200)
                self.send_header("Content-Length", str(BLOB_LEN))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(BLOB[: BLOB_LEN // 2])
                return self.reset()
            k = self.range_start()
            if k is None:
                return self.send(200, BLOB, extra=[("Accept-Ranges", "bytes")])
            if k >= BLOB_LEN:
                return self.send(416, b"", extra=[("Content-Range", f"bytes */{BLOB_LEN}")])
            return self.send(
                206,
                BLOB[k:],
                extra=[("Content-Range", f"bytes {k}-{BLOB_LEN - 1}/{BLOB_LEN}")],
            )
        if path == "/gzip":
            accept = (self.headers.get("Accept-Encoding") or "").lower()
            if "gzip" in accept:
                return self.send(
                    200,
                    gzip.compress(TEXT, mtime=0),
                    "text/plain",
                    [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")],
                )
            return self.send(200, TEXT, "text/plain", [("Vary", "Accept-Encoding")])
        if path == "/text":
            return self.send(200, TEXT, "text/plain")
        return self.send(404, b"unknown route\n", "text/plain")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    if ":" in host:
        server = Server6((host, 0), Handler)
        print(f"listening on [{host}]:{server.server_address[1]}", flush=True)
    else:
        server = Server((host, 0), Handler)
        print(f"listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
