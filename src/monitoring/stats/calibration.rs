//! Label-free accuracy estimates from model confidence: isotonic calibration
//! (for CBPE, confidence-based performance estimation) and ATC (average
//! thresholded confidence, Garg et al., ICLR 2022).

/// sklearn's tie tolerance in `_make_unique`: x values closer than this are one x.
const TIE_RESOLUTION: f64 = 1e-15;

/// Increasing isotonic regression, = sklearn `IsotonicRegression(out_of_bounds="clip")`.
#[derive(Debug, Clone, PartialEq)]
pub struct Isotonic {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Isotonic {
    /// Fits by pool-adjacent-violators; `None` if empty or lengths differ.
    ///
    /// Ties in x (within 1e-15) become one point with the mean y and a weight
    /// equal to their count, as sklearn does.
    pub fn fit(x: &[f64], y: &[f64]) -> Option<Isotonic> {
        if x.is_empty() || x.len() != y.len() {
            return None;
        }
        debug_assert!(!x.iter().chain(y).any(|v| v.is_nan()));
        let mut pairs: Vec<(f64, f64)> = x.iter().copied().zip(y.iter().copied()).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let (ux, uy, weights) = merge_ties(&pairs);
        let fitted = pool_adjacent_violators(&uy, &weights);
        let (x, y) = trim_flat_runs(ux, fitted);
        Some(Isotonic { x, y })
    }

    /// Calibrated value at `t`: linear interpolation between thresholds, clipped outside.
    pub fn predict(&self, t: f64) -> f64 {
        let n = self.x.len();
        if n == 1 {
            return self.y[0];
        }
        let t = t.clamp(self.x[0], self.x[n - 1]);
        let hi = self.x.partition_point(|&v| v < t).clamp(1, n - 1);
        let lo = hi - 1;
        let slope = (self.y[hi] - self.y[lo]) / (self.x[hi] - self.x[lo]);
        slope * (t - self.x[lo]) + self.y[lo]
    }

    /// The thresholds (x, fitted y) kept after dropping interior points of flat runs.
    pub fn thresholds(&self) -> (&[f64], &[f64]) {
        (&self.x, &self.y)
    }
}

/// Sorted pairs to unique x with mean y and count weights (sklearn `_make_unique`).
fn merge_ties(pairs: &[(f64, f64)]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys, mut ws) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cur_x, mut sum_y, mut weight) = (pairs[0].0, 0.0, 0.0);
    for &(x, y) in pairs {
        if x - cur_x >= TIE_RESOLUTION {
            xs.push(cur_x);
            ys.push(sum_y / weight);
            ws.push(weight);
            (cur_x, sum_y, weight) = (x, 0.0, 0.0);
        }
        sum_y += y;
        weight += 1.0;
    }
    xs.push(cur_x);
    ys.push(sum_y / weight);
    ws.push(weight);
    (xs, ys, ws)
}

/// Weighted PAVA for a non-decreasing fit: pools adjacent blocks while a block's mean
/// is ≥ the next one's.
fn pool_adjacent_violators(y: &[f64], w: &[f64]) -> Vec<f64> {
    // Each block: (weighted sum, weight, number of points).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(y.len());
    for (&yi, &wi) in y.iter().zip(w) {
        blocks.push((yi * wi, wi, 1));
        while blocks.len() > 1 {
            let (s2, w2, n2) = blocks[blocks.len() - 1];
            let (s1, w1, n1) = blocks[blocks.len() - 2];
            if s1 / w1 < s2 / w2 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (s1 + s2, w1 + w2, n1 + n2);
        }
    }
    blocks
        .iter()
        .flat_map(|&(s, w, n)| std::iter::repeat_n(s / w, n))
        .collect()
}

/// Drops interior points of runs of equal y (sklearn's `trim_duplicates`).
fn trim_flat_runs(x: Vec<f64>, y: Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let n = y.len();
    let keep = |i: usize| i == 0 || i == n - 1 || y[i] != y[i - 1] || y[i] != y[i + 1];
    let kept: Vec<usize> = (0..n).filter(|&i| keep(i)).collect();
    (
        kept.iter().map(|&i| x[i]).collect(),
        kept.iter().map(|&i| y[i]).collect(),
    )
}

/// CBPE accuracy estimate: mean calibrated confidence; `None` if `confidences` is empty.
pub fn cbpe(calibrator: &Isotonic, confidences: &[f64]) -> Option<f64> {
    if confidences.is_empty() {
        return None;
    }
    let total: f64 = confidences.iter().map(|&c| calibrator.predict(c)).sum();
    Some(total / confidences.len() as f64)
}

/// ATC with the max-confidence score (Garg et al., ICLR 2022).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Atc {
    /// Confidences strictly above this count as predicted-correct.
    pub threshold: f64,
}

