//! One evaluation of a window against a [`Reference`]: data drift per
//! feature (a feature drifts only when its effect size exceeds the
//! threshold calibrated on the reference *and* its p-value is below the
//! family-wise level over the features), output drift, and the label-free
//! accuracy estimates.

use std::collections::{HashSet, VecDeque};

use super::reference::{shares, total_variation as tv, FeatureReference, Method, Reference};
use crate::monitoring::report::{DataDrift, Distribution, FeatureDrift, OutputWindow, Test};
use crate::monitoring::stats::{
    calibrate, cbpe, chisquare, ks_2samp_sorted, merge_sparse_bins, sort_ascending, Calibrated,
};

/// An item of the window, as the tests need it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowItem {
    /// In the reference's feature order; NaN where the input lacks it.
    pub values: Vec<f64>,
    /// The predicted label's index in the reference's labels.
    pub label: Option<usize>,
    pub confidence: Option<f64>,
    /// The model ran and failed (error, non-finite output, no model).
    pub failed: bool,
    pub automated: bool,
    /// The input's hash (repeats within the window).
    pub input_sha256: String,
}

/// The levels an evaluation uses.
#[derive(Debug, Clone, Copy)]
pub struct Levels {
    /// Family-wise p-value level over the features.
    pub family_alpha: f64,
    /// Effect thresholds: the reference's resampled mean plus this many
    /// standard deviations.
    pub sds: f64,
    /// The task's automation threshold (share below it), if any.
    pub threshold: Option<f64>,
}

/// What one evaluation found.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub features: Vec<FeatureDrift>,
    pub output: OutputWindow,
    pub cbpe: Option<f64>,
    pub atc: Option<f64>,
}

impl Evaluation {
    /// The drifted features' names.
    pub fn drifted(&self) -> impl Iterator<Item = &FeatureDrift> {
        self.features.iter().filter(|f| f.test.drifted)
    }

    /// The largest KS statistic relative to its threshold.
    pub fn worst(&self) -> Option<f64> {
        self.features
            .iter()
            .filter_map(|f| f.test.threshold.map(|t| f.test.statistic / t.max(1e-12)))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    }

    /// The data drift part of the report.
    pub fn data_drift(&self, reference: &Reference, levels: &Levels) -> DataDrift {
        DataDrift {
            evaluated_at: None,
            model_version: Some(reference.version.clone()),
            window_items: reference.window,
            items_seen: 0,
            method: reference.method.as_str().to_string(),
            alpha: levels.family_alpha / reference.features.len().max(1) as f64,
            features: self.features.clone(),
        }
    }
}

fn threshold(c: &Option<Calibrated>, sds: f64) -> Option<f64> {
    c.map(|c| c.mean + sds * c.sd)
}

/// Evaluates `window` against `reference`.
pub fn evaluate(
    window: &VecDeque<WindowItem>,
    reference: &Reference,
    levels: &Levels,
) -> Evaluation {
    let alpha = levels.family_alpha / reference.features.len().max(1) as f64;
    let mut features: Vec<FeatureDrift> = reference
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mut values: Vec<f64> = window
                .iter()
                .filter_map(|item| item.values.get(j).copied())
                .filter(|v| v.is_finite())
                .collect();
            sort_ascending(&mut values);
            match reference.method {
                Method::Sample => feature_on_sample(f, &values, alpha, levels.sds),
                Method::Histogram => feature_on_histogram(f, &values, alpha, levels.sds),
            }
        })
        .collect();
    // Worst first: the statistic over its threshold.
    let ratio = |f: &FeatureDrift| f.test.statistic / f.test.threshold.unwrap_or(1.0).max(1e-12);
    features.sort_by(|a, b| ratio(b).total_cmp(&ratio(a)));

    let confidences: Vec<f64> = window.iter().filter_map(|i| i.confidence).collect();
    Evaluation {
        features,
        output: output(window, &confidences, reference, levels),
        cbpe: reference
            .calibrator
            .as_ref()
            .and_then(|c| cbpe(c, &confidences)),
        atc: reference
            .atc
            .as_ref()
            .and_then(|a| a.estimate(&confidences)),
    }
}

