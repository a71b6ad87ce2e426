//! The sample being taken: probes sent, replies matched to them, one singleton per probe
//! (RFC 2681 §2, §3). Sans-IO: every time is an argument, in nanoseconds on the source's
//! monotonic clock counted from T0; kernel timestamps (another clock, the wall clock) only
//! ever meet other kernel timestamps.
//!
//! A singleton's dT is defined when the first non-corrupt copy of its reply arrives within
//! the loss threshold; it is then the host round trip (user space, send to receive) minus the
//! reflector's processing time (T3 − T2) when the reflector reports one. A reply after the
//! threshold is *late*: counted, and dT stays undefined (§3.5). Later copies are duplicates:
//! counted and ignored. A reply for a probe older than one already answered is *reordered*:
//! counted, and valid.

use std::time::Duration;

use super::probe::{Kind, Packet, ProbeError};
use super::stats::Dt;

/// What the meter needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// This run's session number (random): replies carrying another are strays.
    pub session: u32,
    /// Each probe's size in bytes.
    pub size: usize,
    /// How long to wait for a reply before dT is undefined.
    pub loss_threshold: Duration,
}

/// One probe and what came back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Singleton {
    /// The probe's number.
    pub seq: u32,
    /// When it was sent (ns after T0, the source's clock).
    pub sent: u64,
    /// The host round trip: user-space send to user-space receive (ns), if a reply came in
    /// time.
    pub host: Option<u64>,
    /// The kernel's transmit timestamp of the probe (ns, wall clock), if the kernel gave one.
    pub kernel_tx: Option<u64>,
    /// The kernel's receive timestamp of the reply (ns, wall clock), if the kernel gave one.
    pub kernel_rx: Option<u64>,
    /// The reflector's processing time T3 − T2 (ns), if it reported one.
    pub processing: Option<u64>,
    /// The reply came after the loss threshold.
    pub late: bool,
}

impl Singleton {
    /// The singleton's value: the host round trip less the reflector's processing time;
    /// undefined if no reply came within the threshold.
    pub fn dt(&self) -> Dt {
        let host = self.host?;
        Some(Duration::from_nanos(
            host.saturating_sub(self.processing.unwrap_or(0)),
        ))
    }

    /// The round trip as the kernel saw it (receive stamp minus transmit stamp, less the
    /// processing time): the wire-side figure, when both stamps exist.
    pub fn kernel_dt(&self) -> Dt {
        self.host?;
        let (tx, rx) = (self.kernel_tx?, self.kernel_rx?);
        let wire = rx.checked_sub(tx)?;
        Some(Duration::from_nanos(
            wire.saturating_sub(self.processing.unwrap_or(0)),
        ))
    }
}

/// Counts beside the sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Probes sent.
    pub sent: u64,
    /// Probes whose reply came within the threshold.
    pub replied: u64,
    /// Replies after the threshold (their dT is undefined).
    pub late: u64,
    /// Second and later copies of a reply (ignored).
    pub duplicates: u64,
    /// Replies that came after the reply to a later probe (valid).
    pub reordered: u64,
    /// Datagrams whose CRC-32 did not match (ignored).
    pub corrupt: u64,
    /// Datagrams that are not replies to this run (another session, a sequence number never
    /// sent, not a probe at all).
    pub stray: u64,
    /// Replies that were the probe itself, echoed (an RFC 862 echo server: no T2/T3).
    pub echoed: u64,
    /// Replies whose processing time T3 − T2 was longer than the whole round trip (a
    /// reflector whose clock jumped, or one that lies): not subtracted.
    pub implausible: u64,
}

impl Counts {
    /// Probes with no reply within the threshold (undefined dT), late ones included.
    pub fn lost(&self) -> u64 {
        self.sent - self.replied
    }
}

/// What a received datagram turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matched {
    /// A reply in time: the singleton `seq` now has its dT.
    Reply(u32),
    /// A reply after the threshold.
    Late(u32),
    /// A copy of a reply already counted.
    Duplicate(u32),
    /// Corrupted.
    Corrupt,
    /// Not a reply to this run.
    Stray,
}

