#!/usr/bin/env python3
"""bench/transfer_alt.py: five ways to send short texts and a (large) file over TCP, measured
on one workload.

The course question: "What must be done to send a text message and an image over the same TCP
socket?" TCP carries one byte stream with no boundaries, so the receiver must be told where
each item ends and what it is. This script implements each answer, minimally but correctly, as
a receiver and a sender over TCP on loopback (127.0.0.1, listening on port 0), and measures
them:

  per-item          one TCP connection per item; a first line `TEXT\\n`, `FILE name\\n` (or
                    `BYE\\n`, the end of the run), then the data up to EOF.
  delimiter-base64  one connection, newline-terminated records: `T <text>\\n` (backslash,
                    newline and, in names, space escaped as \\\\, \\n, \\s), and
                    `F <name> <base64 of the file>\\n`, base64 streamed in pieces both ways.
  length-prefix     one connection; per item a header (kind byte `T`/`F`, u64 BE length, for
                    files u16 BE name length and the name), then exactly length raw bytes.
  mime-multipart    one connection carrying one multipart/mixed MIME body, a part per text
                    (text/plain) and one for the file (binary), with a random boundary; the
                    receiver scans chunk by chunk for the delimiter, also when a read splits it.
  typed-frames      socklab's `transfer` protocol (docs/PROTOCOLS.md, section 11): TLV frames
                    HELLO, TEXT, FILE_BEGIN, FILE_CHUNK (<= 64 KiB), FILE_END with SHA-256, BYE,
                    FILE_QUERY/HAVE for resuming; the receiver answers TEXT_OK, FILE_OK, ERROR.

The workload: the file (--file) and N texts (--texts, "message I from the sender", every 997th
one with a second line, a backslash and non-ASCII characters to exercise the escaping). The
texts come up while the file is being sent: text I is due once I/N of the file has been
written (text 0 just after the first piece). Each sender sends a text as soon as its protocol
allows: typed-frames at once, between two FILE_CHUNKs; per-item at once, on a connection of its
own; the three others only after the whole file (a stream of records cannot carry a text in
the middle of a file). text_wait_ms is the time from text 0 being due at the sender to the
receiver having it.

Each run starts a receiver and then a sender, each a process of its own (this script with the
hidden --role argument), so that each measures its own CPU time (getrusage(RUSAGE_SELF), from
just before its first socket operation). One JSON object per alternative goes to stdout:

  wire_bytes       bytes the sender wrote to its sockets (TCP/IP headers, handshakes not
                   counted; `connections` says how many connections it opened)
  overhead_bytes   wire_bytes - payload (file size + UTF-8 bytes of the texts); overhead_pct
  reply_bytes      bytes the receiver wrote back (typed-frames' answers; 0 elsewhere)
  seconds          from the sender's first connect to the receiver having everything (both
                   read CLOCK_MONOTONIC, which is the same clock in both processes)
  mb_per_s         payload / seconds, MB = 10^6 bytes
  cpu_send_s, cpu_recv_s
  file_ok          the receiver took the file as complete and its SHA-256 equals the original's
  texts_ok         all N texts arrived, in order, unchanged
  interleave       true if a text can overtake the file on that connection (measured: text 0
                   reached the receiver before the end of the file did); "another connection"
                   for per-item, where it does so only on a connection of its own
  text_wait_ms     see above
  cut              a second run sends the file alone and stops after half of it (--cut-mode fin:
                   shutdown and close, what the kernel does when a sender process dies; rst:
                   an abortive close): "detected" if the receiver knows the file is incomplete,
                   "silent-truncation" if it took the half file as complete
  cut_resume       true if the rest could be sent later without the first half (measured for
                   typed-frames: FILE_QUERY/HAVE, FILE_BEGIN at the offset, FILE_OK at the end)
  cut_detail       what the receiver said

Human progress goes to stderr. Received files are written into a fresh directory made with
tempfile.mkdtemp under --dir (default /dev/shm if it exists), deleted at the end. Every socket
operation has a timeout, every run is killed after --timeout seconds, and each child process
also sets an alarm so that it ends by itself if this script dies.

    head -c 100M /dev/urandom > /dev/shm/img.bin
    python3 bench/transfer_alt.py --file /dev/shm/img.bin --texts 10000
    python3 bench/transfer_alt.py --file /dev/shm/img.bin --texts 10000 --only typed-frames
    rm /dev/shm/img.bin

Python 3.11 standard library only.
"""

import argparse
import binascii
import email.parser
import hashlib
import json
import mimetypes
import os
import queue
import re
import resource
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ALTS = ["per-item", "delimiter-base64", "length-prefix", "mime-multipart", "typed-frames"]
HOST = "127.0.0.1"
PIECE = 256 * 1024          # file reads and socket writes
RECV = 256 * 1024           # socket reads
MAX_TEXT = 64 * 1024        # the largest text any receiver accepts (bytes)
MAX_NAME = 1024             # the longest file name any receiver accepts (bytes)
MAX_HEADERS = 16 * 1024     # MIME header blocks, per-item first lines


def log(msg):
    print(f"[transfer_alt] {msg}", file=sys.stderr, flush=True)


def cpu_now():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_texts(n):
    out = []
    for i in range(n):
        t = f"message {i} from the sender"
        if i % 997 == 996:
            t += "\nsecond line, a backslash \\ and ñ€ 😀"
        out.append(t)
    return out


def texts_digest(texts_bytes):
    h = hashlib.sha256()
    for b in texts_bytes:
        h.update(len(b).to_bytes(4, "big"))
        h.update(b)
    return h.hexdigest()


class ProtocolError(Exception):
    pass


class Incomplete(Exception):
    """The peer closed the connection in the middle of something."""


