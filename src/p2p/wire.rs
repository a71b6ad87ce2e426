//! The p2p chat's datagrams, byte by byte, sans-IO (docs/PROTOCOLS.md §9).
//!
//! ```text
//!  0        1        2        4                 8                  12          16
//!  +--------+--------+--------+-----------------+------------------+-----------+---- … ----+--------+
//!  | ver=2  | kind   | flags  | sender session  | receiver session | timestamp | body      | CRC-32 |
//!  +--------+--------+--------+-----------------+------------------+-----------+---- … ----+--------+
//!     u8       u8       u16          u32               u32              u32                   u32
//! ```
//!
//! The timestamp is the sender's clock when it sent the datagram, in microseconds from any
//! origin (wrapping, never 0); an `ACK` echoes the timestamp of the latest `DATA` or `PING`
//! it answers, so the other side measures the round trip of every acknowledgement, resent
//! fragments and lost ACKs included (RFC 7323's idea, in RFC 6298's formulas).
//!
//! All numbers are big-endian. The CRC-32 (zlib's `crc32`, the one the header framing uses)
//! covers every byte before it and is checked before anything else is read. Bodies:
//!
//! - `DATA` (kind 1): `seq u32`, `base u32` (the sender's oldest unacknowledged sequence
//!   number, so a receiver that starts afresh knows where the stream stands), `index u16`,
//!   `count u16` (this fragment's place in its message), then the fragment's bytes. Flag bit
//!   0: the message is zlib-compressed.
//! - `ACK` (kind 2): `next u32` (every sequence number below it arrived), `echo u32` (the
//!   timestamp of the `DATA` or `PING` that made it due; 0: none), `blocks u8`, then
//!   that many `start u32, end u32` ranges (end exclusive) of what arrived above `next`. Flag
//!   bit 0 (FIN): the sender's input ended and everything it sent was acknowledged.
//! - `PING` (kind 3): no body; answered with an `ACK` (the keepalive).

/// The protocol version this code speaks: 2 since the timestamp joined the header (version 1
/// had a 12-byte header; the two do not understand each other, so each drops the other's).
pub const VERSION: u8 = 2;
/// Bytes before the body.
pub const HEADER: usize = 16;
/// The CRC-32 after the body.
pub const TRAILER: usize = 4;
/// Bytes of a DATA body before the fragment.
pub const DATA_FIELDS: usize = 12;
/// Most SACK blocks in one ACK.
pub const MAX_BLOCKS: usize = 16;
/// The largest message, before and after compression: inflating stops here, so a
/// decompression bomb is refused before it allocates more.
pub const MAX_MESSAGE: usize = 2 * 1024 * 1024;
/// Flag bit 0 of a DATA: the message is zlib-compressed.
pub const FLAG_ZLIB: u16 = 1;
/// Flag bit 0 of an ACK: the sender is done sending.
pub const FLAG_FIN: u16 = 1;

/// What a datagram is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// A fragment of a message.
    Data {
        /// Its sequence number.
        seq: u32,
        /// The sender's oldest unacknowledged sequence number.
        base: u32,
        /// Which fragment of its message (0-based).
        index: u16,
        /// How many fragments the message has.
        count: u16,
        /// The message is compressed.
        zlib: bool,
        /// The fragment.
        bytes: &'a [u8],
    },
    /// What arrived.
    Ack {
        /// Every sequence number below it arrived.
        next: u32,
        /// The timestamp of the `DATA` or `PING` this answers (0: none).
        echo: u32,
        /// Ranges above `next` that arrived, `[start, end)`.
        blocks: Vec<(u32, u32)>,
        /// The sender is done: its input ended and all it sent was acknowledged (flag bit 0).
        fin: bool,
    },
    /// A keepalive.
    Ping,
}

