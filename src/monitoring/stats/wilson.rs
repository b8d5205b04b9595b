//! Wilson score interval for a binomial proportion.

use super::normal::normal_ppf;

/// Two-sided Wilson interval without continuity correction, =
/// `scipy.stats.binomtest(k, n).proportion_ci(confidence, method='wilson')`
/// (scipy's 'wilson' has no correction; 'wilsoncc' has). As in scipy the
/// bound is exactly 0 when k = 0 and exactly 1 when k = n.
///
/// `None` when n = 0, successes > n, or confidence is not in (0, 1).
pub fn wilson(successes: u64, n: u64, confidence: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n || !(confidence > 0.0 && confidence < 1.0) {
        return None;
    }
    let (k, nf) = (successes as f64, n as f64);
    let p = k / nf;
    let q = 1.0 - p;
    let z = normal_ppf(0.5 + 0.5 * confidence);
    let z2 = z * z;
    let denom = 2.0 * (nf + z2);
    let center = (2.0 * nf * p + z2) / denom;
    let delta = z / denom * (4.0 * nf * p * q + z2).sqrt();
    let lo = if successes == 0 { 0.0 } else { center - delta };
    let hi = if successes == n { 1.0 } else { center + delta };
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_abs, load};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        k: u64,
        n: u64,
        confidence: f64,
        lo: f64,
        hi: f64,
    }

    /// Bounds are proportions in [0, 1]: compared to 1e-12 absolute.
    #[test]
    fn wilson_matches_scipy_binomtest_proportion_ci() {
        let fixture: Fixture = load(include_str!("../../../tests/fixtures/stats/wilson.json"));
        for c in fixture.cases {
            let (lo, hi) = wilson(c.k, c.n, c.confidence).unwrap();
            let what = format!("k={} n={} conf={}", c.k, c.n, c.confidence);
            assert_abs(lo, c.lo, 1e-12, &what);
            assert_abs(hi, c.hi, 1e-12, &what);
        }
    }

    #[test]
    fn no_trials_or_bad_confidence_give_none() {
        assert_eq!(wilson(0, 0, 0.95), None);
        assert_eq!(wilson(3, 2, 0.95), None);
        assert_eq!(wilson(1, 2, 1.0), None);
        assert_eq!(wilson(1, 2, f64::NAN), None);
    }

    #[test]
    fn all_or_no_successes_pin_one_bound() {
        assert_eq!(wilson(0, 10, 0.95).unwrap().0, 0.0);
        assert_eq!(wilson(10, 10, 0.95).unwrap().1, 1.0);
    }
}
