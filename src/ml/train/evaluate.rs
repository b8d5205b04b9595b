//! Metrics of a trained model on held-out rows.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, D};
use candle_nn::Module;

use super::fit::tensors;
use super::{Dataset, REFERENCE_BINS};
use crate::ml::card::{
    Evaluation, FeatureSpec, HeldOut, Histogram, LabelMetrics, Metrics, OutputReference,
    PrecisionRecall, ReferenceSample, REFERENCE_SAMPLE_ROWS,
};
use crate::ml::Mlp;

/// The model's class probabilities on the held-out rows, and their true
/// classes.
pub(super) fn held_out(
    model: &Mlp,
    data: &Dataset,
    test_idx: &[usize],
    specs: &[FeatureSpec],
) -> candle_core::Result<(Vec<Vec<f32>>, Vec<usize>)> {
    let (test_x, _) = tensors(data, test_idx, specs)?;
    let probs = candle_nn::ops::softmax_last_dim(&model.forward(&test_x)?)?.to_vec2::<f32>()?;
    let truth: Vec<usize> = test_idx.iter().map(|&i| data.y[i]).collect();
    Ok((probs, truth))
}

/// The card's reference sample: the training rows' raw values per feature
/// (a seeded sample when there are more than [`REFERENCE_SAMPLE_ROWS`]),
/// and the model's confidence and correctness on `held_out_idx`.
pub(super) fn reference_sample(
    model: &Mlp,
    data: &Dataset,
    train_idx: &[usize],
    held_out_idx: &[usize],
    specs: &[FeatureSpec],
    seed: u64,
) -> candle_core::Result<ReferenceSample> {
    use rand::seq::IndexedRandom;
    use rand::SeedableRng;
    let mut rows: Vec<usize> = if train_idx.len() > REFERENCE_SAMPLE_ROWS {
        // Its own stream, so the sample does not shift the training's.
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7265_6665_7265_6e63);
        train_idx
            .choose_multiple(&mut rng, REFERENCE_SAMPLE_ROWS)
            .copied()
            .collect()
    } else {
        train_idx.to_vec()
    };
    rows.sort_unstable();
    let features = (0..specs.len())
        .map(|j| rows.iter().map(|&i| data.x[i][j]).collect())
        .collect();
    let (probs, truth) = held_out(model, data, held_out_idx, specs)?;
    let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    Ok(ReferenceSample {
        features,
        held_out: HeldOut {
            confidence: probs
                .iter()
                .map(|p| p.iter().cloned().fold(0.0f32, f32::max) as f64)
                .collect(),
            correct: predicted.iter().zip(&truth).map(|(p, t)| p == t).collect(),
            predicted,
        },
    })
}

/// What the model's outputs looked like on the held-out rows: the
/// distribution of its confidence and the mix of labels it chose.
pub(super) fn output_reference(probs: &[Vec<f32>], labels: &[String]) -> OutputReference {
    let confidences: Vec<f64> = probs
        .iter()
        .map(|p| p.iter().cloned().fold(0.0f32, f32::max) as f64)
        .collect();
    let mut label_mix = BTreeMap::new();
    for p in probs {
        *label_mix.entry(labels[argmax(p)].clone()).or_insert(0.0) += 1.0 / probs.len() as f64;
    }
    OutputReference {
        confidence: Histogram::over(&confidences, 0.0, 1.0, REFERENCE_BINS),
        label_mix,
    }
}

pub(super) fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

pub(super) fn accuracy(logits: &Tensor, ys: &Tensor) -> candle_core::Result<f32> {
    let predicted = logits.argmax(D::Minus1)?;
    let correct = predicted
        .eq(ys)?
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(correct / ys.dims1()? as f32)
}

