//! A lossy link in user space: loss, duplication, reordering, delay, jitter, corruption and a
//! bandwidth limit.
//!
//! Loopback never loses a datagram, so a protocol that is meant to survive a bad network (the
//! P2P chat's ARQ, the RTT meter) is never tested by running it on one machine. Linux's
//! `tc qdisc … netem` can make any interface lossy, but it needs root and changes the link for
//! every program at once. This module does the same job inside the process, for one socket,
//! and the same seed gives the same faults every time, so a failure can be replayed.
//!
//! It comes in two layers, as smoltcp's `FaultInjector` does:
//!
//! - [`Impairment`] is the fault schedule, sans-IO: it takes datagrams with
//!   [`submit(now, …)`](Impairment::submit) and gives them back with
//!   [`poll_release(now)`](Impairment::poll_release) when their time has come, or never. Time
//!   is an argument, so unit tests drive it with a virtual clock, and so does the two-party
//!   harness [`driver::Pair`](crate::net::driver::Pair).
//! - [`Impaired`] wraps any [`DatagramSocket`] (a tokio `UdpSocket`, a Unix datagram socket,
//!   or another wrapper) and puts one `Impairment` on the way out and another on the way in.
//!   It is itself a `DatagramSocket`, so the [`driver`](crate::net::driver) runs over it without
//!   knowing, and a test can make any socket lossy by wrapping it.
//!
//! What happens to one submitted datagram, in this order:
//!
//! ```text
//!   submit(now, d)
//!        │
//!        ├── loss?  ──────────────────────────────────▶ dropped        (counted, gone)
//!        │
//!        ├── dup?   ── a second copy takes the same path below, independently
//!        │
//!        ├── queue full (limit)? ─────────────────────▶ overflowed     (counted, gone)
//!        ├── corrupt? ── flip one random bit
//!        ├── rate?  ── wait for the link, then take len*8/rate to cross it: it has crossed
//!        │             at max(now, when the previous one had crossed) + len*8/rate
//!        ├── release at that time + delay ± jitter, but never before an earlier datagram (FIFO)
//!        ├── reorder? ── hold it back reorder-delay longer, so later ones overtake it
//!        ▼
//!   queue ordered by release time ──▶ poll_release(now) ──▶ out
//! ```
//!
//! The rate makes each direction a link of that many bits per second, as netem's `rate` does:
//! datagrams cross it one after another, so 1000-byte datagrams at `rate=1mbit` leave 8 ms
//! apart however fast they come. Only the datagram's bytes count (no IP or UDP header), so
//! what a receiver measures is the rate. The datagrams waiting for the link are held in the
//! same queue as the delayed ones, so `limit` bounds both together (as netem's does): a
//! sender faster than the rate fills it, and then its datagrams overflow (drop-tail).
//!
//! Jitter alone never reorders (netem with a FIFO child qdisc behaves the same way): a
//! datagram's release time is at least its predecessor's. Reordering is a separate,
//! counted decision, so a test that asks for `reorder=0%` gets datagrams in order.
//!
//! A spec string names a configuration in one flag value; [`ImpairConfig`] parses it with
//! [`str::parse`] and prints it back with `Display`:
//!
//! ```
//! use std::time::Duration;
//! use socklab::net::impair::ImpairConfig;
//!
//! let cfg: ImpairConfig =
//!     "loss=10%,dup=1%,reorder=5%,delay=20ms,jitter=5ms,corrupt=0.1%,rate=1mbit,seed=42"
//!         .parse()
//!         .unwrap();
//! assert_eq!(cfg.loss.value(), 0.1);
//! assert_eq!(cfg.delay, Duration::from_millis(20));
//! assert_eq!(cfg.rate.unwrap().bits_per_second(), 1_000_000);
//! assert_eq!(cfg.seed, 42);
//! assert_eq!(cfg.to_string().parse::<ImpairConfig>().unwrap(), cfg);
//! ```
//!
//! Seeds: the same seed, configuration and sequence of `submit` calls give the same faults.
//! The generator is rand's `StdRng`, whose algorithm rand may change in a new release, so a
//! seed reproduces a run with the same build, not across rand upgrades.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::io;
use std::num::NonZeroU64;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::sync::mpsc;

use crate::net::clock;
use crate::net::dgram::{DatagramSocket, Received};

/// The longest any datagram is held (delay, jitter and reorder delay each). Longer values
/// are cut to this; the spec parser refuses them.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The default queue limit: datagrams held at once (netem's default `limit`, too).
pub const DEFAULT_LIMIT: usize = 1000;

/// How long a datagram chosen for reordering is held back when the spec does not say.
pub const DEFAULT_REORDER_DELAY: Duration = Duration::from_millis(10);

/// A link's speed, in bits per second, between [`Rate::MIN`] and [`Rate::MAX`].
///
/// Spec strings write it as tc does: `bit`, `kbit`, `mbit`, `gbit` are bits per second and
/// `bps`, `kbps`, `mbps`, `gbps` are *bytes* per second (`k` = 1000, `m` = 1000², `g` = 1000³),
/// with a number that may have decimals: `1mbit`, `1.5mbit`, `64kbps` (= `512kbit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(NonZeroU64);

impl Rate {
    /// The slowest link: 1 kbit/s (a 1,000-byte datagram takes 8 s to cross it).
    pub const MIN: Self = Self(NonZeroU64::new(1_000).unwrap());
    /// The fastest link: 100 Gbit/s (faster than any relay here can move datagrams, so a limit
    /// above it could never bite).
    pub const MAX: Self = Self(NonZeroU64::new(100_000_000_000).unwrap());

    /// A rate of `bits` per second; `None` unless it is between [`MIN`](Self::MIN) and
    /// [`MAX`](Self::MAX).
    pub fn from_bits_per_second(bits: u64) -> Option<Self> {
        let rate = Self(NonZeroU64::new(bits)?);
        (Self::MIN..=Self::MAX).contains(&rate).then_some(rate)
    }

    /// Bits per second.
    pub fn bits_per_second(self) -> u64 {
        self.0.get()
    }

    /// How long `bytes` take to cross a link of this rate, rounded up to the nanosecond.
    ///
    /// ```
    /// use std::time::Duration;
    /// use socklab::net::impair::Rate;
    ///
    /// let rate = Rate::from_bits_per_second(1_000_000).unwrap();
    /// assert_eq!(rate.transmission_time(1000), Duration::from_millis(8));
    /// ```
    pub fn transmission_time(self, bytes: usize) -> Duration {
        let bits = bytes as u128 * 8;
        let ns = (bits * 1_000_000_000).div_ceil(u128::from(self.bits_per_second()));
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Rate {
    /// In the largest unit of bits that shows it exactly: `1mbit`, `512kbit`, `1500bit`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.bits_per_second();
        match [
            (1_000_000_000, "gbit"),
            (1_000_000, "mbit"),
            (1_000, "kbit"),
        ]
        .into_iter()
        .find(|(unit, _)| bits.is_multiple_of(*unit))
        {
            Some((unit, name)) => write!(f, "{}{name}", bits / unit),
            None => write!(f, "{bits}bit"),
        }
    }
}

/// A probability between 0 and 1, written as a percentage (`10%`) or a fraction (`0.1`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Probability(f64);

impl Probability {
    /// Never.
    pub const ZERO: Self = Self(0.0);
    /// Always.
    pub const ONE: Self = Self(1.0);

    /// A probability from a fraction; `None` unless `0 <= p <= 1`.
    pub fn new(p: f64) -> Option<Self> {
        (0.0..=1.0).contains(&p).then_some(Self(p))
    }

    /// A probability from a percentage; `None` unless `0 <= pct <= 100`.
    pub fn percent(pct: f64) -> Option<Self> {
        if (0.0..=100.0).contains(&pct) {
            Some(Self(pct / 100.0))
        } else {
            None
        }
    }