/// One datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The sender's session id (random per start, never 0).
    pub from_session: u32,
    /// The receiver's session id as the sender knows it (0: not yet).
    pub to_session: u32,
    /// The sender's clock when it sent this, in µs (wrapping; never 0 from socklab).
    pub ts: u32,
    /// What it carries.
    pub body: Body<'a>,
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than a header and a CRC.
    #[error("datagram of {0} bytes is too short")]
    Short(usize),
    /// The CRC-32 does not match: corrupted on the way.
    #[error("bad CRC-32")]
    Crc,
    /// Another version.
    #[error("protocol version {0} (this is {VERSION})")]
    Version(u8),
    /// An unknown kind.
    #[error("unknown datagram kind {0}")]
    Kind(u8),
    /// The body does not match its kind.
    #[error("malformed {0} body")]
    Body(&'static str),
}

impl Datagram<'_> {
    /// The datagram's bytes, CRC included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let (kind, flags) = match &self.body {
            Body::Data { zlib, .. } => (1u8, if *zlib { FLAG_ZLIB } else { 0 }),
            Body::Ack { fin, .. } => (2, if *fin { FLAG_FIN } else { 0 }),
            Body::Ping => (3, 0),
        };
        out.push(VERSION);
        out.push(kind);
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&self.from_session.to_be_bytes());
        out.extend_from_slice(&self.to_session.to_be_bytes());
        out.extend_from_slice(&self.ts.to_be_bytes());
        match &self.body {
            Body::Data {
                seq,
                base,
                index,
                count,
                bytes,
                ..
            } => {
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&base.to_be_bytes());
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(&count.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Body::Ack {
                next, echo, blocks, ..
            } => {
                out.extend_from_slice(&next.to_be_bytes());
                out.extend_from_slice(&echo.to_be_bytes());
                let n = blocks.len().min(MAX_BLOCKS);
                out.push(n as u8);
                for (s, e) in &blocks[..n] {
                    out.extend_from_slice(&s.to_be_bytes());
                    out.extend_from_slice(&e.to_be_bytes());
                }
            }
            Body::Ping => {}
        }
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a datagram: the CRC first, then the header, then the body. Never panics.
pub fn parse(d: &[u8]) -> Result<Datagram<'_>, WireError> {
    if d.len() < HEADER + TRAILER {
        return Err(WireError::Short(d.len()));
    }
    let (signed, crc) = d.split_at(d.len() - TRAILER);
    if crc32fast::hash(signed) != u32_at(crc, 0) {
        return Err(WireError::Crc);
    }
    if signed[0] != VERSION {
        return Err(WireError::Version(signed[0]));
    }
    let flags = u16_at(signed, 2);
    // Flags this version does not define must be 0 (a later version may give them meaning).
    let known = match signed[1] {
        1 => FLAG_ZLIB,
        2 => FLAG_FIN,
        _ => 0,
    };
    if flags & !known != 0 {
        return Err(WireError::Body("flags"));
    }
    let from_session = u32_at(signed, 4);
    let to_session = u32_at(signed, 8);
    let ts = u32_at(signed, 12);
    let b = &signed[HEADER..];
    let body = match signed[1] {
        1 => {
            if b.len() < DATA_FIELDS {
                return Err(WireError::Body("DATA"));
            }
            let (index, count) = (u16_at(b, 8), u16_at(b, 10));
            if count == 0 || index >= count {
                return Err(WireError::Body("DATA"));
            }
            Body::Data {
                seq: u32_at(b, 0),
                base: u32_at(b, 4),
                index,
                count,
                zlib: flags & FLAG_ZLIB != 0,
                bytes: &b[DATA_FIELDS..],
            }
        }
        2 => {
            if b.len() < 9 {
                return Err(WireError::Body("ACK"));
            }
            let n = usize::from(b[8]);
            if n > MAX_BLOCKS || b.len() != 9 + 8 * n {
                return Err(WireError::Body("ACK"));
            }
            let blocks = (0..n)
                .map(|i| (u32_at(b, 9 + 8 * i), u32_at(b, 13 + 8 * i)))
                .collect();
            Body::Ack {
                next: u32_at(b, 0),
                echo: u32_at(b, 4),
                blocks,
                fin: flags & FLAG_FIN != 0,
            }
        }
        3 if b.is_empty() => Body::Ping,
        3 => return Err(WireError::Body("PING")),
        k => return Err(WireError::Kind(k)),
    };
    if from_session == 0 {
        return Err(WireError::Body("session"));
    }
    Ok(Datagram {
        from_session,
        to_session,
        ts,
        body,
    })
}

