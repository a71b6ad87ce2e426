//! The messages of `socklab transfer` (docs/PROTOCOLS.md §11), sans-IO: each is one TLV frame
//! ([`crate::frame::tlv`]) whose type byte says what it is. Texts and the pieces of files are
//! separate frames, so a text can go out between two chunks of a large file.
//!
//! Sender to receiver: [`Message::Hello`], [`Message::Text`], [`Message::FileBegin`],
//! [`Message::FileChunk`], [`Message::FileEnd`], [`Message::FileQuery`], [`Message::Bye`].
//! Receiver to sender: [`Message::Hello`], [`Message::TextOk`], [`Message::FileOk`],
//! [`Message::Have`], [`Message::Error`].
//!
//! Every length is checked here, against the limits below, before a value is used; the TLV
//! codec has already refused a frame longer than [`MAX_FRAME`].

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol's magic, in [`Message::Hello`].
pub const MAGIC: [u8; 4] = *b"SLXF";
/// Its version.
pub const VERSION: u8 = 1;
/// The most file bytes in one chunk.
pub const MAX_CHUNK: usize = 64 * 1024;
/// The longest text, in bytes of UTF-8.
pub const MAX_TEXT: usize = 64 * 1024;
/// The longest file name as sent (the receiver shortens it further when it saves).
pub const MAX_NAME: usize = 1024;
/// The longest media type.
pub const MAX_MEDIA: usize = 255;
/// The longest error reason.
pub const MAX_REASON: usize = 1024;
/// Files a sender may have begun and not ended at once (more are refused, ERROR code 99).
pub const MAX_FILES_IN_FLIGHT: usize = 64;
/// The largest frame value any message needs: a chunk and its id.
pub const MAX_FRAME: usize = MAX_CHUNK + 4;

/// Type bytes.
pub mod kind {
    /// Both ways, first: magic and version.
    pub const HELLO: u8 = 0x01;
    /// A text message.
    pub const TEXT: u8 = 0x10;
    /// A file starts: id, size, offset, name, media type.
    pub const FILE_BEGIN: u8 = 0x20;
    /// File bytes.
    pub const FILE_CHUNK: u8 = 0x21;
    /// A file ends: its SHA-256.
    pub const FILE_END: u8 = 0x22;
    /// How much of this file do you hold (to resume)?
    pub const FILE_QUERY: u8 = 0x23;
    /// The sender has nothing more.
    pub const BYE: u8 = 0x30;
    /// A text arrived.
    pub const TEXT_OK: u8 = 0x40;
    /// A file arrived whole and verified, and where it was saved.
    pub const FILE_OK: u8 = 0x41;
    /// The answer to a query: bytes held.
    pub const HAVE: u8 = 0x42;
    /// Something was refused, and why.
    pub const ERROR: u8 = 0x4f;
}

/// Why an item (or the connection, id 0) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame that breaks the protocol (the connection ends).
    Protocol = 1,
    /// The file is larger than `--max-size`.
    TooLarge = 2,
    /// Not enough free space for it.
    NoSpace = 3,
    /// Its bytes did not match its size or its SHA-256 (nothing was saved).
    Mismatch = 4,
    /// Writing it failed on the receiver.
    Io = 5,
    /// A text that is not UTF-8.
    NotUtf8 = 6,
    /// Anything else.
    Other = 99,
}