    /// The fraction, between 0 and 1.
    pub fn value(self) -> f64 {
        self.0
    }

    /// True for a probability of 0.
    pub fn is_zero(self) -> bool {
        self.0 == 0.0
    }
}

impl fmt::Display for Probability {
    /// Prints as a percentage with at most six decimals (`10%`, `0.1%`), or as a fraction
    /// when that would round (`1e-9`), so that parsing the output gives the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = format!("{:.6}", self.0 * 100.0);
        let pct = pct.trim_end_matches('0').trim_end_matches('.');
        match pct.parse::<f64>() {
            Ok(v) if v / 100.0 == self.0 => write!(f, "{pct}%"),
            _ => write!(f, "{}", self.0),
        }
    }
}

/// What the link does to datagrams. The default does nothing: every datagram passes at once,
/// unchanged and in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImpairConfig {
    /// Chance that a datagram is dropped.
    pub loss: Probability,
    /// Chance that a datagram is sent twice (the copy has its own corruption, delay and
    /// reordering).
    pub duplicate: Probability,
    /// Chance that a datagram is held back by [`reorder_delay`](Self::reorder_delay), so that
    /// datagrams submitted after it can overtake it.
    pub reorder: Probability,
    /// How much longer a reordered datagram is held.
    pub reorder_delay: Duration,
    /// Fixed delay added to every datagram.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly within `delay ± jitter` (never below zero).
    pub jitter: Duration,
    /// Chance that one random bit of a datagram is flipped (empty datagrams are left alone).
    pub corrupt: Probability,
    /// The link's bandwidth: each datagram takes `len * 8 / rate` to cross it, one after
    /// another, before its delay starts. `None`: no limit, datagrams cross at once.
    pub rate: Option<Rate>,
    /// Seed of the random generator.
    pub seed: u64,
    /// Most datagrams held at once (waiting for the link or delayed); more are dropped and
    /// counted as overflowed.
    pub limit: usize,
}

impl Default for ImpairConfig {
    fn default() -> Self {
        Self {
            loss: Probability::ZERO,
            duplicate: Probability::ZERO,
            reorder: Probability::ZERO,
            reorder_delay: DEFAULT_REORDER_DELAY,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            corrupt: Probability::ZERO,
            rate: None,
            seed: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// What the link has done so far. Each datagram handed to [`Impairment::submit`] counts in
/// `submitted`; each copy that comes out counts in `released`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Datagrams submitted.
    pub submitted: u64,
    /// Datagrams (and copies) released.
    pub released: u64,
    /// Datagrams lost on purpose.
    pub dropped: u64,
    /// Datagrams that got a second copy.
    pub duplicated: u64,
    /// Datagrams (or copies) held back so that later ones overtake them.
    pub reordered: u64,
    /// Datagrams (or copies) with one bit flipped.
    pub corrupted: u64,
    /// Datagrams (or copies) given a delay above zero (by `delay` and `jitter`).
    pub delayed: u64,
    /// Datagrams (or copies) dropped because `limit` were already held.
    pub overflowed: u64,
}

/// The fault schedule: a sans-IO queue that drops, copies, corrupts and delays datagrams.
///
/// `T` is the datagram: anything with mutable bytes (for corruption) that can be cloned (for
/// duplication): a `Vec<u8>`, or a struct that also carries an address.
///
/// ```
/// use std::time::Duration;
/// use socklab::net::impair::{ImpairConfig, Impairment};
///
/// let t0 = socklab::net::clock::now();
/// let mut link = Impairment::new(ImpairConfig {
///     delay: Duration::from_millis(20),
///     ..ImpairConfig::default()
/// });
/// link.submit(t0, b"hello".to_vec());
/// assert_eq!(link.poll_release(t0), None); // not yet
/// assert_eq!(link.poll_timeout(), Some(t0 + Duration::from_millis(20)));
/// let t1 = t0 + Duration::from_millis(20);
/// assert_eq!(link.poll_release(t1).as_deref(), Some(&b"hello"[..]));
/// ```
#[derive(Debug)]
pub struct Impairment<T = Vec<u8>> {
    cfg: ImpairConfig,
    rng: StdRng,
    queue: BinaryHeap<Reverse<Held<T>>>,
    /// Numbers the datagrams, so that equal release times keep submission order.
    seq: u64,
    /// The latest release time given to an in-order datagram: the next one may not leave
    /// before it.
    floor: Option<Instant>,
    /// When the last datagram to take the link (with a rate) has crossed it: the next one
    /// starts then, or when it arrives if that is later.
    link_free: Option<Instant>,
    stats: ImpairStats,
}

impl<T: AsMut<[u8]> + Clone> Impairment<T> {
    /// A link that behaves as `cfg` says, with its generator seeded from `cfg.seed`.
    pub fn new(cfg: ImpairConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            queue: BinaryHeap::new(),
            seq: 0,
            floor: None,
            link_free: None,
            stats: ImpairStats::default(),
        }
    }

    /// Hands a datagram to the link at `now`. It comes out of
    /// [`poll_release`](Self::poll_release) later (zero, one or two times); call
    /// [`poll_timeout`](Self::poll_timeout) afterwards to learn when.
    pub fn submit(&mut self, now: Instant, datagram: T) {
        self.stats.submitted += 1;
        if chance(&mut self.rng, self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        if chance(&mut self.rng, self.cfg.duplicate) {
            self.stats.duplicated += 1;
            self.schedule(now, datagram.clone());
        }
        self.schedule(now, datagram);
    }

    /// One copy's trip through the link: the queue limit, corruption, the rate, delay,
    /// reordering.
    fn schedule(&mut self, now: Instant, mut datagram: T) {
        if self.queue.len() >= self.cfg.limit {
            self.stats.overflowed += 1;
            return;
        }
        if chance(&mut self.rng, self.cfg.corrupt) {
            let bytes = datagram.as_mut();
            if !bytes.is_empty() {
                let i = self.rng.random_range(0..bytes.len());
                let bit = self.rng.random_range(0..8u32);
                bytes[i] ^= 1 << bit;
                self.stats.corrupted += 1;
            }
        }
        // The rate: a datagram waits until the one before it has crossed the link, then takes
        // its own transmission time. No randomness, so a rate changes no other fault.
        let crossed = match self.cfg.rate {
            Some(rate) => {
                let start = self.link_free.map_or(now, |free| free.max(now));
                let crossed = start + rate.transmission_time(datagram.as_mut().len());
                self.link_free = Some(crossed);
                crossed
            }
            None => now,
        };
        let delay = self.delay();
        if delay > Duration::ZERO {
            self.stats.delayed += 1;
        }
        let mut at = crossed + delay;
        // Jitter must not reorder: never leave before the datagram submitted earlier.
        if let Some(floor) = self.floor {
            at = at.max(floor);
        }
        self.floor = Some(at);
        // A reordered datagram is held back after its turn; it does not hold back the
        // ones behind it (the floor stays where it is), so they overtake it.
        if chance(&mut self.rng, self.cfg.reorder) {
            at += self.cfg.reorder_delay.min(MAX_DELAY);
            self.stats.reordered += 1;
        }
        self.queue.push(Reverse(Held {
            at,
            seq: self.seq,
            datagram,
        }));
        self.seq += 1;
    }

    /// `delay ± jitter`, uniformly, never below zero. Draws from the generator only when
    /// there is jitter, so a link without jitter uses the same random numbers as before.
    fn delay(&mut self) -> Duration {
        let delay = self.cfg.delay.min(MAX_DELAY);
        let jitter = self.cfg.jitter.min(MAX_DELAY);
        if jitter.is_zero() {
            return delay;
        }
        // MAX_DELAY in nanoseconds fits a u64 many times over.
        let j = jitter.as_nanos() as u64;
        let offset = Duration::from_nanos(self.rng.random_range(0..=2 * j));
        (delay + offset).saturating_sub(jitter)
    }

    /// The next datagram whose release time is at or before `now`, if any. Call it until it
    /// returns `None` after every [`submit`](Self::submit) and whenever the time from
    /// [`poll_timeout`](Self::poll_timeout) has come.
    pub fn poll_release(&mut self, now: Instant) -> Option<T> {
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(held) = self.queue.pop()?;
        self.stats.released += 1;
        Some(held.datagram)
    }

    /// When the next held datagram is due, or `None` if the link is empty.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|r| r.0.at)
    }

    /// Datagrams held now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when no datagram is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// What the link has done so far.
    pub fn stats(&self) -> ImpairStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &ImpairConfig {
        &self.cfg
    }
}

/// True with probability `p`. Draws from the generator only for `0 < p < 1`, so a link set
/// to 0% or 100% of something is exact and uses no randomness for it.
fn chance(rng: &mut StdRng, p: Probability) -> bool {
    match p.value() {
        v if v <= 0.0 => false,
        v if v >= 1.0 => true,
        v => rng.random_bool(v),
    }
}

/// A datagram in the queue, ordered by release time, then by submission.
#[derive(Debug)]
struct Held<T> {
    at: Instant,
    seq: u64,
    datagram: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Held<T> {}

impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

// ---------------------------------------------------------------------------------------------
// The spec string.

/// A spec string that does not parse. Each message names the item at fault and shows a form
/// that works.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Nothing was given.
    #[error("the impairment spec is empty; try loss=10%,delay=20ms")]
    Empty,
    /// An item without `=`.
    #[error("{item:?} has no value; write key=value, e.g. loss=10%")]
    MissingValue {
        /// The item as written.
        item: String,
    },
    /// A key this parser does not know.
    #[error("unknown impairment {key:?}; known ones are {KNOWN_KEYS}")]
    UnknownKey {
        /// The key as written.
        key: String,
    },
    /// The same key twice.
    #[error("{key} is given twice")]
    Repeated {
        /// The key.
        key: String,
    },
    /// A value that is not a probability.
    #[error("{key}={value}: {reason}")]
    BadProbability {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and what works.
        reason: &'static str,
    },
    /// A value that is not a duration.
    #[error("{key}={value}: {reason}")]
    BadDuration {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and what works.
        reason: &'static str,
    },
    /// A value that is not a rate, or one out of bounds.
    #[error("{key}={value}: {reason}")]
    BadRate {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and what works.
        reason: &'static str,
    },
    /// A value that is not a whole number.
    #[error("{key}={value}: not a whole number")]
    BadNumber {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
}

const KNOWN_KEYS: &str =
    "loss, dup, reorder, reorder-delay, delay, jitter, corrupt, rate, seed, limit";

impl FromStr for ImpairConfig {
    type Err = SpecError;

