//! Histograms with fixed bucket bounds, so that buckets counted by any
//! instance in any minute add up, and percentiles over any range come from
//! the summed buckets (as Prometheus' `histogram_quantile` does).

use crate::store::metrics::BUCKETS;

/// Upper bounds of the latency buckets, in seconds (the last bucket is
/// everything above 1 s).
pub const LATENCY_BOUNDS: [f64; BUCKETS - 1] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0,
];

/// Upper bounds of the confidence buckets: twenty equal bins over [0, 1].
pub const CONFIDENCE_BOUNDS: [f64; BUCKETS - 1] = [
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
    0.9, 0.95,
];

/// Counts of observations per bucket; bucket `i` holds values `v` with
/// `bounds[i-1] < v <= bounds[i]`, the last one everything above.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    pub buckets: [u64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            count: 0,
            sum: 0.0,
            buckets: [0; BUCKETS],
        }
    }
}

impl Histogram {
    /// Counts `value` `weight` times.
    pub fn observe(&mut self, bounds: &[f64; BUCKETS - 1], value: f64, weight: u64) {
        if !value.is_finite() || weight == 0 {
            return;
        }
        let i = bounds.partition_point(|&b| b < value);
        self.buckets[i] += weight;
        self.count += weight;
        self.sum += value * weight as f64;
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum += other.sum;
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }

    /// The `q` quantile (0 ≤ q ≤ 1), interpolated linearly inside its
    /// bucket; the first bucket starts at 0, and a quantile in the last
    /// (unbounded) bucket is its lower bound. `None` without observations.
    pub fn quantile(&self, bounds: &[f64; BUCKETS - 1], q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                if i == BUCKETS - 1 {
                    return Some(bounds[BUCKETS - 2]);
                }
                let lo = if i == 0 { 0.0 } else { bounds[i - 1] };
                let hi = bounds[i];
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some(lo + (hi - lo) * within);
            }
            below += n;
        }
        Some(bounds[BUCKETS - 2])
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_bound_counts_in_the_bucket_it_closes() {
        let mut h = Histogram::default();
        h.observe(&LATENCY_BOUNDS, 1e-3, 1);
        h.observe(&LATENCY_BOUNDS, 1.1e-3, 2);
        h.observe(&LATENCY_BOUNDS, 7.0, 1);
        assert_eq!(h.buckets[9], 1);
        assert_eq!(h.buckets[10], 2);
        assert_eq!(h.buckets[19], 1);
        assert_eq!(h.count, 4);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut h = Histogram::default();
        // 100 values in (1 ms, 2.5 ms]: the median is half way through it.
        h.observe(&LATENCY_BOUNDS, 2e-3, 100);
        let p50 = h.quantile(&LATENCY_BOUNDS, 0.5).unwrap();
        assert!((p50 - 1.75e-3).abs() < 1e-12, "{p50}");
        // One slow value: p99 stays in the fast bucket, p100 is the slow one's.
        h.observe(&LATENCY_BOUNDS, 0.3, 1);
        assert!(h.quantile(&LATENCY_BOUNDS, 0.99).unwrap() <= 2.5e-3);
        let max = h.quantile(&LATENCY_BOUNDS, 1.0).unwrap();
        assert!(max > 0.25 && max <= 0.5, "{max}");
        assert_eq!(Histogram::default().quantile(&LATENCY_BOUNDS, 0.5), None);
    }

    #[test]
    fn merged_histograms_equal_one_that_saw_everything() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for (i, v) in [3e-6, 4e-4, 0.02, 2.0, 7e-5].into_iter().enumerate() {
            if i % 2 == 0 {
                a.observe(&LATENCY_BOUNDS, v, 1)
            } else {
                b.observe(&LATENCY_BOUNDS, v, 1)
            }
            all.observe(&LATENCY_BOUNDS, v, 1);
        }
        a.merge(&b);
        assert_eq!((a.count, a.buckets), (all.count, all.buckets));
        assert!((a.sum - all.sum).abs() < 1e-12);
    }

    #[test]
    fn non_finite_values_are_not_counted() {
        let mut h = Histogram::default();
        h.observe(&CONFIDENCE_BOUNDS, f64::NAN, 1);
        assert_eq!(h.count, 0);
    }
}
