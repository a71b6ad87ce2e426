//! The socklab header frame: a fixed 24-byte header, then the payload.
//!
//! All fields are in network byte order (big-endian).
//!
//! ```text
//!  0         2     3     4          8          12                  20         24
//!  +---------+-----+-----+----------+----------+-------------------+----------+------------
//!  | 'S' 'L' | ver | flg |  length  |    id    |   timestamp_us    |  crc32   | payload ...
//!  |0x53 0x4c|0x01 |0x00 |  u32 BE  |  u32 BE  |      u64 BE       |  u32 BE  | length bytes
//!  +---------+-----+-----+----------+----------+-------------------+----------+------------
//! ```
//!
//! - `magic`: the bytes `"SL"`, so that a peer speaking something else (an HTTP request, a line
//!   typed into `nc`) is recognised at once instead of being read as a length.
//! - `ver`: [`VERSION`], 1. Other versions are refused.
//! - `flg`: reserved, must be 0 (non-zero is refused, so that later versions can give flags a
//!   meaning without being misread by this one).
//! - `length`: the payload's length in bytes.
//! - `id`: the sender's message id, e.g. a sequence number.
//! - `timestamp_us`: when the message was sent, in microseconds since the Unix epoch. The codec
//!   never reads a clock: the sender puts the time in the [`Frame`].
//! - `crc32`: the CRC-32 of the payload (the ISO-HDLC CRC of zlib, Ethernet and PNG, so Python's
//!   `zlib.crc32(payload)` computes the same value).
//!
//! # The size limit
//!
//! `length` is whatever the peer says it is, up to 4 GiB. [`HeaderCodec`] compares it with its
//! `max_len` as soon as the header has arrived, and refuses the frame with
//! [`FrameError::TooLarge`] *before* it reserves any room for the payload: a peer-supplied length
//! must never drive an allocation. The magic, version and flags are checked even earlier, as soon
//! as their bytes arrive.
//!
//! # After an error
//!
//! A CRC mismatch consumes the damaged frame, so decoding can go on with the next one. After any
//! other error the stream has lost its framing (the header cannot be trusted to say where the next
//! frame starts) and the connection should be closed.
//!
//! # Layout in code
//!
//! In the style of smoltcp's `wire` modules: `field` names the byte ranges, [`Packet`] is a typed
//! view over a byte buffer with one accessor per field, and [`Repr`] is the parsed header, with
//! `parse` and `emit` to go between the two.

use std::fmt;

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, FrameError, decode_eof_with};

/// The length of the header, in bytes.
pub const HEADER_LEN: usize = 24;

/// The two bytes every header frame starts with: `"SL"`.
pub const MAGIC: [u8; 2] = [0x53, 0x4c];

/// The header version this build speaks.
pub const VERSION: u8 = 0x01;

/// Whether decoding checks the CRC. Under `cfg(fuzzing)` it does not, so that the fuzzer can
/// reach the code behind the check without having to forge CRCs.
const VERIFY_CRC: bool = !cfg!(fuzzing);

/// The byte ranges of the header fields.
mod field {
    /// A range of bytes in the header.
    pub type Field = std::ops::Range<usize>;

    pub const MAGIC: Field = 0..2;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const LENGTH: Field = 4..8;
    pub const ID: Field = 8..12;
    pub const TIMESTAMP: Field = 12..20;
    pub const CRC32: Field = 20..24;
}

