#!/usr/bin/env python3
"""A second implementation of the UDP p2p chat, written from docs/PROTOCOLS.md section 9 alone
(stdlib only), so that a test can show the document is enough to interoperate with
`socklab p2p chat`.

Usage: python3 p2p_peer.py LISTEN_PORT PEER_PORT NICK      (both ports on 127.0.0.1)

Each stdin line is one message; each message received prints as `<nick> text`. It exits 0 once
stdin has ended, everything it sent is acknowledged, and the peer has said FIN or has sent no
DATA for 3 s. At exit it prints its counters on stderr.
"""

import random
import select
import socket
import struct
import sys
import time
import zlib

VERSION, DATA, ACK, PING = 2, 1, 2, 3
COMPRESSED = FIN = 1  # flag bit 0: on DATA "compressed", on ACK "FIN"
HEADER = struct.Struct(">BBHIII")  # version, kind, flags, sender's session, receiver's, timestamp
DATA_HEAD = struct.Struct(">IIHH")  # seq, base, index, count
ACK_HEAD = struct.Struct(">IIB")  # next, echo, number of ranges
RANGE = struct.Struct(">II")  # start, end (excluded)
CRC = struct.Struct(">I")
MTU = 1200
CHUNK = MTU - HEADER.size - DATA_HEAD.size - CRC.size  # 1168 bytes of message per fragment
WINDOW = 256  # unacknowledged fragments at most; a receiver holds at most this far ahead
MAX_WAITING = 64  # messages waiting for the window: stdin is not read meanwhile
MAX_RANGES = 16
MAX_MESSAGE = 2 * 1024 * 1024
LEVEL = 6
RETRANSMIT = 0.2  # a simple fixed retransmission timer, seconds
QUIET_END = 3.0  # stop this long after the peer's last DATA once all is done

listen_port, peer_port, nick = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
peer = ("127.0.0.1", peer_port)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", listen_port))
sock.setblocking(False)
stdin = sys.stdin.buffer.raw  # unbuffered, so select() tells the truth
out = sys.stdout.buffer

me = random.randint(1, 2**32 - 1)  # my session id, never 0
peer_session = 0  # 0: not heard from yet
old_sessions = []  # the peer's 4 previous sessions

# Sending.
next_seq = 0
unacked = {}  # seq -> [flags, index, count, bytes, last sent (monotonic), in a SACK range]
waiting = []  # messages (lists of (flags, index, count, bytes)) not yet in the window
stdin_open, partial_line = True, b""

# Receiving.
rx_next = None  # next expected seq; None until the peer's session has sent DATA
held = {}  # seq -> (flags, index, count, bytes), all above rx_next
parts, parts_flags = [], 0  # the message being reassembled
peer_fin = False
last_data = time.monotonic()
echo = 0  # the timestamp of the latest DATA or PING received, for the next ACK
started = time.monotonic()

stats = dict.fromkeys(
    "sent frags_sent compressed_sent retransmitted received frags_received"
    " compressed_received duplicates corrupt".split(),
    0,
)


def timestamp():
    """My clock in microseconds, wrapping at 2**32, never 0."""
    return int((time.monotonic() - started) * 1e6) % 2**32 or 1


def send(kind, flags, body):
    datagram = HEADER.pack(VERSION, kind, flags, me, peer_session, timestamp()) + body
    sock.sendto(datagram + CRC.pack(zlib.crc32(datagram)), peer)


def send_fragment(seq):
    entry = unacked[seq]
    flags, index, count, chunk = entry[:4]
    send(DATA, flags, DATA_HEAD.pack(seq, min(unacked), index, count) + chunk)
    entry[4] = time.monotonic()


def finished():
    """My input ended and everything I sent was acknowledged: my ACKs carry FIN."""
    return not stdin_open and not waiting and not unacked


def send_ack():
    ranges = []
    for seq in sorted(held):
        if ranges and ranges[-1][1] == seq:
            ranges[-1][1] = seq + 1
        else:
            ranges.append([seq, seq + 1])
    ranges = ranges[:MAX_RANGES]
    global echo
    # This peer's timer is fixed, so it never reads the echoes it gets; it still echoes.
    body = ACK_HEAD.pack(rx_next or 0, echo, len(ranges))
    echo = 0
    body += b"".join(RANGE.pack(start, end) for start, end in ranges)
    send(ACK, FIN if finished() else 0, body)


def queue_message(text):
    message = bytes([len(nick)]) + nick + text
    flags, packed = 0, zlib.compress(message, LEVEL)
    if len(packed) < len(message):
        message, flags = packed, COMPRESSED
        stats["compressed_sent"] += 1
    chunks = [message[i : i + CHUNK] for i in range(0, len(message), CHUNK)]
    waiting.append([(flags, i, len(chunks), c) for i, c in enumerate(chunks)])
    stats["sent"] += 1


def fill_window():
    global next_seq
    while waiting and len(unacked) < WINDOW:
        unacked[next_seq] = list(waiting[0].pop(0)) + [0.0, False]
        if not waiting[0]:
            waiting.pop(0)
        send_fragment(next_seq)
        next_seq += 1
        stats["frags_sent"] += 1


