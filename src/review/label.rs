//! A label and what it decides: one required review makes the verdict;
//! several wait for the others, then the majority decides and a tie goes
//! to an admin; an adjudicator's label decides; a blind audit label only
//! measures the model's verdict.

use crate::db::DbConnection;
use crate::domain::{now, ItemStatus, ReviewState, VerdictBasis};
use crate::store::queue::{self as store, NewReview};

use super::{held_or_reclaimed, ReviewError};

/// A human label for a claimed item.
#[derive(Debug, Clone)]
pub struct Label {
    pub label: String,
    pub comment: Option<String>,
    /// The time the label took as the caller measured it; `None` (what the
    /// web UI sends) takes the time since the server handed out the claim.
    pub seconds_spent: Option<f64>,
}

/// The longest time a label is recorded to have taken.
const MAX_SECONDS: f64 = 86_400.0;

/// What a task asks of its human labels.
#[derive(Debug, Clone)]
pub struct Rules {
    pub labels: Vec<String>,
    /// Independent labels a queued item needs before the majority decides.
    pub reviews_required: u32,
    /// Where the decided item is POSTed (through the outbox).
    pub callback_url: Option<String>,
}

/// What became of an item after a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The verdict is decided (`basis`: single, consensus or adjudication).
    Decided { label: String, basis: VerdictBasis },
    /// More reviewers must label it.
    NeedsMore,
    /// The reviewers tied: an admin adjudicates.
    Tied,
    /// A blind audit label, recorded beside the model's verdict.
    Audited,
}

impl Outcome {
    /// The item's review state after this outcome.
    fn next_state(&self) -> ReviewState {
        match self {
            Outcome::NeedsMore => ReviewState::Pending,
            Outcome::Tied => ReviewState::Adjudication,
            Outcome::Decided { .. } | Outcome::Audited => ReviewState::Done,
        }
    }
}

/// The label most reviewers gave, if one has a strict majority of the votes
/// cast over the others (a plurality without a tie).
pub fn majority(votes: &[String]) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in votes {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    let mut leaders = counts.iter().filter(|(_, &n)| n == best);
    let (label, _) = leaders.next()?;
    leaders.next().is_none().then(|| label.to_string())
}

/// Records the label under the reviewer's live lease and applies what it
/// decides (see the module's rules). A decided item with a `callback_url`
/// gets its webhook in the same transaction.
pub fn submit(
    conn: &mut DbConnection,
    task: &str,
    rules: &Rules,
    item_id: &str,
    reviewer: &str,
    label: &Label,
) -> Result<Outcome, ReviewError> {
    if !rules.labels.contains(&label.label) {
        return Err(ReviewError::UnknownLabel(label.label.clone()));
    }
    if label
        .seconds_spent
        .is_some_and(|s| !s.is_finite() || s < 0.0)
    {
        return Err(ReviewError::BadTimeSpent);
    }
    let lease = held_or_reclaimed(conn, task, item_id, reviewer)?;
    let item = lease.item;
    let at = now();
    let seconds_spent = label.seconds_spent.unwrap_or_else(|| {
        lease.claimed_at.map_or(0.0, |c| {
            ((at - c).num_milliseconds() as f64 / 1000.0).clamp(0.0, MAX_SECONDS)
        })
    });
    store::record_review(
        conn,
        &NewReview {
            task,
            item_id,
            reviewer,
            label: &label.label,
            comment: label.comment.as_deref(),
            seconds_spent,
            blind: item.blind,
            created_at: at,
        },
    )?;
    let outcome = if item.status != ItemStatus::Queued {
        Outcome::Audited
    } else if item.review_state == ReviewState::Adjudication {
        Outcome::Decided {
            label: label.label.clone(),
            basis: VerdictBasis::Adjudication,
        }
    } else if rules.reviews_required <= 1 {
        Outcome::Decided {
            label: label.label.clone(),
            basis: VerdictBasis::Single,
        }
    } else {
        let votes = store::votes(conn, task, item_id)?;
        if (votes.len() as u32) < rules.reviews_required {
            Outcome::NeedsMore
        } else {
            match majority(&votes) {
                Some(label) => Outcome::Decided {
                    label,
                    basis: VerdictBasis::Consensus,
                },
                None => Outcome::Tied,
            }
        }
    };
    let decided_at = matches!(outcome, Outcome::Decided { .. }).then_some(at);
    store::close(conn, task, item_id, outcome.next_state(), decided_at)?;
    if let Outcome::Decided {
        label: decided,
        basis,
    } = &outcome
    {
        store::write_verdict(conn, task, item_id, decided, reviewer, *basis, at)?;
        if let Some(url) = &rules.callback_url {
            crate::webhooks::enqueue_verdict(conn, task, item_id, url)?;
        }
    }
    let detail = match &outcome {
        Outcome::Decided {
            label: decided,
            basis,
        } => serde_json::json!({"label": label.label, "verdict": decided, "basis": basis}),
        Outcome::NeedsMore => {
            serde_json::json!({"label": label.label, "outcome": "needs more reviews"})
        }
        Outcome::Tied => {
            serde_json::json!({"label": label.label, "outcome": "tied: to adjudication"})
        }
        Outcome::Audited => serde_json::json!({"label": label.label, "outcome": "blind audit"}),
    };
    crate::store::audit::record(
        conn,
        reviewer,
        "review.label",
        Some(task),
        Some(item_id),
        detail,
    )?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::majority;

    fn votes(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_majority_decides_and_a_tie_does_not() {
        assert_eq!(majority(&votes(&["a", "a"])), Some("a".into()));
        assert_eq!(majority(&votes(&["a", "b", "a"])), Some("a".into()));
        assert_eq!(majority(&votes(&["a", "b"])), None);
        assert_eq!(majority(&votes(&["a", "b", "c"])), None);
        assert_eq!(majority(&votes(&["a", "a", "b", "b", "c"])), None);
        assert_eq!(majority(&votes(&["c", "a", "b", "c"])), Some("c".into()));
        assert_eq!(majority(&[]), None);
    }
}