impl ErrorCode {
    fn from_u16(v: u16) -> ErrorCode {
        match v {
            1 => ErrorCode::Protocol,
            2 => ErrorCode::TooLarge,
            3 => ErrorCode::NoSpace,
            4 => ErrorCode::Mismatch,
            5 => ErrorCode::Io,
            6 => ErrorCode::NotUtf8,
            _ => ErrorCode::Other,
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The first frame each way.
    Hello,
    /// A text (its UTF-8 checked).
    Text {
        /// Its number (unique among the sender's items).
        id: u32,
        /// The text.
        text: String,
    },
    /// A file starts.
    FileBegin {
        /// Its number.
        id: u32,
        /// Its whole size in bytes.
        size: u64,
        /// Where its bytes start (0, or what the receiver said it holds when resuming).
        offset: u64,
        /// Its name as the sender has it (the receiver makes it safe).
        name: String,
        /// Its media type, e.g. `image/png` (may be empty).
        media: String,
    },
    /// Bytes of a file, in order.
    FileChunk {
        /// The file's number.
        id: u32,
        /// 1 to [`MAX_CHUNK`] bytes.
        data: Bytes,
    },
    /// A file's last frame: the SHA-256 of all its bytes (from 0, also when resumed).
    FileEnd {
        /// The file's number.
        id: u32,
        /// SHA-256.
        sha256: [u8; 32],
    },
    /// To resume: how much of this file does the receiver hold?
    FileQuery {
        /// A number for the answer.
        id: u32,
        /// The file's whole size.
        size: u64,
        /// Its name as the sender has it.
        name: String,
    },
    /// Nothing more from the sender.
    Bye,
    /// A text arrived.
    TextOk {
        /// Its number.
        id: u32,
    },
    /// A file arrived whole and verified.
    FileOk {
        /// Its number.
        id: u32,
        /// The SHA-256 the receiver computed.
        sha256: [u8; 32],
        /// The name it was saved under.
        saved_as: String,
    },
    /// The answer to [`Message::FileQuery`].
    Have {
        /// The query's number.
        id: u32,
        /// Bytes held (0 if none); the sender resumes from there.
        bytes: u64,
    },
    /// A refusal.
    Error {
        /// The item (0: the connection).
        id: u32,
        /// What kind of refusal.
        code: ErrorCode,
        /// In words.
        reason: String,
    },
}

/// Why a frame is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// An unknown type byte.
    #[error("unknown frame type {0:#04x}")]
    Kind(u8),
    /// A value shorter than its fields.
    #[error("a {0} frame too short for its fields")]
    Short(&'static str),
    /// A value longer than its fields (or a length over its limit).
    #[error("a {what} of {len} bytes (at most {max})")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after the last field.
    #[error("{0} trailing bytes in a {1} frame")]
    Trailing(usize, &'static str),
    /// Text that is not UTF-8.
    #[error("the {0} is not UTF-8")]
    Utf8(&'static str),
    /// A HELLO with another magic or version.
    #[error("not a socklab transfer peer, or another version (hello {0:02x?})")]
    Hello(Vec<u8>),
    /// An empty chunk, or an offset past the size.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Reads fields off a value, each read checked.
struct Reader<'a> {
    b: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.b.len() < n {
            return Err(ProtoError::Short(self.what));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for &x in self.take(8)? {
            v = (v << 8) | u64::from(x);
        }
        Ok(v)
    }
    fn sha(&mut self) -> Result<[u8; 32], ProtoError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.take(32)?);
        Ok(out)
    }
    fn string(&mut self, n: usize, field: &'static str, max: usize) -> Result<String, ProtoError> {
        // The limit before the read, so a long claim is "too long", not "short".
        if n > max {
            return Err(ProtoError::TooLong {
                what: field,
                len: n,
                max,
            });
        }
        r_string(self.take(n)?, field, max)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.b)
    }
    fn end(self) -> Result<(), ProtoError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Trailing(self.b.len(), self.what))
        }
    }
}