def retransmit():
    now, budget = time.monotonic(), 64
    for seq in sorted(unacked):
        entry = unacked[seq]
        if not entry[5] and now - entry[4] >= RETRANSMIT and budget > 0:
            send_fragment(seq)
            stats["retransmitted"] += 1
            budget -= 1


def deliver(flags, message):
    if flags & COMPRESSED:
        inflater = zlib.decompressobj()
        try:
            message = inflater.decompress(message, MAX_MESSAGE + 1)
        except zlib.error:
            return
        if len(message) > MAX_MESSAGE or not inflater.eof:
            return  # too long (or a bomb), or truncated
        stats["compressed_received"] += 1
    if not message or len(message) < 1 + message[0]:
        return
    name, text = message[1 : 1 + message[0]], message[1 + message[0] :]
    out.write(b"<" + name + b"> " + text + b"\n")
    out.flush()
    stats["received"] += 1


def on_data(flags, body):
    global rx_next, last_data, parts_flags
    seq, base, index, count = DATA_HEAD.unpack_from(body)
    if count < 1 or index >= count:
        return
    last_data = time.monotonic()
    if rx_next is None:
        rx_next = base  # a (new) session of the peer: receive afresh from its base
    if seq < rx_next or seq in held:
        stats["duplicates"] += 1
        return
    if seq > rx_next + WINDOW:
        return
    held[seq] = (flags, index, count, body[DATA_HEAD.size :])
    stats["frags_received"] += 1
    while rx_next in held:
        flags, index, count, chunk = held.pop(rx_next)
        rx_next += 1
        if index == 0:
            parts.clear()
            parts_flags = flags
        parts.append(chunk)
        if index == count - 1:
            deliver(parts_flags, b"".join(parts))
            parts.clear()


def on_ack(flags, body):
    global peer_fin
    acked, _echo, n = ACK_HEAD.unpack_from(body)
    if flags & FIN:
        peer_fin = True
    for seq in [s for s in unacked if s < acked]:
        del unacked[seq]
    for i in range(n):
        start, end = RANGE.unpack_from(body, ACK_HEAD.size + i * RANGE.size)
        for seq, entry in unacked.items():
            if start <= seq < end:
                entry[5] = True


def well_formed(kind, flags, body):
    if kind == DATA:
        return flags & ~COMPRESSED == 0 and len(body) >= DATA_HEAD.size
    if kind == ACK:
        if flags & ~FIN or len(body) < ACK_HEAD.size:
            return False
        n = body[8]
        return n <= MAX_RANGES and len(body) == ACK_HEAD.size + n * RANGE.size
    return kind == PING and flags == 0 and not body


def on_datagram(datagram):
    """Handles one datagram; says whether it asks for an ACK."""
    global peer_session, rx_next, old_sessions, echo
    if len(datagram) < HEADER.size + CRC.size:
        return False
    if zlib.crc32(datagram[:-4]) != CRC.unpack(datagram[-4:])[0]:
        stats["corrupt"] += 1
        return False
    version, kind, flags, sender, receiver, ts = HEADER.unpack_from(datagram)
    body = datagram[HEADER.size : -4]
    if version != VERSION or sender == 0 or sender in old_sessions:
        return False
    if not well_formed(kind, flags, body):
        return False
    if sender != peer_session:
        if peer_session:
            old_sessions = (old_sessions + [peer_session])[-4:]
            print("the peer restarted", file=sys.stderr, flush=True)
        peer_session, rx_next = sender, None
        held.clear()
        parts.clear()
    if receiver not in (0, me):
        return True  # addressed to an earlier session of mine: the ACK tells the new one
    if kind != ACK:
        echo = ts
    if kind == DATA:
        on_data(flags, body)
    elif kind == ACK:
        on_ack(flags, body)
    return kind != ACK  # DATA and PING are answered with an ACK


def read_stdin():
    global stdin_open, partial_line
    chunk = stdin.read(65536)
    if not chunk:
        stdin_open = False
        if partial_line:
            queue_message(partial_line)
        return
    *lines, partial_line = (partial_line + chunk).split(b"\n")
    for line in lines:
        queue_message(line)


while True:
    if finished() and (peer_fin or time.monotonic() - last_data >= QUIET_END):
        break
    fill_window()
    retransmit()
    watched = [sock]
    if stdin_open and len(waiting) < MAX_WAITING:
        watched.append(stdin)
    readable, _, _ = select.select(watched, [], [], 0.05)
    if stdin in readable:
        read_stdin()
    if sock in readable:
        wants_ack = False
        while True:  # everything that arrived together shares one ACK
            try:
                datagram, source = sock.recvfrom(65535)
            except (BlockingIOError, ConnectionRefusedError):
                break
            if source == peer:
                wants_ack |= on_datagram(datagram)
        if wants_ack:
            send_ack()

print(" ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr, flush=True)
sys.exit(0)
