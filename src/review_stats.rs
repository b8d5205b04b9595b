//! Reviewer statistics: throughput, time per item, agreement with the
//! consensus and with blind audits, and agreement between reviewers. Pure
//! functions over review and verdict rows, so every figure can be traced to
//! rows in the database.

use std::collections::{BTreeMap, HashMap};

/// One human label.
#[derive(Debug, Clone)]
pub struct ReviewFact {
    pub item_id: String,
    pub reviewer: String,
    pub label: String,
    pub seconds_spent: f64,
    pub blind: bool,
}

/// An item's final verdict.
#[derive(Debug, Clone)]
pub struct VerdictFact {
    pub label: String,
    pub source: String,
    /// model, single, consensus, adjudication.
    pub basis: String,
}

/// Agreeing labels out of those that could agree: the counts, so a share
/// is never shown without its sample size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Share {
    pub hits: usize,
    pub total: usize,
}

impl Share {
    /// The share; `None` without a sample.
    pub fn value(&self) -> Option<f64> {
        share(self.hits, self.total)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewerStats {
    pub reviewer: String,
    pub labels: usize,
    /// 3600 / mean seconds per item.
    pub items_per_hour: f64,
    pub median_seconds: f64,
    /// Share of their labels on multi-reviewer items that match the final
    /// verdict (consensus or adjudication); `None` without such items.
    pub agreement_with_consensus: Share,
    /// Share of their labels on blind audit items that match the model's
    /// verdict; `None` without audit items.
    pub agreement_with_audited_model: Share,
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn share(hits: usize, total: usize) -> Option<f64> {
    (total > 0).then(|| hits as f64 / total as f64)
}

pub fn per_reviewer(
    reviews: &[ReviewFact],
    verdicts: &HashMap<String, VerdictFact>,
) -> Vec<ReviewerStats> {
    let mut by: BTreeMap<&str, Vec<&ReviewFact>> = BTreeMap::new();
    for r in reviews {
        by.entry(r.reviewer.as_str()).or_default().push(r);
    }
    by.into_iter()
        .map(|(reviewer, rs)| {
            let mut seconds: Vec<f64> = rs.iter().map(|r| r.seconds_spent).collect();
            let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
            let (mut consensus_hits, mut consensus_total, mut audit_hits, mut audit_total) =
                (0, 0, 0, 0);
            for r in &rs {
                let Some(v) = verdicts.get(&r.item_id) else {
                    continue;
                };
                if v.basis == "consensus" || v.basis == "adjudication" {
                    consensus_total += 1;
                    consensus_hits += usize::from(v.label == r.label);
                } else if r.blind && v.source == "model" {
                    audit_total += 1;
                    audit_hits += usize::from(v.label == r.label);
                }
            }
            ReviewerStats {
                reviewer: reviewer.to_string(),
                labels: rs.len(),
                items_per_hour: if mean > 0.0 { 3600.0 / mean } else { 0.0 },
                median_seconds: median(&mut seconds),
                agreement_with_consensus: Share {
                    hits: consensus_hits,
                    total: consensus_total,
                },
                agreement_with_audited_model: Share {
                    hits: audit_hits,
                    total: audit_total,
                },
            }
        })
        .collect()
}

/// Pairwise agreement between reviewers of the same item: agreeing pairs
/// over all pairs (no pairs when no item has two reviews).
pub fn inter_reviewer_agreement(reviews: &[ReviewFact]) -> Share {
    let mut by_item: HashMap<&str, Vec<&str>> = HashMap::new();
    for r in reviews {
        by_item
            .entry(r.item_id.as_str())
            .or_default()
            .push(r.label.as_str());
    }
    let (mut agree, mut pairs) = (0usize, 0usize);
    for labels in by_item.values() {
        for i in 0..labels.len() {
            for j in i + 1..labels.len() {
                pairs += 1;
                agree += usize::from(labels[i] == labels[j]);
            }
        }
    }
    Share {
        hits: agree,
        total: pairs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(item: &str, who: &str, label: &str, s: f64, blind: bool) -> ReviewFact {
        ReviewFact {
            item_id: item.into(),
            reviewer: who.into(),
            label: label.into(),
            seconds_spent: s,
            blind,
        }
    }

    fn v(label: &str, source: &str, basis: &str) -> VerdictFact {
        VerdictFact {
            label: label.into(),
            source: source.into(),
            basis: basis.into(),
        }
    }

    #[test]
    fn figures_follow_from_the_rows() {
        let reviews = vec![
            r("a", "ana", "x", 10.0, false),
            r("a", "bo", "x", 20.0, false),
            r("b", "ana", "x", 30.0, false),
            r("b", "bo", "y", 40.0, false),
            r("c", "ana", "y", 20.0, true),
        ];
        let verdicts: HashMap<String, VerdictFact> = [
            ("a".to_string(), v("x", "human", "consensus")),
            ("b".to_string(), v("y", "human", "adjudication")),
            ("c".to_string(), v("x", "model", "model")),
        ]
        .into_iter()
        .collect();
        let stats = per_reviewer(&reviews, &verdicts);
        let ana = &stats[0];
        assert_eq!(ana.reviewer, "ana");
        assert_eq!(ana.labels, 3);
        assert_eq!(ana.median_seconds, 20.0);
        assert_eq!(ana.items_per_hour, 3600.0 / 20.0);
        assert_eq!(ana.agreement_with_consensus.value(), Some(0.5));
        assert_eq!(ana.agreement_with_audited_model.value(), Some(0.0));
        let bo = &stats[1];
        assert_eq!(bo.median_seconds, 30.0);
        assert_eq!(bo.agreement_with_consensus.value(), Some(1.0));
        assert_eq!(bo.agreement_with_audited_model.value(), None);
        assert_eq!(inter_reviewer_agreement(&reviews).value(), Some(0.5));
        assert_eq!(inter_reviewer_agreement(&reviews[4..]).value(), None);
    }
}
