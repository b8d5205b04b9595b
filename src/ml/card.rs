//! The model card: everything needed to use, judge and monitor a version.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    pub task: String,
    pub version: String,
    pub created_at: String,
    pub architecture: Architecture,
    /// Input features in the order the model reads them.
    pub features: Vec<FeatureSpec>,
    /// Output labels in the order of the model's outputs.
    pub labels: Vec<String>,
    pub training: TrainingInfo,
    /// Measured on the held-out test split.
    pub metrics: Metrics,
    /// Reference distributions of the outputs on the held-out split.
    pub output_reference: OutputReference,
    /// The training values themselves and the model's confidence on the
    /// held-out rows, for the drift tests and the accuracy estimates.
    /// Cards written before it was added have none: drift then compares
    /// against the histograms (and says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_sample: Option<ReferenceSample>,
    /// The live version and this one on the same held-out rows (`verdict
    /// train --from-labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

/// Two versions measured on the same held-out rows, which neither trained
/// on (the new one) or may have (the live one, when they are its own
/// training rows: never, for reviewers' labels given after it went live).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    /// How many rows, and whether they are all blind (an unbiased sample:
    /// audits and blind samples) or drawn from every labelled row (biased
    /// towards the model's hard cases).
    pub rows: usize,
    pub blind: bool,
    /// The task's threshold the automation rates are measured at (per-label
    /// thresholds override it), if it has one.
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub label_thresholds: BTreeMap<String, f64>,
    /// The live version, if the task had one.
    pub live: Option<Evaluation>,
    pub new: Evaluation,
}

/// One version on the held-out rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub version: String,
    pub accuracy: f64,
    /// 95 % Wilson interval of the accuracy.
    pub accuracy_low: f64,
    pub accuracy_high: f64,
    pub per_label: BTreeMap<String, PrecisionRecall>,
    /// Expected calibration error over 10 equal-width confidence bins.
    pub expected_calibration_error: f64,
    pub log_loss: f64,
    /// Share of the rows whose confidence reaches the threshold of their
    /// predicted label (none without a threshold).
    pub automation_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrecisionRecall {
    pub precision: f64,
    pub recall: f64,
    pub support: u64,
}

/// Most training rows a card keeps (a deterministic sample beyond it).
pub const REFERENCE_SAMPLE_ROWS: usize = 10_000;

