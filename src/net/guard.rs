//! The UDP reflection guard: rules that keep a datagram service from being used against others.
//!
//! A UDP server answers whatever address the request claims to come from. An attacker who
//! forges a victim's address gets the server to send the victim its reply, and chargen,
//! qotd and daytime replies are larger than the requests (amplification). Two services
//! pointed at each other (echo ↔ chargen, the classic "ping-pong" of RFC 864's era) loop
//! forever. The guard:
//!
//! - drops datagrams from source port 0 (no real client sends from it);
//! - drops datagrams whose source port is one of the simple services' ports (a loop);
//! - rate-limits replies per source address with a token bucket.
//!
//! It is sans-IO: [`Guard::check`] takes the time as an argument.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Allow,
    /// Source port 0.
    PortZero,
    /// The source port is another simple service's.
    ServicePort(u16),
    /// This source has had its share of replies.
    RateLimited,
}

/// Guard settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Replies per second per source address, sustained, and the burst a source may get
    /// before the rate applies; `None`: no rate limit (for echo, whose reply is no larger
    /// than the request, so it amplifies nothing).
    pub limit: Option<(f64, f64)>,
    /// Source ports that are dropped (the simple services' ports, and the ports of every
    /// service the process runs).
    pub blocked_ports: Vec<u16>,
    /// Most sources tracked at once; beyond it the stalest are forgotten.
    pub max_sources: usize,
}

/// The RFC ports of the simple services (echo, discard, daytime, qotd, chargen, time): a
/// datagram from one of them is another server's reply, and answering it starts a loop.
pub const SIMPLE_SERVICE_PORTS: [u16; 6] = [7, 9, 13, 17, 19, 37];

/// The default rate limit of services that amplify: replies per second and burst.
pub const AMPLIFIER_LIMIT: (f64, f64) = (20.0, 40.0);

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            limit: Some(AMPLIFIER_LIMIT),
            blocked_ports: SIMPLE_SERVICE_PORTS.to_vec(),
            max_sources: 4096,
        }
    }
}

impl GuardConfig {
    /// Also drops datagrams from `port` (a port this process serves, learnt after binding).
    pub fn block_source_port(&mut self, port: u16) {
        if port != 0 && !self.blocked_ports.contains(&port) {
            self.blocked_ports.push(port);
        }
    }

    /// A guard with `limit` that blocks the simple services' RFC ports and `ports` (the
    /// ports of every service this process runs) as sources.
    pub fn for_services(limit: Option<(f64, f64)>, ports: impl IntoIterator<Item = u16>) -> Self {
        let mut blocked: Vec<u16> = SIMPLE_SERVICE_PORTS.to_vec();
        blocked.extend(ports.into_iter().filter(|&p| p != 0));
        blocked.sort_unstable();
        blocked.dedup();
        GuardConfig {
            limit,
            blocked_ports: blocked,
            ..GuardConfig::default()
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-source token buckets and port rules.
#[derive(Debug)]
pub struct Guard {
    cfg: GuardConfig,
    buckets: HashMap<IpAddr, Bucket>,
}

impl Guard {
    /// A guard with these settings.
    pub fn new(cfg: GuardConfig) -> Self {
        Self {
            cfg,
            buckets: HashMap::new(),
        }
    }

    /// Decides about one datagram from `from` arriving at `now`.
    pub fn check(&mut self, from: SocketAddr, now: Instant) -> Verdict {
        if from.port() == 0 {
            return Verdict::PortZero;
        }
        if self.cfg.blocked_ports.contains(&from.port()) {
            return Verdict::ServicePort(from.port());
        }
        let Some((rate, burst)) = self.cfg.limit else {
            return Verdict::Allow;
        };
        let ip = from.ip().to_canonical();
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.cfg.max_sources {
            self.evict(now);
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allow
        } else {
            Verdict::RateLimited
        }
    }

    /// Forgets sources whose buckets have refilled (they are no different from new ones),
    /// and if that frees nothing, the least recently seen half.
    fn evict(&mut self, now: Instant) {
        let (rate, burst) = self.cfg.limit.unwrap_or(AMPLIFIER_LIMIT);
        let full_after = Duration::from_secs_f64(burst / rate.max(f64::MIN_POSITIVE));
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < full_after);
        if self.buckets.len() >= self.cfg.max_sources && !self.buckets.is_empty() {
            let mut ages: Vec<Instant> = self.buckets.values().map(|b| b.last).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            self.buckets.retain(|_, b| b.last > cutoff);
        }
    }

    /// Sources currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn port_rules() {
        let mut g = Guard::new(GuardConfig::default());
        let t = crate::net::clock::now();
        assert_eq!(g.check(addr("127.0.0.1:0"), t), Verdict::PortZero);
        assert_eq!(g.check(addr("127.0.0.1:19"), t), Verdict::ServicePort(19));
        assert_eq!(g.check(addr("127.0.0.1:40000"), t), Verdict::Allow);
    }

    #[test]
    fn burst_then_rate() {
        let cfg = GuardConfig {
            limit: Some((10.0, 5.0)),
            ..GuardConfig::default()
        };
        let mut g = Guard::new(cfg);
        let t0 = crate::net::clock::now();
        let a = addr("10.0.0.1:5000");
        let allowed = (0..20).filter(|_| g.check(a, t0) == Verdict::Allow).count();
        assert_eq!(allowed, 5, "the burst");
        // Another source has its own bucket.
        assert_eq!(g.check(addr("10.0.0.2:5000"), t0), Verdict::Allow);
        // 0.35 s later: 3.5 tokens refilled, so 3 more replies.
        let t1 = t0 + Duration::from_millis(350);
        let allowed = (0..20).filter(|_| g.check(a, t1) == Verdict::Allow).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn no_limit_keeps_the_port_rules() {
        let mut g = Guard::new(GuardConfig::for_services(None, [3500]));
        let t = crate::net::clock::now();
        let a = addr("127.0.0.1:40000");
        assert!((0..1000).all(|_| g.check(a, t) == Verdict::Allow));
        assert_eq!(
            g.check(addr("127.0.0.1:3500"), t),
            Verdict::ServicePort(3500)
        );
        assert_eq!(g.check(addr("127.0.0.1:13"), t), Verdict::ServicePort(13));
        assert_eq!(g.check(addr("127.0.0.1:0"), t), Verdict::PortZero);
    }

    #[test]
    fn a_zero_sized_table_does_not_panic() {
        let mut g = Guard::new(GuardConfig {
            max_sources: 0,
            ..GuardConfig::default()
        });
        assert_eq!(
            g.check(addr("10.0.0.1:5000"), crate::net::clock::now()),
            Verdict::Allow
        );
    }

    #[test]
    fn table_stays_bounded() {
        let cfg = GuardConfig {
            max_sources: 100,
            ..GuardConfig::default()
        };
        let mut g = Guard::new(cfg);
        let t = crate::net::clock::now();
        for i in 0..10_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            g.check(
                SocketAddr::from((ip, 4000)),
                t + Duration::from_micros(i as u64),
            );
        }
        assert!(g.tracked() <= 100, "{}", g.tracked());
    }
}
