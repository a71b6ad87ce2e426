//! The p2p chat's error control, sans-IO and quinn-style: one peer's state, driven by
//! `handle_datagram(now, …)`, `handle_timeout(now)` and `handle_input(now, message)`, asked
//! for `poll_transmit`, `poll_timeout` and `poll_event`. No socket and no clock: the
//! [`driver`](crate::net::driver) runs it over UDP, [`Pair`](crate::net::driver::Pair) runs two
//! of them through [`impair`](crate::net::impair)ed links on a virtual clock.
//!
//! What it does (docs/PROTOCOLS.md §9):
//!
//! - Each message is compressed when that helps ([`wire::pack`]) and cut into fragments that
//!   fit `mtu`; each fragment has its own sequence number.
//! - At most `window` fragments are unacknowledged at once; the rest wait.
//! - The receiver acknowledges cumulatively (`next`) and selectively (up to 16 ranges above
//!   it), holds out-of-order fragments (at most `window` ahead), drops duplicates, and delivers
//!   whole messages in order, exactly once.
//! - Retransmission: a fragment still missing when one sent after it (by more than a quarter of
//!   SRTT) has been acknowledged is sent again at once (RACK, RFC 8985, simplified); when the
//!   retransmission timer fires, the oldest fragment not selectively acknowledged is sent again
//!   (RFC 6298 §5.4) and the timer backs off (up to 1 s, or twice its computed value). The
//!   timer follows RFC 6298's formulas (SRTT, RTTVAR), fed by echoed timestamps: every
//!   datagram carries its sender's clock and each ACK echoes the one it answers, so resent
//!   fragments are measured too and a lost ACK does not stretch a sample. With a peer that
//!   echoes nothing, Karn's rule: no sample from a retransmitted fragment.
//! - Each side has a random session id; a datagram from a new session of the peer (it
//!   restarted) resets what this side receives, and a datagram addressed to an old session of
//!   this side is dropped and answered, so the peer learns the new one.
//! - Keepalives (`PING`, answered by an `ACK`) every `keepalive`, so each side knows when it
//!   last heard from the other.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::wire::{self, Body, Datagram};
use crate::net::driver::{Core, Transmit};

/// RFC 6298's initial retransmission timeout.
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// The lowest the timer goes (RFC 6298 says 1 s for the Internet; a chat on a LAN or loopback
/// would wait far too long on every loss).
pub const MIN_RTO: Duration = Duration::from_millis(5);
/// The highest it goes, backoff included.
pub const MAX_RTO: Duration = Duration::from_secs(60);
/// Where backing off stops on a path whose computed timeout is under half of it.
pub const BACKOFF_CAP: Duration = Duration::from_secs(1);
/// RFC 6298's clock granularity term G.
const GRANULARITY: Duration = Duration::from_millis(1);
/// Fragments held per direction; also the most unacknowledged.
pub const DEFAULT_WINDOW: u32 = 256;
/// Messages waiting beyond the window before the application is made to wait.
const QUEUE: usize = 64;
/// Sessions of the peer remembered as retired (their late datagrams are dropped).
const RETIRED: usize = 4;
/// After this side is done, how long it stays for a peer that is still sending (unless the
/// peer says it is done too): quiet this long, the peer is taken to be typing, not sending.
pub const LINGER: Duration = Duration::from_secs(5);
/// Most fragments sent again when the timer fires.
const MAX_ON_TIMEOUT: usize = 1;

/// How a peer behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// zlib level, 0 (never compress) to 9.
    pub level: u32,
    /// Largest datagram sent.
    pub mtu: usize,
    /// Fragments in flight and held.
    pub window: u32,
    /// How often to ping a quiet peer.
    pub keepalive: Duration,
    /// This side's session id (random, not 0).
    pub session: u32,
    /// Where backing off stops on a fast path ([`Rto::backoff`]); the command line makes it a
    /// tenth of `-t` when that is less than [`BACKOFF_CAP`], so a peer on a fast path is probed
    /// about ten times before it is given up for lost (never faster than twice the computed
    /// timeout, though: before any measurement that is 2 s).
    pub backoff_cap: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            level: 6,
            mtu: 1200,
            window: DEFAULT_WINDOW,
            keepalive: Duration::from_secs(5),
            session: 1,
            backoff_cap: BACKOFF_CAP,
        }
    }
}

/// What the application learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole message, in order, once.
    Message(Vec<u8>),
    /// The peer restarted (a new session): what it was sending in between is gone.
    PeerRestarted,
}

/// RFC 6298's retransmission timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rto {
    /// Smoothed round-trip time, once measured.
    pub srtt: Option<Duration>,
    /// Its variation.
    pub rttvar: Duration,
    /// The timeout now (backoff included).
    pub rto: Duration,
    /// The timeout without backoff.
    pub base: Duration,
    /// Where backing off stops, unless twice `base` is more.
    pub cap: Duration,
}

impl Default for Rto {
    fn default() -> Self {
        Rto {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: INITIAL_RTO,
            base: INITIAL_RTO,
            cap: BACKOFF_CAP,
        }
    }
}

impl Rto {
    /// A round-trip measurement `r` (RFC 6298 §2.2 and §2.3); clears any backoff.
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = self.rttvar * 3 / 4 + diff / 4;
                self.srtt = Some(srtt * 7 / 8 + r / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.base = (srtt + GRANULARITY.max(self.rttvar * 4)).clamp(MIN_RTO, MAX_RTO);
        self.rto = self.base;
    }

