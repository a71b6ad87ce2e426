//! Framing: cutting a byte stream back into the messages that were sent.
//!
//! # Why a byte stream needs framing
//!
//! TCP delivers a stream of bytes, not a sequence of messages. If a client calls `send` twice, with
//! `"hello"` and then `"world"`, the server may `recv` `"helloworld"` in one read, or `"hel"`,
//! `"lowo"` and `"rld"` in three: the kernel is free to merge and split writes however it likes.
//! Nothing in the stream says where one message ends and the next begins, so the two programs have
//! to agree on a *framing*: a rule, written into the bytes themselves, that lets the receiver find
//! the boundaries again.
//!
//! ```text
//!  what the sender wrote:    [hello] [world]
//!  what one recv may return: hel | lowo | rld        (any split is legal)
//!  what the framing gives:   Frame("hello"), Frame("world")
//! ```
//!
//! Socklab offers three framings, the three classic answers to "where does this message end?":
//!
//! **Fixed-length records** ([`fixed`]): every message is exactly `N` bytes. Short payloads are
//! padded with NUL bytes. This is what the Python socket HOWTO's `MySocket` class does with
//! `MSGLEN`. Simple, but it wastes bandwidth and cannot carry trailing NULs.
//!
//! ```text
//!  +-------------------------------+-------------------------------+
//!  | h e l l o \0 \0 \0 ... \0     | w o r l d \0 \0 \0 ... \0     |
//!  +-------------------------------+-------------------------------+
//!  |<------------ N -------------->|<------------ N -------------->|
//! ```
//!
//! **Delimited** ([`delimited`]): each message ends with a delimiter, such as `\n` or `\r\n`. This
//! is how line protocols (SMTP, HTTP/1 heads, chat) work, and it is what `nc` produces when you
//! type. The payload cannot contain the delimiter (there is no escaping).
//!
//! ```text
//!  +-----------+----+-----------+----+
//!  | h e l l o | \n | w o r l d | \n |
//!  +-----------+----+-----------+----+
//! ```
//!
//! **Header** ([`header`]): each message starts with a fixed 24-byte header that carries the
//! payload's length, a message id, a send timestamp and a CRC-32 of the payload. Any byte may
//! appear in the payload, and the receiver knows how much to read before it reads it.
//!
//! ```text
//!  +---------------------------+-----------+---------------------------+-----------+
//!  | header (24 bytes, len=5)  | h e l l o | header (24 bytes, len=5)  | w o r l d |
//!  +---------------------------+-----------+---------------------------+-----------+
//! ```
//!
//! # Sans-IO codecs
//!
//! None of the code here touches a socket, a file or the clock. Each codec implements
//! [`tokio_util::codec::Decoder`] and [`Encoder`]: the decoder looks at whatever bytes have arrived
//! so far and either returns a whole [`Frame`], says "not yet" (`Ok(None)`: an incomplete frame is
//! the normal state of a stream, not an error), or reports that the bytes are invalid. The
//! drivers wrap a socket in `tokio_util::codec::Framed` with a [`FrameCodec`]; the tests simply
//! feed byte slices. [`Framing`] is the user's choice of framing, parsed from the command line.
//!
//! # Every decoder has a size limit
//!
//! A length that arrives from the network is a claim made by the peer, and a peer can claim
//! anything: four bytes saying `0xFFFF_FFFF` would make a naive receiver allocate 4 GiB before
//! reading a single payload byte. So every decoder here takes a maximum frame size and checks it
//! *before* it reserves memory or buffers more: the header decoder checks the length field before
//! it reserves room for the payload, and the delimited decoder gives up once it has buffered more
//! than the limit without seeing a delimiter. Either way the peer gets [`FrameError::TooLarge`].
//! The default is [`DEFAULT_MAX_FRAME`]. A fixed record's length is chosen locally, not by the
//! peer, so it is its own limit.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use socklab::frame::{Frame, FrameCodec, Framing, DEFAULT_MAX_FRAME};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let framing: Framing = "delim:\\r\\n".parse().unwrap();
//! let mut codec = FrameCodec::new(&framing, DEFAULT_MAX_FRAME);
//!
//! let mut wire = BytesMut::new();
//! codec.encode(Frame::new("hello"), &mut wire).unwrap();
//! assert_eq!(&wire[..], b"hello\r\n");
//!
//! let frame = codec.decode(&mut wire).unwrap().unwrap();
//! assert_eq!(frame, Frame::new("hello"));
//! assert_eq!(codec.decode(&mut wire).unwrap(), None);
//! ```

