//! The review queue: items waiting for a human, claimed one at a time with a
//! lease. Claiming is atomic on both backends (SQLite: inside the single
//! writer's immediate transaction; PostgreSQL: `FOR UPDATE SKIP LOCKED`). An
//! expired lease frees the item; a label needs the live lease.

use chrono::Duration;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp as SqlTimestamp};

use crate::db::schema::{items, reviews, verdicts};
use crate::db::DbConnection;
use crate::domain::{now, Timestamp};
use crate::domain::{ItemStatus, QueueKind, QueueOrder, ReviewState, VerdictBasis, VerdictSource};
use crate::http::error::AppError;
use crate::items::ItemRow;

/// Reviewers disagreed with no majority: an admin decides.
/// How long a claim lasts unless renewed.
pub const DEFAULT_LEASE: Duration = Duration::minutes(5);

/// An item claimed by a reviewer, until `lease_expires_at`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub item: ItemRow,
    pub lease_expires_at: Timestamp,
}

/// The `ORDER BY` of a claim in `order`.
fn order_sql(order: QueueOrder) -> &'static str {
    match order {
        QueueOrder::DeadlineThenUncertainty => "i.sla_deadline, i.margin",
        QueueOrder::UncertaintyThenDeadline => "i.margin, i.sla_deadline",
        QueueOrder::OldestFirst => "i.created_at, i.id",
    }
}