impl Message {
    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello => kind::HELLO,
            Message::Text { .. } => kind::TEXT,
            Message::FileBegin { .. } => kind::FILE_BEGIN,
            Message::FileChunk { .. } => kind::FILE_CHUNK,
            Message::FileEnd { .. } => kind::FILE_END,
            Message::FileQuery { .. } => kind::FILE_QUERY,
            Message::Bye => kind::BYE,
            Message::TextOk { .. } => kind::TEXT_OK,
            Message::FileOk { .. } => kind::FILE_OK,
            Message::Have { .. } => kind::HAVE,
            Message::Error { .. } => kind::ERROR,
        }
    }

    /// The frame's value. Strings longer than their limit are cut (at a character boundary)
    /// rather than sent: the limits are the receiver's, and a sender that breaks them is cut
    /// off.
    pub fn value(&self) -> BytesMut {
        let mut v = BytesMut::new();
        let cut = |s: &str, max: usize| -> Vec<u8> {
            let mut end = s.len().min(max);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.as_bytes()[..end].to_vec()
        };
        match self {
            Message::Hello => {
                v.put_slice(&MAGIC);
                v.put_u8(VERSION);
            }
            Message::Text { id, text } => {
                v.put_u32(*id);
                v.put_slice(&cut(text, MAX_TEXT));
            }
            Message::FileBegin {
                id,
                size,
                offset,
                name,
                media,
            } => {
                let name = cut(name, MAX_NAME);
                let media = cut(media, MAX_MEDIA);
                v.put_u32(*id);
                v.put_u64(*size);
                v.put_u64(*offset);
                v.put_u16(name.len() as u16);
                v.put_slice(&name);
                v.put_u8(media.len() as u8);
                v.put_slice(&media);
            }
            Message::FileChunk { id, data } => {
                v.put_u32(*id);
                v.put_slice(data);
            }
            Message::FileEnd { id, sha256 } => {
                v.put_u32(*id);
                v.put_slice(sha256);
            }
            Message::FileQuery { id, size, name } => {
                let name = cut(name, MAX_NAME);
                v.put_u32(*id);
                v.put_u64(*size);
                v.put_u16(name.len() as u16);
                v.put_slice(&name);
            }
            Message::Bye => {}
            Message::TextOk { id } => v.put_u32(*id),
            Message::FileOk {
                id,
                sha256,
                saved_as,
            } => {
                v.put_u32(*id);
                v.put_slice(sha256);
                v.put_slice(&cut(saved_as, MAX_NAME));
            }
            Message::Have { id, bytes } => {
                v.put_u32(*id);
                v.put_u64(*bytes);
            }
            Message::Error { id, code, reason } => {
                v.put_u32(*id);
                v.put_u16(*code as u16);
                v.put_slice(&cut(reason, MAX_REASON));
            }
        }
        v
    }

    /// Reads a frame's value as the message its type says. Never panics, allocates at most
    /// the value's size.
    pub fn parse(kind: u8, value: &Bytes) -> Result<Message, ProtoError> {
        let what = match kind {
            kind::HELLO => "HELLO",
            kind::TEXT => "TEXT",
            kind::FILE_BEGIN => "FILE_BEGIN",
            kind::FILE_CHUNK => "FILE_CHUNK",
            kind::FILE_END => "FILE_END",
            kind::FILE_QUERY => "FILE_QUERY",
            kind::BYE => "BYE",
            kind::TEXT_OK => "TEXT_OK",
            kind::FILE_OK => "FILE_OK",
            kind::HAVE => "HAVE",
            kind::ERROR => "ERROR",
            k => return Err(ProtoError::Kind(k)),
        };
        let mut r = Reader { b: value, what };
        let msg = match kind {
            kind::HELLO => {
                if value[..] != [MAGIC.as_slice(), &[VERSION]].concat()[..] {
                    return Err(ProtoError::Hello(value.iter().take(8).copied().collect()));
                }
                r.rest();
                Message::Hello
            }
            kind::TEXT => {
                let id = r.u32()?;
                let rest = r.rest();
                let text = r_string(rest, "text", MAX_TEXT)?;
                Message::Text { id, text }
            }
            kind::FILE_BEGIN => {
                let id = r.u32()?;
                let size = r.u64()?;
                let offset = r.u64()?;
                let n = usize::from(r.u16()?);
                let name = r.string(n, "file name", MAX_NAME)?;
                let n = usize::from(r.u8()?);
                let media = r.string(n, "media type", MAX_MEDIA)?;
                if offset > size {
                    return Err(ProtoError::Invalid("a file that starts past its end"));
                }
                Message::FileBegin {
                    id,
                    size,
                    offset,
                    name,
                    media,
                }
            }
            kind::FILE_CHUNK => {
                let id = r.u32()?;
                let data = value.slice(4..);
                r.rest();
                if data.is_empty() {
                    return Err(ProtoError::Invalid("an empty file chunk"));
                }
                if data.len() > MAX_CHUNK {
                    return Err(ProtoError::TooLong {
                        what: "file chunk",
                        len: data.len(),
                        max: MAX_CHUNK,
                    });
                }
                Message::FileChunk { id, data }
            }
            kind::FILE_END => Message::FileEnd {
                id: r.u32()?,
                sha256: r.sha()?,
            },
            kind::FILE_QUERY => {
                let id = r.u32()?;
                let size = r.u64()?;
                let n = usize::from(r.u16()?);
                let name = r.string(n, "file name", MAX_NAME)?;
                Message::FileQuery { id, size, name }
            }
            kind::BYE => Message::Bye,
            kind::TEXT_OK => Message::TextOk { id: r.u32()? },
            kind::FILE_OK => {
                let id = r.u32()?;
                let sha256 = r.sha()?;
                let saved_as = r_string(r.rest(), "saved name", MAX_NAME)?;
                Message::FileOk {
                    id,
                    sha256,
                    saved_as,
                }
            }
            kind::HAVE => Message::Have {
                id: r.u32()?,
                bytes: r.u64()?,
            },
            _ => {
                let id = r.u32()?;
                let code = ErrorCode::from_u16(r.u16()?);
                let reason = r_string(r.rest(), "reason", MAX_REASON)?;
                Message::Error { id, code, reason }
            }
        };
        r.end()?;
        Ok(msg)
    }
}

