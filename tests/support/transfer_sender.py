#!/usr/bin/env python3
"""A sender for `socklab transfer`, written from docs/PROTOCOLS.md section 11 alone (stdlib only),
so that a test can show the document is enough to interoperate with `socklab transfer serve`.

Usage: python3 transfer_sender.py HOST PORT [--text TEXT]... [FILE]...

Texts and files are items, numbered from 1 in command-line order and sent in that order:
`--text a f1 --text b` sends TEXT 1 "a", file 2 f1, TEXT 3 "b". A text is one TEXT frame; a file
is FILE_BEGIN (offset 0, its last path component as the name, media type image/png or image/jpeg
from the extension, else empty), FILE_CHUNK frames of at most 64 KiB, and FILE_END with the
SHA-256 of the whole file. BYE follows the last item. Answers are read by a second thread while
the items go out, so a receiver answering many texts never waits on a full socket buffer.

One line per item goes to stdout, in the order the answers arrive:
    ok text ID
    ok file ID SAVED_AS SHA256HEX      (the SHA-256 the receiver reported, lowercase hex)
    error ID CODE REASON               (the receiver's ERROR for that item)
    error ID - REASON                  (this sender's own verdict: no answer came, the file
                                        could not be read, or a FILE_OK whose SHA-256 is not
                                        the one sent)
An ERROR for the whole connection (id 0) also prints as `error 0 CODE REASON`. Control characters
in a saved name or a reason are printed escaped (`\\n`, `\\x07`), so each answer stays one line.

Exit status: 0 when every item got a positive answer (and the SHA-256 of every FILE_OK is the
one sent) and the receiver closed after BYE; 2 when the receiver broke the protocol (a first
frame that is neither HELLO nor ERROR id 0, a wrong magic or version, a length over 65,540, a
field that does not parse, an unknown or sender-only frame type, an answer for an id that is
not owed one or out of the order of step 5); 1 otherwise (bad usage, an unreadable file, a refused item, a connection cut or
timed out, answers missing). Every read waits at most 30 s.
"""

import argparse
import hashlib
import os
import socket
import struct
import sys
import threading
import time

# Frame types (the table in section 11).
HELLO, TEXT, FILE_BEGIN, FILE_CHUNK, FILE_END, FILE_QUERY, BYE = (
    0x01, 0x10, 0x20, 0x21, 0x22, 0x23, 0x30)
TEXT_OK, FILE_OK, HAVE, ERROR = 0x40, 0x41, 0x42, 0x4F
NAMES = {HELLO: "HELLO", TEXT: "TEXT", FILE_BEGIN: "FILE_BEGIN", FILE_CHUNK: "FILE_CHUNK",
         FILE_END: "FILE_END", FILE_QUERY: "FILE_QUERY", BYE: "BYE", TEXT_OK: "TEXT_OK",
         FILE_OK: "FILE_OK", HAVE: "HAVE", ERROR: "ERROR"}

MAGIC, VERSION = b"SLXF", 1
HEADER = struct.Struct(">BI")  # type, length of the value
MAX_LENGTH = 65_540  # a chunk of 64 KiB and its id
MAX_CHUNK = 65_536
MAX_TEXT = 65_536
MAX_NAME = 1_024
MAX_MEDIA = 255  # its length is one byte
MAX_REASON = 1_024
ID = struct.Struct(">I")
BEGIN_HEAD = struct.Struct(">IQQH")  # id, size, offset, name length (then name, media length, media)
ERROR_HEAD = struct.Struct(">IH")  # id, code (then the reason)
SHA_LEN = 32
TIMEOUT = 30.0
CODES = {1: "protocol", 2: "too large", 3: "no space", 4: "size or SHA-256 mismatch", 5: "I/O",
         6: "not UTF-8", 99: "other"}


# ---------------------------------------------------------------------------------------------
# Frames this sender sends.

def frame(kind, value=b""):
    if len(value) > MAX_LENGTH:
        raise ValueError("a %s value of %d bytes is over %d" % (NAMES[kind], len(value), MAX_LENGTH))
    return HEADER.pack(kind, len(value)) + value


def hello_frame():
    return frame(HELLO, MAGIC + bytes([VERSION]))


def text_frame(item_id, text):
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(data) > MAX_TEXT:
        raise ValueError("a text of %d bytes is over %d" % (len(data), MAX_TEXT))
    return frame(TEXT, ID.pack(item_id) + data)


