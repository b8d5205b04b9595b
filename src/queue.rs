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
use crate::error::AppError;
use crate::items::{ItemRow, REVIEW_PENDING, STATUS_DECIDED, STATUS_QUEUED};

pub const REVIEW_DONE: &str = "done";
pub const SOURCE_HUMAN: &str = "human";
/// How long a claim lasts unless renewed.
pub const DEFAULT_LEASE: Duration = Duration::minutes(5);

/// An item claimed by a reviewer, until `lease_expires_at`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub item: ItemRow,
    pub lease_expires_at: Timestamp,
}

#[derive(QueryableByName)]
struct ClaimedKey {
    #[diesel(sql_type = Text)]
    id: String,
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
    let at = now();
    let expires = at + lease;
    // One statement on both backends; PostgreSQL skips rows other claimers
    // hold locked, SQLite runs it inside the one writer's transaction. The
    // order is the items_review_queue index's, so the first free row ends
    // the scan. (Items without a margin, i.e. without a prediction, sort
    // first on SQLite and last on PostgreSQL among equal deadlines.)
    let skip_locked = if matches!(conn, DbConnection::Pg(_)) {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE items SET lease_owner = $1, lease_expires_at = $2 \
         WHERE task = $3 AND id = ( \
           SELECT i.id FROM items i \
           WHERE i.task = $3 AND i.review_state = '{REVIEW_PENDING}' \
             AND (i.lease_expires_at IS NULL OR i.lease_expires_at < $4) \
             AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.task = i.task AND r.item_id = i.id AND r.reviewer = $1) \
           ORDER BY i.sla_deadline, i.margin \
           LIMIT 1 {skip_locked}) \
         RETURNING id"
    );
    let claimed: Option<ClaimedKey> = diesel::sql_query(sql)
        .bind::<Text, _>(reviewer)
        .bind::<SqlTimestamp, _>(expires)
        .bind::<Text, _>(task)
        .bind::<SqlTimestamp, _>(at)
        .get_result(conn)
        .optional()?;
    let Some(ClaimedKey { id }) = claimed else {
        return Ok(None);
    };
    let item = items::table
        .find((task, id.as_str()))
        .select(ItemRow::as_select())
        .first(conn)?;
    Ok(Some(Claim {
        item,
        lease_expires_at: expires,
    }))
}

/// The item `reviewer` holds a live lease on in `task`, if any (a reload of
/// the review page resumes it rather than claiming another).
pub fn held_by(conn: &mut DbConnection, task: &str, reviewer: &str) -> QueryResult<Option<Claim>> {
    let row: Option<(ItemRow, Option<Timestamp>)> = items::table
        .filter(items::task.eq(task))
        .filter(items::review_state.eq(REVIEW_PENDING))
        .filter(items::lease_owner.eq(reviewer))
        .filter(items::lease_expires_at.gt(Some(now())))
        .select((ItemRow::as_select(), items::lease_expires_at))
        .first(conn)
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
        .first(conn)
        .optional()?;
    let Some((item, owner, expires)) = row else {
        return Err(AppError::ItemNotFound {
            task: task.into(),
            id: item_id.into(),
        });
    };
    let live = owner.as_deref() == Some(reviewer) && expires.is_some_and(|e| e > now());
    if !live || item.review_state != REVIEW_PENDING {
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
    Ok(())
}

/// A human label for a claimed item.
#[derive(Debug, Clone)]
pub struct Label {
    pub label: String,
    pub comment: Option<String>,
    pub seconds_spent: f64,
}

/// Records the label under the reviewer's live lease. A queued item gets
/// its verdict from the human; a blind audit item keeps the model's
/// verdict and the label measures it.
pub fn submit(
    conn: &mut DbConnection,
    task: &str,
    labels: &[String],
    item_id: &str,
    reviewer: &str,
    label: &Label,
) -> Result<(), AppError> {
    if !labels.contains(&label.label) {
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
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::review_state.eq(REVIEW_DONE),
            items::lease_owner.eq(None::<String>),
            items::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)?;
    if item.status == STATUS_QUEUED {
        diesel::insert_into(verdicts::table)
            .values((
                verdicts::task.eq(task),
                verdicts::item_id.eq(item_id),
                verdicts::label.eq(&label.label),
                verdicts::source.eq(SOURCE_HUMAN),
                verdicts::confidence.eq(None::<f64>),
                verdicts::model_version.eq(None::<String>),
                verdicts::decided_by.eq(Some(reviewer)),
                verdicts::created_at.eq(at),
            ))
            .execute(conn)?;
        diesel::update(items::table.find((task, item_id)))
            .set((
                items::status.eq(STATUS_DECIDED),
                items::decided_at.eq(Some(at)),
            ))
            .execute(conn)?;
    }
    Ok(())
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
            .filter(verdicts::source.eq(SOURCE_HUMAN))
            .filter(verdicts::decided_by.eq(reviewer)),
    )
    .execute(conn)?;
    if made_verdict > 0 {
        diesel::update(items::table.find((task, item_id.as_str())))
            .set((
                items::status.eq(STATUS_QUEUED),
                items::decided_at.eq(None::<Timestamp>),
            ))
            .execute(conn)?;
    }
    diesel::update(items::table.find((task, item_id.as_str())))
        .set((
            items::review_state.eq(REVIEW_PENDING),
            items::lease_owner.eq(Some(reviewer)),
            items::lease_expires_at.eq(Some(at + lease)),
        ))
        .execute(conn)?;
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
}

pub fn depth(conn: &mut DbConnection, task: &str) -> QueryResult<Depth> {
    let at = now();
    let pending = items::table
        .filter(items::task.eq(task))
        .filter(items::review_state.eq(REVIEW_PENDING));
    let queued = pending.count().get_result(conn)?;
    let in_review = pending
        .filter(items::lease_expires_at.gt(Some(at)))
        .count()
        .get_result(conn)?;
    let overdue = pending
        .filter(items::sla_deadline.lt(Some(at)))
        .count()
        .get_result(conn)?;
    Ok(Depth {
        queued,
        in_review,
        overdue,
    })
}
