//! Training on reviewers' labels (`verdict train --from-labels`): which
//! rows there are, which group each belongs to, what each weighs in the
//! loss, and which rows are held out.
//!
//! # Groups and their default weights
//!
//! A human-labelled item is one of two kinds, and the original training
//! data is a third:
//!
//! - **blind**: blind audits of automated items and blind samples of queued
//!   ones (`human_only`, `shadow`, model errors). Chosen by a random draw or
//!   by taking everything, and labelled without seeing the model: an
//!   unbiased sample of its part of the traffic.
//! - **uncertain**: every other human-labelled item — the model was unsure
//!   (`low_confidence`), the input was out of range, the level was `assist`,
//!   an admin reopened or corrected it. Chosen *because* the model was
//!   unsure: the model's hard cases, far more of them than the traffic holds.
//! - **original**: the rows the live model was trained on (`--original`).
//!
//! Each row's loss is multiplied by its group's weight (and by its class
//! weight, as in every training). **The default is 1 for every group.** The
//! reasons:
//!
//! 1. Uncertain items were picked by the model's confidence, a function of
//!    the input alone (audits by a random draw): the selection is on `x`,
//!    never on the label, so `p(label | input)` among them is the traffic's.
//!    What is biased is *where* in input space the rows lie, not what their
//!    labels say; an unweighted fit of `p(label | input)` stays consistent.
//! 2. Weighing them down to their share of the traffic (inverse propensity:
//!    uncertain rows are all labelled, automated ones only at the audit
//!    rate, so `uncertain = audit_rate`, e.g. 0.02) would throw away most of
//!    the labels exactly where the threshold sits and the new model can gain
//!    most. The effective sample size, (Σw)² / Σw², shows the cost; it is
//!    printed and written to the card.
//! 3. The distortion the skew does cause — capacity and class balance spent
//!    on the hard region — is what the held-out comparison measures: the
//!    held-out rows are blind (unbiased) whenever there are enough.
//!
//! Exceptions a user may want: corrections of automated items are chosen
//! because the model was wrong (a selection on the label), and reviewers of
//! non-blind items saw the model's suggestion. Both argue for a weight below
//! 1 on `uncertain` when they are many; `--weights uncertain=0.5` (or the
//! audit rate, for a traffic-shaped fit) does it.

use std::str::FromStr;

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::Dataset;
pub use crate::ml::card::SampleWeights;

/// The fewest blind rows that make an unbiased held-out set.
pub const MIN_BLIND_HELD_OUT: usize = 30;

/// The fewest human-labelled rows worth training on.
pub const MIN_LABELLED_ROWS: usize = 20;

impl Default for SampleWeights {
    fn default() -> Self {
        SampleWeights {
            blind: 1.0,
            uncertain: 1.0,
            original: 1.0,
        }
    }
}

impl FromStr for SampleWeights {
    type Err = String;

    /// `uncertain=0.5,original=1`: the groups named take their weight, the
    /// others keep the default.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut w = SampleWeights::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not GROUP=WEIGHT"))?;
            let value: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("the weight of {key} is a number ≥ 0, not {value:?}"))?;
            match key.trim() {
                "blind" => w.blind = value,
                "uncertain" => w.uncertain = value,
                "original" => w.original = value,
                other => {
                    return Err(format!(
                        "no group {other:?}: the groups are blind, uncertain and original"
                    ))
                }
            }
        }
        if w.blind == 0.0 && w.uncertain == 0.0 {
            return Err("blind and uncertain rows cannot both weigh 0".into());
        }
        Ok(w)
    }
}

impl std::fmt::Display for SampleWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "blind={},uncertain={},original={}",
            self.blind, self.uncertain, self.original
        )
    }
}

/// Which kind of row a training row is (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Blind,
    Uncertain,
    Original,
}

impl SampleWeights {
    pub fn of(&self, group: Group) -> f64 {
        match group {
            Group::Blind => self.blind,
            Group::Uncertain => self.uncertain,
            Group::Original => self.original,
        }
    }
}

/// The group of a human-labelled item from its export row: an audit, or
/// an item queued blind (the policy queues `human_only`, `shadow` and
/// model errors blind), is blind; anything else a human labelled is
/// uncertain.
pub fn group_of(audit: bool, reason: Option<&str>) -> Group {
    match reason {
        _ if audit => Group::Blind,
        Some("human_only" | "shadow" | "model_error") => Group::Blind,
        _ => Group::Uncertain,
    }
}

/// Rows and the group of each.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub data: Dataset,
    pub groups: Vec<Group>,
}

impl Labelled {
    pub fn count(&self, group: Group) -> usize {
        self.groups.iter().filter(|g| **g == group).count()
    }
}