    /// The timer fired (§5.5): double it, up to `cap` ([`BACKOFF_CAP`]) or twice the computed value,
    /// whichever is larger, and never past the ceiling. Without that cap, a run of losses on a
    /// fast path (a few ms of RTO) doubles the timer into the tens of seconds, and a peer that
    /// is there, behind a bad link, is given up for lost (`-t`) before the next probe.
    pub fn backoff(&mut self) {
        let cap = MAX_RTO.min(self.cap.max(self.base * 2));
        self.rto = (self.rto * 2).min(cap);
    }

    /// The peer acknowledged something new: the path works, the backoff goes (as QUIC does
    /// with its probe timeout; Karn's rule may leave no fresh sample when every fragment in
    /// flight was a retransmission, and the timer must not keep doubling then).
    pub fn progress(&mut self) {
        self.rto = self.base;
    }
}

/// What a peer counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Messages the application handed over.
    pub messages_sent: u64,
    /// Messages delivered to the application.
    pub messages_received: u64,
    /// Datagrams sent (data, acks, pings).
    pub datagrams_sent: u64,
    /// Datagrams received, valid or not.
    pub datagrams_received: u64,
    /// Fragments sent again.
    pub retransmissions: u64,
    /// Fragments received again, dropped.
    pub duplicates: u64,
    /// Fragments that came ahead of a missing one and were held.
    pub out_of_order: u64,
    /// Datagrams with a bad CRC-32, dropped.
    pub corrupt: u64,
    /// Datagrams otherwise unreadable, stale or beyond the window, dropped.
    pub dropped: u64,
    /// Message bytes before compression.
    pub bytes_plain: u64,
    /// The same after compression.
    pub bytes_packed: u64,
}

/// A fragment sent and not yet acknowledged.
#[derive(Debug, Clone)]
struct Segment {
    /// Which message (for counting what went unacknowledged).
    message: u64,
    index: u16,
    count: u16,
    zlib: bool,
    bytes: Vec<u8>,
    sent_at: Instant,
    retransmitted: bool,
    sacked: bool,
}

/// A fragment received ahead of the next one expected.
#[derive(Debug, Clone)]
struct Held {
    index: u16,
    count: u16,
    zlib: bool,
    bytes: Vec<u8>,
}

/// One peer of the p2p chat.
#[derive(Debug)]
pub struct Arq {
    cfg: Config,
    peer: SocketAddr,
    peer_session: u32,
    retired: VecDeque<u32>,
    // Sending.
    queue: VecDeque<Vec<u8>>,
    ready: VecDeque<(u64, u16, u16, bool, Vec<u8>)>,
    next_message: u64,
    next_seq: u32,
    unacked: BTreeMap<u32, Segment>,
    rto: Rto,
    rto_at: Option<Instant>,
    // Receiving.
    expected: u32,
    held: BTreeMap<u32, Held>,
    assembling: Vec<u8>,
    /// Fragments are skipped until a message's first one (after a restart in mid-message, or
    /// a message refused).
    skipping: bool,
    ack_due: bool,
    // Both.
    out: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    ping_at: Instant,
    last_heard: Option<Instant>,
    input_done: bool,
    /// Input ended and all of it was acknowledged (the peer is told: FIN on every ACK).
    finished: bool,
    /// The peer said it is done.
    peer_done: bool,
    /// When the last DATA came (new or not).
    data_at: Option<Instant>,
    /// Done, and the peer is done or quiet: nothing left to do.
    over: bool,
    finish_at: Option<Instant>,
    /// The longest silence seen before a retransmitted DATA came.
    retx_gap: Duration,
    zlib: wire::Zlib,
    /// Fragments acknowledged so far (cumulatively or selectively).
    acked: u64,
    /// When this side started: the origin of its timestamps.
    t0: Instant,
    /// The timestamp of the latest DATA or PING from the peer, echoed in the next ACK.
    echo: u32,
    /// The last echo taken as an RTT sample (an ACK repeated for a duplicate echoes the same).
    last_echo: u32,
    /// The peer has echoed a timestamp once: from then on an ACK without one gives no RTT
    /// sample (it answers nothing just arrived), instead of a Karn sample.
    peer_echoes: bool,
    stats: Stats,
}