/// Accuracy, log loss, one-vs-rest ROC AUC, per-label precision/recall/F1
/// and the confusion matrix.
pub fn evaluate(probs: &[Vec<f32>], truth: &[usize], labels: &[String]) -> Metrics {
    let k = labels.len();
    let n = truth.len().max(1) as f64;
    let mut confusion = vec![vec![0u64; k]; k];
    let mut log_loss = 0.0;
    for (p, &t) in probs.iter().zip(truth) {
        confusion[t][argmax(p)] += 1;
        log_loss -= (p[t] as f64).clamp(1e-12, 1.0).ln();
    }
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let mut per_label = BTreeMap::new();
    let mut auc_sum = 0.0;
    for (c, label) in labels.iter().enumerate() {
        let tp = confusion[c][c] as f64;
        let predicted: u64 = (0..k).map(|t| confusion[t][c]).sum();
        let support: u64 = confusion[c].iter().sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        per_label.insert(
            label.clone(),
            LabelMetrics {
                precision,
                recall,
                f1,
                support,
            },
        );
        let scores: Vec<(f64, bool)> = probs
            .iter()
            .zip(truth)
            .map(|(p, &t)| (p[c] as f64, t == c))
            .collect();
        auc_sum += roc_auc(&scores);
    }
    Metrics {
        accuracy: correct as f64 / n,
        log_loss: log_loss / n,
        roc_auc: auc_sum / k as f64,
        per_label,
        confusion,
    }
}