    /// Parses `loss=10%,dup=1%,reorder=5%,reorder-delay=10ms,delay=20ms,jitter=5ms,
    /// corrupt=0.1%,rate=1mbit,seed=42,limit=1000`: comma-separated `key=value` items in any
    /// order, each at most once; keys left out keep their defaults. Probabilities are
    /// percentages (`10%`) or fractions (`0.1`); durations need a unit (`20ms`, `1.5s`,
    /// `500us`); rates too, in tc's units (see [`Rate`]).
    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(SpecError::Empty);
        }
        let mut cfg = ImpairConfig::default();
        let mut seen: Vec<&str> = Vec::new();
        for item in spec.split(',').map(str::trim) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(SpecError::MissingValue { item: item.into() });
            };
            let (key, value) = (key.trim(), value.trim());
            let key = match key {
                "duplicate" => "dup",
                k => k,
            };
            if seen.contains(&key) {
                return Err(SpecError::Repeated { key: key.into() });
            }
            seen.push(key);
            match key {
                "loss" => cfg.loss = parse_probability(key, value)?,
                "dup" => cfg.duplicate = parse_probability(key, value)?,
                "reorder" => cfg.reorder = parse_probability(key, value)?,
                "corrupt" => cfg.corrupt = parse_probability(key, value)?,
                "reorder-delay" => cfg.reorder_delay = parse_delay(key, value)?,
                "delay" => cfg.delay = parse_delay(key, value)?,
                "jitter" => cfg.jitter = parse_delay(key, value)?,
                "rate" => cfg.rate = Some(parse_rate(key, value)?),
                "seed" => cfg.seed = parse_number(key, value)?,
                "limit" => cfg.limit = parse_number(key, value)?,
                _ => return Err(SpecError::UnknownKey { key: key.into() }),
            }
        }
        Ok(cfg)
    }
}

impl fmt::Display for ImpairConfig {
    /// The spec string for this configuration: every setting that differs from the default,
    /// and always the seed, so a printed spec replays the same faults.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = ImpairConfig::default();
        let dur = spec_duration;
        let mut items = Vec::new();
        if self.loss != d.loss {
            items.push(format!("loss={}", self.loss));
        }
        if self.duplicate != d.duplicate {
            items.push(format!("dup={}", self.duplicate));
        }
        if self.reorder != d.reorder {
            items.push(format!("reorder={}", self.reorder));
        }
        if self.reorder_delay != d.reorder_delay {
            items.push(format!("reorder-delay={}", dur(self.reorder_delay)));
        }
        if self.delay != d.delay {
            items.push(format!("delay={}", dur(self.delay)));
        }
        if self.jitter != d.jitter {
            items.push(format!("jitter={}", dur(self.jitter)));
        }
        if self.corrupt != d.corrupt {
            items.push(format!("corrupt={}", self.corrupt));
        }
        if let Some(rate) = self.rate {
            items.push(format!("rate={rate}"));
        }
        items.push(format!("seed={}", self.seed));
        if self.limit != d.limit {
            items.push(format!("limit={}", self.limit));
        }
        f.write_str(&items.join(","))
    }
}