pub mod delimited;
pub mod fixed;
pub mod header;
pub mod tlv;

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The largest frame any decoder accepts unless told otherwise: 16 MiB.
///
/// Large enough for any message the labs send, small enough that a hostile length field cannot
/// exhaust memory.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Everything that can go wrong while framing or unframing a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced (header) or sent without a delimiter (delimited) a frame longer than the
    /// limit, or the local side tried to encode one.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The frame's length. For delimited framing this is how many bytes arrived without a
        /// delimiter, so the frame is at least this long.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// A header frame's payload does not match the CRC-32 in its header.
    #[error(
        "crc32 mismatch in message {id}: header says {expected:#010x}, payload has {actual:#010x}"
    )]
    CrcMismatch {
        /// The message id from the header.
        id: u32,
        /// The CRC-32 the header carries.
        expected: u32,
        /// The CRC-32 of the payload as received.
        actual: u32,
    },
    /// The bytes where a header frame should start do not begin with the magic `"SL"`.
    #[error(
        "not a socklab header frame (magic {:#04x} {:#04x}, expected 0x53 0x4c)",
        found[0],
        found[1]
    )]
    BadMagic {
        /// The two bytes found instead.
        found: [u8; 2],
    },
    /// A header frame carries a version this build does not speak.
    #[error("unsupported header frame version {version} (this build speaks version 1)")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// A header frame sets flag bits that are reserved and must be zero.
    #[error("reserved flags set in header frame (flags {flags:#04x}, expected 0x00)")]
    ReservedFlags {
        /// The flags byte found.
        flags: u8,
    },
    /// The stream ended part-way through a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    PartialFrame {
        /// How many bytes of the unfinished frame had arrived.
        buffered: usize,
    },
    /// A payload is longer than the fixed record it must fit in.
    #[error("payload of {len} bytes does not fit in a fixed record of {max} bytes")]
    PayloadTooLong {
        /// The payload's length.
        len: usize,
        /// The record length.
        max: usize,
    },
    /// A payload contains the delimiter, so delimited framing cannot carry it.
    #[error(
        "payload would contain the delimiter at byte offset {offset} (delimited framing has no escaping)"
    )]
    DelimiterInPayload {
        /// Where in the payload the delimiter would be found by the receiver.
        offset: usize,
    },
    /// A buffer handed to [`header::Packet::new_checked`] is shorter than the frame it starts.
    #[error("buffer of {len} bytes is too short for a header frame of {needed} bytes")]
    Truncated {
        /// The buffer's length.
        len: usize,
        /// How many bytes the header frame needs (header plus announced payload).
        needed: usize,
    },
    /// Reading or writing the underlying stream failed.
    ///
    /// The codecs never produce this themselves; `tokio_util`'s `Framed` needs it to report I/O
    /// errors through the codec's error type.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One message.
///
/// For fixed and delimited framing only `payload` travels on the wire: `id` and `timestamp_us` are
/// ignored when encoding and are 0 after decoding. Header framing carries all three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message id chosen by the sender (header framing only).
    pub id: u32,
    /// When the sender sent the message, in microseconds since the Unix epoch (header framing
    /// only). The codecs never read the clock: the caller fills this in.
    pub timestamp_us: u64,
    /// The message itself.
    pub payload: Bytes,
}

impl Frame {
    /// A frame carrying `payload`, with id 0 and timestamp 0.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            id: 0,
            timestamp_us: 0,
            payload: payload.into(),
        }
    }
}

