//! The scoring path: featurise → forward → policy → persist, each stage
//! timed. A batch is validated whole before anything runs, scored in one
//! forward pass and written in one transaction: one bad item rejects it all.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use serde_json::Value;

use crate::domain::{now, ItemId};
use crate::domain::{ItemStatus, OutOfRange, ReviewState, VerdictBasis, VerdictSource};
use crate::items::ItemDoc;
use crate::ml::LoadedModel;
use crate::monitoring::{ItemSeen, Outcome as Seen, Recorder};
use crate::policy::{decide, Decision, ModelOutcome};
use crate::store::items::{ItemRow, PredictionRow, ShadowRow, VerdictRow};
use crate::tasks::TaskRuntime;

mod error;
mod featurise;
mod persist;

pub use error::{InputProblem, ScoringError};
pub use featurise::{featurise, from_values, is_non_finite_word, Features};
use persist::Job;
pub use persist::ScoreStore;

/// One item as the client sent it.
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: ItemId,
    pub input: Value,
}

/// The stored result for one submitted item.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub doc: ItemDoc,
    /// False when the id was known and the stored result is returned.
    pub created: bool,
}

/// What the forward pass gave for one item.
enum Scored {
    NotRun,
    Failed(String),
    Probabilities(Vec<f32>),
}

fn micros(d: std::time::Duration, n: usize) -> i64 {
    (d.as_nanos() / n.max(1) as u128 / 1000) as i64
}

/// Scores `submissions` for `task` and stores them in one transaction;
/// `recorder` counts what happened once it is committed.
#[tracing::instrument(skip_all, fields(task = task.name(), items = submissions.len()))]
pub async fn submit(
    db: &ScoreStore,
    recorder: &Recorder,
    task: Arc<TaskRuntime>,
    submissions: Vec<Submission>,
    batch: bool,
) -> Result<Vec<Outcome>, ScoringError> {
    let serving = task.serving();
    let at = |i: usize| {
        if batch {
            format!("items[{i}].")
        } else {
            String::new()
        }
    };
    // Featurise: validate everything before anything runs.
    let submitted = Instant::now();
    let mut ids = Vec::with_capacity(submissions.len());
    let mut features = Vec::with_capacity(submissions.len());
    for (i, s) in submissions.into_iter().enumerate() {
        features.push(featurise(serving.live.as_deref(), &s.input).map_err(|e| e.within(&at(i)))?);
        ids.push(s.id);
    }
    let items = Featurised {
        ids,
        features,
        featurise: submitted.elapsed(),
        submitted,
    };
    store(db, recorder, prepare(&task, serving, items, batch)).await
}

/// Items whose inputs were checked against the features of `serving`'s
/// live version (by [`featurise`] or [`from_values`]).
pub struct Featurised {
    pub ids: Vec<ItemId>,
    pub features: Vec<Features>,
    /// How long featurising took, for the stage timings.
    pub featurise: std::time::Duration,
    /// When the items arrived.
    pub submitted: Instant,
}

/// Scores featurised items with `serving` (the deployment they were
/// featurised for) and stores them in one transaction: forward, policy,
/// persist. With `batch`, a conflict's field names the item
/// (`items[3].id`, see [`ScoringError::item_index`]).
pub async fn score(
    db: &ScoreStore,
    recorder: &Recorder,
    task: &TaskRuntime,
    serving: crate::tasks::Serving,
    items: Featurised,
    batch: bool,
) -> Result<Vec<Outcome>, ScoringError> {
    store(db, recorder, prepare(task, serving, items, batch)).await
}

/// Items scored and decided, with the rows to store: what [`prepare`]
/// hands to [`store`]. A batch file prepares its next chunk while the one
/// before is written.
pub struct Prepared {
    job: Job,
    /// What the recorder is told of each item once stored.
    seen: Vec<Observed>,
    labels: Vec<Option<String>>,
    version: Option<String>,
    featurise: std::time::Duration,
    forward: std::time::Duration,
    policy: std::time::Duration,
    submitted: Instant,
}

