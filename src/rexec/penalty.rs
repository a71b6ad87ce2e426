//! The brute-force brake, sans-IO (time is an argument): failed logins for one user name from
//! one source address make the next tries for that pair wait longer and longer.
//!
//! ```text
//!  failures for (source, user):  0 1 2 3   4   5   6   7    8 …
//!  wait before the next check:   0 0 0 1s  2s  4s  8s  16s  … 60 s at most
//! ```
//!
//! - While a pair has fewer than [`FREE`] failures, up to `FREE − failures` checks for it run
//!   at once (ten scripts logging in together are not slowed); more wait for a slot
//!   ([`Admit::Busy`]).
//! - From [`FREE`] failures on, the pair's checks run one at a time, each no sooner than the
//!   wait above after the previous failure. Fifty tries on fifty parallel connections queue
//!   one behind the other instead of running at once.
//! - A check that would have to wait longer than [`MAX_WAIT`] is not made: the try is answered
//!   at once with `AUTH_FAIL` and the time to wait, and does not count as a failure (nothing
//!   was learned).
//!
//! The key is the pair, not the user name alone (a stranger cannot lock a user out from
//! elsewhere) nor the source alone (another user behind the same address logs in normally).
//! A success forgets the pair; so does [`FORGET`] without a failure. The table holds at most
//! [`MAX_ENTRIES`] pairs, the oldest going first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed before tries wait.
pub const FREE: u32 = 3;
/// The longest wait between two tries for one pair.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// The longest a try waits for its turn before it is answered without being checked.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// A pair's failures are forgotten this long after the last one.
pub const FORGET: Duration = Duration::from_secs(15 * 60);
/// Most pairs remembered.
pub const MAX_ENTRIES: usize = 10_000;

/// The wait after `failures` failures.
pub fn delay(failures: u32) -> Duration {
    if failures < FREE {
        return Duration::ZERO;
    }
    let exp = (failures - FREE).min(6);
    (Duration::from_secs(1) * (1u32 << exp)).min(MAX_DELAY)
}

/// What a try should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Check the password at this time (now, or later), then report with [`Brake::finish`].
    At(Instant),
    /// No slot for this pair now: ask again when another try finishes.
    Busy,
    /// Do not check: answer at once that the next try is worth making only after this long.
    Refuse(Duration),
}

#[derive(Debug, Clone)]
struct Entry {
    failures: u32,
    /// Checks admitted and not finished.
    pending: u32,
    /// The earliest next check (after the last failure).
    next: Instant,
    last: Instant,
}

/// Failures per (source, user).
#[derive(Debug, Default)]
pub struct Brake {
    entries: HashMap<(IpAddr, String), Entry>,
}

