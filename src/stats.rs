//! Summaries of samples: the minimum, mean, percentiles and maximum of round-trip times, from an
//! HDR histogram (3 significant figures). Echo's statistics line uses it; the RTT meter will.

use serde::Serialize;

/// A summary of samples in microseconds. Fields in alphabetical order, as they appear in
/// `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// The largest sample.
    pub max: u64,
    /// The mean.
    pub mean: f64,
    /// The smallest sample.
    pub min: u64,
    /// The median.
    pub p50: u64,
    /// The 99th percentile.
    pub p99: u64,
}

impl Summary {
    /// Summarises `samples` (µs); `None` when there are none.
    pub fn of(samples: &[u64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        // 3 significant figures, values from 1 up: always a valid configuration.
        let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("3 significant figures");
        for &v in samples {
            hist.saturating_record(v);
        }
        Some(Summary {
            max: hist.max(),
            mean: hist.mean(),
            min: hist.min(),
            p50: hist.value_at_quantile(0.5),
            p99: hist.value_at_quantile(0.99),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_known_sample() {
        let s = Summary::of(&[100, 200, 300, 400, 1000]).unwrap();
        assert_eq!((s.min, s.p50, s.max), (100, 300, 1000));
        assert!((s.mean - 400.0).abs() < 1.0, "{}", s.mean);
        assert_eq!(s.p99, 1000);
        assert!(Summary::of(&[]).is_none());
    }
}