fn r_string(b: &[u8], field: &'static str, max: usize) -> Result<String, ProtoError> {
    if b.len() > max {
        return Err(ProtoError::TooLong {
            what: field,
            len: b.len(),
            max,
        });
    }
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| ProtoError::Utf8(field))
}

/// A media type recognised from a file's first bytes (its "magic"), for checking the type a
/// sender declared.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    const TABLE: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b", "application/gzip"),
        (b"BM", "image/bmp"),
    ];
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    TABLE
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, t)| *t)
}

/// Whether a declared media type is contradicted by the file's first bytes: `Some(found)`
/// when the type is one [`sniff`] knows the magic of and the bytes are something else (or
/// nothing it knows). Types it cannot check (`text/plain`, empty) are never contradicted.
pub fn contradicts(declared: &str, head: &[u8]) -> Option<Option<&'static str>> {
    let declared = declared.split(';').next().unwrap_or("").trim();
    let checkable = [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "application/zip",
        "application/gzip",
        "image/bmp",
    ];
    if !checkable.iter().any(|t| t.eq_ignore_ascii_case(declared)) {
        return None;
    }
    let found = sniff(head);
    match found {
        Some(t) if t.eq_ignore_ascii_case(declared) => None,
        other => Some(other),
    }
}

/// A message as a whole frame (type, length, value), for tests and simple peers.
pub fn frame(m: &Message) -> Vec<u8> {
    let v = m.value();
    let mut out = Vec::with_capacity(5 + v.len());
    out.push(m.kind());
    out.extend_from_slice(&(v.len() as u32).to_be_bytes());
    out.extend_from_slice(&v);
    out
}