/// Raw values of the training split and the model's behaviour on rows it
/// did not train on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceSample {
    /// Per feature, in the card's feature order: the training split's
    /// values (all rows, or a seeded sample of [`REFERENCE_SAMPLE_ROWS`]).
    pub features: Vec<Vec<f64>>,
    /// The model on the validation and test rows (it never trained on
    /// them): its confidence, and whether its label was right.
    pub held_out: HeldOut,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldOut {
    pub confidence: Vec<f64>,
    pub correct: Vec<bool>,
    /// The index of the label it predicted, in the card's label order.
    pub predicted: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Architecture {
    /// Only `mlp` so far.
    pub kind: String,
    pub inputs: usize,
    pub hidden: Vec<usize>,
    pub outputs: usize,
    /// Only `relu` so far.
    pub activation: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureSpec {
    pub name: String,
    /// Normalisation: the model reads `(x - mean) / std`.
    pub mean: f64,
    pub std: f64,
    /// Values outside the valid range are refused with a 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_max: Option<f64>,
    /// The training distribution, for drift checks and the review page.
    pub reference: Histogram,
}

/// Counts of values in bins; `edges` has one more entry than `counts`. The
/// first and last bins are closed at the training minimum and maximum.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Equal-width bins spanning the values.
    pub fn of(values: &[f64], bins: usize) -> Histogram {
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        Self::over(values, lo, hi, bins)
    }

    /// Equal-width bins over `[lo, hi]`.
    pub fn over(values: &[f64], lo: f64, hi: f64, bins: usize) -> Histogram {
        let width = if hi > lo {
            (hi - lo) / bins as f64
        } else {
            1.0
        };
        let edges = (0..=bins)
            .map(|i| lo + width * i as f64)
            .collect::<Vec<_>>();
        let mut counts = vec![0u64; bins];
        for &v in values {
            let i = (((v - lo) / width).floor() as isize).clamp(0, bins as isize - 1) as usize;
            counts[i] += 1;
        }
        Histogram { edges, counts }
    }

    pub fn min(&self) -> f64 {
        self.edges[0]
    }

    pub fn max(&self) -> f64 {
        self.edges[self.edges.len() - 1]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainingInfo {
    pub data_file: String,
    pub data_sha256: String,
    /// The dataset snapshot the data file is, if it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub rows: usize,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub test_rows: usize,
    pub seed: u64,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub class_weights: BTreeMap<String, f64>,
    /// What a version trained on reviewers' labels was trained on and how
    /// its rows were weighed (`verdict train --from-labels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_labels: Option<FromLabels>,
}

/// The rows of a version trained on reviewers' labels, by group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FromLabels {
    /// Only labels given at or after this time (RFC 3339), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Per-row sample weight of each group (times the class weight).
    pub sample_weights: SampleWeights,
    /// Rows of each group in the data (training, validation and held out).
    pub rows: GroupRows,
    /// Kish's effective sample size of the training rows under the weights:
    /// (Σw)² / Σw².
    pub effective_train_rows: f64,
    /// The original training data mixed in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<DataRef>,
    /// Held-out rows: blind ones only (true), or from every labelled row.
    pub held_out_blind: bool,
}

/// Per-row sample weights of the three kinds of training row; see
/// `ml::train::labelled` for what they are and why the defaults are 1.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct SampleWeights {
    /// Blind audits of automated items and blind samples of queued items.
    pub blind: f64,
    /// Every other human-labelled item: the model was unsure, the input out
    /// of range, the item reopened or corrected.
    pub uncertain: f64,
    /// The original training data (`--original`).
    pub original: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupRows {
    pub blind: usize,
    pub uncertain: usize,
    pub original: usize,
}

/// A data file by name and content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataRef {
    pub file: String,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    pub rows: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub accuracy: f64,
    pub log_loss: f64,
    /// Mean one-vs-rest ROC AUC over the labels.
    pub roc_auc: f64,
    pub per_label: BTreeMap<String, LabelMetrics>,
    /// `confusion[true][predicted]`, in label order.
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabelMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutputReference {
    /// Confidence (largest probability) of each held-out prediction.
    pub confidence: Histogram,
    /// Share of each predicted label.
    pub label_mix: BTreeMap<String, f64>,
}

impl ModelCard {
    pub fn read(path: &Path) -> anyhow::Result<ModelCard> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let card: ModelCard = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a valid model card: {e}", path.display()))?;
        card.check()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(card)
    }

    /// Internal consistency: sizes agree, names are unique, numbers finite.
    pub fn check(&self) -> Result<(), String> {
        let a = &self.architecture;
        if a.kind != "mlp" || a.activation != "relu" {
            return Err(format!(
                "unsupported architecture {} / {}",
                a.kind, a.activation
            ));
        }
        if a.inputs != self.features.len() {
            return Err(format!(
                "architecture.inputs is {} but there are {} features",
                a.inputs,
                self.features.len()
            ));
        }
        if a.outputs != self.labels.len() || a.outputs < 2 {
            return Err(format!(
                "architecture.outputs is {} but there are {} labels",
                a.outputs,
                self.labels.len()
            ));
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.features {
            if !names.insert(f.name.as_str()) {
                return Err(format!("feature {:?} appears twice", f.name));
            }
            if !f.mean.is_finite() || !f.std.is_finite() || f.std <= 0.0 {
                return Err(format!("feature {:?} has an invalid normalisation", f.name));
            }
        }
        let mut labels = std::collections::HashSet::new();
        for l in &self.labels {
            if !labels.insert(l.as_str()) {
                return Err(format!("label {l:?} appears twice"));
            }
        }
        if let Some(r) = &self.reference_sample {
            r.check(self.features.len(), self.labels.len())?;
        }
        Ok(())
    }
}

impl ReferenceSample {
    /// One column per feature, lists of one length, finite values.
    fn check(&self, features: usize, labels: usize) -> Result<(), String> {
        if self.features.len() != features {
            return Err(format!(
                "reference_sample has {} feature columns for {features} features",
                self.features.len()
            ));
        }
        if self
            .features
            .iter()
            .any(|c| c.iter().any(|v| !v.is_finite()))
        {
            return Err("reference_sample.features holds a non-finite value".into());
        }
        let h = &self.held_out;
        if h.correct.len() != h.confidence.len() || h.predicted.len() != h.confidence.len() {
            return Err("reference_sample.held_out lists differ in length".into());
        }
        if h.predicted.iter().any(|&p| p >= labels) {
            return Err("reference_sample.held_out.predicted names no label".into());
        }
        Ok(())
    }
}

/// Held-out accuracy with its 95 % Wilson interval, so that a perfect score
/// on a small test set says what it is worth: 1.000 on 113 rows reads
/// "≥ 0.967". Bounds are rounded outwards.
pub fn accuracy_text(accuracy: f64, n: usize) -> String {
    let hits = (accuracy * n as f64).round() as u64;
    match crate::monitoring::stats::wilson(hits, n as u64, 0.95) {
        Some((lo, hi)) => {
            let lo = (lo * 1000.0).floor() / 1000.0;
            let hi = (hi * 1000.0).ceil() / 1000.0;
            if hi >= 1.0 {
                format!("≥ {lo:.3} ({accuracy:.3} on {n})")
            } else {
                format!("{accuracy:.3} ({lo:.3}–{hi:.3}, n {n})")
            }
        }
        None => format!("{accuracy:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_value_once_including_the_ends() {
        let h = Histogram::of(&[0.0, 0.5, 1.0, 1.0, 2.0], 4);
        assert_eq!(h.edges, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
        assert_eq!(h.counts, vec![1, 1, 2, 1]);
        assert_eq!(h.counts.iter().sum::<u64>(), 5);
        let flat = Histogram::of(&[3.0, 3.0], 2);
        assert_eq!(flat.counts.iter().sum::<u64>(), 2);
    }

    fn demo_card() -> serde_json::Value {
        serde_json::from_str(include_str!("../../models/tumor-triage/v1/card.json")).unwrap()
    }

    #[test]
    fn the_demo_card_keeps_the_training_values_and_the_held_out_confidence() {
        let card: ModelCard = serde_json::from_value(demo_card()).unwrap();
        card.check().unwrap();
        let sample = card.reference_sample.expect("a reference sample");
        assert_eq!(sample.features.len(), card.features.len());
        assert!(sample
            .features
            .iter()
            .all(|c| c.len() == card.training.train_rows));
        let held_out = card.training.validation_rows + card.training.test_rows;
        assert_eq!(sample.held_out.confidence.len(), held_out);
    }

    #[test]
    fn a_card_without_a_reference_sample_still_loads() {
        let mut value = demo_card();
        value.as_object_mut().unwrap().remove("reference_sample");
        let card: ModelCard = serde_json::from_value(value).unwrap();
        card.check().unwrap();
        assert!(card.reference_sample.is_none());
    }

    #[test]
    fn a_reference_sample_that_does_not_fit_the_features_is_refused() {
        let mut value = demo_card();
        value["reference_sample"]["features"]
            .as_array_mut()
            .unwrap()
            .pop();
        let card: ModelCard = serde_json::from_value(value).unwrap();
        assert!(card.check().unwrap_err().contains("feature columns"));
    }
}