/// Claims the next item of `task` for `reviewer`: the earliest SLA deadline
/// first, then the smallest model margin (most uncertain). Items this
/// reviewer already labelled are passed over. `None` when the queue is empty.
pub fn claim_next(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Option<Claim>, AppError> {
    claim_from(
        conn,
        QueueKind::Review,
        QueueOrder::default(),
        task,
        reviewer,
        lease,
    )
}

/// [`claim_next`] from either queue.
pub fn claim_from(
    conn: &mut DbConnection,
    kind: QueueKind,
    order: QueueOrder,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Option<Claim>, AppError> {
    let state = kind.state();
    let order = order_sql(order);
    let at = now();
    let expires = at + lease;
    // One statement on both backends; PostgreSQL skips rows other claimers
    // hold locked, SQLite runs it inside the one writer's transaction. The
    // order is the items_review_queue index's, so the first free row ends
    // the scan. (Items without a margin, i.e. without a prediction, sort
    // first on SQLite and last on PostgreSQL among equal deadlines.)
    // On PostgreSQL `OFFSET 0` keeps the reviewer check a per-row probe of
    // the reviews key: pulled up into an anti-join, the planner may scan all
    // of the reviewer's (or the task's) reviews for every claim.
    let (skip_locked, probe) = if matches!(conn, DbConnection::Pg(_)) {
        ("FOR UPDATE SKIP LOCKED", "OFFSET 0")
    } else {
        ("", "")
    };
    let sql = format!(
        "UPDATE items SET lease_owner = $1, lease_expires_at = $2 \
         WHERE task = $3 AND id = ( \
           SELECT i.id FROM items i \
           WHERE i.task = $3 AND i.review_state = '{state}' \
             AND (i.lease_expires_at IS NULL OR i.lease_expires_at < $4) \
             AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.task = i.task AND r.item_id = i.id AND r.reviewer = $1 {probe}) \
           ORDER BY {order} \
           LIMIT 1 {skip_locked}) \
         RETURNING *"
    );
    // The whole row comes back; `ItemRow` picks its columns by name.
    let claimed: Option<ItemRow> = diesel::sql_query(sql)
        .bind::<Text, _>(reviewer)
        .bind::<SqlTimestamp, _>(expires)
        .bind::<Text, _>(task)
        .bind::<SqlTimestamp, _>(at)
        .get_result(conn)
        .optional()?;
    Ok(claimed.map(|item| Claim {
        item,
        lease_expires_at: expires,
    }))
}

/// The item `reviewer` holds a live lease on in `task`, if any (a reload of
/// the review page resumes it rather than claiming another).
pub fn held_by(
    conn: &mut DbConnection,
    kind: QueueKind,
    task: &str,
    reviewer: &str,
) -> QueryResult<Option<Claim>> {
    let row: Option<(ItemRow, Option<Timestamp>)> = items::table
        .filter(items::task.eq(task))
        .filter(items::review_state.eq(kind.state()))
        .filter(items::lease_owner.eq(reviewer))
        .filter(items::lease_expires_at.gt(Some(now())))
        .select((ItemRow::as_select(), items::lease_expires_at))
        .get_result(conn)
        .optional()?;
    Ok(row.and_then(|(item, expires)| {
        expires.map(|lease_expires_at| Claim {
            item,
            lease_expires_at,
        })
    }))
}

/// The lease `reviewer` holds on an item, or why they hold none.
fn held_lease(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> Result<ItemRow, AppError> {
    let row: Option<(ItemRow, Option<String>, Option<Timestamp>)> = items::table
        .find((task, item_id))
        .select((
            ItemRow::as_select(),
            items::lease_owner,
            items::lease_expires_at,
        ))
        .get_result(conn)
        .optional()?;
    let Some((item, owner, expires)) = row else {
        return Err(AppError::ItemNotFound {
            task: task.into(),
            id: item_id.into(),
        });
    };
    let live = owner.as_deref() == Some(reviewer) && expires.is_some_and(|e| e > now());
    if !live
        || (item.review_state != ReviewState::Pending
            && item.review_state != ReviewState::Adjudication)
    {
        return Err(AppError::invalid(
            "stale_lease",
            "lease",
            "your claim on this item has expired or passed to someone else; take the next item",
        ));
    }
    Ok(item)
}

/// Extends the reviewer's live lease (the review page renews it while open).
pub fn renew(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Timestamp, AppError> {
    held_lease(conn, task, item_id, reviewer)?;
    let expires = now() + lease;
    diesel::update(items::table.find((task, item_id)))
        .set(items::lease_expires_at.eq(Some(expires)))
        .execute(conn)?;
    Ok(expires)
}

/// Gives the item back to the queue for others.
pub fn skip(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> Result<(), AppError> {
    held_lease(conn, task, item_id, reviewer)?;
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::lease_owner.eq(None::<String>),
            items::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)?;
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

/// A human label for a claimed item.
#[derive(Debug, Clone)]
pub struct Label {
    pub label: String,
    pub comment: Option<String>,
    pub seconds_spent: f64,
}

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

/// Records the label under the reviewer's live lease. One required review:
/// the label is the verdict. Several: the item waits for the others, then
/// the majority decides and a tie goes to adjudication. An adjudicator's
/// label decides. A blind audit item keeps the model's verdict; the label
/// measures it.
pub fn submit(
    conn: &mut DbConnection,
    task: &str,
    rules: &Rules,
    item_id: &str,
    reviewer: &str,
    label: &Label,
) -> Result<Outcome, AppError> {
    if !rules.labels.contains(&label.label) {
        return Err(AppError::invalid(
            "unknown_label",
            "label",
            format!("{:?} is not a label of this task", label.label),
        ));
    }
    if !label.seconds_spent.is_finite() || label.seconds_spent < 0.0 {
        return Err(AppError::invalid(
            "out_of_range",
            "seconds_spent",
            "seconds spent must be a non-negative number",
        ));
    }
    let item = held_lease(conn, task, item_id, reviewer)?;
    let at = now();
    diesel::insert_into(reviews::table)
        .values((
            reviews::task.eq(task),
            reviews::item_id.eq(item_id),
            reviews::reviewer.eq(reviewer),
            reviews::label.eq(&label.label),
            reviews::comment.eq(label.comment.as_deref()),
            reviews::seconds_spent.eq(label.seconds_spent),
            reviews::blind.eq(item.blind),
            reviews::created_at.eq(at),
        ))
        .execute(conn)?;
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
        let votes: Vec<String> = reviews::table
            .filter(reviews::task.eq(task))
            .filter(reviews::item_id.eq(item_id))
            .select(reviews::label)
            .load(conn)?;
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
    let next_state = match &outcome {
        Outcome::NeedsMore => ReviewState::Pending,
        Outcome::Tied => ReviewState::Adjudication,
        Outcome::Decided { .. } | Outcome::Audited => ReviewState::Done,
    };
    let release = (
        items::review_state.eq(next_state),
        items::lease_owner.eq(None::<String>),
        items::lease_expires_at.eq(None::<Timestamp>),
    );
    let item_row = diesel::update(items::table.find((task, item_id)));
    if let Outcome::Decided {
        label: decided,
        basis,
    } = &outcome
    {
        item_row
            .set((
                release,
                items::status.eq(ItemStatus::Decided),
                items::decided_at.eq(Some(at)),
            ))
            .execute(conn)?;
        diesel::insert_into(verdicts::table)
            .values((
                verdicts::task.eq(task),
                verdicts::item_id.eq(item_id),
                verdicts::label.eq(decided),
                verdicts::source.eq(VerdictSource::Human),
                verdicts::confidence.eq(None::<f64>),
                verdicts::model_version.eq(None::<String>),
                verdicts::decided_by.eq(Some(reviewer)),
                verdicts::created_at.eq(at),
                verdicts::basis.eq(Some(*basis)),
            ))
            .execute(conn)?;
        if let Some(url) = &rules.callback_url {
            crate::webhooks::enqueue_verdict(conn, task, item_id, url)?;
        }
    } else {
        item_row.set(release).execute(conn)?;
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

/// How long after labelling a reviewer may take the label back.
pub const UNDO_WINDOW: Duration = Duration::seconds(30);

/// Takes back the reviewer's last label in `task` if it is younger than
/// [`UNDO_WINDOW`]: the review goes, a verdict it made goes, and the item is
/// the reviewer's claimed item again. Returns its id, or `None`.
pub fn undo_last(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<Option<String>, AppError> {
    let at = now();
    let last: Option<String> = reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::reviewer.eq(reviewer))
        .filter(reviews::created_at.gt(at - UNDO_WINDOW))
        .order(reviews::created_at.desc())
        .select(reviews::item_id)
        .first(conn)
        .optional()?;
    let Some(item_id) = last else {
        return Ok(None);
    };
    diesel::delete(reviews::table.find((task, item_id.as_str(), reviewer))).execute(conn)?;
    let made_verdict = diesel::delete(
        verdicts::table
            .filter(verdicts::task.eq(task))
            .filter(verdicts::item_id.eq(&item_id))
            .filter(verdicts::source.eq(VerdictSource::Human))
            .filter(verdicts::decided_by.eq(reviewer)),
    )
    .execute(conn)?;
    // (A label that completed a consensus or a tie is undone the same way:
    // the item waits again for this reviewer's label.)
    if made_verdict > 0 {
        crate::webhooks::withdraw(conn, task, &item_id)?;
        diesel::update(items::table.find((task, item_id.as_str())))
            .set((
                items::status.eq(ItemStatus::Queued),
                items::decided_at.eq(None::<Timestamp>),
            ))
            .execute(conn)?;
    }
    diesel::update(items::table.find((task, item_id.as_str())))
        .set((
            items::review_state.eq(ReviewState::Pending),
            items::lease_owner.eq(Some(reviewer)),
            items::lease_expires_at.eq(Some(at + lease)),
        ))
        .execute(conn)?;
    crate::store::audit::record(
        conn,
        reviewer,
        "review.undo",
        Some(task),
        Some(&item_id),
        serde_json::json!({}),
    )?;
    Ok(Some(item_id))
}

/// Labels `reviewer` gave in `task` since `since`.
pub fn labelled_since(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    since: Timestamp,
) -> QueryResult<i64> {
    reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::reviewer.eq(reviewer))
        .filter(reviews::created_at.ge(since))
        .count()
        .get_result(conn)
}

/// Queue figures of a task: waiting, claimed now, past their deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    pub queued: i64,
    pub in_review: i64,
    pub overdue: i64,
    /// Tied items waiting for an admin.
    pub adjudication: i64,
}

pub fn depth(conn: &mut DbConnection, task: &str) -> QueryResult<Depth> {
    let at = now();
    let pending = items::table
        .filter(items::task.eq(task))
        .filter(items::review_state.eq(ReviewState::Pending));
    let queued = pending.count().get_result(conn)?;
    let in_review = pending
        .filter(items::lease_expires_at.gt(Some(at)))
        .count()
        .get_result(conn)?;
    let overdue = pending
        .filter(items::sla_deadline.lt(Some(at)))
        .count()
        .get_result(conn)?;
    let adjudication = items::table
        .filter(items::task.eq(task))
        .filter(items::review_state.eq(ReviewState::Adjudication))
        .count()
        .get_result(conn)?;
    Ok(Depth {
        queued,
        in_review,
        overdue,
        adjudication,
    })
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