/// The sample in progress.
#[derive(Debug)]
pub struct Meter {
    cfg: Config,
    singletons: Vec<Singleton>,
    counts: Counts,
    highest_replied: Option<u32>,
    /// Probes older than this all have a reply or are past the threshold.
    oldest_open: usize,
}

impl Meter {
    /// An empty sample.
    pub fn new(cfg: Config) -> Self {
        Meter {
            cfg,
            singletons: Vec::new(),
            counts: Counts::default(),
            highest_replied: None,
            oldest_open: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The next probe, sent at `now`: the driver sends [`Packet::encode`] of it at once.
    /// `t1` is what the probe carries as T1 (the driver's choice of clock, echoed back).
    pub fn send(&mut self, now: u64, t1: u64) -> Packet {
        let seq = self.singletons.len() as u32;
        self.singletons.push(Singleton {
            seq,
            sent: now,
            ..Singleton::default()
        });
        self.counts.sent += 1;
        Packet {
            kind: Kind::Probe,
            session: self.cfg.session,
            seq,
            t1,
            t2: 0,
            t3: 0,
            size: self.cfg.size,
        }
    }

    /// Moves probe `seq`'s send time to `now` (the driver encodes the probe, then reads the
    /// clock once more just before the send, so encoding is not part of dT). Only forward.
    pub fn restamp(&mut self, seq: u32, now: u64) {
        if let Some(s) = self.singletons.get_mut(seq as usize)
            && s.host.is_none()
            && !s.late
        {
            s.sent = s.sent.max(now);
        }
    }

    /// The kernel's transmit timestamp for probe `seq`.
    pub fn tx_stamp(&mut self, seq: u32, kernel_ns: u64) {
        if let Some(s) = self.singletons.get_mut(seq as usize) {
            s.kernel_tx.get_or_insert(kernel_ns);
        }
    }

    /// A datagram received at `now` (and at `kernel_rx` by the kernel's clock, if known).
    pub fn receive(&mut self, bytes: &[u8], now: u64, kernel_rx: Option<u64>) -> Matched {
        let p = match Packet::parse(bytes) {
            Ok(p) => p,
            Err(ProbeError::Crc) => {
                self.counts.corrupt += 1;
                return Matched::Corrupt;
            }
            Err(_) => {
                self.counts.stray += 1;
                return Matched::Stray;
            }
        };
        if p.session != self.cfg.session || p.size != self.cfg.size {
            self.counts.stray += 1;
            return Matched::Stray;
        }
        let threshold = u64::try_from(self.cfg.loss_threshold.as_nanos()).unwrap_or(u64::MAX);
        let Some(s) = self.singletons.get_mut(p.seq as usize) else {
            self.counts.stray += 1;
            return Matched::Stray;
        };
        if s.host.is_some() || s.late {
            self.counts.duplicates += 1;
            return Matched::Duplicate(p.seq);
        }
        let rtt = now.saturating_sub(s.sent);
        if rtt > threshold {
            s.late = true;
            self.counts.late += 1;
            return Matched::Late(p.seq);
        }
        s.host = Some(rtt);
        s.kernel_rx = kernel_rx;
        match p.kind {
            Kind::Reply if p.processing_ns() > rtt => self.counts.implausible += 1,
            Kind::Reply => s.processing = Some(p.processing_ns()),
            Kind::Probe => self.counts.echoed += 1,
        }
        self.counts.replied += 1;
        match self.highest_replied {
            Some(h) if p.seq < h => self.counts.reordered += 1,
            _ => self.highest_replied = Some(p.seq),
        }
        Matched::Reply(p.seq)
    }

    /// When the oldest probe still waiting for its reply stops waiting (ns after T0), or
    /// `None` when none is waiting at `now`.
    pub fn next_expiry(&mut self, now: u64) -> Option<u64> {
        let threshold = u64::try_from(self.cfg.loss_threshold.as_nanos()).unwrap_or(u64::MAX);
        while let Some(s) = self.singletons.get(self.oldest_open) {
            let expires = s.sent.saturating_add(threshold);
            if s.host.is_some() || s.late || expires <= now {
                self.oldest_open += 1;
                continue;
            }
            return Some(expires);
        }
        None
    }

    /// True when every probe sent has its reply or is past the threshold.
    pub fn settled(&mut self, now: u64) -> bool {
        self.next_expiry(now).is_none()
    }

    /// When the last probe still waiting stops waiting (for the end of a run).
    pub fn last_expiry(&self) -> Option<u64> {
        let threshold = u64::try_from(self.cfg.loss_threshold.as_nanos()).unwrap_or(u64::MAX);
        self.singletons
            .iter()
            .rev()
            .find(|s| s.host.is_none() && !s.late)
            .map(|s| s.sent.saturating_add(threshold))
    }

    /// A datagram the driver could not even read whole (larger than any probe).
    pub fn stray(&mut self) {
        self.counts.stray += 1;
    }

    /// The counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The singletons so far.
    pub fn singletons(&self) -> &[Singleton] {
        &self.singletons
    }

    /// The finished sample.
    pub fn finish(self) -> (Vec<Singleton>, Counts) {
        (self.singletons, self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn meter() -> Meter {
        Meter::new(Config {
            session: 42,
            size: 64,
            loss_threshold: Duration::from_millis(100),
        })
    }

    fn reply_to(p: &Packet, t2: u64, t3: u64) -> Vec<u8> {
        p.reply(t2, t3).encode()
    }

    #[test]
    fn a_reply_defines_dt_less_the_reflectors_processing_time() {
        let mut m = meter();
        let p = m.send(10 * MS, 10 * MS);
        assert_eq!(p.seq, 0);
        assert_eq!(p.encode().len(), 64);
        // Out 10 ms, back at 13 ms; the reflector held it 0.5 ms.
        let r = reply_to(&p, 1_000_000, 1_500_000);
        assert_eq!(m.receive(&r, 13 * MS, Some(7_000)), Matched::Reply(0));
        m.tx_stamp(0, 4_000);
        let s = &m.singletons()[0];
        assert_eq!(s.host, Some(3 * MS));
        assert_eq!(s.processing, Some(500_000));
        assert_eq!(s.dt(), Some(Duration::from_micros(2_500)));
        // Kernel: 7000 − 4000 = 3 µs on the wire, less 0.5 ms of processing: saturates to 0.
        assert_eq!(s.kernel_dt(), Some(Duration::ZERO));
        assert_eq!(m.counts().replied, 1);
    }

    #[test]
    fn losses_late_replies_duplicates_and_reordering_are_told_apart() {
        let mut m = meter();
        let probes: Vec<Packet> = (0..4).map(|i| m.send(i * 10 * MS, 0)).collect();
        // Probe 1 answered at 35 ms, then probe 0 at 36 ms (reordered), a copy of 0 at 37 ms.
        assert_eq!(
            m.receive(&reply_to(&probes[1], 0, 0), 35 * MS, None),
            Matched::Reply(1)
        );
        assert_eq!(
            m.receive(&reply_to(&probes[0], 0, 0), 36 * MS, None),
            Matched::Reply(0)
        );
        assert_eq!(
            m.receive(&reply_to(&probes[0], 0, 0), 37 * MS, None),
            Matched::Duplicate(0)
        );
        // Probe 2 sent at 20 ms, answered at 121 ms: past the 100 ms threshold.
        assert_eq!(
            m.receive(&reply_to(&probes[2], 0, 0), 121 * MS, None),
            Matched::Late(2)
        );
        // And its second copy is a duplicate, not a second late reply.
        assert_eq!(
            m.receive(&reply_to(&probes[2], 0, 0), 122 * MS, None),
            Matched::Duplicate(2)
        );
        // Corrupted, another session, a seq never sent, not a probe.
        let mut bad = reply_to(&probes[3], 0, 0);
        bad[20] ^= 1;
        assert_eq!(m.receive(&bad, 40 * MS, None), Matched::Corrupt);
        let other = Packet {
            session: 7,
            ..probes[3]
        };
        assert_eq!(
            m.receive(&other.reply(0, 0).encode(), 40 * MS, None),
            Matched::Stray
        );
        let never = Packet {
            seq: 99,
            ..probes[3]
        };
        assert_eq!(
            m.receive(&never.reply(0, 0).encode(), 40 * MS, None),
            Matched::Stray
        );
        assert_eq!(m.receive(b"hello", 40 * MS, None), Matched::Stray);
        let (s, c) = m.finish();
        let dts: Vec<Dt> = s.iter().map(Singleton::dt).collect();
        assert_eq!(
            dts,
            vec![
                Some(Duration::from_millis(36)),
                Some(Duration::from_millis(25)),
                None,
                None
            ]
        );
        assert_eq!(
            c,
            Counts {
                sent: 4,
                replied: 2,
                late: 1,
                duplicates: 2,
                reordered: 1,
                corrupt: 1,
                stray: 3,
                echoed: 0,
                implausible: 0,
            }
        );
        assert_eq!(c.lost(), 2);
    }

    #[test]
    fn an_echoed_probe_counts_with_no_processing_time() {
        let mut m = meter();
        let p = m.send(0, 0);
        assert_eq!(m.receive(&p.encode(), 2 * MS, None), Matched::Reply(0));
        assert_eq!(m.singletons()[0].processing, None);
        assert_eq!(m.singletons()[0].dt(), Some(Duration::from_millis(2)));
        assert_eq!(m.counts().echoed, 1);
    }

    /// A reflector claiming it held the probe longer than the whole round trip took is not
    /// believed: dT is the host round trip, and the reply is counted as implausible.
    #[test]
    fn a_processing_time_longer_than_the_round_trip_is_not_subtracted() {
        let mut m = meter();
        let p = m.send(0, 0);
        let r = reply_to(&p, 0, 5 * MS);
        assert_eq!(m.receive(&r, 2 * MS, None), Matched::Reply(0));
        assert_eq!(m.singletons()[0].dt(), Some(Duration::from_millis(2)));
        assert_eq!(m.counts().implausible, 1);
    }

    #[test]
    fn a_reply_of_another_size_is_not_ours() {
        let mut m = meter();
        let p = m.send(0, 0);
        let cut = Packet { size: 40, ..p };
        assert_eq!(
            m.receive(&cut.reply(0, 0).encode(), MS, None),
            Matched::Stray
        );
    }

    #[test]
    fn expiry_follows_the_oldest_waiting_probe() {
        let mut m = meter();
        assert_eq!(m.next_expiry(0), None);
        assert!(m.settled(0));
        let a = m.send(0, 0);
        let _b = m.send(10 * MS, 0);
        assert_eq!(m.next_expiry(5 * MS), Some(100 * MS));
        m.receive(&reply_to(&a, 0, 0), 20 * MS, None);
        assert_eq!(m.next_expiry(20 * MS), Some(110 * MS));
        assert!(!m.settled(20 * MS));
        assert_eq!(m.last_expiry(), Some(110 * MS));
        assert_eq!(m.next_expiry(110 * MS), None);
        assert!(m.settled(110 * MS));
    }

    proptest::proptest! {
        /// Whatever arrives, whenever: no panic, and the counts always add up.
        #[test]
        fn any_datagrams_keep_the_counts_consistent(
            datagrams in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), 0u64..300, 0u32..6),
                0..40,
            ),
        ) {
            let mut m = meter();
            let probes: Vec<Packet> = (0..5).map(|i| m.send(i * MS, 0)).collect();
            let received = datagrams.len() as u64;
            for (bytes, at, which) in datagrams {
                // Either noise or a real reply (to a probe, or to one never sent).
                let d = match probes.get(which as usize) {
                    Some(p) if bytes.len() % 2 == 0 => reply_to(p, 1, 2),
                    _ => bytes,
                };
                m.receive(&d, at * MS, None);
            }
            let c = m.counts().clone();
            let defined = m.singletons().iter().filter(|s| s.dt().is_some()).count() as u64;
            proptest::prop_assert_eq!(defined, c.replied);
            // Every datagram is classified exactly once.
            proptest::prop_assert_eq!(
                c.replied + c.late + c.duplicates + c.corrupt + c.stray,
                received
            );
            proptest::prop_assert!(c.replied + c.late <= 5);
            proptest::prop_assert!(c.reordered <= c.replied);
        }
    }
}