/// A duration in the largest unit that shows it exactly: `2s`, `1500ms`, `250us`, `7ns`.
fn spec_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    match ns {
        0 => "0ms".into(),
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

fn parse_probability(key: &str, value: &str) -> Result<Probability, SpecError> {
    let bad = |reason| SpecError::BadProbability {
        key: key.into(),
        value: value.into(),
        reason,
    };
    if let Some(pct) = value.strip_suffix('%') {
        let pct: f64 = pct
            .trim()
            .parse()
            .map_err(|_| bad("not a percentage; write e.g. 10% or 0.5%"))?;
        return Probability::percent(pct).ok_or(bad("a percentage is between 0% and 100%"));
    }
    let p: f64 = value
        .parse()
        .map_err(|_| bad("not a probability; write a percentage (10%) or a fraction (0.1)"))?;
    if p > 1.0 && p <= 100.0 {
        return Err(bad(
            "a number without % is a fraction between 0 and 1; add % for a percentage",
        ));
    }
    Probability::new(p).ok_or(bad("a fraction is between 0 and 1"))
}

fn parse_delay(key: &str, value: &str) -> Result<Duration, SpecError> {
    let bad = |reason| SpecError::BadDuration {
        key: key.into(),
        value: value.into(),
        reason,
    };
    if value.parse::<f64>().is_ok() {
        return Err(bad("give a unit, e.g. 20ms, 1.5s or 500us"));
    }
    let d: jiff::SignedDuration = value
        .parse()
        .map_err(|_| bad("not a duration; write e.g. 20ms, 1.5s or 500us"))?;
    let d: Duration = d
        .try_into()
        .map_err(|_| bad("a duration cannot be negative"))?;
    if d > MAX_DELAY {
        return Err(bad("at most 1h"));
    }
    Ok(d)
}

/// Rate units as tc writes them (case does not matter): `…bit` are bits per second, `…bps`
/// bytes per second. Prefixed ones first, so that `kbit` is not read as `k` + `bit`.
const RATE_UNITS: [(&str, f64); 8] = [
    ("gbit", 1e9),
    ("mbit", 1e6),
    ("kbit", 1e3),
    ("bit", 1.0),
    ("gbps", 8e9),
    ("mbps", 8e6),
    ("kbps", 8e3),
    ("bps", 8.0),
];

fn parse_rate(key: &str, value: &str) -> Result<Rate, SpecError> {
    let bad = |reason| SpecError::BadRate {
        key: key.into(),
        value: value.into(),
        reason,
    };
    let lower = value.to_ascii_lowercase();
    let Some((number, bits_per_unit)) = RATE_UNITS
        .iter()
        .find_map(|&(unit, bits)| Some((lower.strip_suffix(unit)?, bits)))
    else {
        if value.parse::<f64>().is_ok() {
            return Err(bad(
                "give a unit: bit, kbit, mbit, gbit (bits per second) or bps, kbps, mbps, gbps \
                 (bytes per second), e.g. 1mbit",
            ));
        }
        return Err(bad(
            "not a rate; write e.g. 1mbit, 500kbit or 64kbps (kbps is bytes per second, as in tc)",
        ));
    };
    let n: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or(bad(
            "not a rate; write e.g. 1mbit, 500kbit or 64kbps (kbps is bytes per second, as in tc)",
        ))?;
    if n <= 0.0 {
        return Err(bad(
            "a rate must be above zero (leave the rate out for no limit)",
        ));
    }
    let bits = n * bits_per_unit;
    if bits < Rate::MIN.bits_per_second() as f64 {
        return Err(bad("at least 1kbit"));
    }
    if bits > Rate::MAX.bits_per_second() as f64 {
        return Err(bad("at most 100gbit"));
    }
    // Within MIN..=MAX, so the rounded value fits a u64 and is in bounds.
    Rate::from_bits_per_second(bits.round() as u64).ok_or(bad("at most 100gbit"))
}

fn parse_number<N: FromStr>(key: &str, value: &str) -> Result<N, SpecError> {
    value.parse().map_err(|_| SpecError::BadNumber {
        key: key.into(),
        value: value.into(),
    })
}

// ---------------------------------------------------------------------------------------------
// The socket wrapper.

/// Largest datagram the wrapper receives whole (above any UDP payload, 65,507 bytes over
/// IPv4). A larger Unix datagram is cut and reported as truncated, as the kernel would.
const RECV_BUFFER: usize = 65_536;

/// Datagrams waiting between the owner and the pump task, each way.
const CHANNEL_DEPTH: usize = 64;

/// What each direction of an [`Impaired`] socket has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams sent through the wrapper.
    pub outgoing: ImpairStats,
    /// Datagrams received from the inner socket.
    pub incoming: ImpairStats,
    /// Sends by the pump that the inner socket refused (logged at debug level).
    pub send_errors: u64,
}

/// A datagram on its way through the wrapper, with its address and real size.
#[derive(Debug, Clone)]
struct Packet<A> {
    addr: A,
    data: Vec<u8>,
    /// The datagram's size as the inner socket reported it (above `data.len()` when the
    /// inner socket cut it).
    size: usize,
}

impl<A> AsMut<[u8]> for Packet<A> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

/// Any datagram socket, with an [`Impairment`] on the way out and another on the way in.
///
/// ```text
///   owner ── send_dgram ─▶ [out channel] ─▶ ┌───────────┐ ── outgoing Impairment ─▶ inner.send
///   owner ◀─ recv_dgram ── [in channel]  ◀─ │ pump task │ ◀─ incoming Impairment ── inner.recv
///                                           └───────────┘
/// ```
///
/// A task (the pump) owns both schedules and the inner socket's I/O: it receives from the
/// inner socket, releases incoming datagrams when they are due, and sends outgoing ones when
/// they are due, whatever the owner is doing. Sending returns as soon as the datagram is
/// handed over, like `send_to` on a real socket: the sender never learns what the link did.
///
/// Both channels are bounded. A full outgoing channel makes `send_dgram` wait; incoming
/// datagrams wait in their schedule until the owner reads, and past its `limit` they are
/// dropped and counted as overflowed.
///
/// Errors from the inner socket's receive (an ICMP "port unreachable" surfacing as
/// `ConnectionRefused`) reach the owner's `recv_dgram` unchanged. Errors from the pump's sends
/// cannot reach anyone; they are counted in [`LinkStats::send_errors`] and logged.
///
/// Dropping the wrapper stops receiving at once; datagrams still held on the way out are sent
/// when due, then the task ends.
#[derive(Debug)]
pub struct Impaired<S: DatagramSocket> {
    inner: Arc<S>,
    out_tx: mpsc::Sender<Packet<S::Addr>>,
    in_rx: tokio::sync::Mutex<mpsc::Receiver<io::Result<Packet<S::Addr>>>>,
    stats: Arc<Mutex<LinkStats>>,
}

impl<S: DatagramSocket> Impaired<S> {
    /// Wraps `inner`, impairing what it sends as `outgoing` says and what it receives as
    /// `incoming` says (use `ImpairConfig::default()` to leave a direction alone). Give the
    /// two directions different seeds, or their faults fall on the same datagram numbers.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (it spawns the pump task).
    pub fn new(inner: S, outgoing: ImpairConfig, incoming: ImpairConfig) -> Self {
        let inner = Arc::new(inner);
        let (out_tx, out_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_DEPTH);
        let stats = Arc::new(Mutex::new(LinkStats::default()));
        let pump = Pump {
            inner: Arc::clone(&inner),
            out: Impairment::new(outgoing),
            incoming: Impairment::new(incoming),
            out_rx,
            in_tx,
            stats: Arc::clone(&stats),
            send_errors: 0,
        };
        tokio::spawn(pump.run());
        Self {
            inner,
            out_tx,
            in_rx: tokio::sync::Mutex::new(in_rx),
            stats,
        }
    }