/// Which framing to use, as chosen by the user.
///
/// Parsed from the command-line syntax `fixed:N`, `delim:STR` or `header`, and displayed in the
/// same syntax (`Display` and `FromStr` round-trip).
///
/// - `fixed:N`: records of exactly `N` bytes, 1 to [`DEFAULT_MAX_FRAME`].
/// - `delim:STR`: messages end with the non-empty delimiter `STR`, in which the escapes `\n`,
///   `\r`, `\t`, `\0`, `\\` and `\xHH` are understood, so `delim:\r\n` means CR LF.
/// - `header`: the 24-byte socklab header frame.
///
/// ```
/// use socklab::frame::Framing;
///
/// assert_eq!("fixed:1024".parse(), Ok(Framing::Fixed(1024)));
/// assert_eq!("delim:\\r\\n".parse(), Ok(Framing::Delimited(b"\r\n".to_vec())));
/// assert_eq!(Framing::Delimited(b"\r\n".to_vec()).to_string(), "delim:\\r\\n");
/// assert!("fixed:0".parse::<Framing>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// Fixed-length records of this many bytes.
    Fixed(usize),
    /// Messages terminated by this delimiter.
    Delimited(Vec<u8>),
    /// The socklab header frame.
    Header,
}

/// The accepted forms, repeated in every parse error so the user sees what to type.
const FRAMING_FORMS: &str = "expected fixed:N, delim:STR or header";

impl FromStr for Framing {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "header" {
            return Ok(Self::Header);
        }
        if let Some(n) = s.strip_prefix("fixed:") {
            let len = n
                .parse::<usize>()
                .ok()
                .filter(|len| (1..=DEFAULT_MAX_FRAME).contains(len));
            return match len {
                Some(len) => Ok(Self::Fixed(len)),
                None => Err(format!(
                    "bad framing {s:?}: fixed:N needs a record length from 1 to {DEFAULT_MAX_FRAME} bytes"
                )),
            };
        }
        if let Some(delimiter) = s.strip_prefix("delim:") {
            let delimiter = unescape(delimiter).map_err(|e| format!("bad framing {s:?}: {e}"))?;
            if delimiter.is_empty() {
                return Err(format!(
                    "bad framing {s:?}: delim:STR needs a non-empty delimiter"
                ));
            }
            return Ok(Self::Delimited(delimiter));
        }
        Err(format!("unknown framing {s:?}: {FRAMING_FORMS}"))
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(len) => write!(f, "fixed:{len}"),
            Self::Delimited(delimiter) => write!(f, "delim:{}", escape(delimiter)),
            Self::Header => f.write_str("header"),
        }
    }
}

/// Turns the `delim:STR` text into bytes, understanding `\n \r \t \0 \\ \xHH`.
///
/// Other characters stand for their UTF-8 bytes.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    const ESCAPES: &str = "the escapes are \\n \\r \\t \\0 \\\\ and \\xHH";
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s;
    while let Some(backslash) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..backslash]);
        let after = &rest[backslash + 1..];
        let mut chars = after.chars();
        let byte = match chars.next() {
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('t') => b'\t',
            Some('0') => b'\0',
            Some('\\') => b'\\',
            Some('x') => {
                let hex = after
                    .get(1..3)
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
                // Two ASCII hex digits always parse as a u8; the filter above makes sure of both.
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        rest = &after[3..];
                        out.push(byte);
                        continue;
                    }
                    None => return Err(format!("\\x needs two hex digits; {ESCAPES}")),
                }
            }
            Some(other) => return Err(format!("unknown escape \\{other}; {ESCAPES}")),
            None => return Err(format!("trailing backslash; {ESCAPES}")),
        };
        out.push(byte);
        rest = chars.as_str();
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

/// The inverse of [`unescape`]: printable ASCII as itself, everything else escaped.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'\0' => out.push_str("\\0"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The codec the drivers use, whatever the framing.
///
/// A thin enum over the three codecs so that a driver can hold one concrete type (and so one
/// `Framed<TcpStream, FrameCodec>`) for any [`Framing`] the user picks.
#[derive(Debug, Clone)]
pub enum FrameCodec {
    /// Fixed-length records.
    Fixed(fixed::FixedCodec),
    /// Delimiter-terminated messages.
    Delimited(delimited::DelimitedCodec),
    /// Socklab header frames.
    Header(header::HeaderCodec),
}

