//! Two-sample Kolmogorov-Smirnov test, = `scipy.stats.ks_2samp(a, b)`
//! (two-sided), with scipy's `method` choice.
//!
//! `method='auto'` (the default): exact p-value when both sizes are ≤ 10 000,
//! the asymptotic `kstwo.sf(d, round(n1 n2 / (n1 + n2)))` otherwise or when the
//! exact computation fails. In exact mode the statistic is reported as
//! h / lcm(n1, n2) with h = round(d · lcm), as scipy does.
//!
//! Cost: the statistic is one merge pass. The exact p-value is O(n) for equal
//! sizes but O(D · n1 · n2) for unequal ones: about 1 ms for
//! 10 000 vs 500 without drift, tens of ms with strong drift, and far more for
//! large coprime sizes (10 000 vs 9 999). Where that matters, ask for
//! [`KsMode::Asymptotic`] (scipy `method='asymp'`), which is O(1) after the merge.

use super::kolmogorov::kstwo_sf;
use super::ks_exact::{exact_pvalue, gcd};

/// scipy's `MAX_AUTO_N`: above this size `method='auto'` goes asymptotic.
const MAX_AUTO_N: usize = 10_000;

/// Which p-value computation was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsMethod {
    Exact,
    Asymptotic,
}

/// Which p-value computation to ask for (scipy's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KsMode {
    /// Exact up to 10 000 values per sample, else asymptotic (`'auto'`).
    #[default]
    Auto,
    /// Exact unless lcm(n1, n2) would overflow scipy's int32 check or the computation fails (`'exact'`).
    Exact,
    /// Always asymptotic (`'asymp'`).
    Asymptotic,
}

/// Result of a two-sample KS test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// sup |F_a - F_b| over the pooled values.
    pub statistic: f64,
    /// Two-sided p-value.
    pub pvalue: f64,
    pub method: KsMethod,
}

/// Two-sample KS test on unsorted samples, = scipy `ks_2samp(a, b)`; `None` if either is empty.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Option<Ks> {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    super::sort_ascending(&mut a);
    super::sort_ascending(&mut b);
    ks_2samp_sorted(&a, &b)
}

/// Two-sample KS test on samples already sorted ascending (e.g. a reference
/// sorted once per model version), `method='auto'`; `None` if either is empty.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> Option<Ks> {
    ks_2samp_sorted_mode(a, b, KsMode::Auto)
}

/// [`ks_2samp_sorted`] with scipy's `method` chosen by `mode`.
pub fn ks_2samp_sorted_mode(a: &[f64], b: &[f64], mode: KsMode) -> Option<Ks> {
    let d = ks_statistic_sorted(a, b)?;
    let (n1, n2) = (a.len() as u64, b.len() as u64);
    let g = gcd(n1, n2);
    let try_exact = match mode {
        KsMode::Auto => n1.max(n2) <= MAX_AUTO_N as u64,
        KsMode::Exact => n1 / g < i32::MAX as u64 / (n2 / g),
        KsMode::Asymptotic => false,
    };
    if !try_exact {
        return Some(asymptotic(d, n1, n2));
    }
    let lcm = n1 / g * n2;
    let h = (d * lcm as f64).round_ties_even() as u64;
    let d = h as f64 / lcm as f64;
    Some(match exact_pvalue(n1, n2, h) {
        Some(pvalue) => Ks {
            statistic: d,
            pvalue,
            method: KsMethod::Exact,
        },
        None => asymptotic(d, n1, n2),
    })
}

/// KS statistic of two sorted samples by one merge pass; `None` if either is empty.
///
/// Differences are taken as i/n1 - j/n2 after each run of equal values, as
/// scipy's `searchsorted(..., side='right')` does, so ties across samples count
/// once. The pass tracks exact integer differences i·n2 - j·n1 (no branch on the
/// data to mispredict) and evaluates scipy's float expression at the extremes.
pub fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    debug_assert!(super::is_sorted_without_nan(a) && super::is_sorted_without_nan(b));
    let (n1, n2) = (a.len(), b.len());
    let value = |xs: &[f64], k: usize| xs.get(k).copied().unwrap_or(f64::INFINITY);
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_at, mut min_at) = ((0, 0, 0i64), (0, 0, 0i64));
    while i < n1 || j < n2 {
        let (x, y) = (value(a, i), value(b, j));
        let v = x.min(y);
        i += usize::from((i < n1) & (x <= v));
        j += usize::from((j < n2) & (y <= v));
        // Only where the next pooled value is larger do both ECDFs stand at v.
        let complete = value(a, i).min(value(b, j)) > v;
        let diff = (i * n2) as i64 - (j * n1) as i64;
        if complete & (diff > max_at.2) {
            max_at = (i, j, diff);
        }
        if complete & (diff < min_at.2) {
            min_at = (i, j, diff);
        }
    }
    let ecdf_gap = |(i, j, _): (usize, usize, i64)| i as f64 / n1 as f64 - j as f64 / n2 as f64;
    let (max_s, min_s) = (ecdf_gap(max_at), (-ecdf_gap(min_at)).clamp(0.0, 1.0));
    Some(if min_s > max_s { min_s } else { max_s })
}

