//! The one place that reads the clock.
//!
//! Protocol cores take time as an argument (see `clippy.toml`, which forbids `Instant::now`
//! and `SystemTime::now` elsewhere), so they can be tested with any time they like. Drivers
//! call these functions and pass the result in.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The monotonic clock, for measuring durations.
pub fn now() -> Instant {
    Instant::now()
}

/// Time passed since `t` (zero if `t` is in the future): `Instant::elapsed`, here so that
/// every clock read is in this file.
pub fn since(t: Instant) -> Duration {
    Instant::now().saturating_duration_since(t)
}

/// The monotonic clock as tokio sees it (paused and advanced in tests with
/// `start_paused`), for deadlines handed to `tokio::time::sleep_until`.
pub fn tokio_now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// The wall clock.
pub fn wall() -> SystemTime {
    SystemTime::now()
}

/// Microseconds since the Unix epoch (0 if the clock is set before 1970).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The wall clock in nanoseconds since the Unix epoch (0 before 1970): the clock kernel
/// packet timestamps are on.
pub fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