impl Arq {
    /// A peer that talks to `peer`, starting at `now`.
    pub fn new(now: Instant, peer: SocketAddr, cfg: Config) -> Self {
        let ping_at = now;
        Arq {
            peer,
            peer_session: 0,
            retired: VecDeque::new(),
            queue: VecDeque::new(),
            ready: VecDeque::new(),
            next_message: 0,
            next_seq: 0,
            unacked: BTreeMap::new(),
            rto: Rto {
                cap: cfg.backoff_cap,
                ..Rto::default()
            },
            rto_at: None,
            expected: 0,
            held: BTreeMap::new(),
            assembling: Vec::new(),
            skipping: false,
            ack_due: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            ping_at,
            last_heard: None,
            input_done: false,
            finished: false,
            peer_done: false,
            data_at: None,
            over: false,
            finish_at: None,
            retx_gap: Duration::ZERO,
            zlib: wire::Zlib::new(cfg.level),
            acked: 0,
            t0: now,
            echo: 0,
            last_echo: 0,
            peer_echoes: false,
            stats: Stats::default(),
            cfg,
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The retransmission timer's state.
    pub fn rto(&self) -> Rto {
        self.rto
    }

    /// When the peer was last heard from.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// The peer said it has nothing more to send.
    pub fn peer_done(&self) -> bool {
        self.peer_done
    }

    /// The peer's session, once known.
    pub fn peer_session(&self) -> Option<u32> {
        (self.peer_session != 0).then_some(self.peer_session)
    }

    /// Whether anything the application handed over is not yet acknowledged. Cheap, unlike
    /// [`unacknowledged`](Self::unacknowledged).
    pub fn has_outstanding(&self) -> bool {
        !(self.unacked.is_empty() && self.ready.is_empty() && self.queue.is_empty())
    }

    /// How many fragments the peer has acknowledged so far: it grows whenever the peer
    /// makes progress.
    pub fn acknowledged(&self) -> u64 {
        self.acked
    }

    /// Messages handed over and not yet wholly acknowledged.
    pub fn unacknowledged(&self) -> usize {
        let mut ids: Vec<u64> = self.unacked.values().map(|s| s.message).collect();
        ids.extend(self.ready.iter().map(|r| r.0));
        ids.sort_unstable();
        ids.dedup();
        ids.len() + self.queue.len()
    }

    /// Room in a fragment for message bytes.
    fn chunk(&self) -> usize {
        self.cfg
            .mtu
            .saturating_sub(wire::HEADER + wire::TRAILER + wire::DATA_FIELDS)
            .max(1)
    }

    /// This side's clock for the wire: µs since it started, wrapping, never 0.
    fn ts(&self, now: Instant) -> u32 {
        // Truncation is the wrap (every 71 minutes); differences stay right across it.
        let t = now.saturating_duration_since(self.t0).as_micros() as u32;
        t.max(1)
    }

    fn datagram(&self, now: Instant, body: Body<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.cfg.mtu);
        Datagram {
            from_session: self.cfg.session,
            to_session: self.peer_session,
            ts: self.ts(now),
            body,
        }
        .encode(&mut out);
        out
    }

    fn base(&self) -> u32 {
        self.unacked.keys().next().copied().unwrap_or(self.next_seq)
    }

    fn send_segment(&mut self, now: Instant, seq: u32) {
        let base = self.base();
        let Some(s) = self.unacked.get(&seq) else {
            return;
        };
        let d = self.datagram(
            now,
            Body::Data {
                seq,
                base,
                index: s.index,
                count: s.count,
                zlib: s.zlib,
                bytes: &s.bytes,
            },
        );
        self.out.push_back(d);
        if let Some(s) = self.unacked.get_mut(&seq) {
            s.sent_at = now;
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rto.rto);
        }
    }

    /// Cuts waiting messages into fragments and sends what the window allows.
    fn fill(&mut self, now: Instant) {
        loop {
            if self.ready.is_empty() {
                let Some(m) = self.queue.pop_front() else {
                    break;
                };
                let (packed, zlib) = self.zlib.pack(&m);
                self.stats.bytes_plain += m.len() as u64;
                self.stats.bytes_packed += packed.len() as u64;
                let chunk = self.chunk();
                let pieces: Vec<&[u8]> = if packed.is_empty() {
                    vec![&[][..]]
                } else {
                    packed.chunks(chunk).collect()
                };
                let count = pieces.len() as u16;
                let id = self.next_message;
                self.next_message += 1;
                for (i, p) in pieces.into_iter().enumerate() {
                    self.ready
                        .push_back((id, i as u16, count, zlib, p.to_vec()));
                }
            }
            if self.unacked.len() as u32 >= self.cfg.window {
                break;
            }
            let Some((message, index, count, zlib, bytes)) = self.ready.pop_front() else {
                continue;
            };
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            self.unacked.insert(
                seq,
                Segment {
                    message,
                    index,
                    count,
                    zlib,
                    bytes,
                    sent_at: now,
                    retransmitted: false,
                    sacked: false,
                },
            );
            self.send_segment(now, seq);
        }
    }

    fn retransmit(&mut self, now: Instant, seq: u32) {
        if let Some(s) = self.unacked.get_mut(&seq) {
            s.retransmitted = true;
            self.stats.retransmissions += 1;
        }
        self.send_segment(now, seq);
    }

    /// Checks the sessions; false to drop the datagram.
    fn admit(&mut self, d: &Datagram<'_>) -> bool {
        if self.retired.contains(&d.from_session) {
            self.stats.dropped += 1;
            return false;
        }
        if d.to_session != 0 && d.to_session != self.cfg.session {
            // Meant for an earlier run of this side: tell the peer who is here now.
            self.stats.dropped += 1;
            self.ack_due = true;
            if self.peer_session == 0 {
                self.peer_session = d.from_session;
            }
            return false;
        }
        if self.peer_session != d.from_session {
            if self.peer_session != 0 {
                // The peer restarted: what it sends starts afresh.
                self.retired.push_back(self.peer_session);
                if self.retired.len() > RETIRED {
                    self.retired.pop_front();
                }
                self.events.push_back(Event::PeerRestarted);
            }
            self.peer_session = d.from_session;
            self.peer_done = false;
            self.held.clear();
            self.assembling.clear();
            self.skipping = false;
            // Where its stream stands is learnt from its first DATA.
            self.expected = match d.body {
                Body::Data { base, .. } => base,
                _ => u32::MAX,
            };
        }
        true
    }