def file_begin_frame(item_id, size, name, media, offset=0):
    name_b, media_b = name.encode("utf-8"), media.encode("ascii")
    if len(name_b) > MAX_NAME:
        raise ValueError("a name of %d bytes is over %d" % (len(name_b), MAX_NAME))
    if len(media_b) > MAX_MEDIA:
        raise ValueError("a media type of %d bytes is over %d" % (len(media_b), MAX_MEDIA))
    return frame(FILE_BEGIN, BEGIN_HEAD.pack(item_id, size, offset, len(name_b)) + name_b
                 + bytes([len(media_b)]) + media_b)


def file_chunk_frame(item_id, data):
    if not 1 <= len(data) <= MAX_CHUNK:
        raise ValueError("a chunk must hold 1 to %d bytes, not %d" % (MAX_CHUNK, len(data)))
    return frame(FILE_CHUNK, ID.pack(item_id) + data)


def file_end_frame(item_id, sha256):
    if len(sha256) != SHA_LEN:
        raise ValueError("a SHA-256 is 32 bytes")
    return frame(FILE_END, ID.pack(item_id) + sha256)


def bye_frame():
    return frame(BYE)


def media_type(path):
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        return "image/png"
    if ext in (".jpg", ".jpeg"):
        return "image/jpeg"
    return ""


def wire_name(path):
    """The name sent: the last component only (the receiver keeps no more), as valid UTF-8."""
    name = os.path.basename(path)
    # A name that is not UTF-8 on disk arrives here with surrogate escapes: send '?' for those.
    return name.encode("utf-8", "replace").decode("utf-8")


# ---------------------------------------------------------------------------------------------
# Frames the receiver sends, parsed completely: each raises Violation on anything off the table.

class Violation(Exception):
    """The receiver broke the protocol."""


class Closed(Exception):
    """The connection ended or failed (not, by itself, a protocol violation)."""


def utf8(data, what):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Violation("%s is not UTF-8" % what) from None


def parse_hello(value):
    if len(value) != 5:
        raise Violation("HELLO's value is %d bytes, not 5" % len(value))
    if value[:4] != MAGIC:
        raise Violation("HELLO's magic is %r, not %r" % (value[:4], MAGIC))
    if value[4] != VERSION:
        raise Violation("HELLO's version is %d, not %d" % (value[4], VERSION))


def parse_text_ok(value):
    if len(value) != ID.size:
        raise Violation("TEXT_OK's value is %d bytes, not 4" % len(value))
    return ID.unpack(value)[0]


def parse_file_ok(value):
    if len(value) < ID.size + SHA_LEN:
        raise Violation("FILE_OK's value is %d bytes, fewer than 36" % len(value))
    (item_id,) = ID.unpack_from(value)
    sha = value[ID.size:ID.size + SHA_LEN]
    name = utf8(value[ID.size + SHA_LEN:], "FILE_OK's name")
    return item_id, sha, name


def parse_error(value):
    if len(value) < ERROR_HEAD.size:
        raise Violation("ERROR's value is %d bytes, fewer than 6" % len(value))
    item_id, code = ERROR_HEAD.unpack_from(value)
    reason = value[ERROR_HEAD.size:]
    if len(reason) > MAX_REASON:
        raise Violation("ERROR's reason is %d bytes, over %d" % (len(reason), MAX_REASON))
    return item_id, code, utf8(reason, "ERROR's reason")


