//! What a window is compared with, built once per model version: each
//! feature's sorted reference values with its PSI bins and the thresholds
//! calibrated on the reference itself, the held-out confidence and label
//! mix, and the calibrators of the accuracy estimates.

use crate::ml::card::ModelCard;
use crate::monitoring::stats::{
    calibrate, ks_statistic_sorted, sort_ascending, Atc, Calibrated, Isotonic, PsiBins,
};

/// How the window's features are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// KS and PSI against the card's training values.
    Sample,
    /// Chi-squared against the card's 20-bin histograms (cards without a
    /// reference sample): coarser, said so on the dashboard.
    Histogram,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sample => "sample",
            Method::Histogram => "histogram",
        }
    }
}

/// One feature's reference.
#[derive(Debug, Clone)]
pub struct FeatureReference {
    pub name: String,
    /// Training values, sorted (empty with [`Method::Histogram`]).
    pub sorted: Vec<f64>,
    pub psi_bins: Option<PsiBins>,
    /// Null distribution of the KS statistic between window-sized samples.
    pub ks: Option<Calibrated>,
    pub psi: Option<Calibrated>,
    /// The card's histogram: edges and counts.
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    /// The training range widened by the task's margin.
    pub low: f64,
    pub high: f64,
}

/// Everything a window of one model version is compared with.
#[derive(Debug, Clone)]
pub struct Reference {
    pub version: String,
    pub method: Method,
    pub features: Vec<FeatureReference>,
    pub labels: Vec<String>,
    /// Expected share of each label (card order).
    pub label_shares: Vec<f64>,
    /// Null distribution of the label mix's total variation distance.
    pub label_tv: Option<Calibrated>,
    /// Held-out confidences, sorted, and the KS null distribution.
    pub confidence: Vec<f64>,
    pub confidence_ks: Option<Calibrated>,
    pub calibrator: Option<Isotonic>,
    pub atc: Option<Atc>,
    /// Held-out accuracy (the reference sample's, else the card's metric).
    pub accuracy: f64,
    /// Share of held-out rows at or above the task's threshold.
    pub automation_rate: Option<f64>,
    /// The window size the thresholds were calibrated for.
    pub window: usize,
}

/// Settings that shape a reference.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceSettings {
    pub window: usize,
    pub draws: usize,
    pub psi_bins: usize,
    /// The task's out-of-range margin (share of the training range).
    pub margin: f64,
    /// The confidence at which the task automates, when it does.
    pub threshold: Option<f64>,
}

/// Seed of the calibration resampling: fixed, so every instance and every
/// restart calibrates the same thresholds.
const SEED: u64 = 0x0064_7269_6674;

/// Half the sum of absolute differences of two share lists.
pub fn total_variation(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

/// Label shares of `predicted` (label indexes) over `labels` labels.
pub fn shares(predicted: impl Iterator<Item = usize>, labels: usize) -> Vec<f64> {
    let mut counts = vec![0.0; labels];
    let mut n = 0.0;
    for p in predicted {
        if p < labels {
            counts[p] += 1.0;
            n += 1.0;
        }
    }
    if n > 0.0 {
        counts.iter_mut().for_each(|c| *c /= n);
    }
    counts
}

impl Reference {
    /// Builds the reference of `card` for windows of `settings.window`
    /// items. Costs up to a second for 30 features (the calibration); run
    /// it off the async threads.
    pub fn build(card: &ModelCard, settings: ReferenceSettings) -> Reference {
        let sample = card.reference_sample.as_ref();
        let method = if sample.is_some() {
            Method::Sample
        } else {
            Method::Histogram
        };
        let features = card
            .features
            .iter()
            .enumerate()
            .map(|(j, f)| {
                let (lo, hi) = (f.reference.min(), f.reference.max());
                let slack = (hi - lo) * settings.margin;
                let mut sorted = sample.map(|s| s.features[j].clone()).unwrap_or_default();
                sort_ascending(&mut sorted);
                let psi_bins = PsiBins::from_sorted(&sorted, settings.psi_bins);
                let ks = calibrate(
                    &sorted,
                    settings.window,
                    settings.draws,
                    SEED ^ j as u64,
                    |a, b| ks_statistic_sorted(a, b).unwrap_or(0.0),
                );
                let psi = calibrate(
                    &sorted,
                    settings.window,
                    settings.draws,
                    SEED ^ ((j as u64) << 8),
                    |a, b| {
                        PsiBins::from_sorted(a, settings.psi_bins)
                            .and_then(|bins| bins.apply_sorted(b))
                            .map_or(0.0, |p| p.value)
                    },
                );
                FeatureReference {
                    name: f.name.clone(),
                    sorted,
                    psi_bins,
                    ks,
                    psi,
                    edges: f.reference.edges.clone(),
                    counts: f.reference.counts.clone(),
                    low: lo - slack,
                    high: hi + slack,
                }
            })
            .collect();

        let labels = card.labels.clone();
        let held_out = sample.map(|s| &s.held_out);
        let label_shares = match held_out {
            Some(h) if !h.predicted.is_empty() => shares(h.predicted.iter().copied(), labels.len()),
            _ => labels
                .iter()
                .map(|l| {
                    card.output_reference
                        .label_mix
                        .get(l)
                        .copied()
                        .unwrap_or(0.0)
                })
                .collect(),
        };
        // The label mix's spread: window-sized draws of held-out predictions
        // (as label indexes, sorted) against the expected shares.
        let label_tv = held_out.filter(|h| !h.predicted.is_empty()).and_then(|h| {
            let as_values: Vec<f64> = h.predicted.iter().map(|&p| p as f64).collect();
            let expected = label_shares.clone();
            let n = labels.len();
            calibrate(
                &as_values,
                settings.window,
                settings.draws,
                SEED ^ 0x1abe1,
                |a, _| total_variation(&shares(a.iter().map(|&v| v as usize), n), &expected),
            )
        });
        let mut confidence = held_out.map(|h| h.confidence.clone()).unwrap_or_default();
        sort_ascending(&mut confidence);
        let confidence_ks = calibrate(
            &confidence,
            settings.window,
            settings.draws,
            SEED ^ 0xc0f,
            |a, b| ks_statistic_sorted(a, b).unwrap_or(0.0),
        );
        let (calibrator, atc) = match held_out {
            Some(h) if !h.confidence.is_empty() => {
                let correct: Vec<f64> = h.correct.iter().map(|&c| f64::from(u8::from(c))).collect();
                (
                    Isotonic::fit(&h.confidence, &correct),
                    Atc::fit(&h.confidence, &h.correct),
                )
            }
            _ => (None, None),
        };
        let accuracy = match held_out {
            Some(h) if !h.correct.is_empty() => {
                h.correct.iter().filter(|&&c| c).count() as f64 / h.correct.len() as f64
            }
            _ => card.metrics.accuracy,
        };
        let automation_rate = match (settings.threshold, held_out) {
            (Some(t), Some(h)) if !h.confidence.is_empty() => Some(
                h.confidence.iter().filter(|&&c| c >= t).count() as f64 / h.confidence.len() as f64,
            ),
            _ => None,
        };
        Reference {
            version: card.version.clone(),
            method,
            features,
            labels,
            label_shares,
            label_tv,
            confidence,
            confidence_ks,
            calibrator,
            atc,
            accuracy,
            automation_rate,
            window: settings.window,
        }
    }
}