/// The forward pass and the policy for featurised items: everything of
/// [`score`] but the write. CPU only; callers may run it on any thread.
pub fn prepare(
    task: &TaskRuntime,
    serving: crate::tasks::Serving,
    items: Featurised,
    batch: bool,
) -> Prepared {
    let Featurised {
        ids,
        features,
        featurise,
        submitted,
    } = items;
    let n = ids.len();
    let model = serving.live;
    let runs_model = task.config.automation.runs_model();
    let candidate = serving.candidate.filter(|_| model.is_some() && runs_model);
    let featurise_us = micros(featurise, n);

    // Forward: one pass for the whole batch.
    let started = Instant::now();
    let scored: Vec<Scored> = match (&model, runs_model) {
        (Some(model), true) => {
            let rows: Vec<Vec<f32>> = features
                .iter()
                .map(|f| model.normalise(&f.values))
                .collect();
            match model.predict(&rows) {
                Ok(probs) => probs.into_iter().map(Scored::Probabilities).collect(),
                Err(e) => {
                    tracing::error!(error = %e, "forward pass failed; items go to the queue");
                    (0..n)
                        .map(|_| Scored::Failed(format!("forward pass failed: {e}")))
                        .collect()
                }
            }
        }
        (None, true) => (0..n)
            .map(|_| Scored::Failed("no live model version".into()))
            .collect(),
        (_, false) => (0..n).map(|_| Scored::NotRun).collect(),
    };
    let forward = started.elapsed();
    let forward_us = micros(forward, n);

    // The candidate beside it, on the same rows in its feature order.
    let started = Instant::now();
    let (candidate_raw, candidate_scored) = match (&candidate, &model) {
        (Some(c), Some(live)) => score_candidate(&c.model, live, &features),
        _ => (None, Vec::new()),
    };
    let candidate_forward_us = micros(started.elapsed(), n);
    let mut candidate_scored = candidate_scored.into_iter();

    // Policy, and the rows to write.
    let created_at = now();
    let sla_deadline = created_at + chrono::Duration::minutes(i64::from(task.config.sla_minutes));
    let mut rng = rand::rng();
    let mut rows = Vec::with_capacity(n);
    let mut seen = Vec::with_capacity(n);
    let mut policy_total = std::time::Duration::ZERO;
    for (i, ((id, features), scored)) in ids.iter().zip(features).zip(scored).enumerate() {
        let started = Instant::now();
        // Which version acts on the item: the candidate for its canary
        // share, else the live one; the other's prediction is kept aside.
        let beside = candidate_scored.next();
        let decides = candidate.as_ref().is_some_and(|c| c.decides(id.as_str()));
        let (acting, scored, raw, other, other_scored, acting_us, other_us) =
            match (&candidate, beside) {
                (Some(c), Some(beside)) if decides => (
                    Some(&c.model),
                    beside,
                    candidate_raw.as_ref().map_or(&features.values, |r| &r[i]),
                    model.as_ref(),
                    Some(scored),
                    candidate_forward_us,
                    forward_us,
                ),
                (c, beside) => (
                    model.as_ref(),
                    scored,
                    &features.values,
                    c.as_ref().map(|c| &c.model),
                    beside,
                    forward_us,
                    candidate_forward_us,
                ),
            };
        let labels = acting.map(|m| m.card.labels.as_slice()).unwrap_or(&[]);
        let summary = match &scored {
            Scored::Probabilities(p) => Some(summarise(p, labels)),
            _ => None,
        };
        let outside: Vec<&str> = match (acting, task.policy.out_of_range) {
            (Some(m), level) if level != OutOfRange::Off => m
                .outside_training_range(raw, task.config.out_of_range_margin)
                .into_iter()
                .map(|i| m.card.features[i].name.as_str())
                .collect(),
            _ => Vec::new(),
        };
        let outcome = match (&scored, &summary) {
            (Scored::NotRun, _) => ModelOutcome::NotRun,
            (Scored::Probabilities(_), Some(s)) if s.confidence.is_finite() => {
                ModelOutcome::Scored {
                    label: &s.label,
                    confidence: s.confidence,
                    outside: !outside.is_empty(),
                }
            }
            _ => ModelOutcome::Failed,
        };
        let decision = decide(&task.policy, outcome, rng.random::<f64>());
        policy_total += started.elapsed();
        let policy_us = micros(started.elapsed(), 1);
        seen.push(Observed {
            outcome: match (decision, outcome) {
                (Decision::Automate { .. }, _) => Seen::Automated,
                (_, ModelOutcome::Failed) => Seen::Failed,
                _ => Seen::Queued,
            },
            audited: matches!(decision, Decision::Automate { audit: true }),
            out_of_distribution: !outside.is_empty(),
            confidence: match outcome {
                ModelOutcome::Scored { confidence, .. } => Some(confidence),
                _ => None,
            },
        });

        let version = acting.map(|m| m.version().to_string());
        let shadow = match (other, other_scored) {
            (Some(other), Some(other_scored)) => Some(shadow_row(
                task.name(),
                id.as_str(),
                other,
                other_scored,
                other_us,
                created_at,
            )),
            _ => None,
        };
        let prediction = match (&scored, &version) {
            (Scored::NotRun, _) | (_, None) => None,
            (Scored::Failed(error), Some(version)) => Some(PredictionRow {
                task: task.name().to_string(),
                item_id: id.as_str().to_string(),
                model_version: version.clone(),
                label: None,
                confidence: None,
                probabilities: None,
                error: Some(error.clone()),
                featurise_us,
                forward_us: acting_us,
                policy_us,
                created_at,
            }),
            (Scored::Probabilities(_), Some(version)) => {
                let s = summary.as_ref().expect("summary of probabilities");
                let finite = s.confidence.is_finite();
                Some(PredictionRow {
                    task: task.name().to_string(),
                    item_id: id.as_str().to_string(),
                    model_version: version.clone(),
                    label: finite.then(|| s.label.clone()),
                    confidence: finite.then_some(s.confidence),
                    probabilities: finite
                        .then(|| serde_json::to_string(&s.probabilities).expect("map")),
                    error: (!finite).then(|| "the model returned a non-finite output".to_string()),
                    featurise_us,
                    forward_us: acting_us,
                    policy_us,
                    created_at,
                })
            }
        };
        let (status, reason, review_state, blind, audit) = match decision {
            Decision::Automate { audit } => (
                ItemStatus::Decided,
                None,
                if audit {
                    ReviewState::Pending
                } else {
                    ReviewState::None
                },
                audit,
                audit,
            ),
            Decision::Queue { reason, blind } => (
                ItemStatus::Queued,
                Some(reason),
                ReviewState::Pending,
                blind,
                false,
            ),
        };
        let verdict = match (decision, &summary) {
            (Decision::Automate { .. }, Some(s)) => Some(VerdictRow {
                task: task.name().to_string(),
                item_id: id.as_str().to_string(),
                label: s.label.clone(),
                source: VerdictSource::Model,
                confidence: Some(s.confidence),
                model_version: version.clone(),
                decided_by: None,
                created_at,
                basis: Some(VerdictBasis::Model),
            }),
            _ => None,
        };
        let item = ItemRow {
            task: task.name().to_string(),
            id: id.as_str().to_string(),
            input: features.canonical,
            input_sha256: features.sha256,
            status,
            reason,
            review_state,
            blind,
            audit,
            model_version: prediction.as_ref().map(|p| p.model_version.clone()),
            // Only the queue orders by it; decided items keep it in the prediction.
            margin: summary
                .as_ref()
                .map(|s| s.margin)
                .filter(|m| m.is_finite() && review_state == ReviewState::Pending),
            sla_deadline: (review_state == ReviewState::Pending).then_some(sla_deadline),
            created_at,
            decided_at: verdict.as_ref().map(|v| v.created_at),
            out_of_range: (!outside.is_empty())
                .then(|| serde_json::to_string(&outside).expect("names")),
        };
        rows.push((item, prediction, verdict, shadow));
    }

    let labels: Vec<Option<String>> = rows
        .iter()
        .map(|(_, p, _, _)| p.as_ref().and_then(|p| p.label.clone()))
        .collect();
    tracing::debug!(featurise_us, forward_us, "scored");
    Prepared {
        job: Job {
            task: task.name().to_string(),
            rows,
            batch,
        },
        seen,
        labels,
        version: model.as_ref().map(|m| m.version().to_string()),
        featurise,
        forward,
        policy: policy_total,
        submitted,
    }
}

