//! The probe and its reply, byte by byte (docs/PROTOCOLS.md §10). Sans-IO.
//!
//! ```text
//!  0      2    3    4         8         12              20              28              36        end-4
//!  +------+----+----+---------+---------+---------------+---------------+---------------+- … -+--------+
//!  | "RT" | v1 |kind| session | seq     | T1 (ns)       | T2 (ns)       | T3 (ns)       | pad | CRC-32 |
//!  +------+----+----+---------+---------+---------------+---------------+---------------+- … -+--------+
//! ```
//!
//! The source sends a probe (kind 1) stamped with T1, its own clock when it sent it; the
//! reflector answers with a reply (kind 2) of the same size that carries T1 back, plus T2
//! (when the probe arrived there) and T3 (when the reply left), both on the reflector's clock.
//! dT is measured on the source's clock alone (RFC 2681 §2.6): arrival of the reply minus T1.
//! T3 − T2, a difference on one clock, is the reflector's processing time, reported and
//! subtracted (TWAMP's way, RFC 5357). The CRC-32 (zlib's) covers every byte before it: a
//! corrupted copy is not a reply (§3.5: the first *non-corrupt* copy defines dT).

/// The first two bytes.
pub const MAGIC: [u8; 2] = *b"RT";
/// The format's version.
pub const VERSION: u8 = 1;
/// The smallest probe: the fields and the CRC, no padding.
pub const MIN_SIZE: usize = 40;
/// The largest probe: a UDP datagram on IPv4.
pub const MAX_SIZE: usize = 65_507;

/// A probe or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Source to reflector.
    Probe,
    /// Reflector to source.
    Reply,
}

/// The fields of a probe or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Probe or reply.
    pub kind: Kind,
    /// The source's run (random), so replies to another run are told apart.
    pub session: u32,
    /// The probe's number in the sample.
    pub seq: u32,
    /// The source's clock when it sent the probe (ns, any origin).
    pub t1: u64,
    /// The reflector's clock when the probe arrived (ns; 0 in a probe).
    pub t2: u64,
    /// The reflector's clock when the reply left (ns; 0 in a probe).
    pub t3: u64,
    /// The whole datagram's size, padding and CRC included.
    pub size: usize,
}

/// Why a datagram is not a probe or a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Shorter than [`MIN_SIZE`].
    #[error("{0} bytes is shorter than a probe ({MIN_SIZE})")]
    Short(usize),
    /// The CRC-32 does not match.
    #[error("bad CRC-32 (corrupted)")]
    Crc,
    /// Not "RT", or another version.
    #[error("not a socklab rtt probe (magic or version)")]
    NotOurs,
    /// A kind other than 1 or 2.
    #[error("unknown kind {0}")]
    Kind(u8),
}

impl Packet {
    /// The datagram: the fields, zero padding up to `size` (at least [`MIN_SIZE`]), the CRC.
    pub fn encode(&self) -> Vec<u8> {
        let size = self.size.clamp(MIN_SIZE, MAX_SIZE);
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(match self.kind {
            Kind::Probe => 1,
            Kind::Reply => 2,
        });
        out.extend_from_slice(&self.session.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.t1.to_be_bytes());
        out.extend_from_slice(&self.t2.to_be_bytes());
        out.extend_from_slice(&self.t3.to_be_bytes());
        out.resize(size - 4, 0);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a datagram: its size, magic and version, then the CRC, then the fields. Never
    /// panics.
    pub fn parse(d: &[u8]) -> Result<Packet, ProbeError> {
        if d.len() < MIN_SIZE {
            return Err(ProbeError::Short(d.len()));
        }
        // Ours first (cheap, and a stranger's datagram is not a corrupted probe), then the
        // CRC, then the fields.
        if d[..2] != MAGIC || d[2] != VERSION {
            return Err(ProbeError::NotOurs);
        }
        let (signed, crc) = d.split_at(d.len() - 4);
        if crc32fast::hash(signed) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(ProbeError::Crc);
        }
        let kind = match signed[3] {
            1 => Kind::Probe,
            2 => Kind::Reply,
            k => return Err(ProbeError::Kind(k)),
        };
        let u32_at = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Ok(Packet {
            kind,
            session: u32_at(4),
            seq: u32_at(8),
            t1: u64_at(12),
            t2: u64_at(20),
            t3: u64_at(28),
            size: d.len(),
        })
    }

    /// The reflector's reply to this probe: the same size, T1 back, T2 and T3 its own.
    pub fn reply(&self, t2: u64, t3: u64) -> Packet {
        Packet {
            kind: Kind::Reply,
            t2,
            t3,
            ..*self
        }
    }

