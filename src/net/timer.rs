//! A timer with the kernel's precision, for loops whose timing is what they are for (the
//! impairment relay's `--delay`).
//!
//! tokio's timers tick in whole milliseconds and round a deadline up to the next tick, so a
//! 10 ms delay becomes 10 to 11 ms, and the error grows with every hop. A Linux `timerfd` on
//! `CLOCK_MONOTONIC` (the clock `Instant` reads) fires within microseconds of its deadline and
//! wakes the task through the same epoll as any socket. One timer per loop, re-armed only
//! when the deadline changes, so a loop that waits on the same deadline many times costs one
//! `timerfd_settime`.

use std::io;
use std::time::Instant;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::clock;

/// `TimerFd` with the `AsRawFd` that `AsyncFd` wants.
#[derive(Debug)]
struct Fd(TimerFd);

impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

/// A one-shot timer on a `timerfd`.
#[derive(Debug)]
pub struct PreciseTimer {
    fd: AsyncFd<Fd>,
    armed: Option<Instant>,
}

impl PreciseTimer {
    /// A timer, not armed. Must be called inside a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let t = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: `Fd` owns the timerfd and returns that same descriptor for as long as it
        // lives, which is what registration requires.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(t), Interest::READABLE)? };
        Ok(PreciseTimer { fd, armed: None })
    }

    /// Waits until `deadline` (forever for `None`). Cancel-safe: dropped before it fires, the
    /// timer stays armed, and the next call with the same deadline waits on it again.
    pub async fn sleep_until(&mut self, deadline: Option<Instant>) {
        let Some(t) = deadline else {
            return std::future::pending().await;
        };
        if self.armed != Some(t) {
            let now = clock::now();
            if t <= now {
                return;
            }
            let spec = TimeSpec::from_duration(t - now);
            if self
                .fd
                .get_ref()
                .0
                .set(Expiration::OneShot(spec), TimerSetTimeFlags::empty())
                .is_err()
            {
                // Never expected; tokio's timer is the fallback, a millisecond coarser.
                return tokio::time::sleep_until(t.into()).await;
            }
            self.armed = Some(t);
        }
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return tokio::time::sleep_until(t.into()).await;
            };
            let mut ticks = [0u8; 8];
            match ready.try_io(|fd| {
                nix::unistd::read(&fd.get_ref().0, &mut ticks).map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => {
                    self.armed = None;
                    return;
                }
                // Readiness left from an earlier arming: cleared by try_io, wait again.
                Ok(Err(_)) | Err(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Deadlines that are not whole milliseconds: tokio's timer rounds each up to its next
    /// millisecond tick (half a millisecond late on average), this one does not. Both are
    /// measured in the same run, interleaved, so a loaded machine slows both alike; the
    /// medians are compared.
    #[tokio::test]
    async fn fires_closer_to_its_deadline_than_tokios_timer() {
        let mut timer = PreciseTimer::new().unwrap();
        let (mut ours, mut tokios) = (Vec::new(), Vec::new());
        for i in 0..30u64 {
            let gap = Duration::from_micros(1_100 + i * 29);
            let want = clock::now() + gap;
            timer.sleep_until(Some(want)).await;
            assert!(clock::now() >= want, "woke early");
            ours.push(clock::now().saturating_duration_since(want));
            let want = clock::now() + gap;
            tokio::time::sleep_until(want.into()).await;
            tokios.push(clock::now().saturating_duration_since(want));
        }
        ours.sort();
        tokios.sort();
        let (a, b) = (ours[15], tokios[15]);
        assert!(a < b, "median lateness: timerfd {a:?}, tokio {b:?}");
        assert!(a < Duration::from_millis(5), "{a:?}");
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_the_timer_armed() {
        let mut timer = PreciseTimer::new().unwrap();
        let t = clock::now() + Duration::from_millis(30);
        let cut = tokio::time::timeout(Duration::from_millis(5), timer.sleep_until(Some(t))).await;
        assert!(cut.is_err());
        timer.sleep_until(Some(t)).await;
        assert!(clock::now() >= t);
        // A deadline in the past returns at once.
        timer.sleep_until(Some(clock::now())).await;
    }
}
