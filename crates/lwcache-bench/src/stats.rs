//! Percentiles of recorded durations.
//!
//! Every sample is kept and sorted once: at the iteration counts the
//! benchmarks use (at most a few hundred thousand per scenario) that is
//! cheaper than a histogram's bookkeeping and exact rather than bucketed.

use std::time::Duration;

/// Recorded durations of one measured operation, in nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    nanos: Vec<u64>,
}

impl Samples {
    /// An empty recording with room for `n` samples.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            nanos: Vec::with_capacity(n),
        }
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        self.nanos
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// How many durations were recorded.
    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }

    /// The summary of what was recorded.
    pub fn summary(&self) -> Summary {
        Summary::of_nanos(&self.nanos)
    }
}

impl FromIterator<Duration> for Samples {
    fn from_iter<I: IntoIterator<Item = Duration>>(iter: I) -> Self {
        let mut samples = Samples::default();
        for d in iter {
            samples.record(d);
        }
        samples
    }
}

/// The distribution of a set of durations, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// The fastest.
    pub min_us: f64,
    /// The median.
    pub p50_us: f64,
    /// The 90th percentile.
    pub p90_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The 99.9th percentile.
    pub p999_us: f64,
    /// The slowest.
    pub max_us: f64,
    /// The arithmetic mean.
    pub mean_us: f64,
}

impl Summary {
    /// Summarises durations given in nanoseconds; all zero when empty.
    pub fn of_nanos(nanos: &[u64]) -> Self {
        if nanos.is_empty() {
            return Self::default();
        }
        let mut sorted = nanos.to_vec();
        sorted.sort_unstable();
        let us = |n: u64| n as f64 / 1_000.0;
        let total: u128 = sorted.iter().map(|&n| u128::from(n)).sum();
        Self {
            count: sorted.len(),
            min_us: us(sorted[0]),
            p50_us: us(percentile(&sorted, 0.50)),
            p90_us: us(percentile(&sorted, 0.90)),
            p99_us: us(percentile(&sorted, 0.99)),
            p999_us: us(percentile(&sorted, 0.999)),
            max_us: us(sorted[sorted.len() - 1]),
            mean_us: total as f64 / sorted.len() as f64 / 1_000.0,
        }
    }
}

/// The `q`-quantile (`0.0..=1.0`) of sorted values by the nearest-rank
/// method: the smallest value with at least `q` of the values at or below
/// it. 0 for an empty slice.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// `subject / baseline`; `None` when the baseline is zero or missing.
pub fn ratio(subject: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0 && subject.is_finite() && baseline.is_finite()).then(|| subject / baseline)
}
