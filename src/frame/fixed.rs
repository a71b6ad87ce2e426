//! Fixed-length records: every message is exactly `len` bytes on the wire.
//!
//! ```text
//!  +---------------------------------------+
//!  | payload bytes ... | 0x00 0x00 ... 0x00 |   exactly len bytes, then the next record
//!  +---------------------------------------+
//!  |<------ payload --->|<--- NUL padding -->|
//! ```
//!
//! This is the framing of the Python socket HOWTO's `MySocket` class: with `MSGLEN = 1024` its
//! `mysend` keeps calling `send` until 1024 bytes have gone, and `myreceive` keeps calling `recv`
//! until 1024 bytes have arrived. `FixedCodec::new(1024)` talks to it: the encoder pads each
//! payload with NUL bytes up to the record length, and the decoder waits for a whole record and
//! strips the padding.
//!
//! Two limits are inherent to the format, not to this code:
//!
//! - A payload longer than the record cannot be sent: the encoder refuses it with
//!   [`FrameError::PayloadTooLong`] rather than cut it.
//! - A payload that ends in NUL bytes loses them, because the receiver cannot tell them from the
//!   padding. A payload of only NULs arrives empty. Use delimited or header framing for binary data.
//!
//! The record length also bounds memory: it is chosen locally, never read from the peer, so the
//! decoder may reserve room for a whole record as soon as one starts to arrive.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, FrameError, decode_eof_with};

/// Encodes and decodes fixed-length, NUL-padded records.
#[derive(Debug, Clone)]
pub struct FixedCodec {
    len: usize,
}

impl FixedCodec {
    /// A codec for records of exactly `len` bytes.
    ///
    /// # Panics
    ///
    /// If `len` is 0: a decoder for empty records would produce frames forever from no input.
    pub fn new(len: usize) -> Self {
        assert!(
            len > 0,
            "fixed-length records need a length of at least 1 byte"
        );
        Self { len }
    }

    /// The record length in bytes.
    pub fn record_len(&self) -> usize {
        self.len
    }
}

impl Decoder for FixedCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < self.len {
            // A record has started: make room for the rest so the next reads fill it. The length
            // is our own configuration, not the peer's, so this is safe to reserve.
            if !src.is_empty() {
                src.reserve(self.len - src.len());
            }
            return Ok(None);
        }
        let mut record = src.split_to(self.len).freeze();
        let end = record
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |last| last + 1);
        record.truncate(end);
        Ok(Some(Frame::new(record)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        decode_eof_with(self, src)
    }
}