/// Stores prepared items in one transaction and, once committed, counts
/// what they created.
pub async fn store(
    db: &ScoreStore,
    recorder: &Recorder,
    prepared: Prepared,
) -> Result<Vec<Outcome>, ScoringError> {
    let Prepared {
        job,
        seen,
        labels,
        version,
        featurise,
        forward,
        policy,
        submitted,
    } = prepared;
    let n = seen.len();
    let task = job.task.clone();
    let started = Instant::now();
    let result = db.persist(job).await;
    let persist = started.elapsed();
    if let Ok(outcomes) = &result {
        // Only what this request created counts; a repeated id was
        // counted when it was first scored.
        let items: Vec<ItemSeen<'_>> = seen
            .iter()
            .zip(&labels)
            .zip(outcomes)
            .filter(|(_, o)| o.created)
            .map(|((s, label), _)| ItemSeen {
                outcome: s.outcome,
                audited: s.audited,
                out_of_distribution: s.out_of_distribution,
                label: label.as_deref(),
                confidence: s.confidence,
            })
            .collect();
        let per_item = |d: std::time::Duration| d.as_secs_f64() / n.max(1) as f64;
        recorder.scored(
            &task,
            version.as_deref(),
            &items,
            &[
                per_item(featurise),
                forward.as_secs_f64(),
                per_item(policy),
                persist.as_secs_f64(),
                submitted.elapsed().as_secs_f64(),
            ],
        );
    }
    result
}

/// What the recorder is told of one item, gathered before it is stored.
struct Observed {
    outcome: Seen,
    audited: bool,
    out_of_distribution: bool,
    confidence: Option<f64>,
}

struct Summary {
    label: String,
    confidence: f64,
    margin: f64,
    probabilities: BTreeMap<String, f64>,
}