/// A message as it goes on the wire: compressed at `level` when that makes it smaller (the
/// flag says which). A one-off [`Zlib::pack`]; a peer keeps one [`Zlib`] instead.
pub fn pack(message: &[u8], level: u32) -> (Vec<u8>, bool) {
    Zlib::new(level).pack(message)
}

/// Why a message could not be unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    /// It inflates past [`MAX_MESSAGE`] (a decompression bomb, or simply too big).
    #[error("message inflates past {MAX_MESSAGE} bytes")]
    TooBig,
    /// Not valid zlib.
    #[error("message is not valid zlib")]
    Zlib,
}

/// The message from its wire form. Inflating stops at [`MAX_MESSAGE`] bytes. A one-off
/// [`Zlib::unpack`].
pub fn unpack(wire: &[u8], zlib: bool) -> Result<Vec<u8>, UnpackError> {
    Zlib::new(0).unpack(wire, zlib)
}

/// A compressor and a decompressor kept for the life of a peer and reset for each message.
///
/// Making a zlib stream allocates and clears a few hundred KiB of state; doing that for every
/// short chat message cost more than everything else a message costs (26 % of the sender's
/// CPU at 1 KiB). Resetting a kept one costs almost nothing.
pub struct Zlib {
    level: u32,
    deflate: Option<flate2::Compress>,
    inflate: flate2::Decompress,
}

impl std::fmt::Debug for Zlib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zlib").field("level", &self.level).finish()
    }
}

impl Zlib {
    /// Compresses at `level` (0: never).
    pub fn new(level: u32) -> Self {
        Zlib {
            level,
            deflate: None,
            inflate: flate2::Decompress::new(true),
        }
    }

    /// A message as it goes on the wire: compressed when that makes it smaller (the flag
    /// says which). Compression stops as soon as its output would not be smaller.
    pub fn pack(&mut self, message: &[u8]) -> (Vec<u8>, bool) {
        if self.level == 0 || message.len() < 32 {
            return (message.to_vec(), false);
        }
        let level = flate2::Compression::new(self.level.min(9));
        let z = self
            .deflate
            .get_or_insert_with(|| flate2::Compress::new(level, true));
        z.reset();
        // Room for one byte less than the message: if the stream does not end in that,
        // compressing does not pay.
        let mut out = Vec::with_capacity(message.len() - 1);
        match z.compress_vec(message, &mut out, flate2::FlushCompress::Finish) {
            Ok(flate2::Status::StreamEnd) if out.len() < message.len() => (out, true),
            _ => (message.to_vec(), false),
        }
    }

    /// The message from its wire form. Inflating stops at [`MAX_MESSAGE`] bytes, and the
    /// output grows only as the inflated bytes come (never sized from the input's claims).
    pub fn unpack(&mut self, wire: &[u8], zlib: bool) -> Result<Vec<u8>, UnpackError> {
        if !zlib {
            return Ok(wire.to_vec());
        }
        let z = &mut self.inflate;
        z.reset(true);
        // One byte past the limit tells "exactly the limit" from "more".
        let cap = MAX_MESSAGE + 1;
        let mut out = Vec::with_capacity((wire.len() * 4).clamp(64, cap));
        loop {
            if out.len() == out.capacity() {
                if out.len() >= cap {
                    return Err(UnpackError::TooBig);
                }
                out.reserve_exact(out.len().min(cap - out.len()));
            }
            let (was_in, was_out) = (z.total_in(), z.total_out());
            let rest = &wire[usize::try_from(was_in)
                .unwrap_or(wire.len())
                .min(wire.len())..];
            match z.decompress_vec(rest, &mut out, flate2::FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) => break,
                Ok(_) if z.total_in() == was_in && z.total_out() == was_out => {
                    // No progress with room to spare: the stream is cut short.
                    if out.len() < out.capacity() {
                        return Err(UnpackError::Zlib);
                    }
                }
                Ok(_) => {}
                Err(_) => return Err(UnpackError::Zlib),
            }
        }
        if out.len() > MAX_MESSAGE {
            return Err(UnpackError::TooBig);
        }
        Ok(out)
    }
}