/// A read/write view of a header frame in a byte buffer.
///
/// [`Packet::new_checked`] makes sure the buffer holds the whole frame, after which every accessor
/// is safe. With [`Packet::new_unchecked`] the header accessors panic if the buffer is shorter than
/// [`HEADER_LEN`], and [`Packet::payload`] if it is shorter than the frame.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps `buffer`, checking that it holds a whole header and the payload it announces.
    pub fn new_checked(buffer: T) -> Result<Self, FrameError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds a whole header and the whole payload its length field
    /// announces. Bytes after the payload are allowed (they belong to whatever comes next).
    pub fn check_len(&self) -> Result<(), FrameError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(FrameError::Truncated {
                len,
                needed: HEADER_LEN,
            });
        }
        let needed = usize::try_from(self.length())
            .map_or(usize::MAX, |payload| payload.saturating_add(HEADER_LEN));
        if len < needed {
            return Err(FrameError::Truncated { len, needed });
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The magic bytes, which should be [`MAGIC`].
    pub fn magic(&self) -> [u8; 2] {
        let data = self.buffer.as_ref();
        [data[field::MAGIC.start], data[field::MAGIC.start + 1]]
    }

    /// The version byte, which should be [`VERSION`].
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// The flags byte, which should be 0.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// The payload length in bytes, as the header states it.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.array(field::LENGTH))
    }

    /// The message id.
    pub fn id(&self) -> u32 {
        u32::from_be_bytes(self.array(field::ID))
    }

    /// The send time, in microseconds since the Unix epoch.
    pub fn timestamp_us(&self) -> u64 {
        u64::from_be_bytes(self.array(field::TIMESTAMP))
    }

    /// The CRC-32 of the payload, as the header states it.
    pub fn crc32(&self) -> u32 {
        u32::from_be_bytes(self.array(field::CRC32))
    }

    /// The payload: the `length` bytes after the header.
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + self.length() as usize;
        &self.buffer.as_ref()[HEADER_LEN..end]
    }

    /// The bytes of a field, as an array of the field's size.
    fn array<const N: usize>(&self, range: field::Field) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.buffer.as_ref()[range]);
        out
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the magic bytes.
    pub fn set_magic(&mut self, value: [u8; 2]) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&value);
    }

    /// Sets the version byte.
    pub fn set_version(&mut self, value: u8) {
        self.buffer.as_mut()[field::VERSION] = value;
    }

    /// Sets the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the payload length.
    pub fn set_length(&mut self, value: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message id.
    pub fn set_id(&mut self, value: u32) {
        self.buffer.as_mut()[field::ID].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the send time, in microseconds since the Unix epoch.
    pub fn set_timestamp_us(&mut self, value: u64) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the CRC-32 field.
    pub fn set_crc32(&mut self, value: u32) {
        self.buffer.as_mut()[field::CRC32].copy_from_slice(&value.to_be_bytes());
    }

    /// The payload, for writing: the `length` bytes after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + self.length() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// A parsed, validated header.
///
/// The magic, version and flags are not kept: [`Repr::parse`] checks them and [`Repr::emit`]
/// writes the only values this version allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The payload length in bytes.
    pub length: u32,
    /// The message id.
    pub id: u32,
    /// The send time, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// The CRC-32 of the payload.
    pub crc32: u32,
}

impl Repr {
    /// Parses and validates the header at the start of `packet`.
    ///
    /// Checks the magic, version and flags. Does not look at the payload, which may not have
    /// arrived yet: checking `length` against a limit and the payload against `crc32` is up to
    /// the caller.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self, FrameError> {
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(FrameError::Truncated {
                len,
                needed: HEADER_LEN,
            });
        }
        check_prefix(&packet.buffer.as_ref()[..HEADER_LEN])?;
        Ok(Self {
            length: packet.length(),
            id: packet.id(),
            timestamp_us: packet.timestamp_us(),
            crc32: packet.crc32(),
        })
    }

    /// The header for `frame`: its id and timestamp, and its payload's length and CRC-32.
    ///
    /// Fails with [`FrameError::TooLarge`] if the payload is longer than the 32-bit length field
    /// can say.
    pub fn for_frame(frame: &Frame) -> Result<Self, FrameError> {
        let length = u32::try_from(frame.payload.len()).map_err(|_| FrameError::TooLarge {
            len: frame.payload.len() as u64,
            max: u32::MAX as usize,
        })?;
        Ok(Self {
            length,
            id: frame.id,
            timestamp_us: frame.timestamp_us,
            crc32: crc32fast::hash(&frame.payload),
        })
    }

    /// Writes this header, with [`MAGIC`], [`VERSION`] and flags 0, into the first
    /// [`HEADER_LEN`] bytes of `packet`.
    ///
    /// # Panics
    ///
    /// If the packet's buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_magic(MAGIC);
        packet.set_version(VERSION);
        packet.set_flags(0);
        packet.set_length(self.length);
        packet.set_id(self.id);
        packet.set_timestamp_us(self.timestamp_us);
        packet.set_crc32(self.crc32);
    }

    /// The length of the whole frame: header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.length as usize
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SL v{VERSION} len={} id={} ts={}us crc32={:#010x}",
            self.length, self.id, self.timestamp_us, self.crc32
        )
    }
}