def printable(text):
    """One line however the receiver spelled it: control characters escaped."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch, "\\x%02x" % ord(ch)))
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The session.

class Item:
    def __init__(self, item_id, kind, payload):
        self.id = item_id
        self.kind = kind  # "text" or "file"
        self.payload = payload  # the text, or the path
        self.started = False  # its first frame is (about to be) on the wire
        self.finished = False  # its last frame (TEXT or FILE_END) is (about to be) on the wire
        self.sha = None  # a file's SHA-256 as sent in FILE_END
        self.short = False  # fewer bytes could be read than FILE_BEGIN declared
        self.answer = None  # ("ok", ...) or ("error", ...); set once
        self.positive = False


class Session:
    def __init__(self, sock, items):
        self.sock = sock
        self.items = items
        self.by_id = {item.id: item for item in items}
        self.lock = threading.Lock()
        self.out_lock = threading.Lock()
        self.violation = None  # the reason, once the receiver broke the protocol
        self.failure = None  # a connection-level problem (not a violation)
        self.conn_error = None  # (code, reason) of an ERROR id 0
        self.stop_sending = threading.Event()  # the connection is finished with, stop writing
        self.bye_sent = False
        self.writer_done = False
        self.last_progress = time.monotonic()  # the writer's last completed write
        self.closed_cleanly = False

    # -- output --

    def say(self, line):
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def warn(self, line):
        with self.out_lock:
            sys.stderr.write("transfer_sender: " + line + "\n")
            sys.stderr.flush()

    # -- writing (main thread) --

    def send(self, data):
        if self.stop_sending.is_set():
            raise Closed("the connection is finished")
        self.sock.sendall(data)
        with self.lock:
            self.last_progress = time.monotonic()

    def refused(self, item):
        with self.lock:
            return item.answer is not None

    def send_text(self, item):
        data = text_frame(item.id, item.payload)
        with self.lock:
            item.started = item.finished = True  # before the bytes leave: the answer may be quick
        self.send(data)

    def send_file(self, item):
        path = item.payload
        try:
            f = open(path, "rb")
        except OSError as e:  # it was readable when checked: nothing of it has been sent
            with self.lock:
                item.answer = ("error", None, str(e))
            self.say("error %d - cannot open %s: %s" % (item.id, printable(path), printable(str(e))))
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            begin = file_begin_frame(item.id, size, wire_name(path), media_type(path))
            with self.lock:
                item.started = True
            self.send(begin)
            sha = hashlib.sha256()
            sent = 0
            while sent < size:
                if self.refused(item):  # refused before its end: send no more of it (step 3)
                    return
                try:
                    data = f.read(min(MAX_CHUNK, size - sent))
                except OSError as e:
                    self.warn("reading %s: %s" % (path, e))
                    data = b""
                if not data:
                    # Shorter than FILE_BEGIN said (it shrank, or a read failed). The protocol has
                    # no frame to abandon a file, so end it anyway: the receiver compares the size
                    # and answers ERROR 4, which is the one answer this item is owed.
                    self.warn("%s: only %d of %d bytes could be read" % (path, sent, size))
                    item.short = True
                    break
                sha.update(data)
                sent += len(data)
                self.send(file_chunk_frame(item.id, data))
            if self.refused(item):
                return
            item.sha = sha.digest()
            with self.lock:
                item.finished = True
            self.send(file_end_frame(item.id, item.sha))

    def write_all(self):
        try:
            self.send(hello_frame())  # the receiver's HELLO is checked by the reader
            for item in self.items:
                if self.stop_sending.is_set():
                    break
                if item.kind == "text":
                    self.send_text(item)
                else:
                    self.send_file(item)
            if not self.stop_sending.is_set():
                with self.lock:
                    self.bye_sent = True  # before it leaves: the receiver may close at once
                self.send(bye_frame())
                try:
                    self.sock.shutdown(socket.SHUT_WR)  # nothing more: BYE said it, EOF agrees
                except OSError:
                    pass
        except Closed:
            pass
        except socket.timeout:
            self.fail("sending: the receiver read nothing for %d s" % TIMEOUT)
        except OSError as e:
            # The reader usually knows why (an ERROR id 0, a violation, a reset): it reports it.
            if not self.stop_sending.is_set():
                self.fail("sending: %s" % e)
        finally:
            with self.lock:
                self.writer_done = True
                self.last_progress = time.monotonic()

    def fail(self, reason):
        with self.lock:
            if self.failure is None and self.violation is None:
                self.failure = reason
        self.stop_sending.set()

    def violate(self, reason):
        with self.lock:
            if self.violation is None:
                self.violation = reason
        self.stop_sending.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # unblocks the writer
        except OSError:
            pass

    # -- reading (reader thread) --

    def recv_exact(self, n, buf):
        """Reads n bytes into buf (a bytearray). A 30 s silence is tolerated only while the
        writer is still busy and moving: then no answer is necessarily owed yet."""
        while len(buf) < n:
            try:
                data = self.sock.recv(min(n - len(buf), 65_536))
            except socket.timeout:
                with self.lock:
                    busy = (not self.writer_done
                            and time.monotonic() - self.last_progress < TIMEOUT)
                if busy:
                    continue
                raise Closed("no answer from the receiver for %d s" % TIMEOUT) from None
            except OSError as e:
                raise Closed("receiving: %s" % e) from None
            if not data:
                return False
            buf += data
        return True

    def read_frame(self):
        """(type, value), or None at a clean end of the connection between frames."""
        head = bytearray()
        if not self.recv_exact(HEADER.size, head):
            if head:
                raise Violation("the connection ended inside a frame header")
            return None
        kind, length = HEADER.unpack(head)
        if length > MAX_LENGTH:  # before reading or reserving anything
            raise Violation("a frame of type %02x declares %d bytes, over %d"
                            % (kind, length, MAX_LENGTH))
        value = bytearray()
        if not self.recv_exact(length, value):
            raise Violation("the connection ended inside a %s frame"
                            % NAMES.get(kind, "%02x" % kind))
        return kind, bytes(value)

    def owed(self, item_id, kinds, what):
        """The item an answer is for; it must exist, be of the right kind and still owed one."""
        item = self.by_id.get(item_id)
        if item is None:
            raise Violation("%s for id %d, which this sender never used" % (what, item_id))
        if item.kind not in kinds:
            raise Violation("%s for id %d, which is a %s" % (what, item_id, item.kind))
        if item.answer is not None:
            raise Violation("a second answer (%s) for id %d" % (what, item_id))
        # Answers come in the order the items' last frames arrived (step 5), and this sender
        # sends one item after the other: so the answer due next is the lowest id still owed.
        due = next(i for i in self.items if i.answer is None)
        if due is not item:
            raise Violation("%s for id %d while id %d, sent before it, has no answer yet"
                            % (what, item_id, due.id))
        return item

    def handle(self, kind, value):
        if kind == TEXT_OK:
            item_id = parse_text_ok(value)
            with self.lock:
                item = self.owed(item_id, ("text",), "TEXT_OK")
                if not item.finished:
                    raise Violation("TEXT_OK for id %d before its TEXT was sent" % item_id)
                item.answer, item.positive = ("ok",), True
            self.say("ok text %d" % item_id)
        elif kind == FILE_OK:
            item_id, sha, name = parse_file_ok(value)
            with self.lock:
                item = self.owed(item_id, ("file",), "FILE_OK")
                if not item.finished:
                    raise Violation("FILE_OK for id %d before its FILE_END was sent" % item_id)
                item.answer = ("ok", sha, name)
                item.positive = sha == item.sha and not item.short
            if item.positive:
                self.say("ok file %d %s %s" % (item_id, printable(name), sha.hex()))
            elif item.short:
                self.say("error %d - FILE_OK for a file sent short (saved as %s)"
                         % (item_id, printable(name)))
            else:
                self.say("error %d - FILE_OK says SHA-256 %s, but %s was sent (saved as %s)"
                         % (item_id, sha.hex(), item.sha.hex(), printable(name)))
        elif kind == ERROR:
            item_id, code, reason = parse_error(value)
            if item_id == 0:
                with self.lock:
                    self.conn_error = (code, reason)
                self.stop_sending.set()
                self.say("error 0 %d %s" % (code, printable(reason)))
                return
            with self.lock:
                item = self.owed(item_id, ("text", "file"), "ERROR")
                # A file may be refused before its end (step 3), but not before it began.
                if not (item.finished or (item.kind == "file" and item.started)):
                    raise Violation("ERROR for id %d before it was sent" % item_id)
                item.answer = ("error", code, reason)
            self.say("error %d %d %s" % (item_id, code, printable(reason)))
        elif kind == HELLO:
            raise Violation("a second HELLO")
        elif kind == HAVE:
            raise Violation("HAVE, but this sender asked nothing (no FILE_QUERY)")
        elif kind in NAMES:
            raise Violation("%s, which only a sender sends" % NAMES[kind])
        else:
            raise Violation("unknown frame type %02x" % kind)

    def all_answered(self):
        with self.lock:
            return all(item.answer is not None for item in self.items)

    def read_all(self):
        try:
            first = self.read_frame()
            if first is None:
                raise Closed("the receiver closed before its HELLO")
            kind, value = first
            if kind == ERROR:  # step 1: the receiver may refuse our HELLO with ERROR id 0
                item_id = parse_error(value)[0]
                if item_id != 0:
                    raise Violation("the first frame is ERROR id %d, not HELLO" % item_id)
                self.handle(kind, value)
            elif kind != HELLO:
                raise Violation("the first frame is %s, not HELLO"
                                % NAMES.get(kind, "type %02x" % kind))
            else:
                parse_hello(value)
            while True:
                got = self.read_frame()
                if got is None:
                    break
                self.handle(*got)
            # The receiver closed. After BYE with every answer in, that is the normal end.
            with self.lock:
                bye = self.bye_sent
            if bye and self.all_answered() and self.conn_error is None:
                self.closed_cleanly = True
            elif self.conn_error is None:
                self.fail("the receiver closed the connection with answers still owed"
                          if bye else "the receiver closed the connection before BYE")
        except Violation as e:
            self.violate(str(e))
        except Closed as e:
            with self.lock:
                bye = self.bye_sent
            if bye and self.all_answered() and self.conn_error is None:
                self.fail("every answer is in, but the receiver did not close: %s" % e)
            else:
                self.fail(str(e))
        finally:
            self.stop_sending.set()
            with self.lock:
                writing = not self.writer_done
            if writing:  # a writer blocked on a receiver that no longer reads: free it
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


# ---------------------------------------------------------------------------------------------
# The command line.

class Parser(argparse.ArgumentParser):
    def error(self, message):  # exit 1, keeping 2 for a receiver's protocol violation
        self.print_usage(sys.stderr)
        self.exit(1, "%s: error: %s\n" % (self.prog, message))


def parse_args(argv):
    parser = Parser(
        prog="transfer_sender.py", allow_abbrev=False,
        description="Send texts and files to a `socklab transfer` receiver, in command-line order.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--text", action="append", default=[], metavar="TEXT",
                        help="a text to send (repeatable)")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="a file to send (after `--` if its name starts with -)")

    # The parser above gives --help and the usage errors, but argv is walked here, once, in
    # order: argparse keeps texts and files apart (even parse_intermixed_args), its time grows
    # with the square of the number of options (a minute for 60,000 texts), and on Python 3.11
    # it drops a file named `--` given after `--`. Recognized: `--text VALUE` (VALUE may start
    # with -), `--text=VALUE`, `--` (everything after it is positional), -h/--help; everything
    # else is positional: HOST, PORT, then files.
    order, positionals, i, options_done = [], [], 0, False
    while i < len(argv):
        arg = argv[i]
        if options_done or arg == "-" or not arg.startswith("-"):
            positionals.append(arg)
            if len(positionals) > 2:
                order.append(("file", arg))
        elif arg == "--":
            options_done = True
        elif arg in ("-h", "--help"):
            parser.print_help()
            parser.exit(0)
        elif arg == "--text" or arg.startswith("--text="):
            if arg == "--text":
                if i + 1 >= len(argv):
                    parser.error("argument --text: expected one argument")
                i += 1
                value = argv[i]
            else:
                value = arg[len("--text="):]
            order.append(("text", value))
        else:
            parser.error("unrecognized argument %s (a file whose name starts with - goes after --)"
                         % arg)
        i += 1
    if len(positionals) < 2:
        parser.error("HOST and PORT are required")
    host, port = positionals[0], positionals[1]
    try:
        port = int(port)
    except ValueError:
        parser.error("PORT %r is not a number" % port)
    if not 1 <= port <= 65535:
        parser.error("PORT %d is not in 1..65535" % port)

    items = []
    for n, (kind, payload) in enumerate(order, 1):
        if kind == "text":
            try:
                size = len(payload.encode("utf-8"))
            except UnicodeEncodeError:
                parser.error("text %d is not valid UTF-8" % n)
            if size > MAX_TEXT:
                parser.error("text %d is %d bytes; a TEXT holds at most %d" % (n, size, MAX_TEXT))
        else:
            if not os.path.isfile(payload) or not os.access(payload, os.R_OK):
                parser.error("%s is not a readable file" % payload)
            if len(wire_name(payload).encode("utf-8")) > MAX_NAME:
                parser.error("%s: the name is over %d bytes" % (payload, MAX_NAME))
        items.append(Item(n, kind, payload))
    return host, port, items


def main(argv):
    host, port, items = parse_args(argv)
    try:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
    except OSError as e:
        sys.stderr.write("transfer_sender: connecting to %s port %d: %s\n" % (host, port, e))
        return 1
    sock.settimeout(TIMEOUT)  # every read (and write) waits at most 30 s
    session = Session(sock, items)
    reader = threading.Thread(target=session.read_all, name="answers", daemon=True)
    reader.start()
    session.write_all()
    reader.join()
    sock.close()

    for item in items:
        if item.answer is None:
            session.say("error %d - no answer" % item.id)
    if session.violation is not None:
        session.warn("protocol violation by the receiver: " + session.violation)
        return 2
    if session.failure is not None:
        session.warn(session.failure)
    if session.conn_error is not None:
        code, reason = session.conn_error
        session.warn("the receiver ended the connection: ERROR %d (%s) %s"
                     % (code, CODES.get(code, "unknown code"), printable(reason)))
    ok = (session.closed_cleanly and session.failure is None and session.conn_error is None
          and all(item.positive for item in items))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