impl Encoder<Frame> for FixedCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = &frame.payload;
        if payload.len() > self.len {
            return Err(FrameError::PayloadTooLong {
                len: payload.len(),
                max: self.len,
            });
        }
        dst.reserve(self.len);
        dst.extend_from_slice(payload);
        dst.put_bytes(0, self.len - payload.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::frame::testing::{assert_split_invariant, decode_split};

    /// Two records of 8 bytes: "hello" and "world!" padded with NULs.
    const TWO_RECORDS: [u8; 16] = *b"hello\0\0\0world!\0\0";

    fn encode(codec: &mut FixedCodec, payload: &'static [u8]) -> Result<BytesMut, FrameError> {
        let mut dst = BytesMut::new();
        codec.encode(Frame::new(payload), &mut dst)?;
        Ok(dst)
    }

    #[test]
    fn test_parse() {
        let mut codec = FixedCodec::new(8);
        let mut src = BytesMut::from(&TWO_RECORDS[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("hello")));
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("world!")));
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert!(src.is_empty());
    }

    #[test]
    fn test_emit() {
        let mut codec = FixedCodec::new(8);
        let mut dst = BytesMut::new();
        codec.encode(Frame::new("hello"), &mut dst).unwrap();
        codec.encode(Frame::new("world!"), &mut dst).unwrap();
        assert_eq!(&dst[..], &TWO_RECORDS[..]);
    }

    #[test]
    fn python_mysocket_msglen_1024() {
        // What MySocket.mysend(b"ping".ljust(1024, b"\0")) puts on the wire.
        let mut wire = b"ping".to_vec();
        wire.resize(1024, 0);
        let mut codec = FixedCodec::new(1024);
        assert_eq!(&encode(&mut codec, b"ping").unwrap()[..], &wire[..]);
        assert_split_invariant(|| FixedCodec::new(1024), &wire, &[Frame::new("ping")]);
    }

    #[test]
    fn payload_filling_the_record_has_no_padding() {
        let mut codec = FixedCodec::new(4);
        assert_eq!(&encode(&mut codec, b"abcd").unwrap()[..], b"abcd");
        assert_split_invariant(|| FixedCodec::new(4), b"abcd", &[Frame::new("abcd")]);
    }

    #[test]
    fn payload_too_long_refused() {
        let mut codec = FixedCodec::new(4);
        let err = encode(&mut codec, b"abcde").unwrap_err();
        assert!(
            matches!(err, FrameError::PayloadTooLong { len: 5, max: 4 }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "payload of 5 bytes does not fit in a fixed record of 4 bytes"
        );
    }

    #[test]
    fn refused_payload_writes_nothing() {
        let mut codec = FixedCodec::new(4);
        let mut dst = BytesMut::from(&b"keep"[..]);
        assert!(codec.encode(Frame::new("too long"), &mut dst).is_err());
        assert_eq!(&dst[..], b"keep");
    }

    #[test]
    fn empty_payload_is_a_record_of_nuls() {
        let mut codec = FixedCodec::new(3);
        assert_eq!(&encode(&mut codec, b"").unwrap()[..], b"\0\0\0");
        assert_split_invariant(|| FixedCodec::new(3), b"\0\0\0", &[Frame::new("")]);
    }

    #[test]
    fn trailing_nuls_are_lost() {
        // Inherent to the format: the padding and the payload's own NULs look the same.
        let mut codec = FixedCodec::new(6);
        let wire = encode(&mut codec, b"ab\0\0").unwrap();
        assert_eq!(&wire[..], b"ab\0\0\0\0");
        assert_split_invariant(|| FixedCodec::new(6), &wire, &[Frame::new("ab")]);
    }

    #[test]
    fn inner_nuls_are_kept() {
        assert_split_invariant(
            || FixedCodec::new(5),
            b"a\0b\0\0",
            &[Frame::new(&b"a\0b"[..])],
        );
    }

    #[test]
    fn across_reads() {
        let mut codec = FixedCodec::new(8);
        let mut src = BytesMut::from(&TWO_RECORDS[..5]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert_eq!(src.len(), 5, "an incomplete record stays buffered");
        assert!(src.capacity() >= 8, "room for the whole record is reserved");
        src.extend_from_slice(&TWO_RECORDS[5..]);
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("hello")));
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("world!")));
    }

    #[test]
    fn several_frames_in_one_read() {
        let frames = [Frame::new("hello"), Frame::new("world!")];
        assert_split_invariant(|| FixedCodec::new(8), &TWO_RECORDS, &frames);
    }

    #[test]
    fn partial_then_eof() {
        let (frames, error) = decode_split(FixedCodec::new(8), &TWO_RECORDS[..11], &[3]);
        assert_eq!(frames, [Frame::new("hello")]);
        let error = error.expect("a cut record is an error at EOF");
        assert!(
            matches!(error, FrameError::PartialFrame { buffered: 3 }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "connection closed in the middle of a frame (3 bytes buffered)"
        );
    }

    #[test]
    fn eof_on_a_record_boundary_is_clean() {
        let mut codec = FixedCodec::new(8);
        let mut src = BytesMut::from(&TWO_RECORDS[..8]);
        assert_eq!(
            codec.decode_eof(&mut src).unwrap(),
            Some(Frame::new("hello"))
        );
        assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
        assert_eq!(codec.decode_eof(&mut BytesMut::new()).unwrap(), None);
    }

    #[test]
    fn id_and_timestamp_do_not_travel() {
        let mut codec = FixedCodec::new(4);
        let mut dst = BytesMut::new();
        let frame = Frame {
            id: 7,
            timestamp_us: 99,
            payload: Bytes::from_static(b"hi"),
        };
        codec.encode(frame, &mut dst).unwrap();
        assert_eq!(codec.decode(&mut dst).unwrap(), Some(Frame::new("hi")));
    }

    #[test]
    #[should_panic(expected = "at least 1 byte")]
    fn zero_length_records_refused() {
        let _ = FixedCodec::new(0);
    }

    /// Payloads the format can carry: no longer than the record, not ending in NUL.
    fn payload(len: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..=len)
            .prop_filter("trailing NULs are padding", |p| p.last() != Some(&0))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn encode_then_decode_is_identity(
            len in 1usize..40,
            payloads in proptest::collection::vec(payload(40), 0..6),
        ) {
            let payloads: Vec<Vec<u8>> = payloads.into_iter().filter(|p| p.len() <= len).collect();
            let mut codec = FixedCodec::new(len);
            let mut wire = BytesMut::new();
            for p in &payloads {
                codec.encode(Frame::new(p.clone()), &mut wire).unwrap();
            }
            prop_assert_eq!(wire.len(), len * payloads.len());
            for p in &payloads {
                prop_assert_eq!(codec.decode(&mut wire).unwrap(), Some(Frame::new(p.clone())));
            }
            prop_assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
        }

        #[test]
        fn split_invariance(len in 1usize..20, payloads in proptest::collection::vec(payload(20), 0..5)) {
            let frames: Vec<Frame> = payloads
                .into_iter()
                .filter(|p| p.len() <= len)
                .map(Frame::new)
                .collect();
            let mut wire = BytesMut::new();
            for frame in &frames {
                FixedCodec::new(len).encode(frame.clone(), &mut wire).unwrap();
            }
            assert_split_invariant(|| FixedCodec::new(len), &wire, &frames);
        }
    }
}
