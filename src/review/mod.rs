//! Review: items waiting for a human, claimed one at a time with a lease,
//! labelled, skipped, taken back. The rules live here (who may act on an
//! item, what a label decides); the queries in [`crate::store::queue`].
//!
//! Every function runs inside one [`Db::write`](crate::db::Db::write)
//! closure, so several compose into one transaction. An expired lease
//! frees the item; a label, skip or renewal needs the live lease.

mod correct;
mod error;
mod flag;
mod label;
mod reaper;
mod undo;

use chrono::Duration;

use crate::db::DbConnection;
use crate::domain::{now, QueueKind, QueueOrder, ReviewState, Timestamp};
use crate::store::queue::{self as store, Lease};

pub use crate::store::queue::{Claim, Depth};
pub use correct::{overrule, reopen};
pub use error::ReviewError;
pub use flag::{flag, flags, Flag, MAX_NOTE};
pub use label::{majority, submit, Label, Outcome, Rules};
pub use reaper::{LeaseReaper, REAP_GRACE};
pub use undo::{undo_last, UNDO_WINDOW};

/// How long a claim lasts unless renewed.
pub const DEFAULT_LEASE: Duration = Duration::minutes(5);

/// How long a skipped item is not handed back to the reviewer who skipped
/// it (unless nothing else waits).
pub const SKIP_HOLD: Duration = Duration::minutes(30);