    fn on_data(&mut self, now: Instant, seq: u32, base: u32, h: Held) {
        self.ack_due = true;
        let gap = self.data_at.map(|t| now.saturating_duration_since(t));
        self.data_at = Some(now);
        if self.expected == u32::MAX {
            self.expected = base;
        }
        if base > self.expected {
            // The sender holds nothing before `base` any more (an earlier run of this side
            // acknowledged it, or a late first DATA set `expected` too low): it will not come.
            self.held = self.held.split_off(&base);
            self.expected = base;
            self.assembling.clear();
            self.skipping = true;
            while let Some(f) = self.held.remove(&self.expected) {
                self.expected = self.expected.wrapping_add(1);
                self.take(f);
            }
        }
        if seq < self.expected || self.held.contains_key(&seq) {
            self.stats.duplicates += 1;
            // A copy sent again: the silence before it shows how long the peer's timer waits
            // (a lost acknowledgement is answered that late), which the end rule allows for.
            if let Some(gap) = gap {
                self.retx_gap = self.retx_gap.max(gap.min(MAX_RTO));
            }
            return;
        }
        if seq - self.expected >= self.cfg.window {
            self.stats.dropped += 1;
            return;
        }
        if seq > self.expected {
            self.stats.out_of_order += 1;
        }
        self.held.insert(seq, h);
        while let Some(f) = self.held.remove(&self.expected) {
            self.expected = self.expected.wrapping_add(1);
            self.take(f);
        }
    }

    /// The next in-order fragment.
    fn take(&mut self, f: Held) {
        if f.index == 0 {
            self.assembling.clear();
            self.skipping = false;
        } else if self.skipping {
            return;
        }
        if self.assembling.len() + f.bytes.len() > wire::MAX_MESSAGE {
            self.assembling.clear();
            self.skipping = true;
            self.stats.dropped += 1;
            return;
        }
        self.assembling.extend_from_slice(&f.bytes);
        if f.index + 1 == f.count {
            match self.zlib.unpack(&self.assembling, f.zlib) {
                Ok(m) => {
                    self.stats.messages_received += 1;
                    self.events.push_back(Event::Message(m));
                }
                Err(_) => self.stats.dropped += 1,
            }
            self.assembling.clear();
        }
    }

    fn on_ack(&mut self, now: Instant, next: u32, echo: u32, blocks: &[(u32, u32)]) {
        // Without an echo (a peer that does not send one), RFC 6298's way: a sample from a
        // fragment sent once (Karn), which an ACK lost on the way can make far too long.
        let mut sample = None;
        // The latest send among what this ACK newly covers: anything sent well before it and
        // still missing was lost (RACK, RFC 8985, in its simplest form).
        let mut newest: Option<Instant> = None;
        let acked: Vec<u32> = self.unacked.range(..next).map(|(s, _)| *s).collect();
        let progressed = !acked.is_empty();
        for seq in acked {
            if let Some(s) = self.unacked.remove(&seq) {
                if !s.sacked {
                    self.acked += 1;
                    newest = newest.max(Some(s.sent_at));
                }
                if !s.retransmitted && !s.sacked {
                    sample = Some(now.saturating_duration_since(s.sent_at));
                }
            }
        }
        let mut sacked_new = false;
        for &(start, end) in blocks {
            if start >= end {
                continue;
            }
            for (_, s) in self.unacked.range_mut(start..end) {
                if s.sacked {
                    continue;
                }
                if !s.retransmitted {
                    sample = Some(now.saturating_duration_since(s.sent_at));
                }
                newest = newest.max(Some(s.sent_at));
                s.sacked = true;
                sacked_new = true;
                self.acked += 1;
            }
        }
        self.peer_echoes |= echo != 0;
        if self.peer_echoes {
            // The round trip of the datagram this ACK answers, whatever was resent or lost.
            sample = None;
            if echo != 0 && echo != self.last_echo {
                self.last_echo = echo;
                let r = Duration::from_micros(u64::from(self.ts(now).wrapping_sub(echo)));
                // An echo from the future or from another run wraps to a huge value.
                if r <= MAX_RTO {
                    sample = Some(r);
                }
            }
        }
        if let Some(r) = sample {
            self.rto.sample(r);
        }
        if progressed || sacked_new {
            self.rto.progress();
        }
        if progressed {
            // RFC 6298 §5.3: new data acknowledged restarts the timer.
            self.rto_at = (!self.unacked.is_empty()).then(|| now + self.rto.rto);
        }
        if let Some(newest) = newest {
            let window = self
                .rto
                .srtt
                .map_or(GRANULARITY, |s| (s / 4).max(GRANULARITY));
            // An ACK names at most MAX_BLOCKS ranges, the lowest: when it names that many,
            // what lies above its last range may have arrived unreported, and is not taken
            // for lost (that would resend, in a burst, much that was received).
            let reported = if blocks.len() >= wire::MAX_BLOCKS {
                blocks.iter().map(|b| b.1).max().unwrap_or(next)
            } else {
                u32::MAX
            };
            let lost: Vec<u32> = self
                .unacked
                .range(..reported)
                .filter(|(_, s)| !s.sacked && s.sent_at + window < newest)
                .map(|(seq, _)| *seq)
                .collect();
            if !lost.is_empty() {
                // The resent fragments are covered by a timer of the current estimate, not
                // by one armed before any RTT was measured (the first RTO is 1 s).
                let due = now + self.rto.rto;
                self.rto_at = Some(self.rto_at.map_or(due, |t| t.min(due)));
            }
            for seq in lost {
                self.retransmit(now, seq);
            }
        }
        self.fill(now);
    }

