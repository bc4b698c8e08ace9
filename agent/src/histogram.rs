//! A latency histogram cheap enough for the per-frame path: fixed buckets, one atomic add per bucket
//! count and one for the sum, no lock, no allocation (`prometheus_client`'s histogram takes a lock on
//! every observation). Stage-neutral: the analysis stage times its model calls with it, the publisher
//! its PUBACKs; the runtime reads a [`Snapshot`] at scrape time.
//!
//! The counts and the sum are separate atomics, so a snapshot taken during an observation may count it
//! in its bucket but not yet in the sum: the sum is off by one observation at most, the count (the sum
//! of the buckets) is always the buckets' own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds for model calls: 1 ms to 10 s (a person detector on a small CPU takes
/// around 100 ms, an embedding 10–30 ms).
pub const MODEL_CALL_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds in seconds for a broker's acknowledgement: 1 ms on loopback to 30 s over a bad link.
pub const ACK_BOUNDS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Counts of durations by bucket, with their sum.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds in seconds, increasing; the last bucket (`+Inf`) is implicit.
    bounds: &'static [f64],
    /// One count per bound, then the `+Inf` bucket: each observation counted once, in its own bucket.
    counts: Box<[AtomicU64]>,
    /// Nanoseconds (584 years of observed time before it wraps).
    sum_nanos: AtomicU64,
}

/// A histogram's counts at one moment, as Prometheus encodes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Seconds.
    pub sum: f64,
    pub count: u64,
    /// `(upper bound, observations in this bucket only)`, the last bound `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
}

impl Histogram {
    /// Bounds must increase (checked in debug builds: they are constants).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds must increase: {bounds:?}");
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // A handful of bounds: a linear scan is as fast as a search.
        let i = self.bounds.iter().position(|&b| secs <= b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let bounds = self.bounds.iter().copied().chain(std::iter::once(f64::INFINITY));
        Snapshot {
            sum: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            count: counts.iter().sum(),
            buckets: bounds.zip(counts).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_first_bucket_whose_bound_holds_it() {
        static BOUNDS: &[f64] = &[0.01, 0.1, 1.0];
        let h = Histogram::new(BOUNDS);
        for ms in [0, 10, 11, 100, 999, 1000, 1001, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        // 0 and 10 ms ≤ 0.01 s; 11 and 100 ms ≤ 0.1 s; 999 and 1000 ms ≤ 1 s; the rest above.
        assert_eq!(s.buckets, vec![(0.01, 2), (0.1, 2), (1.0, 2), (f64::INFINITY, 2)]);
        assert_eq!(s.count, 8);
        assert!((s.sum - 63.121).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let h = std::sync::Arc::new(Histogram::new(MODEL_CALL_BOUNDS));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe(Duration::from_micros(i * (t + 1)));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let s = h.snapshot();
        assert_eq!(s.count, 40_000);
        // Σ i·(t+1) µs over i < 10 000 and t < 4: 49 995 000 µs × 10.
        assert!((s.sum - 499.95).abs() < 1e-6, "{}", s.sum);
    }
}