def new_socket(io_timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(io_timeout)
    return s


def connect(port, io_timeout):
    s = new_socket(io_timeout)
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Reader:
    """Buffered reads from a socket (whose timeout bounds every recv)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def buffered(self):
        return len(self.buf) - self.pos

    def _fill(self):
        data = self.sock.recv(RECV)
        if not data:
            return False
        if self.pos < len(self.buf):
            self.buf = self.buf[self.pos:] + data
        else:
            self.buf = data
        self.pos = 0
        return True

    def at_eof(self):
        return self.buffered() == 0 and not self._fill()

    def read_exact(self, n):
        while self.buffered() < n:
            if not self._fill():
                raise Incomplete(f"EOF with {self.buffered()} of {n} bytes")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def read_some(self, n):
        """Up to n bytes (a memoryview), b"" at EOF."""
        if self.buffered() == 0 and not self._fill():
            return b""
        end = min(len(self.buf), self.pos + n)
        mv = memoryview(self.buf)[self.pos:end]
        self.pos = end
        return mv

    def read_line(self, limit):
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 1
                return line
            if self.buffered() > limit:
                raise ProtocolError("line too long")
            if not self._fill():
                raise Incomplete("EOF inside a line")


# ---------------------------------------------------------------------------------------------
# Receiver side: what was received


def safe_name(name):
    """Last path component, no control characters, no hidden or device names, <= 200 bytes."""
    name = re.split(r"[/\\]", name)[-1]
    name = "".join("_" if (ord(c) < 32 or ord(c) == 127) else c for c in name) or "file"
    stem = name.split(".")[0].upper()
    if name.startswith(".") or stem in {"CON", "PRN", "AUX", "NUL"} or re.fullmatch(
            r"(COM|LPT)[0-9]", stem):
        name = "_" + name
    while len(name.encode()) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if dot and len(ext) < 20 and stem else name[:-1]
    return name


def free_path(d, name):
    path = os.path.join(d, name)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = name, "", ""
    k = 1
    while os.path.exists(path):
        path = os.path.join(d, f"{stem} ({k}){dot}{ext}")
        k += 1
    return path


class FileSink:
    def __init__(self, sink, name, path=None, append_from=0):
        self.sink = sink
        self.name = name
        self.path = path or free_path(sink.dir, safe_name(name))
        self.sha = hashlib.sha256()
        self.bytes = 0
        if append_from:
            self.f = open(self.path, "r+b", buffering=1 << 20)
            while self.bytes < append_from:   # the hash covers the file from byte 0
                b = self.f.read(min(PIECE, append_from - self.bytes))
                if not b:
                    raise Incomplete("the .part is shorter than the offset")
                self.sha.update(b)
                self.bytes += len(b)
            self.f.truncate(append_from)
            self.f.seek(append_from)
        else:
            self.f = open(self.path, "wb", buffering=1 << 20)
        sink.open.add(self)

    def write(self, data):
        if data:
            self.f.write(data)
            self.sha.update(data)
            self.bytes += len(data)

    def close(self, complete, note="", **extra):
        """complete: whether the receiver takes the file as whole."""
        if self.f is None:
            return
        self.f.close()
        self.f = None
        self.sink.open.discard(self)
        entry = {"name": self.name, "bytes": self.bytes, "sha256": self.sha.hexdigest(),
                 "complete": complete, "note": note}
        entry.update(extra)
        self.sink.files.append(entry)
        if complete:
            self.sink.file_done_t = time.monotonic()


class Sink:
    def __init__(self, d):
        self.dir = d
        self.ntexts = 0
        self.th = hashlib.sha256()
        self.first_text_t = None
        self.file_done_t = None
        self.files = []
        self.reply_bytes = 0
        self.notes = []
        self.open = set()   # FileSinks not closed yet

    def text(self, b):
        """b: the text's UTF-8 bytes (checked here)."""
        b = bytes(b)
        b.decode("utf-8")  # raises UnicodeDecodeError
        if self.ntexts == 0:
            self.first_text_t = time.monotonic()
        self.th.update(len(b).to_bytes(4, "big"))
        self.th.update(b)
        self.ntexts += 1


# ---------------------------------------------------------------------------------------------
# 1. per-item


def recv_per_item(lsock, sink, mode, io_timeout):
    threads = []
    errors = []

    def take_file(conn, r, name):
        fs = None
        try:
            fs = FileSink(sink, name)
            while True:
                data = r.read_some(RECV)
                if not data:
                    break
                fs.write(data)
            # EOF is all this protocol has: whatever came is "the file".
            fs.close(True, "EOF ends the file")
        except Exception as e:  # noqa: BLE001  (a reset or a timeout: reported)
            errors.append(f"file connection: {e!r}")
            if fs:
                fs.close(False, f"{e!r}")
        finally:
            conn.close()

    conns = 0
    while True:
        conn, _ = lsock.accept()
        conn.settimeout(io_timeout)
        conns += 1
        r = Reader(conn)
        try:
            line = r.read_line(MAX_HEADERS).decode("utf-8")
        except Exception as e:  # noqa: BLE001
            errors.append(f"first line: {e!r}")
            conn.close()
            continue
        if line == "TEXT":
            try:
                parts = []
                n = 0
                while True:
                    d = r.read_some(RECV)
                    if not d:
                        break
                    n += len(d)
                    if n > MAX_TEXT:
                        raise ProtocolError("text too long")
                    parts.append(bytes(d))
                sink.text(b"".join(parts))
            except Exception as e:  # noqa: BLE001
                errors.append(f"text connection: {e!r}")
            finally:
                conn.close()
        elif line.startswith("FILE "):
            t = threading.Thread(target=take_file, args=(conn, r, line[5:]), daemon=True)
            t.start()
            threads.append(t)
            if mode == "cut":
                break
        elif line == "BYE":
            conn.close()
            break
        else:
            errors.append(f"unknown first line {line[:40]!r}")
            conn.close()
    for t in threads:
        t.join(io_timeout * 2)
    sink.notes.extend(errors)


def send_per_item(port, path, texts, st, mode, cut_rst, io_timeout):
    name = os.path.basename(path).encode("utf-8")
    size = os.path.getsize(path)
    limit = size // 2 if mode == "cut" else size
    fsock = st.connect(port)
    st.send(fsock, b"FILE " + name + b"\n")
    sched = st.schedule(texts if mode == "normal" else [], size, now=True)
    sent = 0
    with open(path, "rb", buffering=0) as f:
        while sent < limit:
            piece = f.read(min(PIECE, limit - sent))
            if not piece:
                break
            st.send(fsock, piece)
            sent += len(piece)
            for i, tb in sched.due(sent):
                s = st.connect(port)
                st.send(s, b"TEXT\n" + tb)
                s.close()
    if mode == "cut":
        st.cut(fsock, cut_rst)
        return
    fsock.close()
    for i, tb in sched.due(None):
        s = st.connect(port)
        st.send(s, b"TEXT\n" + tb)
        s.close()
    s = st.connect(port)
    st.send(s, b"BYE\n")
    s.close()


# ---------------------------------------------------------------------------------------------
# 2. delimiter-base64

_UNESC = {b"\\": b"\\", b"n": b"\n", b"s": b" "}


def escape(b, space=False):
    b = b.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
    return b.replace(b" ", b"\\s") if space else b


def unescape(b):
    if b"\\" not in b:
        return b

    def one(m):
        try:
            return _UNESC[m.group(1)]
        except KeyError:
            raise ProtocolError(f"bad escape {m.group(0)!r}") from None

    if b.endswith(b"\\") and (len(b) - len(b.rstrip(b"\\"))) % 2:
        raise ProtocolError("dangling backslash")
    return re.sub(rb"\\(.)", one, b, flags=re.S)


def recv_delimiter(conn, sink):
    max_line = 2 * MAX_TEXT + 4
    buf = b""
    pos = 0
    fs = None
    carry = b""
    while True:
        while True:  # everything that can be done with what is buffered
            if fs is None:
                if len(buf) - pos < 2:
                    break
                tag = buf[pos:pos + 2]
                if tag == b"T ":
                    j = buf.find(b"\n", pos + 2)
                    if j < 0:
                        if len(buf) - pos > max_line:
                            raise ProtocolError("text record too long")
                        break
                    sink.text(unescape(buf[pos + 2:j]))
                    pos = j + 1
                elif tag == b"F ":
                    j = buf.find(b" ", pos + 2)
                    if j < 0:
                        if len(buf) - pos > 2 + 2 * MAX_NAME:
                            raise ProtocolError("file name too long")
                        break
                    name = unescape(buf[pos + 2:j]).decode("utf-8")
                    fs = FileSink(sink, name)
                    carry = b""
                    pos = j + 1
                else:
                    raise ProtocolError(f"unknown record {tag!r}")
            else:
                j = buf.find(b"\n", pos)
                end = j if j >= 0 else len(buf)
                data = carry + buf[pos:end] if carry else memoryview(buf)[pos:end]
                if j >= 0:
                    if len(data) % 4:
                        raise ProtocolError("base64 length not a multiple of 4")
                    fs.write(binascii.a2b_base64(data, strict_mode=True))
                    fs.close(True, "newline ends the record")
                    fs = None
                    pos = j + 1
                else:
                    n = len(data) - len(data) % 4
                    fs.write(binascii.a2b_base64(data[:n], strict_mode=True))
                    carry = bytes(data[n:])
                    pos = len(buf)
                    break
        buf = buf[pos:]
        pos = 0
        data = conn.recv(RECV)
        if not data:
            if fs is not None:
                fs.close(False, f"EOF inside the F record after {fs.bytes} decoded bytes"
                                " (no closing newline)")
                raise Incomplete("EOF inside a file record")
            if buf:
                raise Incomplete("EOF inside a record")
            return
        buf = buf + data if buf else data


def send_delimiter(port, path, texts, st, mode, cut_rst, io_timeout):
    name = os.path.basename(path).encode("utf-8")
    size = os.path.getsize(path)
    limit = size // 2 // 3 * 3 if mode == "cut" else size
    sock = st.connect(port)
    sched = st.schedule(texts if mode == "normal" else [], size)
    st.send(sock, b"F " + escape(name, space=True) + b" ")
    sent = 0
    piece_len = PIECE // 3 * 3   # base64 in pieces: each piece a multiple of 3 bytes
    with open(path, "rb", buffering=0) as f:
        while sent < limit:
            piece = f.read(min(piece_len, limit - sent))
            if not piece:
                break
            # a short read in the middle would break the 3-byte alignment
            while len(piece) % 3 and sent + len(piece) < limit:
                more = f.read(3 - len(piece) % 3)
                if not more:
                    break
                piece += more
            st.send(sock, binascii.b2a_base64(piece, newline=False))
            sent += len(piece)
            sched.due(sent)   # texts due now are queued: they go after the file's record
    if mode == "cut":
        st.cut(sock, cut_rst)
        return
    out = bytearray(b"\n")
    for i, tb in sched.due(None):
        out += b"T " + escape(tb) + b"\n"
        if len(out) >= PIECE:
            st.send(sock, out)
            out = bytearray()
    st.send(sock, out)
    st.finish(sock)


# ---------------------------------------------------------------------------------------------
# 3. length-prefix


def recv_length(conn, sink):
    r = Reader(conn)
    while True:
        if r.at_eof():
            return
        hdr = r.read_exact(9)
        kind, n = hdr[:1], int.from_bytes(hdr[1:], "big")
        if kind == b"T":
            if n > MAX_TEXT:
                raise ProtocolError("text too long")
            sink.text(r.read_exact(n))
        elif kind == b"F":
            nl = int.from_bytes(r.read_exact(2), "big")
            if nl > MAX_NAME:
                raise ProtocolError("file name too long")
            fs = FileSink(sink, r.read_exact(nl).decode("utf-8"))
            left = n
            while left:
                d = r.read_some(min(left, RECV))
                if not d:
                    fs.close(False, f"EOF after {fs.bytes} of {n} declared bytes")
                    raise Incomplete("EOF inside a file")
                fs.write(d)
                left -= len(d)
            fs.close(True, "declared length reached")
        else:
            raise ProtocolError(f"unknown kind {kind!r}")


def send_length(port, path, texts, st, mode, cut_rst, io_timeout):
    name = os.path.basename(path).encode("utf-8")
    size = os.path.getsize(path)
    limit = size // 2 if mode == "cut" else size
    sock = st.connect(port)
    sched = st.schedule(texts if mode == "normal" else [], size)
    st.send(sock, b"F" + size.to_bytes(8, "big") + len(name).to_bytes(2, "big") + name)
    sent = 0
    with open(path, "rb", buffering=0) as f:
        while sent < limit:
            piece = f.read(min(PIECE, limit - sent))
            if not piece:
                break
            st.send(sock, piece)
            sent += len(piece)
            sched.due(sent)   # queued: the file's length-prefixed body cannot be interrupted
    if mode == "cut":
        st.cut(sock, cut_rst)
        return
    out = bytearray()
    for i, tb in sched.due(None):
        out += b"T" + len(tb).to_bytes(8, "big") + tb
        if len(out) >= PIECE:
            st.send(sock, out)
            out = bytearray()
    st.send(sock, out)
    st.finish(sock)


# ---------------------------------------------------------------------------------------------
# 4. mime-multipart


def parse_headers(block):
    return email.parser.HeaderParser().parsestr(block.decode("utf-8") + "\r\n")


def recv_multipart(conn, sink):
    r = Reader(conn)
    # top-level headers, up to the empty line
    while True:
        i = r.buf.find(b"\r\n\r\n", r.pos)
        if i >= 0:
            break
        if r.buffered() > MAX_HEADERS:
            raise ProtocolError("headers too long")
        if not r._fill():
            raise Incomplete("EOF in the headers")
    top = parse_headers(r.buf[r.pos:i])
    boundary = top.get_boundary()
    if top.get_content_type() != "multipart/mixed" or not boundary:
        raise ProtocolError("not multipart/mixed with a boundary")
    delim = b"\r\n--" + boundary.encode("ascii")
    keep = len(delim) - 1
    # The CRLF before a delimiter belongs to it; the body's first delimiter has none, so one is
    # put in front of the body.
    buf = b"\r\n" + r.buf[i + 4:]
    pos = 0
    state = "preamble"
    part = None       # ["text", [chunks], size] or ["file", FileSink]

    def feed(data):
        if part[0] == "file":
            part[1].write(data)
        else:
            part[2] += len(data)
            if part[2] > MAX_TEXT:
                raise ProtocolError("text part too long")
            part[1].append(bytes(data))

    while True:
        progressed = True
        while progressed:
            progressed = False
            if state in ("preamble", "body"):
                j = buf.find(delim, pos)
                if j < 0:
                    safe = max(pos, len(buf) - keep)   # the delimiter may start in the tail
                    if state == "body" and safe > pos:
                        feed(memoryview(buf)[pos:safe])
                    pos = safe
                    break
                if state == "body":
                    feed(memoryview(buf)[pos:j])
                    if part[0] == "file":
                        part[1].close(True, "closing delimiter seen")
                    else:
                        sink.text(b"".join(part[1]))
                    part = None
                pos = j + len(delim)
                state = "after"
                progressed = True
            elif state == "after":
                k = pos
                while k < len(buf) and buf[k] in b" \t":   # transport padding
                    k += 1
                if len(buf) - k < 2:
                    break
                if buf[k:k + 2] == b"--":
                    # the close delimiter; the epilogue is read (to EOF, so that the close
                    # leaves nothing unread, which would reset the connection) and ignored
                    extra = len(buf) - k
                    while d := conn.recv(RECV):
                        extra += len(d)
                        if extra > MAX_HEADERS:
                            raise ProtocolError("epilogue too long")
                    return
                if buf[k:k + 2] != b"\r\n":
                    raise ProtocolError("garbage after a delimiter")
                pos = k + 2
                state = "headers"
                progressed = True
            elif state == "headers":
                if buf.startswith(b"\r\n", pos):
                    block, pos = b"", pos + 2
                else:
                    j = buf.find(b"\r\n\r\n", pos)
                    if j < 0:
                        if len(buf) - pos > MAX_HEADERS:
                            raise ProtocolError("part headers too long")
                        break
                    block, pos = buf[pos:j], j + 4
                h = parse_headers(block)
                fname = h.get_filename()
                if fname is not None:
                    part = ["file", FileSink(sink, fname)]
                elif h.get_content_type() == "text/plain" and \
                        (h.get_content_charset() or "us-ascii") in ("utf-8", "us-ascii"):
                    part = ["text", [], 0]
                else:
                    raise ProtocolError(f"unexpected part {h.get_content_type()}")
                state = "body"
                progressed = True
        buf = buf[pos:]
        pos = 0
        data = conn.recv(RECV)
        if not data:
            if part is not None and part[0] == "file":
                # the bytes held back as a possible delimiter start belong to the file
                part[1].write(buf)
                part[1].close(False, f"EOF after {part[1].bytes} bytes without the part's"
                                     " closing delimiter")
            raise Incomplete(f"EOF in state {state}, no close delimiter")
        buf = buf + data if buf else data


def disposition(name):
    if name.isascii() and name.isprintable() and not any(c in name for c in '"\\'):
        return f'attachment; filename="{name}"'
    return "attachment; filename*=utf-8''" + urllib.parse.quote(name, safe="")


def send_multipart(port, path, texts, st, mode, cut_rst, io_timeout):
    name = os.path.basename(path)
    size = os.path.getsize(path)
    limit = size // 2 if mode == "cut" else size
    boundary = "=_socklab_" + secrets.token_hex(24)
    delim = b"\r\n--" + boundary.encode()
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    sock = st.connect(port)
    sched = st.schedule(texts if mode == "normal" else [], size)
    st.send(sock, (f'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="{boundary}"'
                   f"\r\n\r\n--{boundary}\r\nContent-Type: {ctype}\r\n"
                   f"Content-Disposition: {disposition(name)}\r\n"
                   "Content-Transfer-Encoding: binary\r\n\r\n").encode("utf-8"))
    sent = 0
    tail = b""
    with open(path, "rb", buffering=0) as f:
        while sent < limit:
            piece = f.read(min(PIECE, limit - sent))
            if not piece:
                break
            # The boundary must not occur in the data: check (a 2^-192 chance with random data)
            # in the piece and where it meets the previous one.
            if delim in piece or delim in tail + piece[:len(delim)]:
                raise RuntimeError("the boundary occurs in the file: choose another one")
            tail = piece[-len(delim):]
            st.send(sock, piece)
            sent += len(piece)
            sched.due(sent)   # queued: the file's part must end before another begins
    if mode == "cut":
        st.cut(sock, cut_rst)
        return
    out = bytearray()
    head = b"\r\n--" + boundary.encode() + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    for i, tb in sched.due(None):
        if delim in tb:
            raise RuntimeError("the boundary occurs in a text")
        out += head + tb
        if len(out) >= PIECE:
            st.send(sock, out)
            out = bytearray()
    out += b"\r\n--" + boundary.encode() + b"--\r\n"
    st.send(sock, out)
    st.finish(sock)


# ---------------------------------------------------------------------------------------------
# 5. typed-frames (docs/PROTOCOLS.md section 11)

HELLO, TEXT, FILE_BEGIN, FILE_CHUNK, FILE_END, FILE_QUERY, BYE = 0x01, 0x10, 0x20, 0x21, 0x22, \
    0x23, 0x30
TEXT_OK, FILE_OK, HAVE, ERROR = 0x40, 0x41, 0x42, 0x4F
MAGIC = b"SLXF\x01"
CHUNK = 64 * 1024
MAX_FRAME = CHUNK + 4
HDR = struct.Struct(">BI")


def frame(t, value=b""):
    return HDR.pack(t, len(value)) + value


def u32(i):
    return i.to_bytes(4, "big")


class Refused(Exception):
    def __init__(self, code, reason, fid=0):
        super().__init__(reason)
        self.code, self.reason, self.fid = code, reason, fid


def recv_typed(conn, sink, io_timeout):
    """One connection. Returns "bye" or "eof"."""
    r = Reader(conn)
    out = bytearray()

    def flush():
        if out:
            conn.sendall(out)
            sink.reply_bytes += len(out)
            out.clear()

    def error(fid, code, reason):
        out.extend(frame(ERROR, u32(fid) + code.to_bytes(2, "big") + reason.encode()[:1024]))

    files = {}      # id -> [FileSink, size, offset]
    refused = set()
    used = set()
    hello = False
    try:
        while True:
            if r.buffered() < 5 and r.at_eof():
                break
            t, n = HDR.unpack(r.read_exact(5))
            if n > MAX_FRAME:
                raise Refused(2, f"frame of {n} bytes")
            v = r.read_exact(n)
            if not hello:
                if t != HELLO or v != MAGIC:
                    raise Refused(1, "HELLO expected")
                out.extend(frame(HELLO, MAGIC))
                hello = True
            elif t == TEXT:
                if n < 4:
                    raise Refused(1, "short TEXT")
                fid = int.from_bytes(v[:4], "big")
                if fid in used:
                    raise Refused(1, f"id {fid} used twice")
                used.add(fid)
                try:
                    sink.text(v[4:])
                    out.extend(frame(TEXT_OK, v[:4]))
                except UnicodeDecodeError:
                    error(fid, 6, "not UTF-8")
            elif t == FILE_BEGIN:
                if n < 4 + 8 + 8 + 2:
                    raise Refused(1, "short FILE_BEGIN")
                fid, size, offset, nl = struct.unpack(">IQQH", v[:22])
                if nl > MAX_NAME or 22 + nl + 1 > n:
                    raise Refused(1, "bad name length")
                ml = v[22 + nl]
                if 22 + nl + 1 + ml != n:
                    raise Refused(1, "bad media length")
                if offset > size:
                    raise Refused(1, "offset past the size")
                if fid in used:
                    raise Refused(1, f"id {fid} used twice")
                used.add(fid)
                try:
                    name = v[22:22 + nl].decode("utf-8")
                    v[23 + nl:].decode("utf-8")
                except UnicodeDecodeError:
                    error(fid, 6, "name not UTF-8")
                    refused.add(fid)
                    continue
                part = os.path.join(sink.dir, safe_name(name) + ".part")
                if offset and (not os.path.exists(part) or os.path.getsize(part) < offset):
                    error(fid, 4, "no .part holding the offset")
                    refused.add(fid)
                    continue
                fs = FileSink(sink, name, path=part, append_from=offset)
                files[fid] = [fs, size, offset]
            elif t == FILE_CHUNK:
                if n <= 4:
                    raise Refused(1, "empty FILE_CHUNK")
                fid = int.from_bytes(v[:4], "big")
                if fid in refused:
                    continue
                if fid not in files:
                    raise Refused(1, f"chunk of file {fid} never begun")
                fs, size, _ = files[fid]
                if fs.bytes + n - 4 > size:
                    fs.close(False, "more bytes than declared")
                    os.remove(fs.path)
                    del files[fid]
                    refused.add(fid)
                    error(fid, 4, "more bytes than declared")
                    continue
                fs.write(memoryview(v)[4:])
            elif t == FILE_END:
                if n != 36:
                    raise Refused(1, "FILE_END length")
                fid = int.from_bytes(v[:4], "big")
                if fid in refused:
                    continue
                if fid not in files:
                    raise Refused(1, f"end of file {fid} never begun")
                fs, size, offset = files.pop(fid)
                got = fs.sha.digest()
                if fs.bytes == size and got == v[4:]:
                    final = free_path(sink.dir, safe_name(fs.name))
                    fs.close(True, "size and SHA-256 match", resumed_from=offset)
                    os.rename(fs.path, final)
                    out.extend(frame(FILE_OK, v[:4] + got + os.path.basename(final).encode()))
                else:
                    fs.close(False, f"mismatch: {fs.bytes} of {size} bytes or SHA-256")
                    os.remove(fs.path)
                    error(fid, 4, "size or SHA-256 mismatch")
            elif t == FILE_QUERY:
                if n < 14:
                    raise Refused(1, "short FILE_QUERY")
                fid, size, nl = struct.unpack(">IQH", v[:14])
                if 14 + nl != n:
                    raise Refused(1, "bad name length")
                part = os.path.join(sink.dir, safe_name(v[14:].decode("utf-8")) + ".part")
                held = os.path.getsize(part) if os.path.exists(part) else 0
                out.extend(frame(HAVE, u32(fid) + (held if held <= size else 0).to_bytes(8, "big")))
            elif t == BYE:
                if n:
                    raise Refused(1, "BYE with a value")
                for fid, (fs, size, _) in files.items():
                    fs.close(False, "begun and not ended by BYE: discarded")
                    os.remove(fs.path)
                flush()
                return "bye"
            else:
                raise Refused(1, f"unexpected frame type {t:#04x}")
            if r.buffered() == 0:
                flush()   # answers go out when the input is drained, not one write each
    except Refused as e:
        error(e.fid, e.code, e.reason)
        flush()
        raise ProtocolError(e.reason) from None
    except Incomplete:
        pass
    # EOF (or cut) without BYE: files in flight keep their .part, for a resume
    for fid, (fs, size, _) in files.items():
        fs.close(False, f"connection ended after {fs.bytes} of {size} bytes, no FILE_END:"
                        " .part kept")
    return "eof"


class Answers(threading.Thread):
    """The typed-frames sender's reader: drains the receiver's answers as they come."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.text_ok = 0
        self.file_ok = {}
        self.errors = []
        self.have = queue.Queue()
        self.failure = None

    def run(self):
        r = Reader(self.sock)
        try:
            t, n = HDR.unpack(r.read_exact(5))
            if t != HELLO or r.read_exact(n) != MAGIC:
                raise ProtocolError("HELLO expected")
            while not r.at_eof():
                t, n = HDR.unpack(r.read_exact(5))
                if n > 4 + 32 + 4 * MAX_NAME + 4:
                    raise ProtocolError("answer too long")
                v = r.read_exact(n)
                if t == TEXT_OK:
                    self.text_ok += 1
                elif t == FILE_OK:
                    self.file_ok[int.from_bytes(v[:4], "big")] = v[4:36].hex()
                elif t == HAVE:
                    self.have.put(int.from_bytes(v[4:12], "big"))
                elif t == ERROR:
                    self.errors.append((int.from_bytes(v[:4], "big"),
                                        int.from_bytes(v[4:6], "big"), v[6:].decode("utf-8",
                                                                                    "replace")))
                else:
                    raise ProtocolError(f"unexpected answer {t:#04x}")
        except Exception as e:  # noqa: BLE001
            self.failure = repr(e)


def file_begin(fid, size, offset, name, media):
    return frame(FILE_BEGIN, struct.pack(">IQQH", fid, size, offset, len(name)) + name +
                 bytes([len(media)]) + media)


def send_typed(port, path, texts, st, mode, cut_rst, io_timeout):
    name = os.path.basename(path).encode("utf-8")
    media = (mimetypes.guess_type(path)[0] or "").encode()
    size = os.path.getsize(path)
    limit = size // 2 if mode == "cut" else size
    fid = 1
    sock = st.connect(port)
    ans = Answers(sock)
    ans.start()
    sched = st.schedule(texts if mode == "normal" else [], size, now=True)
    sha = hashlib.sha256()
    out = bytearray(frame(HELLO, MAGIC) + file_begin(fid, size, 0, name, media))
    sent = 0
    next_id = 2
    with open(path, "rb", buffering=0) as f:
        while sent < limit:
            piece = f.read(min(PIECE, limit - sent))
            if not piece:
                break
            sha.update(piece)
            mv = memoryview(piece)
            for k in range(0, len(piece), CHUNK):
                c = mv[k:k + CHUNK]
                out += HDR.pack(FILE_CHUNK, 4 + len(c))
                out += u32(fid)
                out += c
                sent += len(c)
                for i, tb in sched.due(sent):   # texts go out between two chunks
                    out += frame(TEXT, u32(next_id) + tb)
                    next_id += 1
            st.send(sock, out)
            out = bytearray()
    if mode == "cut":
        # The reader thread must be out of recv() before the close, or the close waits for it
        # (and an abortive close sends no RST until then).
        sock.shutdown(socket.SHUT_RD if cut_rst else socket.SHUT_WR)
        ans.join(io_timeout)
        st.cut(sock, cut_rst)
        st.result["cut_at"] = sent
        resume_typed(port, path, name, media, size, st, io_timeout)
        return
    for i, tb in sched.due(None):
        out += frame(TEXT, u32(next_id) + tb)
        next_id += 1
    out += frame(FILE_END, u32(fid) + sha.digest()) + frame(BYE)
    st.send(sock, out)
    ans.join(io_timeout)   # the receiver closes once it has answered everything
    sock.close()
    st.result["answers"] = {"text_ok": ans.text_ok, "file_ok": len(ans.file_ok),
                            "errors": ans.errors[:5], "failure": ans.failure}
    st.result["acks_ok"] = (ans.text_ok == len(texts) and ans.file_ok.get(fid) == sha.hexdigest()
                            and not ans.errors and ans.failure is None)


def resume_typed(port, path, name, media, size, st, io_timeout):
    """After a cut: ask what the receiver holds, send only the rest."""
    sock = st.connect(port)
    ans = Answers(sock)
    ans.start()
    st.send(sock, frame(HELLO, MAGIC) + frame(FILE_QUERY, u32(1) + size.to_bytes(8, "big") +
                                              len(name).to_bytes(2, "big") + name))
    held = ans.have.get(timeout=io_timeout)
    sha = hashlib.sha256()
    fid = 2
    out = bytearray(file_begin(fid, size, held, name, media))
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < held:   # the SHA-256 covers the whole file
            b = f.read(min(PIECE, held - done))
            if not b:
                break
            sha.update(b)
            done += len(b)
        while True:
            piece = f.read(PIECE)
            if not piece:
                break
            sha.update(piece)
            for k in range(0, len(piece), CHUNK):
                out += frame(FILE_CHUNK, u32(fid) + piece[k:k + CHUNK])
            st.send(sock, out)
            out = bytearray()
    st.send(sock, frame(FILE_END, u32(fid) + sha.digest()) + frame(BYE))
    ans.join(io_timeout)
    sock.close()
    st.result["resume"] = {"held": held, "file_ok": ans.file_ok.get(fid) == sha.hexdigest(),
                           "errors": ans.errors[:5], "failure": ans.failure}


# ---------------------------------------------------------------------------------------------
# The two roles


class SendState:
    def __init__(self, io_timeout):
        self.io_timeout = io_timeout
        self.wire = 0
        self.conns = 0
        self.t0 = None
        self.probe_t = None
        self.result = {}

    def connect(self, port):
        if self.t0 is None:
            self.t0 = time.monotonic()
        self.conns += 1
        return connect(port, self.io_timeout)

    def send(self, sock, data):
        if data:
            sock.sendall(data)
            self.wire += len(data)

    def finish(self, sock):
        """No more to send: FIN, then wait for the receiver to close (it has read it all)."""
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(RECV):
            pass
        sock.close()

    def cut(self, sock, rst):
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        sock.close()

    def schedule(self, texts, size, now=False):
        return Schedule(self, [t.encode("utf-8") for t in texts], size, now)


class Schedule:
    """Text i falls due once i/N of the file is written (text 0 after the first write).

    due(sent) returns the texts that fall due now if the protocol can send them at once
    (now=True); otherwise it keeps them queued, and due(None) returns them all, in order."""

    def __init__(self, st, texts, size, now):
        self.st, self.texts, self.size, self.now = st, texts, size, now
        self.next = 0
        self.queued = []

    def due(self, sent):
        n = len(self.texts)
        new = []
        while self.next < n and (sent is None or self.next * self.size // n < sent):
            if self.next == 0:
                self.st.probe_t = time.monotonic()
            new.append((self.next, self.texts[self.next]))
            self.next += 1
        if sent is None:
            new, self.queued = self.queued + new, []
            return new
        if self.now:
            return new
        self.queued.extend(new)
        return []


SENDERS = {"per-item": send_per_item, "delimiter-base64": send_delimiter,
           "length-prefix": send_length, "mime-multipart": send_multipart,
           "typed-frames": send_typed}


def role_send(a):
    texts = make_texts(a.texts) if a.mode == "normal" else []
    st = SendState(a.io_timeout)
    c0 = cpu_now()
    err = None
    try:
        SENDERS[a.alt](a.port, a.file, texts, st, a.mode, a.cut_mode == "rst", a.io_timeout)
    except Exception as e:  # noqa: BLE001
        err = repr(e)
    res = {"t0": st.t0, "t_end": time.monotonic(), "probe_t": st.probe_t, "wire": st.wire,
           "conns": st.conns, "cpu": cpu_now() - c0, "error": err}
    res.update(st.result)
    print(json.dumps(res), flush=True)


def role_recv(a):
    os.makedirs(a.dir, exist_ok=True)
    lsock = new_socket(a.io_timeout)
    lsock.bind((HOST, 0))
    lsock.listen(min(4096, socket.SOMAXCONN))
    print(json.dumps({"port": lsock.getsockname()[1]}), flush=True)
    sink = Sink(a.dir)
    err = None
    c0 = cpu_now()   # waiting in accept() costs no CPU time
    try:
        if a.alt == "per-item":
            recv_per_item(lsock, sink, a.mode, a.io_timeout)
        else:
            for k in range(a.conns):
                conn, _ = lsock.accept()
                conn.settimeout(a.io_timeout)
                try:
                    if a.alt == "delimiter-base64":
                        recv_delimiter(conn, sink)
                    elif a.alt == "length-prefix":
                        recv_length(conn, sink)
                    elif a.alt == "mime-multipart":
                        recv_multipart(conn, sink)
                    elif recv_typed(conn, sink, a.io_timeout) != "bye" and a.mode == "normal":
                        raise Incomplete("connection ended without BYE")
                except (Incomplete, OSError) as e:   # OSError: a reset, a timeout
                    sink.notes.append(f"connection {k + 1}: {e!r}")
                    for fs in list(sink.open):
                        fs.close(False, f"connection error: {e!r}")
                    if a.mode == "normal":
                        raise
                finally:
                    conn.close()
    except Exception as e:  # noqa: BLE001
        err = repr(e)
    t_done = time.monotonic()
    res = {"t_done": t_done, "cpu": cpu_now() - c0,
           "ntexts": sink.ntexts, "texts_digest": sink.th.hexdigest(),
           "first_text_t": sink.first_text_t, "file_done_t": sink.file_done_t,
           "files": sink.files, "reply_bytes": sink.reply_bytes, "notes": sink.notes[:10],
           "error": err}
    lsock.close()
    print(json.dumps(res), flush=True)


# ---------------------------------------------------------------------------------------------
# The orchestrator


def read_line(proc, deadline, pending):
    fd = proc.stdout.fileno()
    while b"\n" not in pending[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from a child process")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            d = os.read(fd, 65536)
            if not d:
                raise RuntimeError(f"child process ended (rc {proc.poll()})")
            pending[0] += d
    line, _, pending[0] = pending[0].partition(b"\n")
    return json.loads(line)


def one_run(a, alt, mode, d):
    """Runs a receiver and a sender; returns (sender's result, receiver's result)."""
    deadline = time.monotonic() + a.timeout
    io_t = str(min(30.0, a.timeout))
    me = [sys.executable, os.path.abspath(__file__)]
    procs = []
    try:
        conns = 2 if (alt == "typed-frames" and mode == "cut") else 1
        rp = subprocess.Popen(me + ["--role", "recv", "--alt", alt, "--dir", d, "--mode", mode,
                                    "--conns", str(conns), "--io-timeout", io_t,
                                    "--timeout", str(a.timeout)], stdout=subprocess.PIPE)
        procs.append(rp)
        pending = [b""]
        port = read_line(rp, deadline, pending)["port"]
        sp = subprocess.Popen(me + ["--role", "send", "--alt", alt, "--port", str(port),
                                    "--file", a.file, "--texts", str(a.texts), "--mode", mode,
                                    "--cut-mode", a.cut_mode, "--io-timeout", io_t,
                                    "--timeout", str(a.timeout)], stdout=subprocess.PIPE)
        procs.append(sp)
        sres = read_line(sp, deadline, [b""])
        rres = read_line(rp, deadline, pending)
        for p in procs:
            p.wait(max(0.1, deadline - time.monotonic()))
        return sres, rres
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()


def measure(a, alt, file_size, file_sha, payload, exp_digest, base):
    out = {"alt": alt}
    d = tempfile.mkdtemp(prefix=f"{alt}.", dir=base)
    try:
        log(f"{alt}: normal run")
        s, r = one_run(a, alt, "normal", d)
        secs = r["t_done"] - s["t0"] if s["t0"] else None
        ok_files = [f for f in r["files"] if f["complete"]]
        out.update({
            "file_bytes": file_size, "texts": a.texts, "payload_bytes": payload,
            "wire_bytes": s["wire"], "overhead_bytes": s["wire"] - payload,
            "overhead_pct": round(100.0 * (s["wire"] - payload) / payload, 3) if payload else None,
            "connections": s["conns"], "reply_bytes": r["reply_bytes"],
            "seconds": round(secs, 4) if secs else None,
            "mb_per_s": round(payload / 1e6 / secs, 2) if secs else None,
            "cpu_send_s": round(s["cpu"], 3), "cpu_recv_s": round(r["cpu"], 3),
            "file_ok": len(ok_files) == 1 and ok_files[0]["sha256"] == file_sha
            and ok_files[0]["bytes"] == file_size,
            "texts_ok": r["ntexts"] == a.texts and r["texts_digest"] == exp_digest,
        })
        if r["first_text_t"] is not None and s["probe_t"] is not None:
            out["text_wait_ms"] = round((r["first_text_t"] - s["probe_t"]) * 1000, 3)
            early = r["file_done_t"] is not None and r["first_text_t"] < r["file_done_t"]
            out["interleave"] = ("another connection" if alt == "per-item" and early else early)
        else:
            out["text_wait_ms"] = None
            out["interleave"] = None
        if "acks_ok" in s:
            out["acks_ok"] = s["acks_ok"]
        errs = [x for x in (s["error"], r["error"]) if x] + r["notes"]
        if errs:
            out["errors"] = errs
        for f in os.listdir(d):
            os.remove(os.path.join(d, f))

        log(f"{alt}: cut run ({a.cut_mode})")
        s, r = one_run(a, alt, "cut", d)
        files = r["files"]
        bad = [f for f in files if f["complete"] and f["sha256"] != file_sha]
        resumed = [f for f in files if f["complete"] and f["sha256"] == file_sha
                   and f.get("resumed_from")]
        if bad:
            out["cut"] = "silent-truncation"
        elif any(not f["complete"] for f in files):
            out["cut"] = "detected"
        else:
            out["cut"] = "unknown"
        out["cut_resume"] = bool(resumed)
        detail = "; ".join(f"{f['bytes']} bytes kept, {'accepted' if f['complete'] else 'refused'}"
                           f" ({f['note']})" for f in files)
        if resumed:
            detail += f"; resumed at byte {resumed[0]['resumed_from']}, FILE_OK"
        errs = [x for x in (s["error"], r["error"]) if x]
        out["cut_detail"] = detail + ("; " + "; ".join(errs) if errs else "")
    except Exception as e:  # noqa: BLE001
        out["error"] = repr(e)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--file", help="the file to send (e.g. a 100 MB image)")
    p.add_argument("--texts", type=int, default=10000, help="number of short texts")
    p.add_argument("--only", choices=ALTS, help="run one alternative")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds allowed for each run (receiver + sender)")
    p.add_argument("--dir", help="where the received files go (a temporary directory is made "
                                 "inside); default /dev/shm if it exists")
    p.add_argument("--cut-mode", choices=["fin", "rst"], default="fin",
                   help="how the cut run's sender stops: shutdown+close or abortive close")
    # hidden: the child processes
    p.add_argument("--role", choices=["recv", "send"], help=argparse.SUPPRESS)
    p.add_argument("--alt", choices=ALTS, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["normal", "cut"], default="normal", help=argparse.SUPPRESS)
    p.add_argument("--conns", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--io-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    a = p.parse_args()

    if a.role:
        signal.alarm(int(a.timeout) + 10)   # ends by itself even if the parent is gone
        (role_send if a.role == "send" else role_recv)(a)
        return
    if not a.file or not os.path.isfile(a.file):
        p.error("--file must name a regular file")
    if a.texts < 0 or a.timeout <= 0:
        p.error("--texts must be >= 0 and --timeout > 0")

    size = os.path.getsize(a.file)
    h = hashlib.sha256()
    with open(a.file, "rb", buffering=0) as f:
        while b := f.read(1 << 20):
            h.update(b)
    tb = [t.encode("utf-8") for t in make_texts(a.texts)]
    payload = size + sum(len(b) for b in tb)
    exp = texts_digest(tb)
    base = a.dir or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    work = tempfile.mkdtemp(prefix="transfer_alt.", dir=base)
    log(f"file {a.file}: {size} bytes, {a.texts} texts, {payload} payload bytes; files in {work}")
    try:
        for alt in ([a.only] if a.only else ALTS):
            res = measure(a, alt, size, h.hexdigest(), payload, exp, work)
            print(json.dumps(res, ensure_ascii=False), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