/// One line saying what a datagram is, for `--trace`: `DATA 1a2b3c4d>00000000 seq 0 base 0
/// fragment 1/1 zlib, 26 bytes`, `ACK … next 5 held 7-9 FIN`, `PING …`, or why it is dropped.
pub fn describe(d: &[u8]) -> String {
    let dg = match parse(d) {
        Ok(dg) => dg,
        Err(e) => return format!("dropped: {e}"),
    };
    let who = format!("{:08x}>{:08x} ts {}", dg.from_session, dg.to_session, dg.ts);
    match dg.body {
        Body::Data {
            seq,
            base,
            index,
            count,
            zlib,
            bytes,
        } => format!(
            "DATA {who} seq {seq} base {base} fragment {}/{count}{}, {} bytes",
            u32::from(index) + 1,
            if zlib { " zlib" } else { "" },
            bytes.len()
        ),
        Body::Ack {
            next,
            echo,
            blocks,
            fin,
        } => {
            let mut text = format!("ACK {who} next {next} echo {echo}");
            if !blocks.is_empty() {
                let held: Vec<String> = blocks
                    .iter()
                    .map(|&(a, b)| {
                        // The peer's numbers, as they came (wrapping: never a panic).
                        if b == a.wrapping_add(1) {
                            a.to_string()
                        } else {
                            format!("{a}-{}", b.wrapping_sub(1))
                        }
                    })
                    .collect();
                text.push_str(&format!(" held {}", held.join(",")));
            }
            if fin {
                text.push_str(" FIN");
            }
            text
        }
        Body::Ping => format!("PING {who}"),
    }
}

/// A chat message: the sender's nickname (its length in one byte, then its bytes) and the text.
pub fn chat_message(nick: &str, text: &str) -> Vec<u8> {
    let nick = &nick.as_bytes()[..nick.len().min(255)];
    let mut m = Vec::with_capacity(1 + nick.len() + text.len());
    m.push(nick.len() as u8);
    m.extend_from_slice(nick);
    m.extend_from_slice(text.as_bytes());
    m
}

