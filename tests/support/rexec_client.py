#!/usr/bin/env python3
"""A one-command client for `socklab rexec`, written from docs/PROTOCOLS.md section 12 alone
(stdlib only: ssl, socket, struct, hashlib, base64, sys, os), so that a test can show the
document is enough to interoperate with `socklab rexec serve`.

Usage: SOCKLAB_PASSWORD=PW python3 rexec_client.py HOST PORT USER FINGERPRINT COMMAND

- TLS 1.3 only, ALPN `socklab-rexec/1`, no CA or name verification; the server's key is pinned
  instead: SHA-256 of the certificate's SubjectPublicKeyInfo (DER), base64 without padding,
  prefixed `SHA256:`. A FINGERPRINT given with base64 `=` padding is accepted too. A key that
  differs: both fingerprints on stderr, exit 255, and no frame of the session is sent (the TLS
  handshake itself has completed, since Python's ssl module cannot check the key inside it).
- AUTH; AUTH_FAIL or ERROR: exit 255. AUTH_OK: EXEC with the stdin flag, this process's stdin
  forwarded in STDIN frames (at most 32,768 bytes each, never beyond the WINDOW credit), then
  STDIN_EOF. STDOUT goes to stdout, STDERR to stderr. EXIT: BYE, then exit with the command's
  status: exited -> its code, killed by signal N -> 128+N, could not start -> 127, ended by the
  server's command timeout -> 124.
- Any protocol violation by the server (a frame value over 32,769 bytes, an unknown or
  client-only type, a field out of range or that does not parse, a frame out of place, output
  or credit beyond what the document allows, the connection closed before EXIT): a message on
  stderr and exit 255. Local problems (bad arguments, no password, connection failures): 255.
- SSLKEYLOGFILE, if set, receives the TLS secrets.

Without `select` or threads, stdin is read by a forked child that copies it into a pipe; the
parent polls the pipe (non-blocking) and the TLS socket (with a short timeout), so output keeps
flowing while stdin is slow, and stdin is only consumed when there is credit to send it.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import sys

ALPN = "socklab-rexec/1"
MAX_VALUE = 32769          # longest frame value (EXEC: flags + 32,768 bytes)
MAX_CHUNK = 32768          # STDIN/STDOUT/STDERR payload limit
MAX_WINDOW = 262144        # WINDOW value limit, and the most credit outstanding
POLL = 0.02                # seconds: the polling period while stdin may have data

# Frame types.
AUTH, EXEC, STDIN, STDIN_EOF, SIGNAL, BYE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
AUTH_OK, AUTH_FAIL, STDOUT, STDERR, EXIT, WINDOW, ERROR = 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87
NAMES = {AUTH: "AUTH", EXEC: "EXEC", STDIN: "STDIN", STDIN_EOF: "STDIN_EOF", SIGNAL: "SIGNAL",
         BYE: "BYE", AUTH_OK: "AUTH_OK", AUTH_FAIL: "AUTH_FAIL", STDOUT: "STDOUT",
         STDERR: "STDERR", EXIT: "EXIT", WINDOW: "WINDOW", ERROR: "ERROR"}
ERROR_CODES = {1: "protocol error", 2: "idle", 3: "not authenticated in time",
               4: "too many tries", 5: "shutting down"}

USER_CHARS = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class Fatal(Exception):
    """Ends the client: a message for stderr, exit 255."""


class Violation(Fatal):
    """The server broke the protocol."""

    def __str__(self):
        return "protocol violation: " + super().__str__()


def frame(ftype, value=b""):
    return struct.pack(">BI", ftype, len(value)) + value


def name_of(ftype):
    return NAMES.get(ftype, "type 0x%02x" % ftype)


# ---------------------------------------------------------------------------------------------
# DER: just enough to find the SubjectPublicKeyInfo of an X.509 certificate.

def der_item(buf, pos):
    """The TLV at pos: (tag, start of content, end of content). Definite lengths only."""
    if pos + 2 > len(buf):
        raise Fatal("certificate: DER item past the end")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise Fatal("certificate: high-tag-number DER item")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise Fatal("certificate: bad DER length")
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise Fatal("certificate: DER item runs past its container")
    return tag, pos, pos + length


def spki_of(cert_der):
    tag, start, end = der_item(cert_der, 0)
    if tag != 0x30:
        raise Fatal("certificate: not a SEQUENCE")
    tag, pos, tbs_end = der_item(cert_der, start)          # TBSCertificate
    if tag != 0x30:
        raise Fatal("certificate: TBSCertificate is not a SEQUENCE")
    tag, _, nxt = der_item(cert_der, pos)
    if tag == 0xA0:                                          # [0] EXPLICIT version
        pos = nxt
    # serial INTEGER, signature AlgorithmIdentifier, issuer, validity, subject
    for want in (0x02, 0x30, 0x30, 0x30, 0x30):
        tag, _, nxt = der_item(cert_der, pos)
        if tag != want:
            raise Fatal("certificate: unexpected DER tag 0x%02x in TBSCertificate" % tag)
        pos = nxt
    tag, _, nxt = der_item(cert_der, pos)                    # subjectPublicKeyInfo
    if tag != 0x30 or nxt > tbs_end:
        raise Fatal("certificate: no SubjectPublicKeyInfo")
    return cert_der[pos:nxt]


def fingerprint_of(cert_der):
    digest = hashlib.sha256(spki_of(cert_der)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


# ---------------------------------------------------------------------------------------------
# The connection.

class Conn:
    def __init__(self, tls):
        self.tls = tls
        self.inbuf = bytearray()
        self.out = bytearray()     # encoded frames not yet handed to TLS
        self.cur = b""             # the chunk a TLS write is in progress for (retried as is)
        self.eof = False

    # -- writing --------------------------------------------------------------------------
    def queue(self, data):
        self.out += data

    def pending_out(self):
        return bool(self.cur) or bool(self.out)

    def try_send(self, timeout):
        """Hands queued bytes to TLS, waiting at most `timeout` for room."""
        self.tls.settimeout(timeout)
        while True:
            if not self.cur:
                if not self.out:
                    return
                self.cur = bytes(self.out[:16384])
                del self.out[:16384]
            try:
                n = self.tls.send(self.cur)
            except (socket.timeout, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except (OSError, ssl.SSLError) as e:
                raise Fatal("sending: %s" % e)
            self.cur = self.cur[n:]

    def flush(self):
        """Blocks until everything queued is handed to TLS."""
        while self.pending_out():
            self.try_send(None)

    # -- reading --------------------------------------------------------------------------
    def try_recv(self, timeout):
        """Reads what TLS has within `timeout`; sets self.eof at the end of the stream."""
        if self.eof:
            return
        self.tls.settimeout(timeout)
        try:
            data = self.tls.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except ssl.SSLEOFError:
            data = b""
        except (OSError, ssl.SSLError) as e:
            raise Fatal("receiving: %s" % e)
        if not data:
            self.eof = True
        self.inbuf += data

    def next_frame(self):
        """A whole frame from the buffer as (type, value), or None."""
        if len(self.inbuf) < 5:
            return None
        ftype, length = struct.unpack(">BI", self.inbuf[:5])
        if length > MAX_VALUE:
            raise Violation("%s frame of %d bytes (more than %d)" % (name_of(ftype), length, MAX_VALUE))
        if len(self.inbuf) < 5 + length:
            return None
        value = bytes(self.inbuf[5:5 + length])
        del self.inbuf[:5 + length]
        return ftype, value

    def read_frame(self):
        """Blocks for the next frame (used before the command starts)."""
        while True:
            f = self.next_frame()
            if f is not None:
                return f
            if self.eof:
                raise Violation("the server closed the connection" +
                                (" in the middle of a frame" if self.inbuf else ""))
            self.try_recv(None)


# ---------------------------------------------------------------------------------------------
# Decoding the server's frames.

def utf8(value, what, limit=None):
    if limit is not None and len(value) > limit:
        raise Violation("%s of %d bytes (at most %d)" % (what, len(value), limit))
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise Violation("%s is not UTF-8" % what)


def server_error(value):
    if len(value) < 1:
        raise Violation("empty ERROR")
    code = value[0]
    reason = utf8(value[1:], "ERROR reason", 1024)
    return Fatal("server ERROR %d (%s): %s" % (code, ERROR_CODES.get(code, "other"), reason))


def check_server_type(ftype):
    if ftype in NAMES and ftype < 0x80:
        raise Violation("the server sent a client message (%s)" % name_of(ftype))
    if ftype not in NAMES:
        raise Violation("unknown frame %s" % name_of(ftype))


# ---------------------------------------------------------------------------------------------

def stdin_reader():
    """Forks a child copying stdin into a pipe; returns (pid, non-blocking read end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            while True:
                data = os.read(0, 65536)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    n = os.write(w, view)
                    view = view[n:]
        except OSError:
            code = 1
        os._exit(code)
    os.close(w)
    os.set_blocking(r, False)
    return pid, r


def write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            return            # our reader went away; keep draining the session
        view = view[n:]


def run(argv):
    if len(argv) != 6:
        raise Fatal("usage: %s HOST PORT USER FINGERPRINT COMMAND (password in SOCKLAB_PASSWORD)"
                    % argv[0])
    host, port_s, user_s, expected, command_s = argv[1:]
    try:
        port = int(port_s)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise Fatal("bad port %r" % port_s)
    user = os.fsencode(user_s)
    if not (1 <= len(user) <= 32 and set(user) <= USER_CHARS and user[:1] not in (b".", b"-")):
        raise Fatal("bad user name %r (1 to 32 of A-Z a-z 0-9 . _ -, not first . or -)" % user_s)
    password = os.environb.get(b"SOCKLAB_PASSWORD")
    if password is None:
        raise Fatal("SOCKLAB_PASSWORD is not set")
    if not 1 <= len(password) <= 1024:
        raise Fatal("the password must be 1 to 1,024 bytes")
    command = os.fsencode(command_s)
    try:
        command.decode("utf-8")
    except UnicodeDecodeError:
        raise Fatal("the command is not UTF-8")
    if not 1 <= len(command) <= MAX_CHUNK or b"\0" in command:
        raise Fatal("the command must be 1 to 32,768 bytes without NUL")
    if not expected.startswith("SHA256:"):
        raise Fatal("the fingerprint must start with SHA256:")
    expected = expected.rstrip("=")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols([ALPN])
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog:
        ctx.keylog_filename = keylog

    try:
        raw = socket.create_connection((host, port), timeout=30)
    except OSError as e:
        raise Fatal("connecting to %s port %d: %s" % (host, port, e))
    try:
        # Python sends no SNI for an IP literal by itself.
        tls = ctx.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError) as e:
        raw.close()
        raise Fatal("TLS handshake with %s port %d: %s" % (host, port, e))

    try:
        if tls.version() != "TLSv1.3":
            raise Violation("negotiated %s, not TLSv1.3" % tls.version())
        if tls.selected_alpn_protocol() != ALPN:
            raise Violation("ALPN %r, not %s" % (tls.selected_alpn_protocol(), ALPN))
        cert = tls.getpeercert(binary_form=True)
        if not cert:
            raise Violation("the server showed no certificate")
        actual = fingerprint_of(cert)
        if actual != expected:
            raise Fatal("host key mismatch for %s port %d: expected %s, the server's key is %s; "
                        "nothing was sent" % (host, port, expected, actual))
    except Fatal:
        tls.close()      # no close_notify: the host key is refused, nothing more is sent
        raise
    try:
        return session(Conn(tls), user, password, command)
    finally:
        try:             # close_notify, and a short wait for the server's
            tls.settimeout(1)
            tls.unwrap()
        except (OSError, ValueError, ssl.SSLError):
            pass
        tls.close()