/// Smirnov's asymptotic two-sided p-value, = kstwo.sf(d, round(en)).
fn asymptotic(d: f64, n1: u64, n2: u64) -> Ks {
    let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
    let en = (m * n / (m + n)).round_ties_even();
    Ks {
        statistic: d,
        pvalue: kstwo_sf(en as u64, d).clamp(0.0, 1.0),
        method: KsMethod::Asymptotic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_rel, load, Sample};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
        exact: Vec<ExactRow>,
    }
    #[derive(Deserialize)]
    struct Case {
        name: String,
        a: Sample,
        b: Sample,
        mode: String,
        statistic: f64,
        pvalue: f64,
        method: String,
    }
    #[derive(Deserialize)]
    struct ExactRow {
        n1: u64,
        n2: u64,
        h: u64,
        ok: bool,
        pvalue: Option<f64>,
    }

    fn fixture() -> Fixture {
        load(include_str!("../../../tests/fixtures/stats/ks.json"))
    }

    /// Statistic to 1e-12 absolute; p-value to 1e-9 relative (so tiny p-values too).
    #[test]
    fn ks_2samp_matches_scipy_statistic_pvalue_and_method() {
        for c in fixture().cases {
            let (mut a, mut b) = (c.a.values(), c.b.values());
            crate::monitoring::stats::sort_ascending(&mut a);
            crate::monitoring::stats::sort_ascending(&mut b);
            let mode = match c.mode.as_str() {
                "auto" => KsMode::Auto,
                "exact" => KsMode::Exact,
                _ => KsMode::Asymptotic,
            };
            let got = ks_2samp_sorted_mode(&a, &b, mode).unwrap();
            assert!(
                (got.statistic - c.statistic).abs() <= 1e-12,
                "{}: D {} vs {}",
                c.name,
                got.statistic,
                c.statistic
            );
            assert_rel(got.pvalue, c.pvalue, 1e-9, &c.name);
            let method = match got.method {
                KsMethod::Exact => "exact",
                KsMethod::Asymptotic => "asymptotic",
            };
            assert_eq!(method, c.method, "{}", c.name);
        }
    }

    #[test]
    fn exact_pvalue_matches_scipy_over_a_grid_of_sizes_and_distances() {
        for r in fixture().exact {
            let got = exact_pvalue(r.n1, r.n2, r.h);
            let what = format!("n1={} n2={} h={}", r.n1, r.n2, r.h);
            assert_eq!(got.is_some(), r.ok, "{what}");
            if let (Some(got), Some(want)) = (got, r.pvalue) {
                assert_rel(got, want, 1e-9, &what);
            }
        }
    }

    #[test]
    fn sorted_variant_equals_unsorted() {
        let a = [3.0, 1.0, 2.0, 2.0, 5.0];
        let b = [2.0, 4.0, 0.5];
        let (mut sa, mut sb) = (a.to_vec(), b.to_vec());
        crate::monitoring::stats::sort_ascending(&mut sa);
        crate::monitoring::stats::sort_ascending(&mut sb);
        assert_eq!(ks_2samp(&a, &b), ks_2samp_sorted(&sa, &sb));
    }

    #[test]
    fn empty_sample_gives_none() {
        assert_eq!(ks_2samp(&[], &[1.0]), None);
        assert_eq!(ks_2samp(&[1.0], &[]), None);
        assert_eq!(ks_statistic_sorted(&[], &[]), None);
    }

    #[test]
    fn identical_samples_have_zero_statistic_and_pvalue_one() {
        let a = [1.0, 1.0, 2.0, 3.0];
        let ks = ks_2samp(&a, &a).unwrap();
        assert_eq!((ks.statistic, ks.pvalue), (0.0, 1.0));
    }

    #[test]
    fn duplicates_within_one_sample_are_not_split() {
        // After the first 2.0 of `a` alone the gap would be 3/4 - 0; the real one at 2.0 is 1 - 0.
        let d = ks_statistic_sorted(&[1.0, 2.0, 2.0, 2.0], &[5.0]).unwrap();
        assert_eq!(d, 1.0);
        let d = ks_statistic_sorted(&[0.0, 1.0], &[1.0, 1.0, 1.0]).unwrap();
        assert_eq!(d, 0.5);
    }

    #[test]
    fn ties_across_samples_are_counted_once() {
        // At value 1 both ECDFs jump together: the gap only opens at 2.
        let d = ks_statistic_sorted(&[1.0, 1.0, 2.0, 2.0], &[1.0, 1.0, 3.0, 3.0]).unwrap();
        assert_eq!(d, 0.5);
    }
}