/// Reads a JSONL label export (a snapshot's bytes): the `input` object's
/// fields in `features` order, `human_label` as an index into `labels`,
/// the group from `audit` and `reason`. Labels outside `labels` are
/// refused, all of them named.
pub fn read_export(
    bytes: &[u8],
    features: &[String],
    labels: &[String],
) -> anyhow::Result<Labelled> {
    let text = std::str::from_utf8(bytes).context("the export is not UTF-8")?;
    let (mut x, mut y, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    let mut unknown: Vec<String> = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let row: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("line {}: not a JSON object", i + 1))?;
        let id = row.get("id").and_then(|v| v.as_str()).unwrap_or("?");
        let input = row
            .get("input")
            .and_then(|v| v.as_object())
            .with_context(|| format!("item {id}: no input object"))?;
        let values = features
            .iter()
            .map(|name| {
                input
                    .get(name)
                    .and_then(|v| v.as_f64())
                    .filter(|v| v.is_finite())
                    .with_context(|| {
                        format!("item {id}: input {name:?} is missing or not a finite number")
                    })
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        let label = row
            .get("human_label")
            .and_then(|v| v.as_str())
            .with_context(|| format!("item {id}: no human label"))?;
        let Some(class) = labels.iter().position(|l| l == label) else {
            if !unknown.iter().any(|u| u == label) {
                unknown.push(label.to_string());
            }
            continue;
        };
        let audit = row.get("audit").and_then(|v| v.as_bool()).unwrap_or(false);
        let reason = row.get("reason").and_then(|v| v.as_str());
        x.push(values);
        y.push(class);
        groups.push(group_of(audit, reason));
    }
    if !unknown.is_empty() {
        bail!(
            "the labels {unknown:?} are not among the live model's labels {labels:?}: \
             a version trained on them could not replace it"
        );
    }
    Ok(Labelled {
        data: Dataset {
            features: features.to_vec(),
            labels: labels.to_vec(),
            x,
            y,
        },
        groups,
    })
}

/// Appends the original training data, its features and labels matched by
/// name to the set's.
pub fn add_original(set: &mut Labelled, original: &Dataset) -> anyhow::Result<()> {
    let columns = set
        .data
        .features
        .iter()
        .map(|name| {
            original
                .features
                .iter()
                .position(|f| f == name)
                .with_context(|| format!("the original data has no feature {name:?}"))
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    let classes = original
        .labels
        .iter()
        .map(|l| {
            set.data
                .labels
                .iter()
                .position(|m| m == l)
                .with_context(|| {
                    format!(
                        "the original data's label {l:?} is not among the live model's labels {:?}",
                        set.data.labels
                    )
                })
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    for (row, &class) in original.x.iter().zip(&original.y) {
        set.data.x.push(columns.iter().map(|&j| row[j]).collect());
        set.data.y.push(classes[class]);
        set.groups.push(Group::Original);
    }
    Ok(())
}

/// Which rows train, which validate (early stopping) and which are held
/// out (never trained on; both versions are measured on them).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub train_idx: Vec<usize>,
    pub val_idx: Vec<usize>,
    pub test_idx: Vec<usize>,
    /// The held-out rows are all blind (else drawn from every labelled row:
    /// biased towards the model's hard cases).
    pub held_out_blind: bool,
}

/// Holds out `share` of the blind rows (at least [`MIN_BLIND_HELD_OUT`])
/// when there are that many; else 20 % of every labelled row (the original
/// data is never held out). The rest: 80 % trains, 20 % validates,
/// stratified by label. Fails when a label has no training row.
pub fn plan(set: &Labelled, share: f64, rng: &mut StdRng) -> anyhow::Result<Plan> {
    let rows_of = |keep: &dyn Fn(Group) -> bool| -> Vec<usize> {
        (0..set.groups.len())
            .filter(|&i| keep(set.groups[i]))
            .collect()
    };
    let mut blind = rows_of(&|g| g == Group::Blind);
    let held_out_blind = blind.len() >= MIN_BLIND_HELD_OUT;
    let mut test_idx = if held_out_blind {
        blind.shuffle(rng);
        let n =
            ((blind.len() as f64 * share).round() as usize).clamp(MIN_BLIND_HELD_OUT, blind.len());
        blind[..n].to_vec()
    } else {
        let mut labelled = rows_of(&|g| g != Group::Original);
        labelled.shuffle(rng);
        let n = (labelled.len() as f64 * 0.2).round() as usize;
        labelled[..n].to_vec()
    };
    test_idx.sort_unstable();
    let rest: Vec<usize> = (0..set.groups.len())
        .filter(|i| test_idx.binary_search(i).is_err())
        .collect();
    let (train_idx, val_idx) = stratified(&rest, &set.data.y, 0.2, rng);
    for (c, label) in set.data.labels.iter().enumerate() {
        if !train_idx.iter().any(|&i| set.data.y[i] == c) {
            bail!("no training row is labelled {label:?}: more labels are needed");
        }
    }
    Ok(Plan {
        train_idx,
        val_idx,
        test_idx,
        held_out_blind,
    })
}

/// Splits `rows` per label: `share` of each label's rows (rounded) in the
/// second list, the rest in the first; both sorted.
fn stratified(
    rows: &[usize],
    y: &[usize],
    share: f64,
    rng: &mut StdRng,
) -> (Vec<usize>, Vec<usize>) {
    let classes = rows.iter().map(|&i| y[i] + 1).max().unwrap_or(0);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut members: Vec<usize> = rows.iter().copied().filter(|&i| y[i] == c).collect();
        members.shuffle(rng);
        let n = (members.len() as f64 * share).round() as usize;
        second.extend_from_slice(&members[..n]);
        first.extend_from_slice(&members[n..]);
    }
    first.sort_unstable();
    second.sort_unstable();
    (first, second)
}

/// Each row's sample weight, by its group.
pub fn row_weights(groups: &[Group], weights: &SampleWeights) -> Vec<f32> {
    groups.iter().map(|&g| weights.of(g) as f32).collect()
}

/// Kish's effective sample size of `rows` under `weights`: (Σw)² / Σw².
pub fn effective_rows(weights: &[f32], rows: &[usize]) -> f64 {
    let (sum, squares) = rows.iter().fold((0.0f64, 0.0f64), |(s, q), &i| {
        let w = weights[i] as f64;
        (s + w, q + w * w)
    });
    if squares > 0.0 {
        sum * sum / squares
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn weights_parse_by_group_and_keep_the_defaults_of_the_others() {
        let w: SampleWeights = "uncertain=0.25, original=2".parse().unwrap();
        assert_eq!(
            w,
            SampleWeights {
                blind: 1.0,
                uncertain: 0.25,
                original: 2.0
            }
        );
        assert_eq!(
            "".parse::<SampleWeights>().unwrap(),
            SampleWeights::default()
        );
        assert!("audit=1"
            .parse::<SampleWeights>()
            .unwrap_err()
            .contains("no group"));
        assert!("blind=-1".parse::<SampleWeights>().is_err());
        assert!("blind=x".parse::<SampleWeights>().is_err());
        assert!("blind".parse::<SampleWeights>().is_err());
        assert!("blind=0,uncertain=0".parse::<SampleWeights>().is_err());
        assert_eq!(w.to_string().parse::<SampleWeights>().unwrap(), w);
    }

    #[test]
    fn audits_and_blind_queues_are_blind_every_other_human_label_uncertain() {
        assert_eq!(group_of(true, None), Group::Blind);
        assert_eq!(group_of(false, Some("shadow")), Group::Blind);
        assert_eq!(group_of(false, Some("human_only")), Group::Blind);
        assert_eq!(group_of(false, Some("model_error")), Group::Blind);
        assert_eq!(group_of(false, Some("low_confidence")), Group::Uncertain);
        assert_eq!(
            group_of(false, Some("out_of_distribution")),
            Group::Uncertain
        );
        assert_eq!(group_of(false, Some("reopened")), Group::Uncertain);
        // A correction of an automated item that was never queued.
        assert_eq!(group_of(false, None), Group::Uncertain);
    }

    #[test]
    fn each_row_weighs_its_groups_weight_and_the_effective_size_shows_the_cost() {
        let groups = [
            Group::Blind,
            Group::Uncertain,
            Group::Uncertain,
            Group::Original,
        ];
        let w = row_weights(
            &groups,
            &SampleWeights {
                blind: 1.0,
                uncertain: 0.5,
                original: 2.0,
            },
        );
        assert_eq!(w, vec![1.0, 0.5, 0.5, 2.0]);
        // Equal weights: the effective size is the row count.
        assert_eq!(effective_rows(&[1.0; 4], &[0, 1, 2, 3]), 4.0);
        // (1 + 0.5 + 0.5 + 2)² / (1 + 0.25 + 0.25 + 4) = 16 / 5.5
        assert!((effective_rows(&w, &[0, 1, 2, 3]) - 16.0 / 5.5).abs() < 1e-12);
    }

    fn set(groups: Vec<Group>) -> Labelled {
        let n = groups.len();
        Labelled {
            data: Dataset {
                features: vec!["a".into()],
                labels: vec!["no".into(), "yes".into()],
                x: (0..n).map(|i| vec![i as f64]).collect(),
                y: (0..n).map(|i| i % 2).collect(),
            },
            groups,
        }
    }

    #[test]
    fn the_held_out_rows_are_blind_when_there_are_enough_and_never_original() {
        let mut groups = vec![Group::Blind; 40];
        groups.extend(vec![Group::Uncertain; 100]);
        groups.extend(vec![Group::Original; 100]);
        let s = set(groups);
        let p = plan(&s, 0.5, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(p.held_out_blind);
        assert_eq!(p.test_idx.len(), 30, "at least 30 even when half is 20");
        assert!(p.test_idx.iter().all(|&i| s.groups[i] == Group::Blind));
        let mut all: Vec<usize> = [&p.train_idx[..], &p.val_idx, &p.test_idx].concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 240, "every row once");

        // Too few blind rows: 20 % of the labelled rows, none original.
        let mut groups = vec![Group::Blind; 10];
        groups.extend(vec![Group::Uncertain; 90]);
        groups.extend(vec![Group::Original; 100]);
        let s = set(groups);
        let p = plan(&s, 0.5, &mut StdRng::seed_from_u64(7)).unwrap();
        assert!(!p.held_out_blind);
        assert_eq!(p.test_idx.len(), 20);
        assert!(p.test_idx.iter().all(|&i| s.groups[i] != Group::Original));
    }
}