/// Validates as much of the magic, version and flags as `header` holds (up to its first 4 bytes).
///
/// Lets the decoder refuse a peer that is not speaking this protocol as soon as its first bytes
/// arrive, rather than after 24 of them (a line typed into `nc` may never reach 24 bytes).
fn check_prefix(header: &[u8]) -> Result<(), FrameError> {
    if let [a, b, ..] = *header
        && [a, b] != MAGIC
    {
        return Err(FrameError::BadMagic { found: [a, b] });
    }
    if let Some(&version) = header.get(field::VERSION)
        && version != VERSION
    {
        return Err(FrameError::UnsupportedVersion { version });
    }
    if let Some(&flags) = header.get(field::FLAGS)
        && flags != 0
    {
        return Err(FrameError::ReservedFlags { flags });
    }
    Ok(())
}

/// Encodes and decodes header frames, refusing payloads longer than `max_len`.
#[derive(Debug, Clone)]
pub struct HeaderCodec {
    max_len: usize,
}

impl HeaderCodec {
    /// A codec refusing frames whose payload is longer than `max_len` bytes, in either direction.
    pub fn new(max_len: usize) -> Self {
        Self { max_len }
    }

    /// The longest payload accepted, in bytes.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

impl Decoder for HeaderCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < HEADER_LEN {
            check_prefix(src)?;
            return Ok(None);
        }
        let repr = Repr::parse(&Packet::new_unchecked(&src[..HEADER_LEN]))?;

        // The length is the peer's claim: check it before reserving anything for it.
        let too_large = FrameError::TooLarge {
            len: u64::from(repr.length),
            max: self.max_len,
        };
        let payload_len = match usize::try_from(repr.length) {
            Ok(len) if len <= self.max_len => len,
            _ => return Err(too_large),
        };
        let frame_len = HEADER_LEN + payload_len;
        if src.len() < frame_len {
            src.reserve(frame_len - src.len());
            return Ok(None);
        }

        let payload = src.split_to(frame_len).freeze().slice(HEADER_LEN..);
        if VERIFY_CRC {
            let actual = crc32fast::hash(&payload);
            if actual != repr.crc32 {
                return Err(FrameError::CrcMismatch {
                    id: repr.id,
                    expected: repr.crc32,
                    actual,
                });
            }
        }
        Ok(Some(Frame {
            id: repr.id,
            timestamp_us: repr.timestamp_us,
            payload,
        }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        decode_eof_with(self, src)
    }
}

impl Encoder<Frame> for HeaderCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.payload.len() > self.max_len {
            return Err(FrameError::TooLarge {
                len: frame.payload.len() as u64,
                max: self.max_len,
            });
        }
        let repr = Repr::for_frame(&frame)?;
        dst.reserve(repr.buffer_len());
        let start = dst.len();
        dst.put_bytes(0, HEADER_LEN);
        repr.emit(&mut Packet::new_unchecked(&mut dst[start..]));
        dst.extend_from_slice(&frame.payload);
        Ok(())
    }
}