impl FrameCodec {
    /// The codec for `framing`, refusing frames longer than `max_frame` bytes.
    ///
    /// `max_frame` bounds what the peer can make us buffer in delimited and header framing. A
    /// fixed record's length is chosen locally (and [`Framing`]'s parser caps it at
    /// [`DEFAULT_MAX_FRAME`]), so it is its own limit and `max_frame` does not apply to it.
    ///
    /// # Panics
    ///
    /// If `framing` is `Fixed(0)` or `Delimited` with an empty delimiter, which [`Framing`]'s
    /// parser never produces.
    pub fn new(framing: &Framing, max_frame: usize) -> Self {
        match framing {
            Framing::Fixed(len) => Self::Fixed(fixed::FixedCodec::new(*len)),
            Framing::Delimited(delimiter) => {
                Self::Delimited(delimited::DelimitedCodec::new(delimiter.clone(), max_frame))
            }
            Framing::Header => Self::Header(header::HeaderCodec::new(max_frame)),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self {
            Self::Fixed(codec) => codec.decode(src),
            Self::Delimited(codec) => codec.decode(src),
            Self::Header(codec) => codec.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self {
            Self::Fixed(codec) => codec.decode_eof(src),
            Self::Delimited(codec) => codec.decode_eof(src),
            Self::Header(codec) => codec.decode_eof(src),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match self {
            Self::Fixed(codec) => codec.encode(frame, dst),
            Self::Delimited(codec) => codec.encode(frame, dst),
            Self::Header(codec) => codec.encode(frame, dst),
        }
    }
}

/// The end-of-stream rule the three codecs share: a whole frame is still a frame, nothing left is
/// a clean close, and anything else is a frame cut short.
fn decode_eof_with<C>(codec: &mut C, src: &mut BytesMut) -> Result<Option<Frame>, FrameError>
where
    C: Decoder<Item = Frame, Error = FrameError>,
{
    match codec.decode(src)? {
        Some(frame) => Ok(Some(frame)),
        None if src.is_empty() => Ok(None),
        None => Err(FrameError::PartialFrame {
            buffered: src.len(),
        }),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the codecs' tests.

    use bytes::BytesMut;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use tokio_util::codec::Decoder;

    use super::{Frame, FrameError};

    /// Feeds `bytes` to a fresh codec in pieces cut at `cuts` (sorted offsets), decoding after
    /// each piece as `FramedRead` does, then calls `decode_eof` until it returns `None`.
    ///
    /// Returns the frames decoded and the first error, after which decoding stops.
    pub(crate) fn decode_split<C>(
        mut codec: C,
        bytes: &[u8],
        cuts: &[usize],
    ) -> (Vec<Frame>, Option<FrameError>)
    where
        C: Decoder<Item = Frame, Error = FrameError>,
    {
        let mut frames = Vec::new();
        let mut buf = BytesMut::new();
        let mut start = 0;
        for end in cuts.iter().copied().chain([bytes.len()]) {
            buf.extend_from_slice(&bytes[start..end]);
            start = end;
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
        }
        loop {
            match codec.decode_eof(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e)),
            }
        }
    }

    /// Asserts that `bytes` decode to exactly `expected_frames`, with a clean end of stream,
    /// however the stream is split into reads (see [`assert_any_split`]).
    pub(crate) fn assert_split_invariant<C, F>(
        codec_factory: F,
        bytes: &[u8],
        expected_frames: &[Frame],
    ) where
        F: Fn() -> C,
        C: Decoder<Item = Frame, Error = FrameError>,
    {
        let check = |cuts: &[usize]| -> Result<(), String> {
            match decode_split(codec_factory(), bytes, cuts) {
                (frames, None) if frames == expected_frames => Ok(()),
                (frames, error) => Err(format!(
                    "split at {cuts:?}: got frames {frames:?} and error {error:?}, \
                     expected frames {expected_frames:?} and a clean end"
                )),
            }
        };
        assert_any_split(bytes.len(), check);
    }

    /// Runs `check` on `len` bytes cut into reads: all at once, one byte at a time, and in
    /// random cuts chosen (and, on failure, shrunk to a minimal cut) by proptest. `check` gets
    /// the sorted cut offsets and says what went wrong, if anything.
    pub(crate) fn assert_any_split(len: usize, check: impl Fn(&[usize]) -> Result<(), String>) {
        if let Err(e) = check(&[]) {
            panic!("all at once: {e}");
        }
        let every_byte: Vec<usize> = (1..len).collect();
        if let Err(e) = check(&every_byte) {
            panic!("one byte at a time: {e}");
        }

        let mut runner = TestRunner::new(Config {
            cases: 32,
            failure_persistence: None,
            ..Config::default()
        });
        let cuts = proptest::collection::vec(0..=len, 0..=8).prop_map(|mut cuts| {
            cuts.sort_unstable();
            cuts
        });
        let result = runner.run(&cuts, |cuts| check(&cuts).map_err(TestCaseError::fail));
        if let Err(e) = result {
            panic!("random splits: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    use super::testing::assert_split_invariant;
    use super::*;

    fn parse(s: &str) -> Result<Framing, String> {
        s.parse()
    }

    #[test]
    fn framing_parses_each_form() {
        assert_eq!(parse("fixed:1024"), Ok(Framing::Fixed(1024)));
        assert_eq!(parse("fixed:1"), Ok(Framing::Fixed(1)));
        assert_eq!(
            parse("fixed:16777216"),
            Ok(Framing::Fixed(DEFAULT_MAX_FRAME))
        );
        assert_eq!(parse("header"), Ok(Framing::Header));
        assert_eq!(parse("delim:;"), Ok(Framing::Delimited(b";".to_vec())));
        assert_eq!(parse("delim::"), Ok(Framing::Delimited(b":".to_vec())));
        assert_eq!(parse("delim:END"), Ok(Framing::Delimited(b"END".to_vec())));
    }

    #[test]
    fn framing_understands_escapes() {
        assert_eq!(parse("delim:\\n"), Ok(Framing::Delimited(b"\n".to_vec())));
        assert_eq!(
            parse("delim:\\r\\n"),
            Ok(Framing::Delimited(b"\r\n".to_vec()))
        );
        assert_eq!(
            parse("delim:\\t\\0\\\\"),
            Ok(Framing::Delimited(b"\t\0\\".to_vec()))
        );
        assert_eq!(
            parse("delim:\\x00\\xfF|"),
            Ok(Framing::Delimited(b"\x00\xff|".to_vec()))
        );
        assert_eq!(
            parse("delim:é"),
            Ok(Framing::Delimited("é".as_bytes().to_vec()))
        );
    }

    #[test]
    fn framing_errors_name_the_accepted_forms() {
        let error = parse("lines").unwrap_err();
        assert_eq!(
            error,
            "unknown framing \"lines\": expected fixed:N, delim:STR or header"
        );
        assert!(
            parse("")
                .unwrap_err()
                .contains("expected fixed:N, delim:STR or header")
        );
        assert!(parse("header:x").unwrap_err().contains("unknown framing"));
        assert!(parse("FIXED:8").unwrap_err().contains("unknown framing"));
    }

    #[test]
    fn framing_refuses_bad_record_lengths() {
        for bad in [
            "fixed:0",
            "fixed:",
            "fixed:-1",
            "fixed:abc",
            "fixed:16777217",
        ] {
            let error = parse(bad).unwrap_err();
            assert!(
                error.contains("fixed:N needs a record length from 1 to 16777216 bytes"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn framing_refuses_bad_delimiters() {
        assert!(parse("delim:").unwrap_err().contains("non-empty delimiter"));
        assert!(
            parse("delim:\\q")
                .unwrap_err()
                .contains("unknown escape \\q")
        );
        assert!(
            parse("delim:a\\")
                .unwrap_err()
                .contains("trailing backslash")
        );
        assert!(parse("delim:\\x4").unwrap_err().contains("two hex digits"));
        assert!(parse("delim:\\xzz").unwrap_err().contains("two hex digits"));
        assert!(parse("delim:\\x+1").unwrap_err().contains("two hex digits"));
    }

    #[test]
    fn framing_display() {
        assert_eq!(Framing::Fixed(1024).to_string(), "fixed:1024");
        assert_eq!(Framing::Header.to_string(), "header");
        assert_eq!(
            Framing::Delimited(b"\r\n".to_vec()).to_string(),
            "delim:\\r\\n"
        );
        assert_eq!(
            Framing::Delimited(b"a\\\t\0\x7f\xff".to_vec()).to_string(),
            "delim:a\\\\\\t\\0\\x7f\\xff"
        );
    }

    #[test]
    fn frame_new_has_zero_id_and_timestamp() {
        let frame = Frame::new("x");
        assert_eq!((frame.id, frame.timestamp_us), (0, 0));
        assert_eq!(&frame.payload[..], b"x");
    }

    #[test]
    fn frame_codec_dispatches_to_each_framing() {
        let cases: [(&str, &[u8]); 3] = [
            ("fixed:4", b"hi\0\0"),
            ("delim:\\r\\n", b"hi\r\n"),
            (
                "header",
                b"SL\x01\0\0\0\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\xd8\x93\x2a\xac",
            ),
        ];
        for (framing, wire) in cases {
            let framing = parse(framing).unwrap();
            let mut codec = FrameCodec::new(&framing, 64);
            let mut dst = BytesMut::new();
            codec.encode(Frame::new("hi"), &mut dst).unwrap();
            let expected = [wire, b"hi"].concat();
            let expected = if framing == Framing::Header {
                &expected[..]
            } else {
                wire
            };
            assert_eq!(&dst[..], expected, "{framing}");
            assert_split_invariant(
                || FrameCodec::new(&framing, 64),
                expected,
                &[Frame::new("hi")],
            );
        }
    }

    #[test]
    fn frame_codec_max_frame_bounds_peer_lengths() {
        let mut codec = FrameCodec::new(&Framing::Delimited(b"\n".to_vec()), 2);
        let error = codec.decode(&mut BytesMut::from(&b"abcd"[..])).unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { len: 4, max: 2 }),
            "{error:?}"
        );
        let mut codec = FrameCodec::new(&Framing::Header, 2);
        let error = codec
            .encode(Frame::new("abc"), &mut BytesMut::new())
            .unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { len: 3, max: 2 }),
            "{error:?}"
        );
    }

    #[test]
    fn frame_codec_decode_eof_reports_partial_frames() {
        for framing in ["fixed:4", "delim:\\n", "header"] {
            let mut codec = FrameCodec::new(&parse(framing).unwrap(), 64);
            let error = codec
                .decode_eof(&mut BytesMut::from(&b"S"[..]))
                .unwrap_err();
            assert!(
                matches!(error, FrameError::PartialFrame { buffered: 1 }),
                "{framing}: {error:?}"
            );
            assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);
        }
    }

    #[test]
    fn error_messages_are_lowercase_without_trailing_period() {
        let errors = [
            FrameError::TooLarge {
                len: 20_000_000,
                max: DEFAULT_MAX_FRAME,
            },
            FrameError::CrcMismatch {
                id: 7,
                expected: 1,
                actual: 2,
            },
            FrameError::BadMagic { found: *b"GE" },
            FrameError::UnsupportedVersion { version: 9 },
            FrameError::ReservedFlags { flags: 1 },
            FrameError::PartialFrame { buffered: 3 },
            FrameError::PayloadTooLong { len: 5, max: 4 },
            FrameError::DelimiterInPayload { offset: 2 },
            FrameError::Truncated { len: 1, needed: 24 },
        ];
        for error in &errors {
            let message = error.to_string();
            assert!(
                message.starts_with(|c: char| c.is_ascii_lowercase()),
                "{message}"
            );
            assert!(!message.ends_with('.'), "{message}");
        }
        assert_eq!(
            errors[0].to_string(),
            "frame of 20000000 bytes exceeds the limit of 16777216 bytes"
        );
        assert_eq!(
            errors[1].to_string(),
            "crc32 mismatch in message 7: header says 0x00000001, payload has 0x00000002"
        );
        assert_eq!(
            errors[7].to_string(),
            "payload would contain the delimiter at byte offset 2 (delimited framing has no escaping)"
        );
    }

    fn framing() -> impl Strategy<Value = Framing> {
        prop_oneof![
            (1..=DEFAULT_MAX_FRAME).prop_map(Framing::Fixed),
            proptest::collection::vec(any::<u8>(), 1..6).prop_map(Framing::Delimited),
            Just(Framing::Header),
        ]
    }

    proptest! {
        #[test]
        fn framing_display_then_parse_is_identity(framing in framing()) {
            prop_assert_eq!(parse(&framing.to_string()), Ok(framing));
        }

        #[test]
        fn framing_parse_never_panics(s in "\\PC{0,12}") {
            let _ = parse(&s);
            let _ = parse(&format!("delim:{s}"));
        }
    }
}
