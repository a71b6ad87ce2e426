//! The one place that reads the clock.
//!
//! Protocol cores take time as an argument (see `clippy.toml`, which forbids `Instant::now`
//! and `SystemTime::now` elsewhere), so they can be tested with any time they like. Drivers
//! call these functions and pass the result in.
#![allow(clippy::disallowed_methods)]

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The monotonic clock, for measuring durations.
pub fn now() -> Instant {
    Instant::now()
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