    fn ack(&self, now: Instant) -> Vec<u8> {
        let mut blocks: Vec<(u32, u32)> = Vec::new();
        for &seq in self.held.keys() {
            match blocks.last_mut() {
                // Saturating: a peer may make this side hold u32::MAX (seq numbers do not
                // wrap, §9.2); its range is then cut short, never a panic.
                Some((_, end)) if *end == seq => *end = end.saturating_add(1),
                _ => {
                    if blocks.len() == wire::MAX_BLOCKS {
                        break;
                    }
                    blocks.push((seq, seq.saturating_add(1)));
                }
            }
        }
        let next = if self.expected == u32::MAX {
            0
        } else {
            self.expected
        };
        self.datagram(
            now,
            Body::Ack {
                next,
                echo: self.echo,
                blocks,
                fin: self.finished,
            },
        )
    }
}

impl Arq {
    /// Notes when this side is done, and when it may stop.
    fn settle(&mut self, now: Instant) {
        if !self.finished
            && self.input_done
            && self.queue.is_empty()
            && self.ready.is_empty()
            && self.unacked.is_empty()
        {
            self.finished = true;
            self.finish_at = Some(now);
            // Tell the peer at once.
            self.ack_due = true;
        }
        if self.finished
            && !self.over
            && (self.peer_done || self.linger_end().is_some_and(|t| t <= now))
        {
            self.over = true;
        }
    }

    /// When a done side stops waiting for a quiet peer.
    fn linger_end(&self) -> Option<Instant> {
        if !self.finished || self.peer_done {
            return None;
        }
        let from = match (self.data_at, self.finish_at) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b)?,
        };
        // The peer's timer may be slower than ours (its first flight lost, no RTT sample, backed
        // off): twice the longest silence it kept before sending again is allowed too.
        Some(from + LINGER + self.rto.rto * 2 + self.retx_gap * 2)
    }
}

