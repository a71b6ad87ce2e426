//! Type-length-value frames: a type byte, a 4-byte big-endian length, then that many bytes.
//!
//! ```text
//!  +------+-------------------+------------------ … --+
//!  | type | length (u32, BE)  | value (length bytes)   |
//!  +------+-------------------+------------------ … --+
//! ```
//!
//! The framing of `socklab transfer` (docs/PROTOCOLS.md §11), where the type says what the value
//! is (a text, a piece of a file …) and the receiver learns both before it reads the value. The
//! length is checked against the codec's limit *before* anything is reserved: a peer that
//! announces 4 GiB gets [`FrameError::TooLarge`] after five bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::FrameError;

/// The head: type and length.
pub const HEAD: usize = 5;

/// One frame: its type and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    /// What the value is.
    pub kind: u8,
    /// The value.
    pub value: Bytes,
}

/// The codec, with the largest value it accepts.
#[derive(Debug, Clone, Copy)]
pub struct TlvCodec {
    max: usize,
}

impl TlvCodec {
    /// A codec that refuses values longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        TlvCodec { max }
    }
}

impl Decoder for TlvCodec {
    type Item = Tlv;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Tlv>, FrameError> {
        if src.len() < HEAD {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]);
        if u64::from(len) > self.max as u64 {
            return Err(FrameError::TooLarge {
                len: u64::from(len),
                max: self.max,
            });
        }
        let len = len as usize;
        if src.len() < HEAD + len {
            // Room for the rest of this frame only, now that its length is known to be allowed.
            src.reserve(HEAD + len - src.len());
            return Ok(None);
        }
        let kind = src[0];
        src.advance(HEAD);
        Ok(Some(Tlv {
            kind,
            value: src.split_to(len).freeze(),
        }))
    }
}

impl Encoder<(u8, &[u8])> for TlvCodec {
    type Error = FrameError;

    fn encode(&mut self, (kind, value): (u8, &[u8]), dst: &mut BytesMut) -> Result<(), FrameError> {
        if value.len() > self.max {
            return Err(FrameError::TooLarge {
                len: value.len() as u64,
                max: self.max,
            });
        }
        dst.reserve(HEAD + value.len());
        dst.put_u8(kind);
        dst.put_u32(value.len() as u32);
        dst.put_slice(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_whatever_the_split() {
        let mut c = TlvCodec::new(100);
        let mut wire = BytesMut::new();
        c.encode((0x10, b"hi".as_slice()), &mut wire).unwrap();
        c.encode((0x21, b"".as_slice()), &mut wire).unwrap();
        assert_eq!(&wire[..], b"\x10\x00\x00\x00\x02hi\x21\x00\x00\x00\x00");
        let all = wire.clone();
        for cut in 0..all.len() {
            let mut got = Vec::new();
            let mut buf = BytesMut::from(&all[..cut]);
            while let Some(f) = c.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&all[cut..]);
            while let Some(f) = c.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].kind, 0x10);
            assert_eq!(&got[0].value[..], b"hi");
            assert_eq!(got[1].kind, 0x21);
            assert!(got[1].value.is_empty());
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_length_over_the_limit_is_refused_before_anything_is_reserved() {
        let mut c = TlvCodec::new(1000);
        let mut buf = BytesMut::from(&b"\x20\xff\xff\xff\xff"[..]);
        let cap = buf.capacity();
        match c.decode(&mut buf) {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!((len, max), (u64::from(u32::MAX), 1000));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(buf.capacity(), cap);
        assert!(
            c.encode((1, &[0u8; 1001][..]), &mut BytesMut::new())
                .is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_decode_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut c = TlvCodec::new(16);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = c.decode(&mut buf) {}
        }
    }
}