def session(conn, user, password, command):
    conn.queue(frame(AUTH, bytes([len(user)]) + user + password))
    conn.flush()
    ftype, value = conn.read_frame()
    check_server_type(ftype)
    if ftype == ERROR:
        raise server_error(value)
    if ftype == AUTH_FAIL:
        if len(value) != 5:
            raise Violation("AUTH_FAIL of %d bytes (5 expected)" % len(value))
        left, retry = struct.unpack(">BI", value)
        if left > 2:
            raise Violation("AUTH_FAIL with %d tries left (0 to 2)" % left)
        raise Fatal("authentication failed (%d tries left%s)" %
                    (left, ", retry after %d ms" % retry if retry else ""))
    if ftype != AUTH_OK:
        raise Violation("%s where AUTH_OK or AUTH_FAIL was due" % name_of(ftype))
    utf8(value, "AUTH_OK working directory", 4096)

    pid, pipe_r = stdin_reader()
    try:
        return command_loop(conn, command, pipe_r)
    finally:
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
        os.close(pipe_r)


def command_loop(conn, command, pipe_r):
    conn.queue(frame(EXEC, b"\x01" + command))
    credit = 0                 # STDIN bytes the server allows now
    started = False            # a WINDOW has come (the command started)
    stdin_open = True          # STDIN_EOF not yet queued
    stdin_buf = b""            # read from stdin, not yet framed
    pipe_eof = False
    stdout, stderr = sys.stdout.buffer, sys.stderr.buffer

    while True:
        # Stdin: frame what the credit allows; read more only when it could go out.
        if stdin_open and started:
            if not stdin_buf and not pipe_eof and credit > 0 and len(conn.out) < 65536:
                try:
                    stdin_buf = os.read(pipe_r, min(credit, MAX_CHUNK))
                    if not stdin_buf:
                        pipe_eof = True
                except BlockingIOError:
                    pass
            if stdin_buf and credit > 0:
                n = min(len(stdin_buf), credit, MAX_CHUNK)
                conn.queue(frame(STDIN, stdin_buf[:n]))
                stdin_buf = stdin_buf[n:]
                credit -= n
            if pipe_eof and not stdin_buf:
                conn.queue(frame(STDIN_EOF))
                stdin_open = False

        if conn.pending_out():
            conn.try_send(POLL)
        # Wait on the socket; briefly when stdin may have something to send.
        stdin_waiting = stdin_open and started and credit > 0 and not stdin_buf and not pipe_eof
        if conn.pending_out():
            wait = 0.0
        elif stdin_waiting:
            wait = POLL
        else:
            wait = None
        conn.try_recv(wait)

        while True:
            f = conn.next_frame()
            if f is None:
                break
            ftype, value = f
            check_server_type(ftype)
            if ftype in (STDOUT, STDERR):
                if not 1 <= len(value) <= MAX_CHUNK:
                    raise Violation("%s of %d bytes (1 to %d)" % (name_of(ftype), len(value), MAX_CHUNK))
                out = stdout if ftype == STDOUT else stderr
                out.flush()
                write_all(out.fileno(), value)
            elif ftype == WINDOW:
                if len(value) != 4:
                    raise Violation("WINDOW of %d bytes (4 expected)" % len(value))
                (n,) = struct.unpack(">I", value)
                if not 1 <= n <= MAX_WINDOW:
                    raise Violation("WINDOW %d (1 to %d)" % (n, MAX_WINDOW))
                started = True
                if stdin_open:
                    credit += n
                    if credit > MAX_WINDOW:
                        raise Violation("WINDOW credit of %d bytes outstanding (at most %d)"
                                        % (credit, MAX_WINDOW))
            elif ftype == EXIT:
                if len(value) < 2:
                    raise Violation("EXIT of %d bytes (at least 2)" % len(value))
                kind, code = value[0], value[1]
                utf8(value[2:], "EXIT working directory", 4096)
                if kind == 0:
                    status = code
                elif kind == 1:
                    status = 128 + code
                elif kind == 2:
                    if code != 0:
                        raise Violation("EXIT kind 2 (could not start) with code %d" % code)
                    sys.stderr.write("rexec_client: the command could not start\n")
                    status = 127
                elif kind == 3:
                    sys.stderr.write("rexec_client: the command timed out on the server\n")
                    status = 124
                else:
                    raise Violation("EXIT kind %d (0 to 3)" % kind)
                finish(conn)
                return status
            elif ftype == ERROR:
                raise server_error(value)
            else:
                raise Violation("%s while a command runs" % name_of(ftype))

        if conn.eof:
            raise Violation("the server closed the connection before EXIT" +
                            (" in the middle of a frame" if conn.inbuf else ""))


def finish(conn):
    """BYE, then wait (a little) for the server to close."""
    sys.stdout.flush()
    conn.queue(frame(BYE))
    try:
        conn.flush()
    except Fatal:
        return
    for _ in range(100):                             # about 2 s at most
        if conn.eof:
            return
        try:
            conn.try_recv(POLL)
        except Fatal:
            return
        conn.inbuf.clear()


def main():
    try:
        status = run(sys.argv)
    except Fatal as e:
        try:
            sys.stdout.flush()
        except OSError:
            pass
        sys.stderr.write("rexec_client: %s\n" % e)
        sys.stderr.flush()
        os._exit(255)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(status)


if __name__ == "__main__":
    main()