impl Brake {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pairs remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no pair is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A try for `user` from `source` at `now`.
    pub fn admit(&mut self, source: IpAddr, user: &str, now: Instant) -> Admit {
        self.expire(now);
        let key = (source, user.to_string());
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_ENTRIES {
            // The oldest idle pair goes (a flood of names cannot grow the table), not one that
            // is braked (or a spray of 10,000 names would buy three free tries again), unless
            // braked pairs alone fill four times the table.
            let braked_too = self.entries.len() >= 4 * MAX_ENTRIES;
            if let Some(oldest) = self
                .entries
                .iter()
                .filter(|(_, e)| e.pending == 0 && (braked_too || e.failures < FREE))
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        let e = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            pending: 0,
            next: now,
            last: now,
        });
        let slots = FREE.saturating_sub(e.failures).max(1);
        if e.pending >= slots {
            return Admit::Busy;
        }
        let start = e.next.max(now);
        if start.duration_since(now) > MAX_WAIT {
            return Admit::Refuse(start.duration_since(now));
        }
        e.pending += 1;
        e.last = now;
        Admit::At(start)
    }

    /// The try admitted for `user` from `source` ended: `ok` forgets the pair's failures.
    pub fn finish(&mut self, source: IpAddr, user: &str, ok: bool, now: Instant) {
        let key = (source, user.to_string());
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        e.pending = e.pending.saturating_sub(1);
        if ok {
            e.failures = 0;
            e.next = now;
        } else {
            e.failures = e.failures.saturating_add(1);
            e.next = now + delay(e.failures);
        }
        e.last = now;
        if e.failures == 0 && e.pending == 0 {
            self.entries.remove(&key);
        }
    }

    /// A try admitted and then abandoned unchecked (its connection went away): its slot is
    /// given back, no failure counted.
    pub fn abandon(&mut self, source: IpAddr, user: &str) {
        let key = (source, user.to_string());
        if let Some(e) = self.entries.get_mut(&key) {
            e.pending = e.pending.saturating_sub(1);
            if e.failures == 0 && e.pending == 0 {
                self.entries.remove(&key);
            }
        }
    }

    /// The failures counted for a pair.
    pub fn failures(&self, source: IpAddr, user: &str) -> u32 {
        self.entries
            .get(&(source, user.to_string()))
            .map_or(0, |e| e.failures)
    }

    fn expire(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| e.pending > 0 || now.duration_since(e.last) < FORGET);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn the_schedule() {
        let d: Vec<u64> = (0..12).map(|f| delay(f).as_secs()).collect();
        assert_eq!(d, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn sequential_failures_slow_down() {
        let t0 = crate::net::clock::now();
        let mut b = Brake::new();
        let mut now = t0;
        let mut starts = Vec::new();
        for _ in 0..7 {
            match b.admit(A, "ana", now) {
                Admit::At(at) => {
                    starts.push(at.duration_since(t0).as_secs());
                    now = at;
                    b.finish(A, "ana", false, now);
                }
                other => panic!("{other:?} too early"),
            }
        }
        // Free, free, free, then 1 s, 2 s, 4 s, 8 s apart.
        assert_eq!(starts, [0, 0, 0, 1, 3, 7, 15]);
        // The next would wait 16 s: refused, and not counted.
        assert_eq!(
            b.admit(A, "ana", now),
            Admit::Refuse(Duration::from_secs(16))
        );
        assert_eq!(b.failures(A, "ana"), 7);
    }

    #[test]
    fn parallel_tries_take_slots_then_queue() {
        let t0 = crate::net::clock::now();
        let mut b = Brake::new();
        // Three at once for a fresh pair; the fourth waits for a slot.
        for _ in 0..3 {
            assert_eq!(b.admit(A, "ana", t0), Admit::At(t0));
        }
        assert_eq!(b.admit(A, "ana", t0), Admit::Busy);
        // The three fail: from now on one at a time, 1 s after the last failure.
        let t1 = t0 + Duration::from_millis(70);
        for _ in 0..3 {
            b.finish(A, "ana", false, t1);
        }
        assert_eq!(
            b.admit(A, "ana", t1),
            Admit::At(t1 + Duration::from_secs(1))
        );
        assert_eq!(b.admit(A, "ana", t1), Admit::Busy, "one in flight");
    }

    #[test]
    fn parallel_logins_that_succeed_are_not_slowed() {
        let t0 = crate::net::clock::now();
        let mut b = Brake::new();
        let mut now = t0;
        let mut done = 0;
        while done < 20 {
            let mut batch = 0;
            while let Admit::At(at) = b.admit(A, "ana", now) {
                assert_eq!(at, now, "no wait");
                batch += 1;
            }
            now += Duration::from_millis(70);
            for _ in 0..batch {
                b.finish(A, "ana", true, now);
            }
            done += batch;
        }
        assert!(now - t0 < Duration::from_secs(1), "{:?}", now - t0);
        assert!(b.is_empty());
    }

    #[test]
    fn other_users_and_sources_are_not_slowed() {
        let now = crate::net::clock::now();
        let mut b = Brake::new();
        for _ in 0..10 {
            if let Admit::At(_) = b.admit(A, "ana", now) {
                b.finish(A, "ana", false, now);
            }
        }
        assert_eq!(b.admit(A, "bob", now), Admit::At(now));
        assert_eq!(b.admit(B, "ana", now), Admit::At(now));
    }

    #[test]
    fn success_and_time_forget() {
        let now = crate::net::clock::now();
        let mut b = Brake::new();
        for _ in 0..5 {
            if let Admit::At(at) = b.admit(A, "ana", now) {
                b.finish(A, "ana", false, at);
            }
        }
        assert_eq!(b.failures(A, "ana"), 5);
        let later = now + FORGET + Duration::from_secs(120);
        assert_eq!(b.admit(A, "ana", later), Admit::At(later));
        b.finish(A, "ana", true, later);
        assert_eq!(b.failures(A, "ana"), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let now = crate::net::clock::now();
        let mut b = Brake::new();
        for i in 0..(MAX_ENTRIES + 100) {
            let user = format!("u{i}");
            if let Admit::At(_) = b.admit(A, &user, now) {
                b.finish(A, &user, false, now);
            }
        }
        assert_eq!(b.len(), MAX_ENTRIES);
    }

    #[test]
    fn a_spray_of_names_does_not_free_a_braked_pair() {
        let now = crate::net::clock::now();
        let mut b = Brake::new();
        for _ in 0..3 {
            if let Admit::At(_) = b.admit(A, "ana", now) {
                b.finish(A, "ana", false, now);
            }
        }
        let later = now + Duration::from_millis(1);
        for i in 0..(MAX_ENTRIES + 100) {
            let user = format!("u{i}");
            if let Admit::At(_) = b.admit(A, &user, later) {
                b.finish(A, &user, false, later);
            }
        }
        assert_eq!(b.len(), MAX_ENTRIES);
        assert_eq!(b.failures(A, "ana"), 3, "ana is still braked");
    }
}