/// Claims the next item of `task` for `reviewer`: the earliest SLA deadline
/// first, then the smallest model margin (most uncertain). Items this
/// reviewer already labelled are passed over. `None` when the queue is empty.
pub fn claim_next(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Option<Claim>, ReviewError> {
    claim_from(
        conn,
        QueueKind::Review,
        QueueOrder::default(),
        task,
        reviewer,
        lease,
    )
}

/// [`claim_next`] from either queue, in `order`.
pub fn claim_from(
    conn: &mut DbConnection,
    kind: QueueKind,
    order: QueueOrder,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Option<Claim>, ReviewError> {
    let at = now();
    // Items this reviewer skipped lately wait for others; when nothing
    // else waits, they come back.
    for skipped_since in [Some(at - SKIP_HOLD), None] {
        let claim = store::claim(
            conn,
            kind.state(),
            order,
            task,
            reviewer,
            at,
            at + lease,
            skipped_since,
        )?;
        if claim.is_some() {
            return Ok(claim);
        }
    }
    Ok(None)
}

/// The item `reviewer` holds a live lease on in `task`, if any.
pub fn held_by(
    conn: &mut DbConnection,
    kind: QueueKind,
    task: &str,
    reviewer: &str,
) -> Result<Option<Claim>, ReviewError> {
    Ok(store::held_by(conn, kind.state(), task, reviewer, now())?)
}

/// The item `reviewer` holds in the queue, or the next one claimed: a reload
/// of the review page resumes the item rather than claiming another.
pub fn resume_or_claim(
    conn: &mut DbConnection,
    kind: QueueKind,
    order: QueueOrder,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Option<Claim>, ReviewError> {
    match held_by(conn, kind, task, reviewer)? {
        Some(claim) => Ok(Some(claim)),
        None => claim_from(conn, kind, order, task, reviewer, lease),
    }
}

/// Extends the reviewer's live lease (the review page renews it while open);
/// returns when it now expires.
pub fn renew(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Timestamp, ReviewError> {
    held_lease(conn, task, item_id, reviewer)?;
    let expires = now() + lease;
    store::renew(conn, task, item_id, expires)?;
    Ok(expires)
}

/// Gives the item back to the queue for others.
pub fn skip(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> Result<(), ReviewError> {
    held_lease(conn, task, item_id, reviewer)?;
    store::release(conn, task, item_id)?;
    let at = now();
    store::record_skip(conn, task, item_id, reviewer, at, at - SKIP_HOLD)?;
    crate::store::audit::record(
        conn,
        reviewer,
        "review.skip",
        Some(task),
        Some(item_id),
        serde_json::json!({}),
    )?;
    Ok(())
}

/// The item and its lease, if `reviewer` holds a live lease on it;
/// otherwise why not.
fn held_lease(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> Result<Lease, ReviewError> {
    let Some(lease) = store::lease(conn, task, item_id)? else {
        return Err(ReviewError::UnknownItem {
            task: task.into(),
            id: item_id.into(),
        });
    };
    match lease_problem(&lease, reviewer, now()) {
        None => Ok(lease),
        // A second post of the same label finds the lease gone: say so.
        Some(_) if store::has_reviewed(conn, task, item_id, reviewer)? => {
            Err(ReviewError::AlreadyLabelled)
        }
        Some(problem) => Err(problem),
    }
}

/// [`held_lease`], except that a claim which lapsed while nobody else took
/// the item (its lease expired or was cleared, the item still waits, the
/// reviewer has not labelled it) is taken again: the reviewer's work is
/// not thrown away. The time since the first claim still counts.
fn held_or_reclaimed(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> Result<Lease, ReviewError> {
    match held_lease(conn, task, item_id, reviewer) {
        Err(ReviewError::LeaseExpired | ReviewError::NotClaimed) => {
            let at = now();
            let mut lease = store::lease(conn, task, item_id)?.ok_or(ReviewError::NotClaimed)?;
            let claimed_at = match lease.owner.as_deref() {
                Some(owner) if owner == reviewer => lease.claimed_at.unwrap_or(at),
                _ => at,
            };
            store::lease_to(
                conn,
                task,
                item_id,
                reviewer,
                claimed_at,
                at + DEFAULT_LEASE,
            )?;
            lease.owner = Some(reviewer.to_string());
            lease.expires_at = Some(at + DEFAULT_LEASE);
            lease.claimed_at = Some(claimed_at);
            Ok(lease)
        }
        other => other,
    }
}

/// Why `reviewer` may not act on the item under `lease` at `at`; `None`
/// when their lease is live and the item waits for a reviewer. An expired
/// lease keeps its owner until the [`LeaseReaper`] clears it (after
/// [`REAP_GRACE`]), so a late reviewer is told their claim expired rather
/// than that they never had one.
fn lease_problem(lease: &Lease, reviewer: &str, at: Timestamp) -> Option<ReviewError> {
    let waiting = matches!(
        lease.item.review_state,
        ReviewState::Pending | ReviewState::Adjudication
    );
    match lease.owner.as_deref() {
        // Finished by others while this reviewer's claim had lapsed.
        _ if !waiting => Some(ReviewError::StaleLease),
        Some(owner) if owner == reviewer => match lease.expires_at {
            Some(expires) if expires > at => None,
            _ => Some(ReviewError::LeaseExpired),
        },
        Some(_) => Some(ReviewError::StaleLease),
        None => Some(ReviewError::NotClaimed),
    }
}

/// One reviewer's label on an item, with their comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub reviewer: String,
    pub label: String,
    pub comment: Option<String>,
}

/// The labels given to an item so far (what an adjudicator weighs).
pub fn votes(conn: &mut DbConnection, task: &str, item_id: &str) -> Result<Vec<Vote>, ReviewError> {
    Ok(store::votes_with_comments(conn, task, item_id)?
        .into_iter()
        .map(|(reviewer, label, comment)| Vote {
            reviewer,
            label,
            comment,
        })
        .collect())
}

/// The queue figures of `task` now.
pub fn depth(conn: &mut DbConnection, task: &str) -> Result<Depth, ReviewError> {
    Ok(store::depth(conn, task, now())?)
}

/// Labels `reviewer` gave in `task` since `since`.
pub fn labelled_since(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    since: Timestamp,
) -> Result<i64, ReviewError> {
    Ok(store::labelled_since(conn, task, reviewer, since)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ItemStatus, ReviewState};
    use crate::store::items::ItemRow;

    fn lease(state: ReviewState, owner: Option<&str>, expires_in: i64) -> Lease {
        let at = now();
        Lease {
            item: ItemRow {
                task: "t".into(),
                id: "i".into(),
                input: "{}".into(),
                input_sha256: String::new(),
                status: ItemStatus::Queued,
                reason: None,
                review_state: state,
                blind: false,
                audit: false,
                model_version: None,
                margin: None,
                sla_deadline: None,
                created_at: at,
                decided_at: None,
                out_of_range: None,
            },
            owner: owner.map(str::to_string),
            expires_at: owner.map(|_| at + Duration::seconds(expires_in)),
            claimed_at: owner.map(|_| at),
        }
    }

    fn problem(lease: &Lease) -> Option<&'static str> {
        lease_problem(lease, "ana", now()).map(|e| e.code())
    }

    #[test]
    fn each_lost_claim_is_told_apart() {
        assert_eq!(problem(&lease(ReviewState::Pending, Some("ana"), 60)), None);
        assert_eq!(
            problem(&lease(ReviewState::Adjudication, Some("ana"), 60)),
            None
        );
        assert_eq!(
            problem(&lease(ReviewState::Pending, Some("ana"), -60)),
            Some("lease_expired")
        );
        assert_eq!(
            problem(&lease(ReviewState::Pending, Some("bo"), 60)),
            Some("stale_lease")
        );
        assert_eq!(
            problem(&lease(ReviewState::Pending, None, 0)),
            Some("not_claimed")
        );
        assert_eq!(
            problem(&lease(ReviewState::Done, None, 0)),
            Some("stale_lease")
        );
    }
}
