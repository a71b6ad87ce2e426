//! `--limit-rate`: a token bucket, with time as an argument.

use std::time::{Duration, Instant};

/// `--limit-rate`: a token bucket holding at most `burst` bytes, refilled at `rate` bytes a
/// second. Spending more than it holds puts it in debt, paid off by waiting.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` bytes, refilled at `rate` bytes a second.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate.max(1) as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }

    /// Takes `n` bytes at `now`; returns how long to wait before going on.
    pub fn take(&mut self, now: Instant, n: usize) -> Duration {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_paces() {
        let t0 = crate::net::clock::now();
        let mut b = TokenBucket::new(1000, 500);
        assert_eq!(b.take(t0, 500), Duration::ZERO);
        assert_eq!(b.take(t0, 500), Duration::from_millis(500));
        // Half a second later the debt is paid; another 100 bytes need 0.1 s.
        let w = b.take(t0 + Duration::from_millis(500), 100);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-9, "{w:?}");
        // Idle time refills at most `burst`.
        assert_eq!(b.take(t0 + Duration::from_secs(100), 500), Duration::ZERO);
        assert!(b.take(t0 + Duration::from_secs(100), 1) > Duration::ZERO);
    }
}