fn summarise(p: &[f32], labels: &[String]) -> Summary {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let top = p[order[0]] as f64;
    let second = order.get(1).map(|&i| p[i] as f64).unwrap_or(0.0);
    let any_nan = p.iter().any(|v| !v.is_finite());
    Summary {
        label: labels.get(order[0]).cloned().unwrap_or_default(),
        confidence: if any_nan { f64::NAN } else { top },
        margin: top - second,
        probabilities: labels
            .iter()
            .zip(p)
            .map(|(l, &v)| (l.clone(), v as f64))
            .collect(),
    }
}

/// The candidate's raw rows (its feature order) and its predictions for
/// `features` (the live version's order): both read the same features
/// (checked at import), so its rows are the live rows reordered. `None`
/// for the rows when the candidate reads them in the live order (a
/// retrained version usually does): the live rows serve as they are.
fn score_candidate(
    candidate: &LoadedModel,
    live: &LoadedModel,
    features: &[Features],
) -> (Option<Vec<Vec<f64>>>, Vec<Scored>) {
    let same_order = candidate.card.features.len() == live.card.features.len()
        && candidate
            .card
            .features
            .iter()
            .zip(&live.card.features)
            .all(|(c, l)| c.name == l.name);
    let raw = if same_order {
        None
    } else {
        let order: Option<Vec<usize>> = candidate
            .card
            .features
            .iter()
            .map(|f| live.feature_index.get(&f.name).copied())
            .collect();
        let Some(order) = order else {
            let failed = "the candidate reads a feature the live version does not";
            return (
                None,
                features
                    .iter()
                    .map(|_| Scored::Failed(failed.into()))
                    .collect(),
            );
        };
        Some(
            features
                .iter()
                .map(|f| order.iter().map(|&i| f.values[i]).collect::<Vec<f64>>())
                .collect::<Vec<_>>(),
        )
    };
    let rows: Vec<Vec<f32>> = match &raw {
        Some(raw) => raw.iter().map(|r| candidate.normalise(r)).collect(),
        None => features
            .iter()
            .map(|f| candidate.normalise(&f.values))
            .collect(),
    };
    let scored = match candidate.predict(&rows) {
        Ok(probs) => probs.into_iter().map(Scored::Probabilities).collect(),
        Err(e) => {
            tracing::error!(error = %e, "the candidate's forward pass failed");
            rows.iter()
                .map(|_| Scored::Failed(format!("forward pass failed: {e}")))
                .collect()
        }
    };
    (raw, scored)
}

/// The index of the label `summarise` names for `p`, when every output is
/// finite (else `summarise` gives no confidence): the shadow row's label
/// without the map of every label's probability it does not keep.
fn top_finite(p: &[f32]) -> Option<usize> {
    if !p.iter().all(|v| v.is_finite()) {
        return None;
    }
    (0..p.len()).fold(None, |best, i| match best {
        Some(b) if p[i].total_cmp(&p[b]).is_le() => Some(b),
        _ => Some(i),
    })
}

/// The prediction of the version that did not act on an item.
fn shadow_row(
    task: &str,
    id: &str,
    model: &LoadedModel,
    scored: Scored,
    forward_us: i64,
    created_at: crate::domain::Timestamp,
) -> ShadowRow {
    let (label, confidence, error) = match scored {
        Scored::Probabilities(p) => {
            if let Some(top) = top_finite(&p) {
                (
                    Some(model.card.labels.get(top).cloned().unwrap_or_default()),
                    Some(f64::from(p[top])),
                    None,
                )
            } else {
                (
                    None,
                    None,
                    Some("the model returned a non-finite output".to_string()),
                )
            }
        }
        Scored::Failed(e) => (None, None, Some(e)),
        Scored::NotRun => (None, None, Some("not run".to_string())),
    };
    ShadowRow {
        task: task.to_string(),
        item_id: id.to_string(),
        model_version: model.version().to_string(),
        label,
        confidence,
        error,
        forward_us,
        created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::{summarise, top_finite};

    #[test]
    fn the_shadow_rows_label_is_the_one_summarise_names() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|l| l.to_string()).collect();
        let cases: [&[f32]; 8] = [
            &[0.3, 0.7],
            &[0.7, 0.3],
            &[0.5, 0.5],
            &[0.1, 0.6, 0.3],
            &[0.4, 0.2, 0.4],
            &[f32::NAN, 0.2],
            &[0.2, f32::INFINITY],
            &[0.9],
        ];
        for p in cases {
            let s = summarise(p, &labels[..p.len()]);
            match top_finite(p) {
                Some(i) => {
                    assert!(s.confidence.is_finite(), "{p:?}");
                    assert_eq!(labels[i], s.label, "{p:?}");
                    assert_eq!(f64::from(p[i]), s.confidence, "{p:?}");
                }
                None => assert!(!s.confidence.is_finite(), "{p:?}"),
            }
        }
    }
}