impl Atc {
    /// Threshold t such that the share of held-out confidences strictly above t
    /// equals the held-out accuracy k/n: t is the (n−k)-th smallest confidence
    /// (−∞ when all are correct). Ties at t count as not above, so with ties the
    /// held-out share can fall short of k/n. `None` if empty or lengths differ.
    pub fn fit(held_out_confidence: &[f64], held_out_correct: &[bool]) -> Option<Atc> {
        let n = held_out_confidence.len();
        if n == 0 || n != held_out_correct.len() {
            return None;
        }
        debug_assert!(!held_out_confidence.iter().any(|c| c.is_nan()));
        let k = held_out_correct.iter().filter(|&&c| c).count();
        if k == n {
            return Some(Atc {
                threshold: f64::NEG_INFINITY,
            });
        }
        let mut sorted = held_out_confidence.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Atc {
            threshold: sorted[n - k - 1],
        })
    }

    /// Estimated accuracy: share of `confidences` strictly above the threshold; `None` if empty.
    pub fn estimate(&self, confidences: &[f64]) -> Option<f64> {
        if confidences.is_empty() {
            return None;
        }
        let above = confidences.iter().filter(|&&c| c > self.threshold).count();
        Some(above as f64 / confidences.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::stats::fixtures::{assert_abs, load};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        isotonic: Vec<IsoCase>,
        cbpe: CbpeCase,
        atc: Vec<AtcCase>,
    }
    #[derive(Deserialize)]
    struct IsoCase {
        name: String,
        x: Vec<f64>,
        y: Vec<f64>,
        query: Vec<f64>,
        prediction: Vec<f64>,
    }
    #[derive(Deserialize)]
    struct CbpeCase {
        fit: String,
        current: Vec<f64>,
        estimate: f64,
    }
    #[derive(Deserialize)]
    struct AtcCase {
        name: String,
        held_out_confidence: Vec<f64>,
        held_out_correct: Vec<bool>,
        current: Vec<f64>,
        threshold: f64,
        estimate: f64,
        held_out_estimate: f64,
    }

    fn fixture() -> Fixture {
        load(include_str!(
            "../../../tests/fixtures/stats/calibration.json"
        ))
    }

    /// Predictions are in [0, 1] here: compared to 1e-12 absolute.
    #[test]
    fn isotonic_predictions_match_sklearn_including_ties_and_clipping() {
        for c in fixture().isotonic {
            let model = Isotonic::fit(&c.x, &c.y).unwrap();
            for (q, want) in c.query.iter().zip(&c.prediction) {
                assert_abs(
                    model.predict(*q),
                    *want,
                    1e-12,
                    &format!("{} at {q}", c.name),
                );
            }
        }
    }

    #[test]
    fn cbpe_matches_mean_of_sklearn_calibrated_confidence() {
        let f = fixture();
        let case = f.isotonic.iter().find(|c| c.name == f.cbpe.fit).unwrap();
        let model = Isotonic::fit(&case.x, &case.y).unwrap();
        assert_abs(
            cbpe(&model, &f.cbpe.current).unwrap(),
            f.cbpe.estimate,
            1e-12,
            "cbpe",
        );
    }

    #[test]
    fn atc_threshold_and_estimates_match_numpy() {
        for c in fixture().atc {
            let atc = Atc::fit(&c.held_out_confidence, &c.held_out_correct).unwrap();
            assert_eq!(atc.threshold, c.threshold, "{}", c.name);
            assert_eq!(atc.estimate(&c.current), Some(c.estimate), "{}", c.name);
            let held_out = atc.estimate(&c.held_out_confidence);
            assert_eq!(held_out, Some(c.held_out_estimate), "{}", c.name);
        }
    }

    #[test]
    fn atc_without_ties_reproduces_held_out_accuracy() {
        let conf = [0.9, 0.6, 0.8, 0.7, 0.95];
        let correct = [true, false, true, false, true];
        let atc = Atc::fit(&conf, &correct).unwrap();
        assert_eq!(atc.threshold, 0.7);
        assert_eq!(atc.estimate(&conf), Some(0.6));
    }

    #[test]
    fn atc_with_all_correct_counts_every_confidence() {
        let atc = Atc::fit(&[0.5, 0.9], &[true, true]).unwrap();
        assert_eq!(atc.estimate(&[0.0, 0.1]), Some(1.0));
    }

    #[test]
    fn empty_or_mismatched_inputs_give_none() {
        assert_eq!(Isotonic::fit(&[], &[]), None);
        assert_eq!(Isotonic::fit(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(Atc::fit(&[], &[]), None);
        assert_eq!(Atc::fit(&[0.5], &[true, false]), None);
        let model = Isotonic::fit(&[0.5], &[1.0]).unwrap();
        assert_eq!(cbpe(&model, &[]), None);
        assert_eq!(Atc { threshold: 0.5 }.estimate(&[]), None);
    }

    #[test]
    fn decreasing_data_pools_to_one_flat_threshold_pair() {
        let model = Isotonic::fit(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap();
        assert_eq!(model.thresholds(), (&[1.0, 3.0][..], &[2.0, 2.0][..]));
    }
}
