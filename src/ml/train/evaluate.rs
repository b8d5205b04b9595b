//! Metrics of a trained model on held-out rows.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, D};
use candle_nn::Module;

use super::fit::tensors;
use super::{Dataset, REFERENCE_BINS};
use crate::ml::card::{
    FeatureSpec, HeldOut, Histogram, LabelMetrics, Metrics, OutputReference, ReferenceSample,
    REFERENCE_SAMPLE_ROWS,
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
}