impl Core for Arq {
    type Input = Vec<u8>;
    type Event = Event;

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.stats.datagrams_received += 1;
        if from != self.peer {
            self.stats.dropped += 1;
            return;
        }
        let d = match wire::parse(data) {
            Ok(d) => d,
            Err(wire::WireError::Crc) => {
                self.stats.corrupt += 1;
                return;
            }
            Err(_) => {
                self.stats.dropped += 1;
                return;
            }
        };
        if !self.admit(&d) {
            return;
        }
        self.last_heard = Some(now);
        match d.body {
            Body::Data {
                seq,
                base,
                index,
                count,
                zlib,
                bytes,
            } => {
                self.echo = d.ts;
                self.on_data(
                    now,
                    seq,
                    base,
                    Held {
                        index,
                        count,
                        zlib,
                        bytes: bytes.to_vec(),
                    },
                );
            }
            Body::Ack {
                next,
                echo,
                blocks,
                fin,
            } => {
                self.peer_done |= fin;
                self.on_ack(now, next, echo, &blocks);
            }
            Body::Ping => {
                self.echo = d.ts;
                self.ack_due = true;
            }
        }
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.rto_at.is_some_and(|t| t <= now) {
            if self.unacked.is_empty() {
                self.rto_at = None;
            } else {
                self.rto.backoff();
                self.rto_at = None;
                let again: Vec<u32> = self
                    .unacked
                    .iter()
                    .filter(|(_, s)| !s.sacked)
                    .take(MAX_ON_TIMEOUT)
                    .map(|(seq, _)| *seq)
                    .collect();
                for seq in again {
                    self.retransmit(now, seq);
                }
                self.rto_at = Some(now + self.rto.rto);
            }
        }
        if self.ping_at <= now {
            let quiet = self
                .last_heard
                .is_none_or(|t| now >= t + self.cfg.keepalive);
            if quiet {
                let p = self.datagram(now, Body::Ping);
                self.out.push_back(p);
            }
            self.ping_at = now + self.cfg.keepalive;
        }
        self.settle(now);
    }

    fn handle_input(&mut self, now: Instant, input: Vec<u8>) {
        if input.len() > wire::MAX_MESSAGE {
            return;
        }
        self.stats.messages_sent += 1;
        self.queue.push_back(input);
        self.fill(now);
    }

    fn handle_input_end(&mut self, now: Instant) {
        self.input_done = true;
        self.settle(now);
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.ack_due {
            self.ack_due = false;
            let data = self.ack(now);
            // An ACK sent later without anything new arriving (the FIN, say) answers nothing:
            // its echo would measure the wait, not the path.
            self.echo = 0;
            self.stats.datagrams_sent += 1;
            return Some(Transmit {
                to: self.peer,
                data,
            });
        }
        let data = self.out.pop_front()?;
        self.stats.datagrams_sent += 1;
        Some(Transmit {
            to: self.peer,
            data,
        })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let t = match self.rto_at {
            Some(t) => t.min(self.ping_at),
            None => self.ping_at,
        };
        Some(match self.linger_end() {
            Some(l) if !self.over => t.min(l),
            _ => t,
        })
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn wants_input(&self) -> bool {
        self.queue.len() < QUEUE
    }

    /// Done: input ended, everything sent was acknowledged, the peer was told, and the peer
    /// is done too or has sent nothing for a while ([`LINGER`]).
    fn is_drained(&self) -> bool {
        self.over && self.out.is_empty() && !self.ack_due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::clock;
    use crate::net::driver::Pair;
    use crate::net::impair::{ImpairConfig, Probability};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn peers(t0: Instant, a_session: u32, b_session: u32) -> Pair<Arq, Arq> {
        let a = Arq::new(
            t0,
            addr(2),
            Config {
                session: a_session,
                ..Config::default()
            },
        );
        let b = Arq::new(
            t0,
            addr(1),
            Config {
                session: b_session,
                ..Config::default()
            },
        );
        Pair::new(t0, (a, addr(1)), (b, addr(2)))
    }

    fn bad_link(seed: u64, loss: f64, dup: f64, reorder: f64, corrupt: f64) -> ImpairConfig {
        ImpairConfig {
            loss: Probability::percent(loss).unwrap(),
            duplicate: Probability::percent(dup).unwrap(),
            reorder: Probability::percent(reorder).unwrap(),
            corrupt: Probability::percent(corrupt).unwrap(),
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(2),
            seed,
            ..ImpairConfig::default()
        }
    }

    fn messages(events: &[Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// Runs until both sides hold `want_a`/`want_b` messages, or `limit` of virtual time.
    fn run_until(p: &mut Pair<Arq, Arq>, want_a: usize, want_b: usize, limit: Duration) {
        let end = p.now + limit;
        while p.now < end
            && (messages(&p.a_events).len() < want_a || messages(&p.b_events).len() < want_b)
        {
            let next = p.now + Duration::from_millis(100);
            p.drive(next);
        }
    }

    #[test]
    fn rto_follows_rfc_6298() {
        let mut r = Rto::default();
        assert_eq!(r.rto, Duration::from_secs(1));
        r.sample(Duration::from_millis(100));
        // First: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR = 300 ms.
        assert_eq!(r.srtt, Some(Duration::from_millis(100)));
        assert_eq!(r.rttvar, Duration::from_millis(50));
        assert_eq!(r.rto, Duration::from_millis(300));
        r.sample(Duration::from_millis(200));
        // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5.
        assert_eq!(r.rttvar, Duration::from_micros(62_500));
        assert_eq!(r.srtt, Some(Duration::from_micros(112_500)));
        assert_eq!(r.rto, Duration::from_micros(362_500));
        r.backoff();
        assert_eq!(r.rto, Duration::from_micros(725_000));
        for _ in 0..20 {
            r.backoff();
        }
        // Backing off stops at 1 s on this fast path (twice 362.5 ms is less)...
        assert_eq!(r.rto, BACKOFF_CAP);
        r.progress();
        assert_eq!(r.rto, Duration::from_micros(362_500));
        // ... and at twice the computed value on a slow one, within the ceiling.
        let mut slow = Rto::default();
        slow.sample(Duration::from_secs(2));
        assert_eq!(slow.rto, Duration::from_secs(6));
        for _ in 0..3 {
            slow.backoff();
        }
        assert_eq!(slow.rto, Duration::from_secs(12));
        // The command line's cap (a tenth of -t).
        let mut short = Rto {
            cap: Duration::from_millis(300),
            ..Rto::default()
        };
        short.sample(Duration::from_micros(500));
        for _ in 0..20 {
            short.backoff();
        }
        assert_eq!(short.rto, Duration::from_millis(300));
        let mut slower = Rto::default();
        slower.sample(Duration::from_secs(20));
        slower.backoff();
        slower.backoff();
        assert_eq!(slower.rto, MAX_RTO);
        // A tiny RTT is held at the floor.
        let mut r = Rto::default();
        r.sample(Duration::from_micros(10));
        assert_eq!(r.rto, MIN_RTO);
    }

    #[test]
    fn messages_cross_a_perfect_link_in_order_and_the_peers_drain() {
        let t0 = clock::now();
        let mut p = peers(t0, 11, 22);
        for i in 0..100 {
            p.a.handle_input(t0, format!("a{i}").into_bytes());
            p.b.handle_input(t0, format!("b{i}").into_bytes());
        }
        p.a.handle_input_end(t0);
        p.b.handle_input_end(t0);
        run_until(&mut p, 100, 100, Duration::from_secs(10));
        let want: Vec<Vec<u8>> = (0..100).map(|i| format!("a{i}").into_bytes()).collect();
        assert_eq!(messages(&p.b_events), want);
        assert_eq!(messages(&p.a_events).len(), 100);
        p.drive(p.now + Duration::from_secs(1));
        assert!(p.a.is_drained() && p.b.is_drained());
        assert_eq!(p.a.stats().retransmissions, 0);
        assert_eq!(p.a.unacknowledged(), 0);
        assert!(p.a.rto().srtt.is_some());
    }

    /// The test: 10,000 messages through 30 % loss, 10 % duplication, 20 % reordering
    /// and 5 % corruption, both ways, arrive exactly once and in order.
    #[test]
    fn ten_thousand_messages_through_a_terrible_link_arrive_once_in_order() {
        let t0 = clock::now();
        let n = 10_000;
        let mut p = peers(t0, 1, 2).with_links(
            bad_link(7, 30.0, 10.0, 20.0, 5.0),
            bad_link(8, 30.0, 10.0, 20.0, 5.0),
        );
        for i in 0..n {
            p.a.handle_input(t0, format!("message {i} from a").into_bytes());
        }
        for i in 0..n / 10 {
            p.b.handle_input(t0, format!("reply {i}").into_bytes());
        }
        run_until(&mut p, n / 10, n, Duration::from_secs(600));
        let got = messages(&p.b_events);
        assert_eq!(got.len(), n, "b got {} of {n}", got.len());
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m, format!("message {i} from a").as_bytes());
        }
        assert_eq!(messages(&p.a_events).len(), n / 10);
        let (ab, _) = p.link_stats();
        let (sa, sb) = (p.a.stats(), p.b.stats());
        eprintln!(
            "10,000 messages in {:?} of virtual time; a: {sa:?}; b: {sb:?}; link a->b: {ab:?}; \
             rto: {:?}",
            p.now - t0,
            p.a.rto()
        );
        assert!(
            ab.dropped > 0 && ab.duplicated > 0 && ab.corrupted > 0,
            "{ab:?}"
        );
        assert!(sa.retransmissions > 0, "{sa:?}");
        assert!(
            sb.duplicates > 0 && sb.out_of_order > 0 && sb.corrupt > 0,
            "{sb:?}"
        );
    }

    #[test]
    fn a_megabyte_message_is_cut_and_put_back_together() {
        let t0 = clock::now();
        let mut p = peers(t0, 3, 4).with_links(
            bad_link(1, 10.0, 2.0, 10.0, 1.0),
            bad_link(2, 10.0, 2.0, 10.0, 1.0),
        );
        // Noise does not compress: about 900 fragments of 1,168 bytes.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let big: Vec<u8> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        p.a.handle_input(t0, big.clone());
        p.a.handle_input(t0, b"after".to_vec());
        run_until(&mut p, 0, 2, Duration::from_secs(120));
        let got = messages(&p.b_events);
        assert_eq!(got.len(), 2);
        assert!(got[0] == big, "the megabyte came back different");
        assert_eq!(got[1], b"after");
        assert_eq!(p.a.stats().bytes_packed, 1_000_005);
    }

    #[test]
    fn a_restarted_peer_is_recognised_and_talking_goes_on() {
        let t0 = clock::now();
        let mut p = peers(t0, 5, 6);
        p.a.handle_input(t0, b"one".to_vec());
        p.b.handle_input(t0, b"from the first b".to_vec());
        run_until(&mut p, 1, 1, Duration::from_secs(5));
        // b restarts: a new session, nothing remembered.
        let now = p.now;
        p.b = Arq::new(
            now,
            addr(1),
            Config {
                session: 66,
                ..Config::default()
            },
        );
        p.b_events.clear();
        p.a.handle_input(now, b"two".to_vec());
        p.b.handle_input(now, b"from the new b".to_vec());
        run_until(&mut p, 2, 1, Duration::from_secs(30));
        assert_eq!(messages(&p.b_events), vec![b"two".to_vec()]);
        assert_eq!(
            messages(&p.a_events),
            vec![b"from the first b".to_vec(), b"from the new b".to_vec()]
        );
        assert!(p.a_events.contains(&Event::PeerRestarted));
        assert_eq!(p.a.peer_session(), Some(66));
    }

    #[test]
    fn keepalives_keep_last_heard_fresh() {
        let t0 = clock::now();
        let mut p = peers(t0, 7, 8);
        p.drive(t0 + Duration::from_secs(61));
        let heard = p.a.last_heard().expect("a heard b");
        assert!(p.now.duration_since(heard) <= Duration::from_secs(6));
        // A quiet minute costs a ping and an ack about every 5 s each way.
        assert!(p.a.stats().datagrams_sent <= 30, "{:?}", p.a.stats());
    }

    #[test]
    fn a_datagram_from_a_stranger_is_dropped_and_a_repeat_is_a_duplicate() {
        let t0 = clock::now();
        let mut a = Arq::new(t0, addr(2), Config::default());
        let mut d = Vec::new();
        Datagram {
            from_session: 9,
            to_session: 0,
            ts: 1,
            body: Body::Data {
                seq: 0,
                base: 0,
                index: 0,
                count: 1,
                zlib: false,
                bytes: b"hi",
            },
        }
        .encode(&mut d);
        a.handle_datagram(t0, addr(3), &d);
        assert_eq!(a.poll_event(), None);
        assert_eq!(a.stats().dropped, 1);
        a.handle_datagram(t0, addr(2), &d);
        assert_eq!(a.poll_event(), Some(Event::Message(b"hi".to_vec())));
        // Again: a duplicate.
        a.handle_datagram(t0, addr(2), &d);
        assert_eq!(a.poll_event(), None);
        assert_eq!(a.stats().duplicates, 1);
    }

    /// The DATA carried by each datagram `a` wants to send now (ACKs and PINGs skipped).
    fn data_sent(a: &mut Arq, now: Instant) -> Vec<u32> {
        let mut seqs = Vec::new();
        while let Some(t) = a.poll_transmit(now) {
            if let Ok(Datagram {
                body: Body::Data { seq, .. },
                ..
            }) = wire::parse(&t.data)
            {
                seqs.push(seq);
            }
        }
        seqs
    }

    /// A fragment resent early (a later one was acknowledged first) and lost again is resent
    /// by the timer after the RTO measured meanwhile, not after the first RTO of 1 s armed
    /// before any measurement.
    #[test]
    fn a_fast_retransmission_lost_again_waits_one_measured_rto() {
        let t0 = clock::now();
        let ms = Duration::from_millis;
        let mut a = Arq::new(
            t0,
            addr(2),
            Config {
                session: 1,
                ..Config::default()
            },
        );
        a.handle_timeout(t0);
        a.handle_input(t0, b"m0".to_vec());
        assert_eq!(data_sent(&mut a, t0), [0]); // lost
        a.handle_input(t0 + ms(10), b"m1".to_vec());
        assert_eq!(data_sent(&mut a, t0 + ms(10)), [1]);
        // A peer that echoes no timestamp: Karn's sample, from seq 1.
        let mut ack = Vec::new();
        Datagram {
            from_session: 2,
            to_session: 1,
            ts: 1,
            body: Body::Ack {
                next: 0,
                echo: 0,
                blocks: vec![(1, 2)],
                fin: false,
            },
        }
        .encode(&mut ack);
        let t1 = t0 + ms(11);
        a.handle_datagram(t1, addr(2), &ack);
        assert_eq!(a.rto().srtt, Some(ms(1)));
        assert_eq!(data_sent(&mut a, t1), [0], "seq 0 resent at once (RACK)");
        // Lost again. The timer is the measured RTO (the floor) from then.
        assert_eq!(a.rto().rto, MIN_RTO);
        a.handle_timeout(t1 + MIN_RTO - ms(1));
        assert_eq!(data_sent(&mut a, t1 + MIN_RTO - ms(1)), Vec::<u32>::new());
        a.handle_timeout(t1 + MIN_RTO);
        assert_eq!(data_sent(&mut a, t1 + MIN_RTO), [0], "the timer resends it");
        assert_eq!(a.stats().retransmissions, 2);
    }

    /// Two fragments arrive, their ACK is lost, the timer resends the first, and the ACK of
    /// that copy covers both. RFC 6298 alone (Karn) measures the second fragment, sent once,
    /// over the whole wait: a second. The echoed timestamp measures the copy: a millisecond.
    #[test]
    fn an_echoed_timestamp_measures_the_path_after_a_lost_ack() {
        let ms = Duration::from_millis;
        for echoes in [true, false] {
            let t0 = clock::now();
            let mut a = Arq::new(
                t0,
                addr(2),
                Config {
                    session: 1,
                    ..Config::default()
                },
            );
            a.handle_timeout(t0);
            a.handle_input(t0, b"m0".to_vec());
            a.handle_input(t0, b"m1".to_vec());
            assert_eq!(data_sent(&mut a, t0), [0, 1]);
            // The ACK of both is lost; the first timer (1 s) resends seq 0.
            let t1 = t0 + INITIAL_RTO;
            a.handle_timeout(t1);
            let mut copy_ts = 0;
            while let Some(t) = a.poll_transmit(t1) {
                if let Ok(Datagram {
                    ts,
                    body: Body::Data { seq: 0, .. },
                    ..
                }) = wire::parse(&t.data)
                {
                    copy_ts = ts;
                }
            }
            assert_ne!(copy_ts, 0, "seq 0 was not resent");
            let mut ack = Vec::new();
            Datagram {
                from_session: 2,
                to_session: 1,
                ts: 5,
                body: Body::Ack {
                    next: 2,
                    echo: if echoes { copy_ts } else { 0 },
                    blocks: vec![],
                    fin: false,
                },
            }
            .encode(&mut ack);
            a.handle_datagram(t1 + ms(1), addr(2), &ack);
            let want = if echoes { ms(1) } else { INITIAL_RTO + ms(1) };
            assert_eq!(a.rto().srtt, Some(want), "echoes: {echoes}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Any fault schedule: whatever arrives, arrives once, in order, and all of it.
        #[test]
        fn any_fault_schedule_delivers_everything_once_in_order(
            seed in 0u64..1_000_000,
            loss in 0.0f64..40.0,
            dup in 0.0f64..20.0,
            reorder in 0.0f64..30.0,
            corrupt in 0.0f64..10.0,
            n in 1usize..200,
        ) {
            let t0 = clock::now();
            let mut p = peers(t0, 1, 2).with_links(
                bad_link(seed, loss, dup, reorder, corrupt),
                bad_link(seed ^ 1, loss, dup, reorder, corrupt),
            );
            for i in 0..n {
                p.a.handle_input(t0, format!("{i}").into_bytes());
            }
            run_until(&mut p, 0, n, Duration::from_secs(600));
            let got = messages(&p.b_events);
            let want: Vec<Vec<u8>> = (0..n).map(|i| format!("{i}").into_bytes()).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
