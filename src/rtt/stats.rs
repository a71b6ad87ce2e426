//! RFC 2681 §4: the statistics of a Type-P-Round-trip-Delay-Poisson-Stream. Sans-IO.
//!
//! A sample is the list of its singletons' dT values, each a [`Dt`]: a duration, or
//! undefined (no reply came within the loss threshold). In every statistic "undefined values
//! are treated as infinitely large" (§4.1–§4.3), which is what `None` means here: the
//! ordering puts it after every duration.
//!
//! The percentile is RFC 2330 §11.3's empirical one: the smallest value x of the sample for
//! which the fraction of values ≤ x is at least X %. So the 50th percentile of an even
//! sample is the lower of the two middle values, while the median (§4.2) is their mean.

use std::time::Duration;

/// One singleton's round-trip time: `None` when it is undefined (+∞ in the statistics).
pub type Dt = Option<Duration>;

/// The sample's values in increasing order, undefined ones (+∞) last.
fn sorted(sample: &[Dt]) -> Vec<Dt> {
    let mut v = sample.to_vec();
    // `None` is +∞: after every `Some`.
    v.sort_by(|a, b| match (a, b) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    v
}

/// §4.1, Type-P-Round-trip-Delay-Percentile: the `x`th percentile (0 ≤ x ≤ 100) of the
/// sample, undefined values as +∞. `None` for an empty sample or an `x` outside 0..=100;
/// `Some(None)` when the percentile is +∞ (too many probes were lost).
pub fn percentile(sample: &[Dt], x: f64) -> Option<Dt> {
    if sample.is_empty() || !(0.0..=100.0).contains(&x) {
        return None;
    }
    let v = sorted(sample);
    let n = v.len();
    // The smallest rank k with k / n ≥ x / 100, at least the first value. Computed in
    // integers where possible so 50 % of 4 is exactly rank 2.
    let k = ((x / 100.0) * n as f64 - 1e-9).ceil().max(1.0) as usize;
    Some(v[k.min(n) - 1])
}

/// §4.2, Type-P-Round-trip-Delay-Median: the middle value, or for an even count the mean of
/// the two central values (+∞ if either is). `None` for an empty sample.
pub fn median(sample: &[Dt]) -> Option<Dt> {
    if sample.is_empty() {
        return None;
    }
    let v = sorted(sample);
    let n = v.len();
    if n % 2 == 1 {
        return Some(v[n / 2]);
    }
    Some(match (v[n / 2 - 1], v[n / 2]) {
        // In nanoseconds, so the mean of 3 ns and 5 ns is 4 ns (rounded down when odd).
        (Some(a), Some(b)) => {
            let mean = (a.as_nanos() + b.as_nanos()) / 2;
            Some(u64::try_from(mean).map_or(Duration::MAX, Duration::from_nanos))
        }
        _ => None,
    })
}

/// §4.3, Type-P-Round-trip-Delay-Minimum: the least value, undefined if every value is.
/// `None` for an empty sample.
pub fn minimum(sample: &[Dt]) -> Option<Dt> {
    if sample.is_empty() {
        return None;
    }
    Some(sample.iter().flatten().min().copied())
}

/// §4.4, Type-P-Round-trip-Delay-Inverse-Percentile: the fraction (0 to 1) of all the values
/// that are at most `threshold` (an undefined value never is). `None` for an empty sample.
pub fn inverse_percentile(sample: &[Dt], threshold: Duration) -> Option<f64> {
    if sample.is_empty() {
        return None;
    }
    let within = sample.iter().flatten().filter(|d| **d <= threshold).count();
    Some(within as f64 / sample.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Dt {
        Some(Duration::from_micros(v))
    }

    /// Hand-made samples, in the RFC's terms: an odd one, an even one, with losses.
    #[test]
    fn an_odd_sample_without_losses() {
        let s = [us(30), us(10), us(50), us(20), us(40)];
        assert_eq!(minimum(&s), Some(us(10)));
        assert_eq!(median(&s), Some(us(30)));
        // F(x) ≥ 50 %: 3 of 5 values are ≤ 30.
        assert_eq!(percentile(&s, 50.0), Some(us(30)));
        assert_eq!(percentile(&s, 20.0), Some(us(10)));
        assert_eq!(percentile(&s, 20.1), Some(us(20)));
        assert_eq!(percentile(&s, 90.0), Some(us(50)));
        assert_eq!(percentile(&s, 100.0), Some(us(50)));
        assert_eq!(percentile(&s, 0.0), Some(us(10)));
        assert_eq!(inverse_percentile(&s, Duration::from_micros(30)), Some(0.6));
        assert_eq!(inverse_percentile(&s, Duration::from_micros(9)), Some(0.0));
        assert_eq!(inverse_percentile(&s, Duration::from_micros(50)), Some(1.0));
    }

    #[test]
    fn an_even_sample_has_the_mean_of_the_central_values_as_median() {
        let s = [us(40), us(10), us(20), us(35)];
        assert_eq!(median(&s), Some(Some(Duration::from_micros(55) / 2)));
        // The percentile is a value of the sample: 50 % of 4 is the 2nd.
        assert_eq!(percentile(&s, 50.0), Some(us(20)));
        assert_eq!(percentile(&s, 50.1), Some(us(35)));
        // Odd nanoseconds are not lost by halving each.
        let odd = [Some(Duration::from_nanos(3)), Some(Duration::from_nanos(5))];
        assert_eq!(median(&odd), Some(Some(Duration::from_nanos(4))));
        let odd = [Some(Duration::from_nanos(3)), Some(Duration::from_nanos(4))];
        assert_eq!(median(&odd), Some(Some(Duration::from_nanos(3))));
    }

    /// Lost probes are +∞: they push the upper percentiles to undefined, never the lower
    /// ones, and count in the inverse-percentile's denominator.
    #[test]
    fn losses_count_as_infinitely_large() {
        let s = [us(10), None, us(30), None, us(20)];
        assert_eq!(minimum(&s), Some(us(10)));
        assert_eq!(median(&s), Some(us(30)));
        assert_eq!(percentile(&s, 60.0), Some(us(30)));
        assert_eq!(percentile(&s, 60.1), Some(None));
        assert_eq!(percentile(&s, 99.0), Some(None));
        assert_eq!(inverse_percentile(&s, Duration::from_secs(3600)), Some(0.6));
        // Even, with a loss in the middle: the median is +∞.
        let s = [us(10), None, None, us(20)];
        assert_eq!(median(&s), Some(None));
        assert_eq!(percentile(&s, 50.0), Some(us(20)));
        // All lost: the minimum is undefined.
        let s = [None, None];
        assert_eq!(minimum(&s), Some(None));
        assert_eq!(median(&s), Some(None));
        assert_eq!(inverse_percentile(&s, Duration::MAX), Some(0.0));
    }

    #[test]
    fn an_empty_sample_or_a_percent_out_of_range_has_no_statistic() {
        assert_eq!(minimum(&[]), None);
        assert_eq!(median(&[]), None);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(inverse_percentile(&[], Duration::ZERO), None);
        assert_eq!(percentile(&[us(1)], -1.0), None);
        assert_eq!(percentile(&[us(1)], 100.5), None);
        assert_eq!(percentile(&[us(1)], f64::NAN), None);
    }

    proptest::proptest! {
        /// For any sample: the percentile is a member of it, the fraction of values at or
        /// below it is at least x %, and below any smaller member it is less than x %.
        #[test]
        fn the_percentile_is_the_smallest_value_with_enough_below(
            values in proptest::collection::vec(proptest::option::weighted(0.8, 0u64..1000), 1..60),
            x in 0.0f64..=100.0,
        ) {
            let s: Vec<Dt> = values.iter().map(|v| v.map(Duration::from_micros)).collect();
            let p = percentile(&s, x).unwrap();
            proptest::prop_assert!(s.contains(&p));
            let at_or_below = |t: Dt| s.iter().filter(|v| match (v, t) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => *a <= b,
            }).count() as f64 / s.len() as f64 * 100.0;
            proptest::prop_assert!(at_or_below(p) + 1e-6 >= x);
            for v in s.iter().filter(|v| sorted(&[**v, p])[0] == **v && **v != p) {
                proptest::prop_assert!(at_or_below(*v) < x + 1e-6);
            }
        }
    }
}