    /// The wrapped socket (for `local_addr` and the like; datagrams sent or received on it
    /// directly bypass the impairment).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// What the link has done, as of the pump task's last step.
    pub fn stats(&self) -> LinkStats {
        // The lock is only held to copy plain counters, so it cannot be poisoned mid-update
        // in a way that matters; take the data either way.
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: DatagramSocket> DatagramSocket for Impaired<S> {
    type Addr = S::Addr;

    async fn recv_dgram(&self, buf: &mut [u8]) -> io::Result<Received<S::Addr>> {
        // Cancel-safe: both the lock and `recv` may be dropped without losing a datagram.
        let mut rx = self.in_rx.lock().await;
        let packet = rx
            .recv()
            .await
            .ok_or_else(|| io::Error::other("the impaired link's pump task has stopped"))??;
        let copied = packet.data.len().min(buf.len());
        buf[..copied].copy_from_slice(&packet.data[..copied]);
        Ok(Received {
            copied,
            size: packet.size.max(packet.data.len()),
            from: packet.addr,
        })
    }

    async fn send_dgram(&self, data: &[u8], to: &S::Addr) -> io::Result<usize> {
        let packet = Packet {
            addr: to.clone(),
            data: data.to_vec(),
            size: data.len(),
        };
        self.out_tx
            .send(packet)
            .await
            .map_err(|_| io::Error::other("the impaired link's pump task has stopped"))?;
        Ok(data.len())
    }

    fn socket_addr_of(addr: &S::Addr) -> Option<std::net::SocketAddr> {
        S::socket_addr_of(addr)
    }

    fn ip_of(addr: &S::Addr) -> Option<std::net::IpAddr> {
        S::ip_of(addr)
    }

    fn can_reply(addr: &S::Addr) -> bool {
        S::can_reply(addr)
    }
}

/// The task behind an [`Impaired`] socket.
struct Pump<S: DatagramSocket> {
    inner: Arc<S>,
    out: Impairment<Packet<S::Addr>>,
    incoming: Impairment<Packet<S::Addr>>,
    out_rx: mpsc::Receiver<Packet<S::Addr>>,
    in_tx: mpsc::Sender<io::Result<Packet<S::Addr>>>,
    stats: Arc<Mutex<LinkStats>>,
    send_errors: u64,
}

impl<S: DatagramSocket> Pump<S> {
    async fn run(mut self) {
        let mut buf = vec![0u8; RECV_BUFFER];
        let mut owner_gone = false;
        let mut receiving = true;
        loop {
            let now = clock::now();
            while let Some(p) = self.out.poll_release(now) {
                if let Err(e) = self.inner.send_dgram(&p.data, &p.addr).await {
                    self.send_errors += 1;
                    tracing::debug!("impaired link: sending to {} failed: {e}", p.addr);
                }
            }
            self.publish();
            if owner_gone && self.out.is_empty() {
                return;
            }
            let in_due = !owner_gone && self.incoming.poll_timeout().is_some_and(|t| t <= now);
            // Wake for the next outgoing release, and for the next incoming one unless it is
            // already due (then we wait for room in the channel instead).
            let wake = match (self.out.poll_timeout(), self.incoming.poll_timeout()) {
                (a, _) if in_due || owner_gone => a,
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                permit = self.in_tx.reserve(), if in_due => match permit {
                    // Released with the same `now` that found it due, so it is there.
                    Ok(permit) => {
                        if let Some(p) = self.incoming.poll_release(now) {
                            permit.send(Ok(p));
                        }
                    }
                    Err(_) => owner_gone = true,
                },
                packet = self.out_rx.recv(), if !owner_gone => match packet {
                    Some(p) => self.out.submit(clock::now(), p),
                    None => owner_gone = true,
                },
                got = self.inner.recv_dgram(&mut buf), if receiving && !owner_gone => match got {
                    Ok(got) => {
                        let packet = Packet {
                            addr: got.from,
                            data: buf[..got.copied].to_vec(),
                            size: got.size,
                        };
                        self.incoming.submit(clock::now(), packet);
                    }
                    Err(e) => {
                        // ICMP errors are news about an earlier send, not a broken socket;
                        // anything else would repeat at once, so stop receiving after it.
                        if !is_icmp_error(&e) {
                            receiving = false;
                        }
                        if self.in_tx.send(Err(e)).await.is_err() {
                            owner_gone = true;
                        }
                    }
                },
                () = sleep_until(wake) => {}
                () = self.in_tx.closed(), if !owner_gone => owner_gone = true,
            }
        }
    }

    fn publish(&self) {
        let mut s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        *s = LinkStats {
            outgoing: self.out.stats(),
            incoming: self.incoming.stats(),
            send_errors: self.send_errors,
        };
    }
}

/// Sleeps until `deadline`, or forever if there is none (so it can sit in a `select!`).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Errors that report an ICMP message about an earlier datagram rather than a fault of the
/// socket itself.
pub(crate) fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::net::UdpSocket;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Datagram `i`: its number in the first four bytes, then filler.
    fn numbered(i: u32) -> Vec<u8> {
        let mut d = i.to_be_bytes().to_vec();
        d.extend_from_slice(&[0xa5; 28]);
        d
    }

    fn number(d: &[u8]) -> u32 {
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Submits `n` numbered datagrams 1 ms apart on a virtual clock from `t0`, then steps the
    /// clock from one release to the next until the link is empty. Returns each released
    /// datagram with the time it came out.
    fn run_link(link: &mut Impairment, t0: Instant, n: u32) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + ms(u64::from(i));
            while let Some(d) = link.poll_release(now) {
                out.push((now, d));
            }
            link.submit(now, numbered(i));
            while let Some(d) = link.poll_release(now) {
                out.push((now, d));
            }
        }
        while let Some(t) = link.poll_timeout() {
            while let Some(d) = link.poll_release(t) {
                out.push((t, d));
            }
        }
        out
    }