/// Expected calibration error: the rows binned by confidence (the largest
/// probability) into 10 equal-width bins over [0, 1] (the last closed),
/// then the mean over rows of |accuracy − mean confidence| of their bin.
pub fn expected_calibration_error(probs: &[Vec<f32>], truth: &[usize]) -> f64 {
    const BINS: usize = 10;
    let mut bins = [(0usize, 0usize, 0.0f64); BINS]; // rows, right, Σ confidence
    for (p, &t) in probs.iter().zip(truth) {
        let predicted = argmax(p);
        let confidence = p[predicted] as f64;
        let b = ((confidence * BINS as f64).floor() as usize).min(BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += usize::from(predicted == t);
        bins[b].2 += confidence;
    }
    let n = truth.len();
    if n == 0 {
        return 0.0;
    }
    bins.iter()
        .filter(|b| b.0 > 0)
        .map(|&(rows, right, conf)| {
            let gap = right as f64 / rows as f64 - conf / rows as f64;
            rows as f64 / n as f64 * gap.abs()
        })
        .sum()
}

/// Share of the rows whose confidence reaches the threshold of their
/// predicted label (`label_thresholds` over `threshold`), as the policy
/// decides; `None` when no label has a threshold.
pub fn automation_rate(
    probs: &[Vec<f32>],
    labels: &[String],
    threshold: Option<f64>,
    label_thresholds: &BTreeMap<String, f64>,
) -> Option<f64> {
    if threshold.is_none() && label_thresholds.is_empty() {
        return None;
    }
    let automated = probs
        .iter()
        .filter(|p| {
            let predicted = argmax(p);
            let t = label_thresholds
                .get(&labels[predicted])
                .copied()
                .or(threshold);
            t.is_some_and(|t| p[predicted] as f64 >= t)
        })
        .count();
    Some(automated as f64 / probs.len().max(1) as f64)
}

/// One version on held-out rows: accuracy with its 95 % Wilson interval,
/// precision and recall per label, calibration error, log loss and the
/// automation rate at the task's thresholds.
pub fn evaluation(
    version: &str,
    probs: &[Vec<f32>],
    truth: &[usize],
    labels: &[String],
    threshold: Option<f64>,
    label_thresholds: &BTreeMap<String, f64>,
) -> Evaluation {
    let metrics = evaluate(probs, truth, labels);
    let right = probs
        .iter()
        .zip(truth)
        .filter(|(p, &t)| argmax(p) == t)
        .count() as u64;
    let (low, high) =
        crate::monitoring::stats::wilson(right, truth.len() as u64, 0.95).unwrap_or((0.0, 1.0));
    Evaluation {
        version: version.to_string(),
        accuracy: metrics.accuracy,
        accuracy_low: low,
        accuracy_high: high,
        per_label: metrics
            .per_label
            .into_iter()
            .map(|(label, m)| {
                (
                    label,
                    PrecisionRecall {
                        precision: m.precision,
                        recall: m.recall,
                        support: m.support,
                    },
                )
            })
            .collect(),
        expected_calibration_error: expected_calibration_error(probs, truth),
        log_loss: metrics.log_loss,
        automation_rate: automation_rate(probs, labels, threshold, label_thresholds),
    }
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half.
pub fn roc_auc(scores: &[(f64, bool)]) -> f64 {
    let positives = scores.iter().filter(|s| s.1).count() as f64;
    let negatives = scores.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut sorted: Vec<(f64, bool)> = scores.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let mean_rank = (i + j + 1) as f64 / 2.0; // ranks are 1-based
        rank_sum += mean_rank * sorted[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_zero() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(roc_auc(&perfect), 1.0);
        let reversed = [(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        assert_eq!(roc_auc(&reversed), 0.0);
        let ties = [(0.5, false), (0.5, true)];
        assert_eq!(roc_auc(&ties), 0.5);
    }

    #[test]
    fn calibration_error_weighs_each_bins_gap_by_its_rows() {
        // Perfectly calibrated: 0.8 confident, 4 of 5 right.
        let probs = vec![vec![0.8f32, 0.2]; 5];
        let ece = expected_calibration_error(&probs, &[0, 0, 0, 0, 1]);
        assert!(ece.abs() < 1e-6, "{ece}");
        // Two bins, computed by hand: rows at 0.95 (bin 9), 2 of 2 right,
        // gap 0.05; rows at 0.55 (bin 5), 0 of 2 right, gap 0.55. Half the
        // rows each: 0.5 · 0.05 + 0.5 · 0.55 = 0.3.
        let probs = vec![
            vec![0.95f32, 0.05],
            vec![0.05, 0.95],
            vec![0.55, 0.45],
            vec![0.45, 0.55],
        ];
        let ece = expected_calibration_error(&probs, &[0, 1, 1, 0]);
        assert!((ece - 0.3).abs() < 1e-6, "{ece}");
        // A confidence of exactly 1 is in the last bin, not past it.
        let ece = expected_calibration_error(&[vec![1.0f32, 0.0]], &[1]);
        assert!((ece - 1.0).abs() < 1e-6, "{ece}");
        assert_eq!(expected_calibration_error(&[], &[]), 0.0);
    }

    #[test]
    fn the_automation_rate_takes_the_predicted_labels_threshold() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let probs = vec![
            vec![0.95f32, 0.05],
            vec![0.85, 0.15],
            vec![0.1, 0.9],
            vec![0.4, 0.6],
        ];
        let none = BTreeMap::new();
        assert_eq!(automation_rate(&probs, &labels, None, &none), None);
        assert_eq!(
            automation_rate(&probs, &labels, Some(0.9), &none),
            Some(0.25)
        );
        let b_lower = BTreeMap::from([("b".to_string(), 0.5)]);
        assert_eq!(
            automation_rate(&probs, &labels, Some(0.9), &b_lower),
            Some(0.75)
        );
        // Per-label only: a label without one never automates.
        assert_eq!(automation_rate(&probs, &labels, None, &b_lower), Some(0.5));
    }

    #[test]
    fn an_evaluation_reads_a_perfect_score_with_its_wilson_bound() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let probs: Vec<Vec<f32>> = (0..113)
            .map(|i| {
                if i % 2 == 0 {
                    vec![0.99, 0.01]
                } else {
                    vec![0.01, 0.99]
                }
            })
            .collect();
        let truth: Vec<usize> = (0..113).map(|i| i % 2).collect();
        let e = evaluation("v2", &probs, &truth, &labels, Some(0.9), &BTreeMap::new());
        assert_eq!(e.accuracy, 1.0);
        assert_eq!(e.accuracy_high, 1.0);
        assert!((e.accuracy_low - 0.967).abs() < 0.001, "{}", e.accuracy_low);
        assert_eq!(e.automation_rate, Some(1.0));
        assert_eq!(e.per_label["a"].recall, 1.0);
    }
}