/// Reads one whole frame off the front of `b` (for tests and simple peers): the message and
/// how many bytes it took, or `None` when `b` holds less than a frame.
pub fn unframe(b: &[u8]) -> Option<(Result<Message, ProtoError>, usize)> {
    if b.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
    if len > MAX_FRAME {
        return Some((
            Err(ProtoError::TooLong {
                what: "frame",
                len,
                max: MAX_FRAME,
            }),
            5,
        ));
    }
    if b.len() < 5 + len {
        return None;
    }
    let value = Bytes::copy_from_slice(&b[5..5 + len]);
    Some((Message::parse(b[0], &value), 5 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    /// docs/PROTOCOLS.md §11's golden bytes.
    #[test]
    fn the_documented_frames_are_what_is_sent() {
        assert_eq!(frame(&Message::Hello), hex("01 00 00 00 05 53 4c 58 46 01"));
        assert_eq!(
            frame(&Message::Text {
                id: 1,
                text: "hi".into()
            }),
            hex("10 00 00 00 06 00 00 00 01 68 69")
        );
        assert_eq!(
            frame(&Message::FileBegin {
                id: 2,
                size: 3,
                offset: 0,
                name: "a.png".into(),
                media: "image/png".into(),
            }),
            hex(
                "20 00 00 00 25 00 00 00 02 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 00 \
                 00 05 61 2e 70 6e 67 09 69 6d 61 67 65 2f 70 6e 67"
            )
        );
        assert_eq!(
            frame(&Message::FileChunk {
                id: 2,
                data: Bytes::from_static(b"abc")
            }),
            hex("21 00 00 00 07 00 00 00 02 61 62 63")
        );
        assert_eq!(frame(&Message::Bye), hex("30 00 00 00 00"));
        assert_eq!(
            frame(&Message::Error {
                id: 2,
                code: ErrorCode::Mismatch,
                reason: "x".into()
            }),
            hex("4f 00 00 00 07 00 00 00 02 00 04 78")
        );
    }

    #[test]
    fn every_message_round_trips() {
        let all = [
            Message::Hello,
            Message::Text {
                id: 7,
                text: "héllo, wörld".into(),
            },
            Message::FileBegin {
                id: 1,
                size: 1 << 40,
                offset: 1 << 20,
                name: "photo.jpg".into(),
                media: "image/jpeg".into(),
            },
            Message::FileChunk {
                id: 1,
                data: Bytes::from(vec![9u8; MAX_CHUNK]),
            },
            Message::FileEnd {
                id: 1,
                sha256: [0xab; 32],
            },
            Message::FileQuery {
                id: 3,
                size: 99,
                name: "big.iso".into(),
            },
            Message::Bye,
            Message::TextOk { id: 7 },
            Message::FileOk {
                id: 1,
                sha256: [1; 32],
                saved_as: "photo (1).jpg".into(),
            },
            Message::Have { id: 3, bytes: 42 },
            Message::Error {
                id: 0,
                code: ErrorCode::Protocol,
                reason: "bad".into(),
            },
        ];
        for m in all {
            let f = frame(&m);
            let (got, used) = unframe(&f).unwrap();
            assert_eq!(used, f.len());
            assert_eq!(got, Ok(m));
        }
    }

    #[test]
    fn broken_frames_say_what_is_wrong() {
        let parse = |k, v: &[u8]| Message::parse(k, &Bytes::copy_from_slice(v));
        assert_eq!(parse(0x77, b""), Err(ProtoError::Kind(0x77)));
        assert_eq!(parse(kind::TEXT, b"\0\0"), Err(ProtoError::Short("TEXT")));
        assert_eq!(
            parse(kind::TEXT, b"\0\0\0\x01\xff\xfe"),
            Err(ProtoError::Utf8("text"))
        );
        assert_eq!(
            parse(kind::FILE_CHUNK, b"\0\0\0\x01"),
            Err(ProtoError::Invalid("an empty file chunk"))
        );
        assert!(matches!(
            parse(kind::HELLO, b"HTTP/"),
            Err(ProtoError::Hello(_))
        ));
        // A name length that points past the value, and one over the limit.
        let mut v = vec![0u8; 20];
        v.extend_from_slice(&[0x04, 0x00]);
        v.extend_from_slice(b"abc");
        assert_eq!(
            parse(kind::FILE_BEGIN, &v),
            Err(ProtoError::Short("FILE_BEGIN"))
        );
        v[21] = 0x01;
        v[20] = 0x04;
        assert_eq!(
            parse(kind::FILE_BEGIN, &v),
            Err(ProtoError::TooLong {
                what: "file name",
                len: 1025,
                max: MAX_NAME
            })
        );
        // An offset past the size.
        let m = Message::FileBegin {
            id: 1,
            size: 5,
            offset: 6,
            name: "x".into(),
            media: String::new(),
        };
        assert_eq!(
            parse(kind::FILE_BEGIN, &m.value()),
            Err(ProtoError::Invalid("a file that starts past its end"))
        );
        assert_eq!(
            parse(kind::TEXT_OK, b"\0\0\0\x01\0"),
            Err(ProtoError::Trailing(1, "TEXT_OK"))
        );
        let big = vec![b'a'; MAX_TEXT + 5];
        assert!(matches!(
            parse(kind::TEXT, &[&[0, 0, 0, 1][..], &big].concat()),
            Err(ProtoError::TooLong { what: "text", .. })
        ));
    }

    #[test]
    fn declared_media_types_are_checked_against_magic_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let jpeg = b"\xff\xd8\xff\xe0\0\x10JFIF";
        let webp = b"RIFF\0\0\0\0WEBPVP8 ";
        assert_eq!(sniff(png), Some("image/png"));
        assert_eq!(sniff(jpeg), Some("image/jpeg"));
        assert_eq!(sniff(webp), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"hello"), None);
        assert_eq!(contradicts("image/png", png), None);
        assert_eq!(contradicts("IMAGE/PNG; charset=x", png), None);
        assert_eq!(contradicts("image/png", jpeg), Some(Some("image/jpeg")));
        assert_eq!(contradicts("image/png", b"not a picture"), Some(None));
        assert_eq!(contradicts("text/plain", png), None);
        assert_eq!(contradicts("", png), None);
    }

    proptest::proptest! {
        #[test]
        fn any_value_parses_without_panic(
            k in proptest::prelude::any::<u8>(),
            v in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        ) {
            let _ = Message::parse(k, &Bytes::from(v));
        }
    }
}
