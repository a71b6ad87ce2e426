//! Delimited messages: each message is followed by a delimiter such as `\n` or `\r\n`.
//!
//! ```text
//!  +-----------+-------+-----------+-------+---+-------+
//!  | h e l l o | \r \n | w o r l d | \r \n |   | \r \n |   the last frame is empty
//!  +-----------+-------+-----------+-------+---+-------+
//! ```
//!
//! A frame is the bytes before the delimiter; the delimiter itself is removed. Two delimiters in a
//! row make a valid empty frame. The delimiter may be several bytes long, and may be split across
//! reads like any other bytes.
//!
//! # No escaping
//!
//! This framing has no escape mechanism, so a payload that contains the delimiter cannot be sent
//! as one message. The encoder refuses it with [`FrameError::DelimiterInPayload`] rather than
//! silently split it into two messages or invent an escaping the peer would not understand. The
//! same goes for a payload whose end, followed by the delimiter, would make the receiver see the
//! delimiter early (payload `"x\n"` with delimiter `"\n\n"`).
//!
//! # The size limit
//!
//! A peer that never sends the delimiter would make a naive decoder buffer forever. This decoder
//! has a `max_len`: once it holds more than `max_len` bytes of one message without a delimiter it
//! returns [`FrameError::TooLarge`] instead of waiting for more. The length that matters here is
//! driven by the peer, so nothing is ever reserved in advance from it.
//!
//! After `TooLarge` the decoder discards the rest of the oversized message, up to and including
//! its delimiter, and then decodes the following messages normally (as `tokio_util`'s
//! `LinesCodec` does). A connection closed in the middle of the discarded message ends cleanly:
//! the error has already been reported.
//!
//! # Searching efficiently
//!
//! When data trickles in a byte at a time, searching the whole buffer for the delimiter after
//! each read would take quadratic time. The decoder remembers how far it has already searched and
//! resumes from there, backing up `delimiter.len() - 1` bytes so that a delimiter straddling two
//! reads is still found.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, FrameError};

/// Encodes and decodes messages terminated by a delimiter.
#[derive(Debug, Clone)]
pub struct DelimitedCodec {
    delimiter: Vec<u8>,
    max_len: usize,
    /// How many positions at the start of the buffer are known not to start a delimiter.
    searched: usize,
    /// Whether we are skipping the rest of a message that was too large.
    discarding: bool,
}

impl DelimitedCodec {
    /// A codec for messages ending in `delimiter`, refusing messages longer than `max_len` bytes
    /// (the delimiter not counted).
    ///
    /// # Panics
    ///
    /// If `delimiter` is empty.
    pub fn new(delimiter: Vec<u8>, max_len: usize) -> Self {
        assert!(!delimiter.is_empty(), "the delimiter must not be empty");
        Self {
            delimiter,
            max_len,
            searched: 0,
            discarding: false,
        }
    }

    /// The delimiter.
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter
    }

    /// The longest message accepted, in bytes, not counting the delimiter.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Finds the next delimiter in `src`, resuming where the last search stopped.
    ///
    /// If there is none, records how far the search got: every position from which a whole
    /// delimiter would still fit in `src` has been ruled out.
    fn find_delimiter(&mut self, src: &[u8]) -> Option<usize> {
        let found = find(&src[self.searched.min(src.len())..], &self.delimiter)
            .map(|offset| self.searched + offset);
        if found.is_none() {
            self.searched = src.len().saturating_sub(self.delimiter.len() - 1);
        }
        found
    }

    /// Drops what is buffered of a message being discarded, keeping the last bytes in case they
    /// are the start of its delimiter.
    fn discard(&mut self, src: &mut BytesMut) {
        let keep = self.delimiter.len() - 1;
        if src.len() > keep {
            let _ = src.split_to(src.len() - keep);
        }
        self.searched = 0;
        self.discarding = true;
    }
}

impl Decoder for DelimitedCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(at) = self.find_delimiter(src) else {
                if self.discarding {
                    self.discard(src);
                    return Ok(None);
                }
                // No delimiter anywhere, and every position that could still start one is past
                // max_len: the message is too large, whatever comes next.
                let at_least = self.searched;
                if at_least > self.max_len {
                    self.discard(src);
                    return Err(FrameError::TooLarge {
                        len: at_least as u64,
                        max: self.max_len,
                    });
                }
                return Ok(None);
            };
            let message = src.split_to(at + self.delimiter.len());
            self.searched = 0;
            if self.discarding {
                // The end of the oversized message: resume normal decoding after it.
                self.discarding = false;
                continue;
            }
            if at > self.max_len {
                return Err(FrameError::TooLarge {
                    len: at as u64,
                    max: self.max_len,
                });
            }
            let mut payload = message.freeze();
            payload.truncate(at);
            return Ok(Some(Frame::new(payload)));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.discarding {
            // The oversized message was already reported; its tail needs no second error.
            src.clear();
            self.discarding = false;
            self.searched = 0;
            return Ok(None);
        }
        if src.is_empty() {
            return Ok(None);
        }
        Err(FrameError::PartialFrame {
            buffered: src.len(),
        })
    }
}