/// The two-sample KS test of sorted `values` against a sorted reference:
/// drifted when the statistic exceeds the calibrated threshold and the
/// p-value is below `alpha`.
fn ks_test(
    reference: &[f64],
    values: &[f64],
    calibrated: &Option<Calibrated>,
    sds: f64,
    alpha: f64,
) -> Test {
    match ks_2samp_sorted(reference, values) {
        Some(ks) => {
            let threshold = threshold(calibrated, sds);
            Test {
                statistic: ks.statistic,
                pvalue: ks.pvalue,
                threshold,
                alpha,
                drifted: ks.pvalue < alpha && threshold.is_some_and(|t| ks.statistic > t),
            }
        }
        None => Test {
            pvalue: 1.0,
            alpha,
            ..Test::default()
        },
    }
}

fn out_of_range_share(f: &FeatureReference, values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().filter(|&&v| v < f.low || v > f.high).count() as f64 / values.len() as f64
}

fn feature_on_sample(f: &FeatureReference, values: &[f64], alpha: f64, sds: f64) -> FeatureDrift {
    let test = ks_test(&f.sorted, values, &f.ks, sds, alpha);
    let psi = f.psi_bins.as_ref().and_then(|b| b.apply_sorted(values));
    let distribution = psi
        .as_ref()
        .map(|p| {
            // The overflow bins reach to the window's extremes (or a sliver
            // beyond the reference when the window stays inside).
            let (lo, hi) = (p.edges[0], p.edges[p.edges.len() - 1]);
            let pad = ((hi - lo) * 0.05).max(1e-9);
            let below = values.first().map_or(lo - pad, |&v| v.min(lo - pad));
            let above = values.last().map_or(hi + pad, |&v| v.max(hi + pad));
            let mut edges = vec![below];
            edges.extend(&p.edges);
            edges.push(above);
            Distribution {
                edges,
                reference: p.reference_share.clone(),
                current: p.current_share.clone(),
            }
        })
        .unwrap_or_default();
    FeatureDrift {
        feature: f.name.clone(),
        test,
        psi: psi.map_or(0.0, |p| p.value),
        psi_threshold: threshold(&f.psi, sds),
        out_of_range_share: out_of_range_share(f, values),
        distribution,
    }
}

/// Counts of sorted `values` in the card histogram's bins, with an
/// overflow bin each side.
fn histogram_counts(f: &FeatureReference, values: &[f64]) -> Vec<f64> {
    let bins = f.counts.len();
    let mut counts = vec![0.0; bins + 2];
    let (lo, hi) = (f.edges[0], f.edges[bins]);
    let width = (hi - lo) / bins.max(1) as f64;
    for &v in values {
        let i = if v < lo {
            0
        } else if v > hi {
            bins + 1
        } else if width > 0.0 {
            1 + (((v - lo) / width).floor() as usize).min(bins - 1)
        } else {
            1
        };
        counts[i] += 1.0;
    }
    counts
}