    #[test]
    fn zero_config_passes_everything_unchanged_and_in_order() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig::default());
        for i in 0..1000 {
            link.submit(t0, numbered(i));
        }
        for i in 0..1000 {
            assert_eq!(link.poll_release(t0), Some(numbered(i)));
        }
        assert_eq!(link.poll_release(t0), None);
        assert_eq!(link.poll_timeout(), None);
        let s = link.stats();
        assert_eq!((s.submitted, s.released), (1000, 1000));
        assert_eq!(
            ImpairStats {
                submitted: 0,
                released: 0,
                ..s
            },
            ImpairStats::default()
        );
    }

    #[test]
    fn delay_releases_at_exactly_now_plus_delay() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            delay: ms(20),
            ..ImpairConfig::default()
        });
        link.submit(t0, b"a".to_vec());
        link.submit(t0 + ms(5), b"b".to_vec());
        assert_eq!(link.poll_timeout(), Some(t0 + ms(20)));
        assert_eq!(
            link.poll_release(t0 + ms(20) - Duration::from_nanos(1)),
            None
        );
        assert_eq!(link.poll_release(t0 + ms(20)), Some(b"a".to_vec()));
        assert_eq!(link.poll_release(t0 + ms(20)), None);
        assert_eq!(link.poll_timeout(), Some(t0 + ms(25)));
        assert_eq!(link.poll_release(t0 + ms(25)), Some(b"b".to_vec()));
        assert_eq!(link.stats().delayed, 2);
    }

    #[test]
    fn jitter_stays_within_bounds_and_never_reorders() {
        let t0 = clock::now();
        let cfg = ImpairConfig {
            delay: ms(20),
            jitter: ms(5),
            seed: 7,
            ..ImpairConfig::default()
        };
        // Spaced far apart, each datagram's delay shows: all within 15..=25 ms, and spread.
        let mut link = Impairment::new(cfg.clone());
        let mut delays = Vec::new();
        for i in 0..1000u32 {
            let now = t0 + ms(100) * i;
            link.submit(now, numbered(i));
            let at = link.poll_timeout().unwrap();
            assert_eq!(link.poll_release(at), Some(numbered(i)));
            delays.push(at - now);
        }
        assert!(delays.iter().all(|d| (ms(15)..=ms(25)).contains(d)));
        assert!(delays.iter().min().unwrap() < &ms(16));
        assert!(delays.iter().max().unwrap() > &ms(24));
        // Back to back, jitter would reorder them; the link keeps them in order.
        let mut link = Impairment::new(cfg);
        let out = run_link(&mut link, t0, 1000);
        let order: Vec<u32> = out.iter().map(|(_, d)| number(d)).collect();
        assert_eq!(order, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn reorder_lets_later_datagrams_overtake() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            reorder: Probability::percent(20.0).unwrap(),
            reorder_delay: ms(5),
            seed: 3,
            ..ImpairConfig::default()
        });
        let out = run_link(&mut link, t0, 1000);
        let order: Vec<u32> = out.iter().map(|(_, d)| number(d)).collect();
        // Nothing lost or copied, but not in order.
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        let overtaken = order.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(overtaken > 100, "only {overtaken} inversions");
        // Each held datagram comes out exactly reorder-delay after it went in.
        let held = out
            .iter()
            .filter(|(at, d)| *at == t0 + ms(u64::from(number(d))) + ms(5))
            .count() as u64;
        assert_eq!(held, link.stats().reordered);
        assert!((100..300).contains(&held), "{held}");
    }

    #[test]
    fn corrupt_flips_exactly_one_bit() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            corrupt: Probability::ONE,
            seed: 11,
            ..ImpairConfig::default()
        });
        let mut bits_hit = [0u32; 8];
        for i in 0..1000 {
            let sent = numbered(i);
            link.submit(t0, sent.clone());
            let got = link.poll_release(t0).unwrap();
            assert_eq!(got.len(), sent.len());
            let flipped: u32 = sent
                .iter()
                .zip(&got)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(flipped, 1, "datagram {i}");
            let (a, b) = sent.iter().zip(&got).find(|(a, b)| a != b).unwrap();
            bits_hit[(a ^ b).trailing_zeros() as usize] += 1;
        }
        assert!(bits_hit.iter().all(|&n| n > 50), "{bits_hit:?}");
        // An empty datagram has no bit to flip: it passes, uncounted.
        link.submit(t0, Vec::new());
        assert_eq!(link.poll_release(t0), Some(Vec::new()));
        assert_eq!(link.stats().corrupted, 1000);
    }

    #[test]
    fn total_loss_drops_everything_and_full_queue_overflows() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            loss: Probability::ONE,
            ..ImpairConfig::default()
        });
        let out = run_link(&mut link, t0, 100);
        assert!(out.is_empty());
        assert_eq!(link.stats().dropped, 100);

        let mut link = Impairment::new(ImpairConfig {
            delay: Duration::from_secs(1),
            limit: 10,
            ..ImpairConfig::default()
        });
        for i in 0..25 {
            link.submit(t0, numbered(i));
        }
        assert_eq!(link.len(), 10);
        assert_eq!(link.stats().overflowed, 15);
    }

    #[test]
    fn duplicates_arrive_twice_back_to_back() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            duplicate: Probability::ONE,
            ..ImpairConfig::default()
        });
        let out = run_link(&mut link, t0, 10);
        let order: Vec<u32> = out.iter().map(|(_, d)| number(d)).collect();
        let twice: Vec<u32> = (0..10).flat_map(|i| [i, i]).collect();
        assert_eq!(order, twice);
        assert_eq!(link.stats().duplicated, 10);
        assert_eq!(link.stats().released, 20);
    }

    fn mixed(seed: u64) -> ImpairConfig {
        ImpairConfig {
            loss: Probability::percent(10.0).unwrap(),
            duplicate: Probability::percent(5.0).unwrap(),
            reorder: Probability::percent(5.0).unwrap(),
            delay: ms(20),
            jitter: ms(5),
            corrupt: Probability::percent(1.0).unwrap(),
            seed,
            ..ImpairConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let t0 = clock::now();
        let a = run_link(&mut Impairment::new(mixed(42)), t0, 2000);
        let b = run_link(&mut Impairment::new(mixed(42)), t0, 2000);
        let c = run_link(&mut Impairment::new(mixed(43)), t0, 2000);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// The exact counts for one seed. These pin rand's `StdRng` stream: if a rand upgrade
    /// changes it, the numbers here change and must be recorded again (the statistical test
    /// below says whether the new ones are still plausible).
    #[test]
    fn seed_42_over_1000_datagrams() {
        let t0 = clock::now();
        let mut link = Impairment::new(mixed(42));
        let out = run_link(&mut link, t0, 1000);
        let s = link.stats();
        assert_eq!(out.len() as u64, s.released);
        assert_eq!(s.submitted, 1000);
        assert_eq!(s.released, s.submitted - s.dropped + s.duplicated);
        assert_eq!(s.delayed, s.released);
        assert_eq!(
            (s.dropped, s.duplicated, s.reordered, s.corrupted),
            (108, 38, 40, 13),
            "record these: {s:?}"
        );
        assert_eq!(s.released, 930);
    }

    #[test]
    fn rates_match_the_config_over_100k_datagrams() {
        // Expected counts and bounds 10 standard deviations wide: with a fixed seed the test
        // is deterministic anyway, and any seed passes with near certainty.
        let t0 = clock::now();
        let cfg = ImpairConfig {
            loss: Probability::percent(10.0).unwrap(),
            duplicate: Probability::percent(1.0).unwrap(),
            reorder: Probability::percent(5.0).unwrap(),
            corrupt: Probability::percent(0.1).unwrap(),
            seed: 2024,
            ..ImpairConfig::default()
        };
        let mut link = Impairment::new(cfg);
        let n = 100_000u64;
        for i in 0..n {
            // 1 ms apart, so datagrams held for reordering leave and the queue stays short.
            let now = t0 + ms(i);
            link.submit(now, numbered(i as u32));
            while link.poll_release(now).is_some() {}
        }
        let s = link.stats();
        assert_eq!(s.overflowed, 0);
        let within = |got: u64, p: f64, trials: u64| {
            let mean = p * trials as f64;
            let sd = (trials as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (got as f64 - mean).abs() <= 10.0 * sd,
                "{got} is not within 10 sd ({sd:.1}) of {mean}"
            );
        };
        within(s.dropped, 0.10, n);
        let kept = n - s.dropped;
        within(s.duplicated, 0.01, kept);
        let copies = kept + s.duplicated;
        within(s.reordered, 0.05, copies);
        within(s.corrupted, 0.001, copies);
    }

    #[test]
    fn spec_parses_every_key() {
        let cfg: ImpairConfig = "loss=10%, dup=1%,reorder=5%,reorder-delay=3ms,delay=20ms,\
                                 jitter=5ms,corrupt=0.1%,rate=2mbit,seed=42,limit=50"
            .parse()
            .unwrap();
        assert_eq!(
            cfg,
            ImpairConfig {
                loss: Probability::new(0.1).unwrap(),
                duplicate: Probability::new(0.01).unwrap(),
                reorder: Probability::new(0.05).unwrap(),
                reorder_delay: ms(3),
                delay: ms(20),
                jitter: ms(5),
                corrupt: Probability::new(0.001).unwrap(),
                rate: Rate::from_bits_per_second(2_000_000),
                seed: 42,
                limit: 50,
            }
        );
        assert_eq!(
            cfg.to_string(),
            "loss=10%,dup=1%,reorder=5%,reorder-delay=3ms,delay=20ms,jitter=5ms,corrupt=0.1%,\
             rate=2mbit,seed=42,limit=50"
        );
        // Fractions, the long key name, sub-millisecond and second units.
        let cfg: ImpairConfig = "loss=0.25,duplicate=1,delay=1.5s,jitter=250us"
            .parse()
            .unwrap();
        assert_eq!(cfg.loss, Probability::new(0.25).unwrap());
        assert_eq!(cfg.duplicate, Probability::ONE);
        assert_eq!(cfg.delay, ms(1500));
        assert_eq!(cfg.jitter, Duration::from_micros(250));
        assert_eq!(cfg.to_string().parse::<ImpairConfig>().unwrap(), cfg);
        // Values that do not print neatly still print back exactly.
        let odd = ImpairConfig {
            loss: Probability::new(1e-9).unwrap(),
            duplicate: Probability::new(0.07).unwrap(),
            delay: Duration::new(1, 500),
            jitter: Duration::from_millis(2500),
            ..ImpairConfig::default()
        };
        assert_eq!(
            odd.to_string(),
            "loss=0.000000001,dup=7%,delay=1000000500ns,jitter=2500ms,seed=0"
        );
        assert_eq!(odd.to_string().parse::<ImpairConfig>().unwrap(), odd);
        // Only the seed: no impairment, and it prints back the same.
        let cfg: ImpairConfig = "seed=9".parse().unwrap();
        assert_eq!(cfg.to_string(), "seed=9");
    }

    #[test]
    fn spec_errors_say_what_is_wrong() {
        let err = |s: &str| s.parse::<ImpairConfig>().unwrap_err().to_string();
        assert_eq!(
            err(" "),
            "the impairment spec is empty; try loss=10%,delay=20ms"
        );
        assert_eq!(
            err("loss"),
            "\"loss\" has no value; write key=value, e.g. loss=10%"
        );
        assert_eq!(
            err("drop=5%"),
            "unknown impairment \"drop\"; known ones are loss, dup, reorder, reorder-delay, \
             delay, jitter, corrupt, rate, seed, limit"
        );
        assert_eq!(err("loss=1%,loss=2%"), "loss is given twice");
        assert_eq!(err("dup=1%,duplicate=2%"), "dup is given twice");
        assert_eq!(
            err("loss=150%"),
            "loss=150%: a percentage is between 0% and 100%"
        );
        assert_eq!(
            err("loss=10"),
            "loss=10: a number without % is a fraction between 0 and 1; add % for a percentage"
        );
        assert_eq!(
            err("corrupt=-0.5"),
            "corrupt=-0.5: a fraction is between 0 and 1"
        );
        assert_eq!(
            err("loss=lots"),
            "loss=lots: not a probability; write a percentage (10%) or a fraction (0.1)"
        );
        assert_eq!(
            err("delay=20"),
            "delay=20: give a unit, e.g. 20ms, 1.5s or 500us"
        );
        assert_eq!(
            err("jitter=soon"),
            "jitter=soon: not a duration; write e.g. 20ms, 1.5s or 500us"
        );
        assert_eq!(
            err("delay=-5ms"),
            "delay=-5ms: a duration cannot be negative"
        );
        assert_eq!(err("delay=2h"), "delay=2h: at most 1h");
        assert_eq!(err("seed=-1"), "seed=-1: not a whole number");
    }

    fn rate(spec: &str) -> Rate {
        let cfg: ImpairConfig = format!("rate={spec}").parse().unwrap();
        cfg.rate.unwrap()
    }

    /// `len` bytes, numbered `i` in the first four.
    fn sized(i: u32, len: usize) -> Vec<u8> {
        let mut d = i.to_be_bytes().to_vec();
        d.resize(len, 0x5a);
        d
    }

    /// Drains `link` from one release time to the next; each datagram with when it came out.
    fn drain(link: &mut Impairment) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = link.poll_timeout() {
            while let Some(d) = link.poll_release(t) {
                out.push((t, d));
            }
        }
        out
    }

    #[test]
    fn spec_parses_every_rate_unit_as_tc_does() {
        // bit, kbit, mbit, gbit: bits per second, powers of 1000.
        assert_eq!(rate("1000bit").bits_per_second(), 1_000);
        assert_eq!(rate("1kbit").bits_per_second(), 1_000);
        assert_eq!(rate("1mbit").bits_per_second(), 1_000_000);
        assert_eq!(rate("1gbit").bits_per_second(), 1_000_000_000);
        // bps, kbps, mbps, gbps: bytes per second, eight times as many bits.
        assert_eq!(rate("1000bps").bits_per_second(), 8_000);
        assert_eq!(rate("64kbps").bits_per_second(), 512_000);
        assert_eq!(rate("1mbps").bits_per_second(), 8_000_000);
        assert_eq!(rate("1gbps").bits_per_second(), 8_000_000_000);
        // Decimals, any case, space before the unit.
        assert_eq!(rate("1.5mbit").bits_per_second(), 1_500_000);
        assert_eq!(rate("2.5Mbit").bits_per_second(), 2_500_000);
        assert_eq!(rate("10 KBPS").bits_per_second(), 80_000);
        // The bounds themselves.
        assert_eq!(rate("1kbit"), Rate::MIN);
        assert_eq!(rate("100gbit"), Rate::MAX);
        // Printed in the largest unit of bits that is exact; parsing that gives it back.
        for (spec, shown) in [
            ("1mbit", "1mbit"),
            ("64kbps", "512kbit"),
            ("1.5mbit", "1500kbit"),
            ("1234bit", "1234bit"),
            ("1gbps", "8gbit"),
        ] {
            let r = rate(spec);
            assert_eq!(r.to_string(), shown);
            assert_eq!(rate(shown), r);
        }
        let cfg: ImpairConfig = "rate=64kbps,seed=3".parse().unwrap();
        assert_eq!(cfg.to_string(), "rate=512kbit,seed=3");
        assert_eq!(cfg.to_string().parse::<ImpairConfig>().unwrap(), cfg);
    }

    #[test]
    fn spec_refuses_a_zero_negative_or_absurd_rate() {
        let err = |s: &str| s.parse::<ImpairConfig>().unwrap_err().to_string();
        let above_zero = "a rate must be above zero (leave the rate out for no limit)";
        assert_eq!(err("rate=0mbit"), format!("rate=0mbit: {above_zero}"));
        assert_eq!(err("rate=-1mbit"), format!("rate=-1mbit: {above_zero}"));
        assert_eq!(
            err("rate=0"),
            "rate=0: give a unit: bit, kbit, mbit, gbit (bits per second) or bps, kbps, mbps, \
             gbps (bytes per second), e.g. 1mbit"
        );
        assert_eq!(
            err("rate=1000000"),
            "rate=1000000: give a unit: bit, kbit, mbit, gbit (bits per second) or bps, kbps, \
             mbps, gbps (bytes per second), e.g. 1mbit"
        );
        let not_a_rate =
            "not a rate; write e.g. 1mbit, 500kbit or 64kbps (kbps is bytes per second, as in tc)";
        for bad in [
            "fast",
            "1mb",
            "mbit",
            "1tbit",
            "nanmbit",
            "infkbit",
            "1e999gbit",
        ] {
            assert_eq!(
                err(&format!("rate={bad}")),
                format!("rate={bad}: {not_a_rate}")
            );
        }
        assert_eq!(err("rate=999bit"), "rate=999bit: at least 1kbit");
        assert_eq!(err("rate=0.5kbit"), "rate=0.5kbit: at least 1kbit");
        assert_eq!(err("rate=101gbit"), "rate=101gbit: at most 100gbit");
        assert_eq!(err("rate=20gbps"), "rate=20gbps: at most 100gbit");
        assert_eq!(err("rate=1mbit,rate=2mbit"), "rate is given twice");
        assert_eq!(Rate::from_bits_per_second(0), None);
        assert_eq!(Rate::from_bits_per_second(999), None);
        assert_eq!(Rate::from_bits_per_second(100_000_000_001), None);
    }

    #[test]
    fn transmission_time_is_bits_over_rate() {
        let r = rate("1mbit");
        assert_eq!(r.transmission_time(1000), ms(8));
        assert_eq!(r.transmission_time(125), ms(1));
        assert_eq!(r.transmission_time(0), Duration::ZERO);
        // Rounded up: 1 byte at 3 kbit/s is 2.666… ms.
        assert_eq!(
            rate("3kbit").transmission_time(1),
            Duration::from_nanos(2_666_667)
        );
        // The largest datagram on the slowest link, and a huge buffer on it: no overflow.
        assert_eq!(
            Rate::MIN.transmission_time(65_536),
            Duration::from_secs(524) + ms(288)
        );
        assert_eq!(
            Rate::MIN.transmission_time(usize::MAX),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn rate_serialises_a_burst_8ms_apart_at_1mbit() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            ..ImpairConfig::default()
        });
        // 100 datagrams of 1000 bytes, all at once: 8,000 bits each, 8 ms each on the link.
        for i in 0..100 {
            link.submit(t0, sized(i, 1000));
        }
        assert_eq!(link.poll_release(t0), None);
        assert_eq!(link.poll_timeout(), Some(t0 + ms(8)));
        let out = drain(&mut link);
        let times: Vec<Instant> = out.iter().map(|(t, _)| *t).collect();
        let want: Vec<Instant> = (1..=100).map(|k| t0 + ms(8) * k).collect();
        assert_eq!(times, want);
        let order: Vec<u32> = out.iter().map(|(_, d)| number(d)).collect();
        assert_eq!(order, (0..100).collect::<Vec<_>>());
        // 800,000 bits in 800 ms: 1 Mbit/s exactly.
        assert_eq!(times[99] - t0, ms(800));
        let s = link.stats();
        assert_eq!((s.released, s.overflowed, s.delayed), (100, 0, 0));
    }

    #[test]
    fn rate_only_delays_datagrams_that_find_the_link_busy() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            ..ImpairConfig::default()
        });
        // Slower than the rate (20 ms apart): each crosses in its own 8 ms.
        for i in 0..10u32 {
            let now = t0 + ms(20) * i;
            link.submit(now, sized(i, 1000));
            assert_eq!(link.poll_timeout(), Some(now + ms(8)));
            assert_eq!(link.poll_release(now + ms(8)), Some(sized(i, 1000)));
        }
        // Sizes count: 125 bytes take 1 ms, 2000 bytes 16 ms, behind each other.
        let t1 = t0 + Duration::from_secs(1);
        link.submit(t1, sized(10, 2000));
        link.submit(t1 + ms(1), sized(11, 125));
        link.submit(t1 + ms(30), sized(12, 125));
        let times: Vec<Instant> = drain(&mut link).into_iter().map(|(t, _)| t).collect();
        assert_eq!(times, [t1 + ms(16), t1 + ms(17), t1 + ms(31)]);
    }

    #[test]
    fn delay_starts_when_the_datagram_has_crossed_the_link() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            delay: ms(50),
            ..ImpairConfig::default()
        });
        for i in 0..10 {
            link.submit(t0, sized(i, 1000));
        }
        let times: Vec<Instant> = drain(&mut link).into_iter().map(|(t, _)| t).collect();
        let want: Vec<Instant> = (1..=10).map(|k| t0 + ms(8) * k + ms(50)).collect();
        assert_eq!(times, want);

        // With jitter as well: still in order, each within delay ± jitter of its crossing,
        // never sooner than the rate allows, and the same seed gives the same times.
        let cfg = ImpairConfig {
            rate: Some(rate("1mbit")),
            delay: ms(50),
            jitter: ms(10),
            seed: 5,
            ..ImpairConfig::default()
        };
        let run = || {
            let mut link = Impairment::new(cfg.clone());
            for i in 0..200 {
                link.submit(t0 + ms(4) * i, sized(i, 1000));
            }
            drain(&mut link)
        };
        let out = run();
        assert_eq!(out, run());
        let order: Vec<u32> = out.iter().map(|(_, d)| number(d)).collect();
        assert_eq!(order, (0..200).collect::<Vec<_>>());
        for (k, (t, _)) in out.iter().enumerate() {
            let crossed = t0 + ms(8) * (k as u32 + 1);
            assert!(*t >= crossed + ms(40), "datagram {k} left too soon");
        }
        let span = out[199].0 - out[0].0;
        assert!(span >= ms(8) * 199 - ms(20), "{span:?}");
    }

    #[test]
    fn a_full_queue_in_front_of_the_link_drops_and_counts() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            limit: 10,
            ..ImpairConfig::default()
        });
        for i in 0..25 {
            link.submit(t0, sized(i, 1000));
        }
        assert_eq!(link.len(), 10);
        assert_eq!(link.stats().overflowed, 15);
        // The dropped ones took no time on the link: the first ten leave 8 ms apart.
        let out = drain(&mut link);
        let order: Vec<u32> = out.iter().map(|(_, d)| number(d)).collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert_eq!(out[9].0, t0 + ms(80));

        // A sender at twice the rate for 2 s: the queue fills, then about every other
        // datagram overflows, and what comes out is 1 Mbit/s.
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            limit: 20,
            ..ImpairConfig::default()
        });
        let mut out = Vec::new();
        for i in 0..500u32 {
            let now = t0 + ms(4) * i;
            while let Some(d) = link.poll_release(now) {
                out.push((now, d));
            }
            link.submit(now, sized(i, 1000));
        }
        let s = link.stats();
        assert_eq!(s.submitted, 500);
        assert_eq!(s.overflowed + out.len() as u64 + link.len() as u64, 500);
        // In 2 s at 8 ms each, 250 datagrams cross; 20 are still queued at the end.
        assert!((248..=250).contains(&out.len()), "{}", out.len());
        assert_eq!(link.len(), 20);
        assert!((229..=232).contains(&s.overflowed), "{}", s.overflowed);
    }

    #[test]
    fn each_copy_takes_its_turn_on_the_link() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            duplicate: Probability::ONE,
            ..ImpairConfig::default()
        });
        for i in 0..5 {
            link.submit(t0, sized(i, 1000));
        }
        let times: Vec<Instant> = drain(&mut link).into_iter().map(|(t, _)| t).collect();
        let want: Vec<Instant> = (1..=10).map(|k| t0 + ms(8) * k).collect();
        assert_eq!(times, want);
    }

    /// The rate draws no random numbers: with a link fast enough never to queue, the seed-42
    /// run has exactly the faults it has without a rate.
    #[test]
    fn a_rate_changes_no_other_fault() {
        let t0 = clock::now();
        let mut link = Impairment::new(ImpairConfig {
            rate: Some(rate("1mbit")),
            ..mixed(42)
        });
        let out = run_link(&mut link, t0, 1000);
        let s = link.stats();
        assert_eq!(
            (s.dropped, s.duplicated, s.reordered, s.corrupted),
            (108, 38, 40, 13)
        );
        assert_eq!(out.len() as u64, 930);
        assert_eq!(s.overflowed, 0);
    }

    async fn udp_pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn wrapper_without_faults_is_a_plain_socket() {
        let (a, b) = udp_pair().await;
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let a = Impaired::new(a, ImpairConfig::default(), ImpairConfig::default());
        let b = Impaired::new(b, ImpairConfig::default(), ImpairConfig::default());
        for i in 0..20 {
            a.send_dgram(&numbered(i), &b_addr).await.unwrap();
        }
        let mut buf = [0u8; 100];
        for i in 0..20 {
            let got = b.recv_dgram(&mut buf).await.unwrap();
            assert_eq!(got.from, a_addr);
            assert_eq!(&buf[..got.copied], &numbered(i)[..]);
        }
        // A buffer too small still shows the truncation.
        b.send_dgram(&[1; 50], &a_addr).await.unwrap();
        let mut small = [0u8; 10];
        let got = a.recv_dgram(&mut small).await.unwrap();
        assert_eq!((got.copied, got.size), (10, 50));
        assert_eq!(a.stats().outgoing.released, 20);
    }

    #[tokio::test]
    async fn wrapper_delays_and_drops_each_way() {
        let (a, b) = udp_pair().await;
        let b_addr = b.local_addr().unwrap();
        let delayed = ImpairConfig {
            delay: ms(30),
            ..ImpairConfig::default()
        };
        let a = Impaired::new(a, delayed, ImpairConfig::default());
        let lossy = ImpairConfig {
            loss: Probability::ONE,
            ..ImpairConfig::default()
        };
        let b = Impaired::new(b, ImpairConfig::default(), lossy);
        let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let raw_addr = raw.local_addr().unwrap();

        // Outgoing delay: a lower bound only, so a busy machine cannot fail it.
        let sent = clock::now();
        a.send_dgram(b"late", &raw_addr).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = raw.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        assert!(clock::now() - sent >= ms(30));

        // Incoming loss: every datagram reaches b's socket and is dropped there.
        for _ in 0..5 {
            raw.send_to(b"lost", b_addr).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), async {
            while b.stats().incoming.dropped < 5 {
                tokio::time::sleep(ms(1)).await;
            }
        })
        .await
        .unwrap();
        let quiet = tokio::time::timeout(ms(20), b.recv_dgram(&mut buf)).await;
        assert!(quiet.is_err(), "a dropped datagram came through");
    }
}
