//! When to send probes (RFC 2681 §3.6 and RFC 2330 §11.1.1). Sans-IO: offsets from T0, from
//! a seeded generator; the driver adds them to its clock.
//!
//! A Poisson process of rate λ has independent gaps, each exponentially distributed with
//! mean 1/λ: a probe sent that way cannot fall into step with a periodic event on the path
//! (a timer, a routing update) and sees the path's state as a random observer would (RFC 2330
//! §11.1.1, "PASTA"). A gap is −ln(U)/λ for U uniform on (0, 1]. The periodic schedule is
//! there for comparison with tools that only do that (ping, irtt).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The highest probe rate accepted without `--force` (probes per second): §5 asks that the
/// measurement not be a denial of service, and a thousand small datagrams a second is far
/// above what measuring a delay needs.
pub const MAX_RATE: f64 = 1000.0;

/// The lowest probe rate: one probe every 1,000 s on average. Below it a run of a few probes
/// would wait for days for its first one.
pub const MIN_RATE: f64 = 0.001;

/// How the send times are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exponential gaps (the RFC's sample).
    Poisson,
    /// Equal gaps.
    Periodic,
}

/// Why a rate is refused.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum RateError {
    /// Zero, negative or not a number.
    #[error("a probe rate must be a positive number of probes per second, not {0}")]
    NotPositive(f64),
    /// Below [`MIN_RATE`].
    #[error("{0} probes/s is below {MIN_RATE} (one probe every 1,000 s): the run would never end")]
    TooSlow(f64),
    /// Above [`MAX_RATE`] without `--force`.
    #[error(
        "{0} probes/s is above the {MAX_RATE} a measurement should send (RFC 2681 §5: not a \
         denial of service); --force sends it anyway"
    )]
    TooFast(f64),
}

/// Checks a rate λ (probes per second).
pub fn check_rate(rate: f64, force: bool) -> Result<f64, RateError> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(RateError::NotPositive(rate));
    }
    if rate < MIN_RATE {
        return Err(RateError::TooSlow(rate));
    }
    if rate > MAX_RATE && !force {
        return Err(RateError::TooFast(rate));
    }
    Ok(rate)
}

/// The send times of one sample, as offsets from T0.
#[derive(Debug)]
pub struct Schedule {
    kind: Kind,
    mean: f64,
    rng: StdRng,
    at: Duration,
}

impl Schedule {
    /// A schedule of rate λ (`rate` probes per second, already checked); the same `seed`
    /// gives the same times.
    pub fn new(kind: Kind, rate: f64, seed: u64) -> Self {
        Schedule {
            kind,
            mean: 1.0 / rate,
            rng: StdRng::seed_from_u64(seed),
            at: Duration::ZERO,
        }
    }

    /// The next gap.
    pub fn gap(&mut self) -> Duration {
        let seconds = match self.kind {
            Kind::Periodic => self.mean,
            Kind::Poisson => {
                // U on (0, 1]: `random` gives [0, 1).
                let u = 1.0 - self.rng.random::<f64>();
                -u.ln() * self.mean
            }
        };
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }

    /// The next send time after T0. The first probe goes one gap after T0, as a Poisson
    /// process's first arrival does.
    pub fn next_send(&mut self) -> Duration {
        self.at = self.at.saturating_add(self.gap());
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(kind: Kind, rate: f64, seed: u64, n: usize) -> Vec<f64> {
        let mut s = Schedule::new(kind, rate, seed);
        (0..n).map(|_| s.gap().as_secs_f64()).collect()
    }

    /// 10,000 Poisson gaps at λ = 100/s: their mean is 10 ms within four standard errors,
    /// and the Kolmogorov-Smirnov distance to the exponential distribution is below the 1 %
    /// critical value, 1.63 / √n.
    #[test]
    fn poisson_gaps_are_exponential_with_mean_one_over_lambda() {
        const N: usize = 10_000;
        let rate = 100.0;
        for seed in [1, 2, 3] {
            let mut g = gaps(Kind::Poisson, rate, seed, N);
            let mean = g.iter().sum::<f64>() / N as f64;
            // The standard error of the mean of an exponential is its mean / √n: 1 %.
            assert!(
                (mean - 0.01).abs() < 4.0 * 0.01 / (N as f64).sqrt(),
                "seed {seed}: {mean}"
            );
            g.sort_by(f64::total_cmp);
            let d = g
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let f = 1.0 - (-rate * x).exp();
                    (f - i as f64 / N as f64)
                        .abs()
                        .max(((i + 1) as f64 / N as f64 - f).abs())
                })
                .fold(0.0, f64::max);
            assert!(d < 1.63 / (N as f64).sqrt(), "seed {seed}: KS distance {d}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_times_and_another_does_not() {
        assert_eq!(
            gaps(Kind::Poisson, 10.0, 7, 50),
            gaps(Kind::Poisson, 10.0, 7, 50)
        );
        assert_ne!(
            gaps(Kind::Poisson, 10.0, 7, 50),
            gaps(Kind::Poisson, 10.0, 8, 50)
        );
    }

    #[test]
    fn periodic_gaps_are_equal_and_send_times_add_up() {
        assert!(gaps(Kind::Periodic, 4.0, 1, 10).iter().all(|&g| g == 0.25));
        let mut s = Schedule::new(Kind::Periodic, 4.0, 1);
        let times: Vec<Duration> = (0..3).map(|_| s.next_send()).collect();
        assert_eq!(times, [250, 500, 750].map(Duration::from_millis));
        let mut p = Schedule::new(Kind::Poisson, 50.0, 9);
        let t: Vec<Duration> = (0..100).map(|_| p.next_send()).collect();
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn rates_are_checked_against_the_ceiling() {
        assert_eq!(check_rate(10.0, false), Ok(10.0));
        assert_eq!(check_rate(MAX_RATE, false), Ok(MAX_RATE));
        assert_eq!(check_rate(5000.0, false), Err(RateError::TooFast(5000.0)));
        assert_eq!(check_rate(5000.0, true), Ok(5000.0));
        assert_eq!(check_rate(MIN_RATE, false), Ok(MIN_RATE));
        assert_eq!(check_rate(1e-9, true), Err(RateError::TooSlow(1e-9)));
        for bad in [0.0, -1.0, f64::INFINITY] {
            assert_eq!(check_rate(bad, true), Err(RateError::NotPositive(bad)));
        }
        assert!(matches!(
            check_rate(f64::NAN, true),
            Err(RateError::NotPositive(_))
        ));
        assert!(
            RateError::TooFast(5000.0)
                .to_string()
                .contains("RFC 2681 §5")
        );
    }
}