/// Older cards: chi-squared of the window on the card's histogram (empty
/// bins merged into their neighbours, or every test alarms), with the total
/// variation distance as the effect, calibrated by resampling the
/// histogram.
fn feature_on_histogram(
    f: &FeatureReference,
    values: &[f64],
    alpha: f64,
    sds: f64,
) -> FeatureDrift {
    let observed = histogram_counts(f, values);
    let mut expected = vec![0.0];
    expected.extend(f.counts.iter().map(|&c| c as f64));
    expected.push(0.0);
    let (o, e) = merge_sparse_bins(&observed, &expected, 5.0);
    let chi = chisquare(&o, &e);
    let n: f64 = observed.iter().sum();
    let total: f64 = expected.iter().sum();
    let share = |v: &[f64], t: f64| {
        v.iter()
            .map(|x| if t > 0.0 { x / t } else { 0.0 })
            .collect::<Vec<_>>()
    };
    let (current, reference) = (share(&observed, n), share(&expected, total));
    let effect = tv(&current, &reference);
    // Resample bin indexes in proportion to the reference counts.
    let as_values: Vec<f64> = f
        .counts
        .iter()
        .enumerate()
        .flat_map(|(i, &c)| std::iter::repeat_n(i as f64 + 1.0, c as usize))
        .collect();
    let bins = expected.len();
    let calibrated = calibrate(&as_values, values.len().max(1), 100, 0x6869_7374, |a, _| {
        tv(&shares(a.iter().map(|&v| v as usize), bins), &reference)
    });
    let threshold = threshold(&calibrated, sds);
    let mut edges = vec![values.first().map_or(f.edges[0], |&v| v.min(f.edges[0]))];
    edges.extend(&f.edges);
    edges.push(values.last().map_or(f.edges[f.edges.len() - 1], |&v| {
        v.max(f.edges[f.edges.len() - 1])
    }));
    FeatureDrift {
        feature: f.name.clone(),
        test: Test {
            statistic: effect,
            pvalue: chi.map_or(1.0, |c| c.pvalue),
            threshold,
            alpha,
            drifted: chi.is_some_and(|c| c.pvalue < alpha) && threshold.is_some_and(|t| effect > t),
        },
        psi: 0.0,
        psi_threshold: None,
        out_of_range_share: out_of_range_share(f, values),
        distribution: Distribution {
            edges,
            reference,
            current,
        },
    }
}

/// Output drift on the window: the label mix against the reference mix
/// (chi-squared, and the total variation distance against its resampled
/// threshold), the confidence distribution against the held-out one (KS and
/// its threshold), and the window's shares.
fn output(
    window: &VecDeque<WindowItem>,
    confidences: &[f64],
    reference: &Reference,
    levels: &Levels,
) -> OutputWindow {
    let n = window.len();
    let labels = reference.labels.len();
    // Two tests share the family-wise level.
    let alpha = levels.family_alpha / 2.0;
    let mut counts = vec![0.0; labels];
    for item in window {
        if let Some(l) = item.label.filter(|&l| l < labels) {
            counts[l] += 1.0;
        }
    }
    let labelled: f64 = counts.iter().sum();
    let label_mix = {
        let expected: Vec<f64> = reference
            .label_shares
            .iter()
            .map(|s| s * labelled)
            .collect();
        let (o, e) = merge_sparse_bins(&counts, &expected, 5.0);
        let current: Vec<f64> = counts
            .iter()
            .map(|c| if labelled > 0.0 { c / labelled } else { 0.0 })
            .collect();
        let effect = tv(&current, &reference.label_shares);
        let threshold = threshold(&reference.label_tv, levels.sds);
        match chisquare(&o, &e) {
            Some(c) => Test {
                statistic: c.statistic,
                pvalue: c.pvalue,
                threshold,
                alpha,
                drifted: c.pvalue < alpha && threshold.is_some_and(|t| effect > t),
            },
            None => Test {
                pvalue: 1.0,
                alpha,
                threshold,
                ..Test::default()
            },
        }
    };
    let mut sorted = confidences.to_vec();
    sort_ascending(&mut sorted);
    let confidence = ks_test(
        &reference.confidence,
        &sorted,
        &reference.confidence_ks,
        levels.sds,
        alpha,
    );
    let mut seen = HashSet::with_capacity(n);
    let repeated = window
        .iter()
        .filter(|i| !seen.insert(i.input_sha256.as_str()))
        .count();
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    OutputWindow {
        items: n,
        drifted: label_mix.drifted || confidence.drifted,
        label_mix,
        confidence,
        mean_confidence: crate::monitoring::stats::mean(confidences),
        share_below_threshold: levels
            .threshold
            .filter(|_| !confidences.is_empty())
            .map(|t| {
                confidences.iter().filter(|&&c| c < t).count() as f64 / confidences.len() as f64
            }),
        failed_share: share(window.iter().filter(|i| i.failed).count()),
        automation_rate: share(window.iter().filter(|i| i.automated).count()),
        repeated_share: share(repeated),
    }
}