/// The nickname and the text of a chat message (invalid UTF-8 shown as U+FFFD).
pub fn parse_chat(m: &[u8]) -> Option<(String, String)> {
    let (&n, rest) = m.split_first()?;
    let n = usize::from(n);
    if rest.len() < n {
        return None;
    }
    let (nick, text) = rest.split_at(n);
    Some((
        String::from_utf8_lossy(nick).into_owned(),
        String::from_utf8_lossy(text).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_message_is_its_nick_then_its_text() {
        let m = chat_message("ann", "hi there");
        assert_eq!(m, b"\x03annhi there");
        assert_eq!(parse_chat(&m), Some(("ann".into(), "hi there".into())));
        assert_eq!(parse_chat(b"\x09ab"), None);
        assert_eq!(parse_chat(b""), None);
    }

    #[test]
    fn a_data_datagram_byte_by_byte() {
        let d = Datagram {
            from_session: 0x0102_0304,
            to_session: 0,
            ts: 0x0a0b_0c0d,
            body: Body::Data {
                seq: 7,
                base: 5,
                index: 0,
                count: 1,
                zlib: false,
                bytes: b"hi",
            },
        };
        let mut out = Vec::new();
        d.encode(&mut out);
        let head = [
            2, 1, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, // version, kind, flags, sessions
            10, 11, 12, 13, // timestamp
            0, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0, 1, // seq, base, index, count
            b'h', b'i',
        ];
        assert_eq!(&out[..head.len()], &head);
        assert_eq!(out.len(), head.len() + 4);
        assert_eq!(
            u32::from_be_bytes(out[head.len()..].try_into().unwrap()),
            crc32fast::hash(&head)
        );
        assert_eq!(parse(&out).unwrap(), d);
    }

    /// The golden bytes of docs/PROTOCOLS.md §9.1, as Python's `struct` and `zlib.crc32`
    /// computed them.
    #[test]
    fn the_documented_example_is_what_is_sent() {
        let hex = |doc: &str| -> Vec<u8> {
            doc.split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect()
        };
        let mut out = Vec::new();
        Datagram {
            from_session: 0x1a2b_3c4d,
            to_session: 0,
            ts: 1000,
            body: Body::Data {
                seq: 0,
                base: 0,
                index: 0,
                count: 1,
                zlib: false,
                bytes: &chat_message("ann", "hi bob"),
            },
        }
        .encode(&mut out);
        let doc = "02 01 00 00 1a 2b 3c 4d 00 00 00 00 00 00 03 e8 \
                   00 00 00 00 00 00 00 00 00 00 00 01 03 61 6e 6e \
                   68 69 20 62 6f 62 1d ef 3a d0";
        assert_eq!(out, hex(doc));
        out.clear();
        Datagram {
            from_session: 0x5566_7788,
            to_session: 0x1a2b_3c4d,
            ts: 52_000,
            body: Body::Ack {
                next: 1,
                echo: 1000,
                blocks: vec![],
                fin: false,
            },
        }
        .encode(&mut out);
        let doc = "02 02 00 00 55 66 77 88 1a 2b 3c 4d 00 00 cb 20 \
                   00 00 00 01 00 00 03 e8 00 37 b9 16 5a";
        assert_eq!(out, hex(doc));
    }

    #[test]
    fn an_ack_with_blocks_round_trips() {
        let d = Datagram {
            from_session: 9,
            to_session: 3,
            ts: u32::MAX,
            body: Body::Ack {
                next: 10,
                echo: 77,
                blocks: vec![(12, 14), (20, 21)],
                fin: true,
            },
        };
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out.len(), HEADER + 9 + 16 + TRAILER);
        assert_eq!(parse(&out).unwrap(), d);
    }

    #[test]
    fn any_flipped_bit_is_caught_by_the_crc() {
        let mut out = Vec::new();
        Datagram {
            from_session: 5,
            to_session: 6,
            ts: 1,
            body: Body::Ping,
        }
        .encode(&mut out);
        assert!(parse(&out).is_ok());
        for bit in 0..out.len() * 8 {
            let mut bad = out.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(parse(&bad), Err(WireError::Crc), "bit {bit}");
        }
        assert_eq!(parse(&out[..10]), Err(WireError::Short(10)));
    }

    #[test]
    fn compression_only_when_it_helps_and_bombs_are_refused() {
        let text = "hello hello hello hello hello hello hello hello".as_bytes();
        let (z, zlib) = pack(text, 6);
        assert!(zlib && z.len() < text.len());
        assert_eq!(unpack(&z, true).unwrap(), text);
        let (raw, zlib) = pack(b"short", 6);
        assert!(!zlib);
        assert_eq!(raw, b"short");
        // 64 MiB of zeros deflate to about 64 KiB: refused after MAX_MESSAGE + 1 bytes.
        let (bomb, _) = pack(&vec![0u8; 64 << 20], 9);
        assert!(bomb.len() < 100_000);
        assert_eq!(unpack(&bomb, true), Err(UnpackError::TooBig));
        assert_eq!(unpack(b"not zlib", true), Err(UnpackError::Zlib));
    }

    /// One kept `Zlib` for many messages of every kind: each unpacks to itself, the output
    /// sizes around the limit are exact, and a stream cut short or random bytes are refused.
    #[test]
    fn a_kept_zlib_packs_and_unpacks_message_after_message() {
        let mut z = Zlib::new(6);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect()
        };
        for i in 0..200usize {
            let m = match i % 4 {
                0 => format!("{i:022} {}", "x".repeat(i * 10)).into_bytes(),
                1 => noise(i * 7),
                2 => vec![b'a'; i * 1000],
                _ => Vec::new(),
            };
            let (wire, zlib) = z.pack(&m);
            if zlib {
                assert!(
                    wire.len() < m.len(),
                    "message {i} compressed but not smaller"
                );
            } else {
                assert_eq!(wire, m, "message {i} uncompressed but changed");
            }
            assert_eq!(z.unpack(&wire, zlib).unwrap(), m, "message {i}");
            // The one-off functions agree with the kept one.
            assert_eq!(unpack(&wire, zlib).unwrap(), m);
        }
        // Noise does not compress: sent as it is.
        let n = noise(1000);
        assert_eq!(z.pack(&n), (n.clone(), false));
        // Exactly the limit inflates; one byte more does not.
        let (at, _) = z.pack(&vec![7u8; MAX_MESSAGE]);
        assert_eq!(z.unpack(&at, true).unwrap().len(), MAX_MESSAGE);
        let (over, _) = z.pack(&vec![7u8; MAX_MESSAGE + 1]);
        assert_eq!(z.unpack(&over, true), Err(UnpackError::TooBig));
        // Cut short, or garbage: refused, and the next message is fine.
        let (good, zlib) = z.pack(&[b'q'; 5000]);
        assert!(zlib);
        assert_eq!(
            z.unpack(&good[..good.len() / 2], true),
            Err(UnpackError::Zlib)
        );
        assert_eq!(z.unpack(&n, true), Err(UnpackError::Zlib));
        assert_eq!(z.unpack(&good, true).unwrap(), [b'q'; 5000]);
    }

    #[test]
    fn a_datagram_is_described_in_one_line() {
        let mut out = Vec::new();
        Datagram {
            from_session: 0x1a2b_3c4d,
            to_session: 0,
            ts: 42,
            body: Body::Data {
                seq: 7,
                base: 2,
                index: 1,
                count: 3,
                zlib: true,
                bytes: b"abc",
            },
        }
        .encode(&mut out);
        assert_eq!(
            describe(&out),
            "DATA 1a2b3c4d>00000000 ts 42 seq 7 base 2 fragment 2/3 zlib, 3 bytes"
        );
        out.clear();
        Datagram {
            from_session: 5,
            to_session: 6,
            ts: 9,
            body: Body::Ack {
                next: 4,
                echo: 8,
                blocks: vec![(6, 7), (9, 12)],
                fin: true,
            },
        }
        .encode(&mut out);
        assert_eq!(
            describe(&out),
            "ACK 00000005>00000006 ts 9 next 4 echo 8 held 6,9-11 FIN"
        );
        let last = out.len() - 1;
        out[last] ^= 1;
        assert!(
            describe(&out).starts_with("dropped: "),
            "{}",
            describe(&out)
        );
    }

    /// A version-1 datagram (12-byte header, no timestamp) is refused by its version, never
    /// read with the fields shifted.
    #[test]
    fn a_version_1_datagram_is_refused() {
        let mut old = vec![1u8, 1, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0];
        old.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        old.extend_from_slice(&chat_message("ann", "hi bob"));
        let crc = crc32fast::hash(&old);
        old.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(parse(&old), Err(WireError::Version(1)));
        assert_eq!(describe(&old), "dropped: protocol version 1 (this is 2)");
    }
}