/// Encodes `frame` as a header frame into a new `Vec`: a convenience for tests and examples.
///
/// # Panics
///
/// If the payload is longer than `u32::MAX` bytes, which the length field cannot express.
pub fn encode_to_vec(frame: &Frame) -> Vec<u8> {
    let mut dst = BytesMut::new();
    HeaderCodec::new(usize::MAX)
        .encode(frame.clone(), &mut dst)
        .expect("payload longer than the 32-bit length field allows");
    dst.to_vec()
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::frame::DEFAULT_MAX_FRAME;
    use crate::frame::testing::{assert_split_invariant, decode_split};

    /// id 7, timestamp 1_700_000_000_000_000 us, payload "hello", written out by hand.
    /// The CRC is Python's `zlib.crc32(b"hello")` = 0x3610a686.
    #[rustfmt::skip]
    const GOLDEN: [u8; 29] = [
        0x53, 0x4c,                                     // magic "SL"
        0x01,                                           // version
        0x00,                                           // flags
        0x00, 0x00, 0x00, 0x05,                         // length 5
        0x00, 0x00, 0x00, 0x07,                         // id 7
        0x00, 0x06, 0x0a, 0x24, 0x18, 0x1e, 0x40, 0x00, // timestamp 1_700_000_000_000_000
        0x36, 0x10, 0xa6, 0x86,                         // crc32
        b'h', b'e', b'l', b'l', b'o',                   // payload
    ];

    const GOLDEN_REPR: Repr = Repr {
        length: 5,
        id: 7,
        timestamp_us: 1_700_000_000_000_000,
        crc32: 0x3610_a686,
    };

    fn golden_frame() -> Frame {
        Frame {
            id: 7,
            timestamp_us: 1_700_000_000_000_000,
            payload: Bytes::from_static(b"hello"),
        }
    }

    fn codec() -> HeaderCodec {
        HeaderCodec::new(DEFAULT_MAX_FRAME)
    }

    /// A 24-byte header with the given length and the golden id, timestamp and CRC.
    fn header_with_length(length: u32) -> Vec<u8> {
        let mut header = GOLDEN[..HEADER_LEN].to_vec();
        Packet::new_unchecked(&mut header[..]).set_length(length);
        header
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&GOLDEN[..]).unwrap();
        assert_eq!(packet.magic(), *b"SL");
        assert_eq!(packet.version(), 1);
        assert_eq!(packet.flags(), 0);
        assert_eq!(packet.length(), 5);
        assert_eq!(packet.id(), 7);
        assert_eq!(packet.timestamp_us(), 1_700_000_000_000_000);
        assert_eq!(packet.crc32(), 0x3610_a686);
        assert_eq!(packet.payload(), b"hello");
        assert_eq!(Repr::parse(&packet).unwrap(), GOLDEN_REPR);
    }

    #[test]
    fn test_emit() {
        let mut header = [0xff; HEADER_LEN];
        GOLDEN_REPR.emit(&mut Packet::new_unchecked(&mut header[..]));
        assert_eq!(header, GOLDEN[..HEADER_LEN]);
    }

    #[test]
    fn test_decode_golden() {
        let mut src = BytesMut::from(&GOLDEN[..]);
        assert_eq!(codec().decode(&mut src).unwrap(), Some(golden_frame()));
        assert!(src.is_empty());
    }

    #[test]
    fn test_encode_golden() {
        let mut dst = BytesMut::new();
        codec().encode(golden_frame(), &mut dst).unwrap();
        assert_eq!(&dst[..], &GOLDEN[..]);
        assert_eq!(encode_to_vec(&golden_frame()), GOLDEN);
    }

    #[test]
    fn crc_is_zlib_crc32() {
        assert_eq!(Repr::for_frame(&golden_frame()).unwrap(), GOLDEN_REPR);
        // The check value of CRC-32/ISO-HDLC, from the CRC catalogue.
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn repr_display_names_every_field() {
        assert_eq!(
            GOLDEN_REPR.to_string(),
            "SL v1 len=5 id=7 ts=1700000000000000us crc32=0x3610a686"
        );
    }

    #[test]
    fn packet_setters_and_payload_mut() {
        let mut buf = [0; HEADER_LEN + 2];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        Repr::for_frame(&Frame::new("hi"))
            .unwrap()
            .emit(&mut packet);
        packet.payload_mut().copy_from_slice(b"hi");
        let packet = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(packet.payload(), b"hi");
        assert_eq!(packet.crc32(), crc32fast::hash(b"hi"));
    }

    #[test]
    fn new_checked_rejects_truncated() {
        let error = Packet::new_checked(&GOLDEN[..10]).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::Truncated {
                    len: 10,
                    needed: 24
                }
            ),
            "{error:?}"
        );
        let error = Packet::new_checked(&GOLDEN[..28]).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::Truncated {
                    len: 28,
                    needed: 29
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "buffer of 28 bytes is too short for a header frame of 29 bytes"
        );
        let error = Repr::parse(&Packet::new_unchecked(&GOLDEN[..3])).unwrap_err();
        assert!(
            matches!(error, FrameError::Truncated { len: 3, needed: 24 }),
            "{error:?}"
        );
    }

    #[test]
    fn across_reads() {
        let mut codec = codec();
        let mut src = BytesMut::from(&GOLDEN[..10]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(&GOLDEN[10..HEADER_LEN]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert!(
            src.capacity() >= GOLDEN.len(),
            "room for the payload is reserved"
        );
        src.extend_from_slice(&GOLDEN[HEADER_LEN..27]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert_eq!(
            src.len(),
            27,
            "nothing is consumed until the frame is whole"
        );
        src.extend_from_slice(&GOLDEN[27..]);
        assert_eq!(codec.decode(&mut src).unwrap(), Some(golden_frame()));
    }

    #[test]
    fn several_frames_in_one_read() {
        let frames = [
            golden_frame(),
            Frame::new(""),
            Frame {
                id: u32::MAX,
                timestamp_us: u64::MAX,
                payload: Bytes::from_static(b"\0SL\x01\0binary\xff"),
            },
        ];
        let wire: Vec<u8> = frames.iter().flat_map(encode_to_vec).collect();
        assert_split_invariant(codec, &wire, &frames);
    }

    #[test]
    fn empty_payload() {
        let frame = Frame {
            id: 1,
            timestamp_us: 2,
            payload: Bytes::new(),
        };
        let wire = encode_to_vec(&frame);
        assert_eq!(wire.len(), HEADER_LEN);
        assert_eq!(Packet::new_checked(&wire[..]).unwrap().crc32(), 0);
        assert_split_invariant(codec, &wire, &[frame]);
    }

    #[test]
    fn trailing_data() {
        // A whole frame followed by the start of the next one: the frame comes out, the rest
        // stays buffered, and if the stream then ends, that rest is a partial frame.
        let mut wire = GOLDEN.to_vec();
        wire.extend_from_slice(&GOLDEN[..3]);
        let (frames, error) = decode_split(codec(), &wire, &[]);
        assert_eq!(frames, [golden_frame()]);
        assert!(
            matches!(error, Some(FrameError::PartialFrame { buffered: 3 })),
            "{error:?}"
        );
    }

    #[test]
    fn partial_then_eof() {
        let (frames, error) = decode_split(codec(), &GOLDEN[..HEADER_LEN + 2], &[5]);
        assert!(frames.is_empty());
        let error = error.expect("a cut frame is an error at EOF");
        assert!(
            matches!(error, FrameError::PartialFrame { buffered: 26 }),
            "{error:?}"
        );
    }

    #[test]
    fn partial_header_then_eof() {
        let (frames, error) = decode_split(codec(), &GOLDEN[..7], &[]);
        assert!(frames.is_empty());
        assert!(
            matches!(error, Some(FrameError::PartialFrame { buffered: 7 })),
            "{error:?}"
        );
    }

    #[test]
    fn huge_length_refused_before_alloc() {
        let mut src = BytesMut::from(&header_with_length(u32::MAX)[..]);
        let capacity = src.capacity();
        let error = codec().decode(&mut src).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::TooLarge {
                    len: 0xffff_ffff,
                    max: DEFAULT_MAX_FRAME
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "frame of 4294967295 bytes exceeds the limit of 16777216 bytes"
        );
        assert_eq!(
            src.capacity(),
            capacity,
            "nothing was reserved for the claimed payload"
        );
    }

    #[test]
    fn length_one_over_max_refused() {
        let mut src = BytesMut::from(&header_with_length(101)[..]);
        let error = HeaderCodec::new(100).decode(&mut src).unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { len: 101, max: 100 }),
            "{error:?}"
        );
    }

    #[test]
    fn frame_of_exactly_max_len_accepted() {
        let frame = golden_frame();
        assert_split_invariant(|| HeaderCodec::new(5), &GOLDEN, &[frame]);
    }

    #[test]
    fn bad_magic_refused_as_soon_as_it_arrives() {
        let mut src = BytesMut::from(&b"GE"[..]);
        let error = codec().decode(&mut src).unwrap_err();
        assert!(
            matches!(
                error,
                FrameError::BadMagic {
                    found: [b'G', b'E']
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "not a socklab header frame (magic 0x47 0x45, expected 0x53 0x4c)"
        );
        // One byte is not enough to tell.
        assert_eq!(
            codec().decode(&mut BytesMut::from(&b"G"[..])).unwrap(),
            None
        );
    }

    #[test]
    fn bad_magic_in_a_whole_header() {
        let mut wire = GOLDEN;
        wire[1] = b'X';
        let (frames, error) = decode_split(codec(), &wire, &[]);
        assert!(frames.is_empty());
        assert!(
            matches!(
                error,
                Some(FrameError::BadMagic {
                    found: [b'S', b'X']
                })
            ),
            "{error:?}"
        );
    }

    #[test]
    fn unsupported_version() {
        let mut wire = GOLDEN;
        wire[2] = 2;
        let error = codec().decode(&mut BytesMut::from(&wire[..3])).unwrap_err();
        assert!(
            matches!(error, FrameError::UnsupportedVersion { version: 2 }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "unsupported header frame version 2 (this build speaks version 1)"
        );
    }

    #[test]
    fn reserved_flags() {
        let mut wire = GOLDEN;
        wire[3] = 0x80;
        let error = codec().decode(&mut BytesMut::from(&wire[..])).unwrap_err();
        assert!(
            matches!(error, FrameError::ReservedFlags { flags: 0x80 }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "reserved flags set in header frame (flags 0x80, expected 0x00)"
        );
    }

    #[test]
    fn crc_mismatch() {
        let mut wire = GOLDEN;
        wire[HEADER_LEN] = b'j';
        let error = codec().decode(&mut BytesMut::from(&wire[..])).unwrap_err();
        let actual = crc32fast::hash(b"jello");
        match error {
            FrameError::CrcMismatch {
                id: 7,
                expected: 0x3610_a686,
                actual: a,
            } => assert_eq!(a, actual),
            ref other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            format!(
                "crc32 mismatch in message 7: header says 0x3610a686, payload has {actual:#010x}"
            )
        );
    }

    #[test]
    fn crc_mismatch_skips_only_that_frame() {
        let mut src = BytesMut::from(&GOLDEN[..]);
        src[HEADER_LEN + 4] ^= 0x01;
        src.extend_from_slice(&GOLDEN);
        let mut codec = codec();
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::CrcMismatch { id: 7, .. })
        ));
        assert_eq!(codec.decode(&mut src).unwrap(), Some(golden_frame()));
        assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
    }

    #[test]
    fn encode_refuses_payload_over_max_len() {
        let mut dst = BytesMut::new();
        let error = HeaderCodec::new(4)
            .encode(golden_frame(), &mut dst)
            .unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { len: 5, max: 4 }),
            "{error:?}"
        );
        assert!(dst.is_empty());
    }

    #[test]
    fn encode_appends_after_existing_bytes() {
        let mut dst = BytesMut::from(&b"xy"[..]);
        codec().encode(golden_frame(), &mut dst).unwrap();
        assert_eq!(&dst[..2], b"xy");
        assert_eq!(&dst[2..], &GOLDEN[..]);
    }

    fn frame() -> impl Strategy<Value = Frame> {
        (
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(id, timestamp_us, payload)| Frame {
                id,
                timestamp_us,
                payload: payload.into(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn encode_then_decode_is_identity(frames in proptest::collection::vec(frame(), 0..5)) {
            let mut codec = codec();
            let mut wire = BytesMut::new();
            for frame in &frames {
                codec.encode(frame.clone(), &mut wire).unwrap();
            }
            for frame in &frames {
                prop_assert_eq!(codec.decode(&mut wire).unwrap(), Some(frame.clone()));
            }
            prop_assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
        }

        #[test]
        fn parse_then_emit_is_identity(repr_bytes in any::<[u8; 20]>()) {
            let mut header = [0; HEADER_LEN];
            header[..4].copy_from_slice(&[0x53, 0x4c, 0x01, 0x00]);
            header[4..].copy_from_slice(&repr_bytes);
            let repr = Repr::parse(&Packet::new_unchecked(&header[..])).unwrap();
            let mut emitted = [0; HEADER_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut emitted[..]));
            prop_assert_eq!(emitted, header);
        }

        #[test]
        fn split_invariance(frames in proptest::collection::vec(frame(), 0..4)) {
            let wire: Vec<u8> = frames.iter().flat_map(encode_to_vec).collect();
            assert_split_invariant(codec, &wire, &frames);
        }
    }
}