    /// The reflector's work on a received datagram: if it is a probe, turns it into the reply
    /// where it lies (kind 2, T2 and T3 written, the CRC redone; padding untouched) and
    /// returns the probe. `t3` is called last, as close to the send as the caller can be.
    pub fn reply_in_place(
        d: &mut [u8],
        t2: u64,
        t3: impl FnOnce() -> u64,
    ) -> Result<Packet, ProbeError> {
        let p = Packet::parse(d)?;
        if p.kind != Kind::Probe {
            return Err(ProbeError::Kind(2));
        }
        d[3] = 2;
        d[20..28].copy_from_slice(&t2.to_be_bytes());
        d[28..36].copy_from_slice(&t3().to_be_bytes());
        let n = d.len() - 4;
        let crc = crc32fast::hash(&d[..n]);
        d[n..].copy_from_slice(&crc.to_be_bytes());
        Ok(p)
    }

    /// The reflector's processing time, T3 − T2 (0 if its clock went backwards).
    pub fn processing_ns(&self) -> u64 {
        self.t3.saturating_sub(self.t2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Packet {
        Packet {
            kind: Kind::Probe,
            session: 0x0102_0304,
            seq: 7,
            t1: 1_000_000,
            t2: 0,
            t3: 0,
            size: 64,
        }
    }

    /// The golden bytes of docs/PROTOCOLS.md §10, as Python's `struct` and `zlib.crc32`
    /// computed them.
    #[test]
    fn the_documented_probe_and_reply_are_what_is_sent() {
        let p = probe();
        let bytes = p.encode();
        assert_eq!(bytes.len(), 64);
        let head = "52 54 01 01 01 02 03 04 00 00 00 07 00 00 00 00 \
                    00 0f 42 40 00 00 00 00 00 00 00 00 00 00 00 00 \
                    00 00 00 00";
        let want: Vec<u8> = head
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(bytes[..36], want[..]);
        assert!(bytes[36..60].iter().all(|&b| b == 0));
        assert_eq!(bytes[60..], 0xe589_31dfu32.to_be_bytes());
        assert_eq!(Packet::parse(&bytes), Ok(p));
        let r = p.reply(5_000, 7_500);
        let rb = r.encode();
        assert_eq!(rb.len(), 64);
        assert_eq!(rb[3], 2);
        assert_eq!(Packet::parse(&rb), Ok(r));
        assert_eq!(r.processing_ns(), 2_500);
        assert_eq!((r.t1, r.seq, r.session), (p.t1, p.seq, p.session));
        // The reflector's way gives the same bytes.
        let mut inplace = bytes.clone();
        assert_eq!(Packet::reply_in_place(&mut inplace, 5_000, || 7_500), Ok(p));
        assert_eq!(inplace, rb);
        // A reply is not answered again (two reflectors would ping-pong forever).
        assert_eq!(
            Packet::reply_in_place(&mut inplace, 1, || 2),
            Err(ProbeError::Kind(2))
        );
        assert_eq!(inplace, rb);
    }

    #[test]
    fn sizes_are_kept_within_bounds() {
        for (asked, got) in [(0, MIN_SIZE), (40, 40), (1000, 1000), (100_000, MAX_SIZE)] {
            let p = Packet {
                size: asked,
                ..probe()
            };
            let b = p.encode();
            assert_eq!(b.len(), got);
            assert_eq!(Packet::parse(&b).unwrap().size, got);
        }
    }

    #[test]
    fn what_is_not_a_probe_says_why() {
        let b = probe().encode();
        assert_eq!(Packet::parse(&b[..39]), Err(ProbeError::Short(39)));
        for bit in [30, 100, 511] {
            let mut bad = b.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(Packet::parse(&bad), Err(ProbeError::Crc), "bit {bit}");
        }
        // Someone else's datagram (plain text, with or without a valid CRC; another version)
        // is not ours, not a corrupted probe.
        let mut other = b"hello, this is not a probe at all, not at all".to_vec();
        assert_eq!(Packet::parse(&other), Err(ProbeError::NotOurs));
        other.extend_from_slice(&crc32fast::hash(&other).to_be_bytes());
        assert_eq!(Packet::parse(&other), Err(ProbeError::NotOurs));
        let mut v2 = b.clone();
        v2[2] = 2;
        assert_eq!(Packet::parse(&v2), Err(ProbeError::NotOurs));
        let mut k = b.clone();
        k[3] = 9;
        let n = k.len() - 4;
        let crc = crc32fast::hash(&k[..n]);
        k[n..].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(Packet::parse(&k), Err(ProbeError::Kind(9)));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panic_and_packets_round_trip(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            seq in proptest::prelude::any::<u32>(),
            t in proptest::prelude::any::<u64>(),
            size in 0usize..300,
        ) {
            let _ = Packet::parse(&bytes);
            let p = Packet { seq, t1: t, t2: t / 3, t3: t / 2, size, ..probe() };
            let b = p.encode();
            proptest::prop_assert_eq!(Packet::parse(&b), Ok(Packet { size: b.len(), ..p }));
        }
    }
}