impl Encoder<Frame> for DelimitedCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let payload = &frame.payload;
        if payload.len() > self.max_len {
            return Err(FrameError::TooLarge {
                len: payload.len() as u64,
                max: self.max_len,
            });
        }
        if let Some(offset) = delimiter_in_payload(payload, &self.delimiter) {
            return Err(FrameError::DelimiterInPayload { offset });
        }
        dst.reserve(payload.len() + self.delimiter.len());
        dst.extend_from_slice(payload);
        dst.extend_from_slice(&self.delimiter);
        Ok(())
    }
}

/// Where the receiver of `payload` followed by `delimiter` would find the delimiter, if that is
/// inside the payload rather than right after it.
///
/// Besides a whole delimiter inside the payload, this catches a payload whose last bytes and the
/// delimiter's first bytes together form a delimiter that starts early: `"x\n"` + `"\n\n"`.
fn delimiter_in_payload(payload: &[u8], delimiter: &[u8]) -> Option<usize> {
    if let Some(offset) = find(payload, delimiter) {
        return Some(offset);
    }
    let tail = payload.len().saturating_sub(delimiter.len() - 1);
    let mut joined = payload[tail..].to_vec();
    joined.extend_from_slice(delimiter);
    find(&joined, delimiter)
        .map(|offset| tail + offset)
        .filter(|&offset| offset < payload.len())
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    match needle {
        [byte] => haystack.iter().position(|b| b == byte),
        _ => haystack
            .windows(needle.len())
            .position(|window| window == needle),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;
    use tokio_util::codec::{Decoder, Encoder};

    use super::*;
    use crate::frame::testing::{assert_split_invariant, decode_split};

    const WIRE: &[u8] = b"hello\r\nworld\r\n\r\n";

    fn crlf() -> DelimitedCodec {
        DelimitedCodec::new(b"\r\n".to_vec(), 64)
    }

    fn frames(payloads: &[&'static str]) -> Vec<Frame> {
        payloads.iter().map(|&p| Frame::new(p)).collect()
    }

    #[test]
    fn test_parse() {
        let mut codec = crlf();
        let mut src = BytesMut::from(WIRE);
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("hello")));
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("world")));
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("")));
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert!(src.is_empty());
    }

    #[test]
    fn test_emit() {
        let mut codec = crlf();
        let mut dst = BytesMut::new();
        for payload in ["hello", "world", ""] {
            codec.encode(Frame::new(payload), &mut dst).unwrap();
        }
        assert_eq!(&dst[..], WIRE);
    }

    #[test]
    fn several_frames_in_one_read() {
        assert_split_invariant(crlf, WIRE, &frames(&["hello", "world", ""]));
    }

    #[test]
    fn empty_frames_between_delimiters() {
        let newline = || DelimitedCodec::new(b"\n".to_vec(), 8);
        assert_split_invariant(newline, b"\n\na\n\n", &frames(&["", "", "a", ""]));
    }

    #[test]
    fn across_reads() {
        let mut codec = crlf();
        let mut src = BytesMut::from(&b"hel"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(b"lo\r");
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert_eq!(
            &src[..],
            b"hello\r",
            "nothing is consumed until the delimiter is whole"
        );
        src.extend_from_slice(b"\nwor");
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::new("hello")));
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert_eq!(&src[..], b"wor");
    }

    #[test]
    fn delimiter_straddling_reads() {
        // The search resumes where it stopped, but must not skip a delimiter's first byte.
        let mut codec = DelimitedCodec::new(b"END".to_vec(), 64);
        let mut src = BytesMut::new();
        for piece in [&b"abcE"[..], b"N", b"Dx"] {
            src.extend_from_slice(piece);
            if let Some(frame) = codec.decode(&mut src).unwrap() {
                assert_eq!(frame, Frame::new("abc"));
                assert_eq!(&src[..], b"x");
                return;
            }
        }
        panic!("the delimiter split over three reads was not found");
    }

    #[test]
    fn self_overlapping_delimiter() {
        // "\n\n" in "a\n\n\nb\n\n": the first delimiter starts at 1, the next frame is "\nb".
        let blank_line = || DelimitedCodec::new(b"\n\n".to_vec(), 64);
        assert_split_invariant(blank_line, b"a\n\n\nb\n\n", &frames(&["a", "\nb"]));
    }

    #[test]
    fn one_byte_reads_do_not_rescan() {
        let mut codec = DelimitedCodec::new(b"\r\n".to_vec(), 1 << 20);
        let mut src = BytesMut::new();
        for _ in 0..1000 {
            src.extend_from_slice(b"a");
            assert_eq!(codec.decode(&mut src).unwrap(), None);
        }
        // Every position but the last has been ruled out. The last byte is the only one that could
        // still begin a two-byte delimiter, so it is the only one the next search looks at again.
        assert_eq!(codec.searched, 999);
        src.extend_from_slice(b"\r\n");
        let frame = codec.decode(&mut src).unwrap().expect("a frame");
        assert_eq!(frame.payload.len(), 1000);
        assert_eq!(
            codec.searched, 0,
            "the search restarts with the next message"
        );
    }

    #[test]
    fn partial_then_eof() {
        let (decoded, error) = decode_split(crlf(), b"hello\r\nwor", &[2, 8]);
        assert_eq!(decoded, frames(&["hello"]));
        let error = error.expect("a message without its delimiter is an error at EOF");
        assert!(
            matches!(error, FrameError::PartialFrame { buffered: 3 }),
            "{error:?}"
        );
    }

    #[test]
    fn half_a_delimiter_then_eof() {
        let (decoded, error) = decode_split(crlf(), b"hello\r", &[]);
        assert!(decoded.is_empty());
        assert!(
            matches!(error, Some(FrameError::PartialFrame { buffered: 6 })),
            "{error:?}"
        );
    }

    #[test]
    fn eof_after_delimiter_is_clean() {
        let mut codec = crlf();
        let mut src = BytesMut::from(&b"x\r\n"[..]);
        assert_eq!(codec.decode_eof(&mut src).unwrap(), Some(Frame::new("x")));
        assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
    }

    #[test]
    fn frame_of_exactly_max_len_accepted() {
        let codec = || DelimitedCodec::new(b"\r\n".to_vec(), 4);
        assert_split_invariant(codec, b"abcd\r\n", &frames(&["abcd"]));
    }

    #[test]
    fn huge_length_refused_before_buffering_more() {
        let mut codec = DelimitedCodec::new(b"\r\n".to_vec(), 4);
        let mut src = BytesMut::from(&b"abcd\r"[..]);
        // Five bytes: "abcd" plus a byte that may start the delimiter. Still fine.
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(b"e");
        // Now no delimiter can start before offset 5: the frame is longer than 4.
        let error = codec.decode(&mut src).unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { len: 5, max: 4 }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "frame of 5 bytes exceeds the limit of 4 bytes"
        );
        assert!(src.len() < 2, "the oversized message is not kept in memory");
    }

    #[test]
    fn huge_length_refused_before_alloc() {
        // A peer streams 1 MiB without a delimiter to a decoder with a 1 KiB limit: the error
        // comes as soon as the limit is passed, and the buffer never holds more than the limit.
        let mut codec = DelimitedCodec::new(b"\n".to_vec(), 1024);
        let mut src = BytesMut::new();
        let mut errors = 0;
        for _ in 0..1024 {
            src.extend_from_slice(&[b'a'; 1024]);
            match codec.decode(&mut src) {
                Ok(None) => {}
                Ok(Some(frame)) => panic!("unexpected frame of {} bytes", frame.payload.len()),
                Err(FrameError::TooLarge { .. }) => errors += 1,
                Err(e) => panic!("unexpected error {e}"),
            }
            assert!(src.len() <= 1024);
        }
        assert_eq!(errors, 1, "one message, one error");
    }

    #[test]
    fn decoding_resumes_after_an_oversized_message() {
        let codec = || DelimitedCodec::new(b"\r\n".to_vec(), 4);
        let wire = b"ok\r\ntoo long by far\r\nnext\r\n";
        for cuts in [vec![], vec![7], vec![3, 6, 9, 12, 20, 21, 22]] {
            let mut codec = codec();
            let mut src = BytesMut::new();
            let mut outcomes = Vec::new();
            let mut start = 0;
            for end in cuts.iter().copied().chain([wire.len()]) {
                src.extend_from_slice(&wire[start..end]);
                start = end;
                loop {
                    match codec.decode(&mut src) {
                        Ok(Some(frame)) => outcomes.push(Ok(frame)),
                        Ok(None) => break,
                        Err(FrameError::TooLarge { .. }) => outcomes.push(Err("too large")),
                        Err(e) => panic!("unexpected error {e}"),
                    }
                }
            }
            assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
            let expected = [
                Ok(Frame::new("ok")),
                Err("too large"),
                Ok(Frame::new("next")),
            ];
            assert_eq!(outcomes, expected, "cut at {cuts:?}");
        }
    }

    #[test]
    fn eof_while_discarding_is_clean() {
        let mut codec = DelimitedCodec::new(b"\n".to_vec(), 2);
        let mut src = BytesMut::from(&b"abcdef"[..]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(FrameError::TooLarge { .. })
        ));
        src.extend_from_slice(b"gh");
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
    }

    #[test]
    fn encode_refuses_delimiter_in_payload() {
        let mut codec = crlf();
        let mut dst = BytesMut::new();
        let error = codec
            .encode(Frame::new("two\r\nlines"), &mut dst)
            .unwrap_err();
        assert!(
            matches!(error, FrameError::DelimiterInPayload { offset: 3 }),
            "{error:?}"
        );
        assert!(dst.is_empty(), "nothing is written for a refused frame");
    }

    #[test]
    fn encode_refuses_payload_ending_in_part_of_the_delimiter() {
        let mut codec = DelimitedCodec::new(b"\n\n".to_vec(), 64);
        let mut dst = BytesMut::new();
        let error = codec.encode(Frame::new("x\n"), &mut dst).unwrap_err();
        assert!(
            matches!(error, FrameError::DelimiterInPayload { offset: 1 }),
            "{error:?}"
        );
        // With a delimiter that cannot overlap itself, a trailing '\r' is harmless.
        crlf().encode(Frame::new("x\r"), &mut dst).unwrap();
        assert_eq!(crlf().decode(&mut dst).unwrap(), Some(Frame::new("x\r")));
    }

    #[test]
    fn encode_refuses_payload_over_max_len() {
        let mut codec = DelimitedCodec::new(b"\n".to_vec(), 3);
        let error = codec
            .encode(Frame::new("abcd"), &mut BytesMut::new())
            .unwrap_err();
        assert!(
            matches!(error, FrameError::TooLarge { len: 4, max: 3 }),
            "{error:?}"
        );
    }

    #[test]
    #[should_panic(expected = "must not be empty")]
    fn empty_delimiter_refused() {
        let _ = DelimitedCodec::new(Vec::new(), 8);
    }

    /// A short delimiter over a small alphabet, so that delimiters, near-misses and
    /// self-overlapping delimiters like "aa" all turn up.
    fn delimiter() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'\n'), Just(b'\r')], 1..=3)
    }

    /// Payloads over the same alphabet plus a few other bytes.
    fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let byte = prop_oneof![
            Just(b'a'),
            Just(b'b'),
            Just(b'\n'),
            Just(b'\r'),
            any::<u8>()
        ];
        proptest::collection::vec(proptest::collection::vec(byte, 0..12), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn encode_then_decode_is_identity(delimiter in delimiter(), payloads in payloads()) {
            let mut codec = DelimitedCodec::new(delimiter.clone(), 64);
            let mut wire = BytesMut::new();
            let mut sent = Vec::new();
            for payload in payloads {
                let len = wire.len();
                match codec.encode(Frame::new(payload.clone()), &mut wire) {
                    Ok(()) => sent.push(Frame::new(payload)),
                    Err(FrameError::DelimiterInPayload { offset }) => {
                        prop_assert_eq!(wire.len(), len);
                        prop_assert!(offset < payload.len());
                        let mut joined = payload.clone();
                        joined.extend_from_slice(&delimiter);
                        prop_assert_eq!(&joined[offset..offset + delimiter.len()], &delimiter[..]);
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
                }
            }
            for frame in &sent {
                prop_assert_eq!(codec.decode(&mut wire).unwrap(), Some(frame.clone()));
            }
            prop_assert_eq!(codec.decode_eof(&mut wire).unwrap(), None);
        }

        #[test]
        fn split_invariance(delimiter in delimiter(), payloads in payloads()) {
            let mut codec = DelimitedCodec::new(delimiter.clone(), 64);
            let mut wire = BytesMut::new();
            let mut sent = Vec::new();
            for payload in payloads {
                if codec.encode(Frame::new(payload.clone()), &mut wire).is_ok() {
                    sent.push(Frame::new(payload));
                }
            }
            assert_split_invariant(|| DelimitedCodec::new(delimiter.clone(), 64), &wire, &sent);
        }
    }
}
