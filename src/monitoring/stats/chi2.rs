//! Pearson's chi-squared goodness-of-fit test, = `scipy.stats.chisquare`, and
//! the bin merging that makes it usable on PSI bins.
//!
//! PSI bins include two overflow bins whose reference (expected) share is 0 by
//! construction. A bin with zero expected frequency makes the statistic
//! infinite as soon as one current value lands in it, so every such test
//! alarms; merge them first with [`merge_sparse_bins`].

use super::special::gammaincc;

/// Result of a chi-squared test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub pvalue: f64,
    /// Degrees of freedom: number of bins - 1.
    pub dof: usize,
}

/// Chi-squared test of `observed` counts against `expected` frequencies, =
/// `scipy.stats.chisquare(observed, expected * sum(observed) / sum(expected))`.
///
/// `expected` may be counts or shares: it is rescaled to the observed total
/// (scipy instead requires the sums to agree). `None` when the lengths differ,
/// there are fewer than 2 bins, the observed total is 0, or any expected
/// frequency is not positive (merge sparse bins first).
pub fn chisquare(observed: &[f64], expected: &[f64]) -> Option<ChiSquare> {
    if observed.len() != expected.len() || observed.len() < 2 {
        return None;
    }
    debug_assert!(!observed.iter().chain(expected).any(|x| x.is_nan()));
    let expected = rescaled(observed, expected)?;
    if expected.iter().any(|&e| e <= 0.0) {
        return None;
    }
    let statistic: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(o, e)| (o - e) * (o - e) / e)
        .sum();
    let dof = observed.len() - 1;
    Some(ChiSquare {
        statistic,
        pvalue: chi2_sf(statistic, dof as f64),
        dof,
    })
}

/// P(χ²_k ≥ s), = scipy.stats.chi2.sf(s, k).
pub(crate) fn chi2_sf(statistic: f64, dof: f64) -> f64 {
    gammaincc(dof / 2.0, statistic / 2.0)
}

/// Merges adjacent bins, left to right, until each has an expected count of
/// at least `min_expected` (e.g. 5); a short tail joins the last full group.
///
/// `expected` is first rescaled to the observed total (as in [`chisquare`]);
/// returns the merged observed and expected counts. With fewer than two groups
/// the result has one bin and [`chisquare`] will return `None`. Empty inputs,
/// different lengths or a zero total give two empty vectors.
pub fn merge_sparse_bins(
    observed: &[f64],
    expected: &[f64],
    min_expected: f64,
) -> (Vec<f64>, Vec<f64>) {
    if observed.len() != expected.len() {
        return (Vec::new(), Vec::new());
    }
    let Some(expected) = rescaled(observed, expected) else {
        return (Vec::new(), Vec::new());
    };
    let (mut obs_out, mut exp_out) = (Vec::new(), Vec::new());
    let (mut o_acc, mut e_acc, mut pending) = (0.0, 0.0, false);
    for (&o, &e) in observed.iter().zip(&expected) {
        o_acc += o;
        e_acc += e;
        pending = true;
        if e_acc >= min_expected {
            obs_out.push(o_acc);
            exp_out.push(e_acc);
            (o_acc, e_acc, pending) = (0.0, 0.0, false);
        }
    }
    if pending {
        match (obs_out.last_mut(), exp_out.last_mut()) {
            (Some(o), Some(e)) => {
                *o += o_acc;
                *e += e_acc;
            }
            _ => {
                obs_out.push(o_acc);
                exp_out.push(e_acc);
            }
        }
    }
    (obs_out, exp_out)
}

/// `expected` scaled to sum to the observed total; `None` if either total is not positive.
fn rescaled(observed: &[f64], expected: &[f64]) -> Option<Vec<f64>> {
    let (obs_total, exp_total) = (observed.iter().sum::<f64>(), expected.iter().sum::<f64>());
    if !(obs_total > 0.0 && exp_total > 0.0) {
        return None;
    }
    let scale = obs_total / exp_total;
    Some(expected.iter().map(|e| e * scale).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_rel, load};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }
    #[derive(Deserialize)]
    struct Case {
        name: String,
        observed: Vec<f64>,
        expected: Vec<f64>,
        statistic: f64,
        pvalue: f64,
        dof: usize,
    }

    /// Statistic and p-value to 1e-9 relative (p-values down to ~1e-300 included).
    #[test]
    fn chisquare_matches_scipy() {
        let fixture: Fixture = load(include_str!("../../../tests/fixtures/stats/chi2.json"));
        for c in fixture.cases {
            let got = chisquare(&c.observed, &c.expected).unwrap();
            assert_rel(
                got.statistic,
                c.statistic,
                1e-9,
                &format!("{} statistic", c.name),
            );
            assert_rel(got.pvalue, c.pvalue, 1e-9, &format!("{} pvalue", c.name));
            assert_eq!(got.dof, c.dof, "{}", c.name);
        }
    }

    #[test]
    fn zero_expected_bin_is_refused_until_merged() {
        // PSI-style bins: empty overflow bins on both sides of the reference.
        let observed = [3.0, 40.0, 30.0, 27.0, 0.0];
        let expected = [0.0, 0.4, 0.3, 0.3, 0.0];
        assert_eq!(chisquare(&observed, &expected), None);
        let (o, e) = merge_sparse_bins(&observed, &expected, 5.0);
        assert_eq!(o, vec![43.0, 30.0, 27.0]);
        assert_eq!(e, vec![40.0, 30.0, 30.0]);
        assert!(chisquare(&o, &e).unwrap().pvalue > 0.5);
    }

    #[test]
    fn merging_a_short_tail_joins_the_last_group() {
        let (o, e) = merge_sparse_bins(&[10.0, 10.0, 1.0, 1.0], &[10.0, 10.0, 1.0, 1.0], 5.0);
        assert_eq!(o, vec![10.0, 12.0]);
        assert_eq!(e, vec![10.0, 12.0]);
    }

    #[test]
    fn everything_sparse_merges_into_one_bin_and_cannot_be_tested() {
        let (o, e) = merge_sparse_bins(&[1.0, 2.0], &[1.0, 1.0], 5.0);
        assert_eq!((o.len(), e.len()), (1, 1));
        assert_eq!(chisquare(&o, &e), None);
    }

    #[test]
    fn impossible_inputs_give_none() {
        assert_eq!(chisquare(&[1.0], &[1.0]), None);
        assert_eq!(chisquare(&[1.0, 2.0], &[1.0]), None);
        assert_eq!(chisquare(&[0.0, 0.0], &[1.0, 1.0]), None);
    }

    #[test]
    fn chi2_sf_of_two_dof_is_exp_of_minus_half_statistic() {
        assert_rel(chi2_sf(3.0, 2.0), (-1.5f64).exp(), 1e-14, "chi2.sf(3, 2)");
    }
}
