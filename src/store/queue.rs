//! The review queue's queries: claims and leases on `items`, the `reviews`
//! table, and human verdicts. Claiming is one statement on both backends;
//! PostgreSQL's `FOR UPDATE SKIP LOCKED` is matched here (SQLite runs the
//! claim inside the single writer's immediate transaction). The rules —
//! who may label, what a label decides — are the review service's.

use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp as SqlTimestamp};

use crate::db::schema::{items, review_flags, review_skips, reviews, verdicts};
use crate::db::DbConnection;
use crate::domain::{ItemStatus, QueueOrder, ReviewState, Timestamp, VerdictBasis, VerdictSource};
use crate::store::items::ItemRow;

/// An item claimed by a reviewer, until `lease_expires_at`.
#[derive(Debug, Clone)]
pub struct Claim {
    pub item: ItemRow,
    pub lease_expires_at: Timestamp,
}

/// An item with whoever holds (or last held) its lease.
#[derive(Debug, Clone)]
pub struct Lease {
    pub item: ItemRow,
    pub owner: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// When the server handed the item to `owner` (none for a claim made
    /// before this was recorded).
    pub claimed_at: Option<Timestamp>,
}

/// The `ORDER BY` of a claim in `order`.
fn order_sql(order: QueueOrder) -> &'static str {
    match order {
        QueueOrder::DeadlineThenUncertainty => "i.sla_deadline, i.margin",
        QueueOrder::UncertaintyThenDeadline => "i.margin, i.sla_deadline",
        QueueOrder::OldestFirst => "i.created_at, i.id",
    }
}

/// Leases the first item of `task` in `state` (by `order`) that is free at
/// `at` and that `reviewer` has not reviewed, to `reviewer` until `expires`;
/// with `skipped_since`, items the reviewer skipped after it are passed
/// over too.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    conn: &mut DbConnection,
    state: ReviewState,
    order: QueueOrder,
    task: &str,
    reviewer: &str,
    at: Timestamp,
    expires: Timestamp,
    skipped_since: Option<Timestamp>,
) -> QueryResult<Option<Claim>> {
    let order = order_sql(order);
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
    // Without `skipped_since` the skip check compares with the claim's own
    // time and so passes every row (skips are never in the future).
    let sql = format!(
        "UPDATE items SET lease_owner = $1, lease_expires_at = $2, claimed_at = $3 \
         WHERE task = $4 AND id = ( \
           SELECT i.id FROM items i \
           WHERE i.task = $4 AND i.review_state = '{state}' \
             AND (i.lease_expires_at IS NULL OR i.lease_expires_at < $3) \
             AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.task = i.task AND r.item_id = i.id AND r.reviewer = $1 {probe}) \
             AND NOT EXISTS (SELECT 1 FROM review_skips s WHERE s.task = i.task AND s.item_id = i.id AND s.reviewer = $1 AND s.skipped_at > $5 {probe}) \
           ORDER BY {order} \
           LIMIT 1 {skip_locked}) \
         RETURNING *"
    );
    // The whole row comes back; `ItemRow` picks its columns by name.
    // (SQLite numbers `$n` in order of first appearance: keep them in order.)
    let claimed: Option<ItemRow> = diesel::sql_query(sql)
        .bind::<Text, _>(reviewer)
        .bind::<SqlTimestamp, _>(expires)
        .bind::<SqlTimestamp, _>(at)
        .bind::<Text, _>(task)
        .bind::<SqlTimestamp, _>(skipped_since.unwrap_or(at))
        .get_result(conn)
        .optional()?;
    Ok(claimed.map(|item| Claim {
        item,
        lease_expires_at: expires,
    }))
}

/// The item of `task` in `state` that `reviewer` holds a lease on still
/// live at `at`, if any.
pub fn held_by(
    conn: &mut DbConnection,
    state: ReviewState,
    task: &str,
    reviewer: &str,
    at: Timestamp,
) -> QueryResult<Option<Claim>> {
    let row: Option<(ItemRow, Option<Timestamp>)> = items::table
        .filter(items::task.eq(task))
        .filter(items::review_state.eq(state))
        .filter(items::lease_owner.eq(reviewer))
        .filter(items::lease_expires_at.gt(Some(at)))
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

/// An item and its lease, live or not; `None` for an unknown item.
pub fn lease(conn: &mut DbConnection, task: &str, item_id: &str) -> QueryResult<Option<Lease>> {
    // The item, its lease's owner and expiry, and when it was claimed.
    type Row = (
        ItemRow,
        Option<String>,
        Option<Timestamp>,
        Option<Timestamp>,
    );
    let row: Option<Row> = items::table
        .find((task, item_id))
        .select((
            ItemRow::as_select(),
            items::lease_owner,
            items::lease_expires_at,
            items::claimed_at,
        ))
        .get_result(conn)
        .optional()?;
    Ok(row.map(|(item, owner, expires_at, claimed_at)| Lease {
        item,
        owner,
        expires_at,
        claimed_at,
    }))
}

/// Leases the item to `reviewer` until `expires`, claimed at `at`.
pub fn lease_to(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    at: Timestamp,
    expires: Timestamp,
) -> QueryResult<()> {
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::lease_owner.eq(Some(reviewer)),
            items::lease_expires_at.eq(Some(expires)),
            items::claimed_at.eq(Some(at)),
        ))
        .execute(conn)
        .map(drop)
}

/// Remembers that `reviewer` skipped the item at `at` (a later skip
/// replaces an earlier one), and forgets the reviewer's skips from before
/// `forget_before`.
pub fn record_skip(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    at: Timestamp,
    forget_before: Timestamp,
) -> QueryResult<()> {
    diesel::delete(
        review_skips::table
            .filter(review_skips::reviewer.eq(reviewer))
            .filter(review_skips::skipped_at.lt(forget_before)),
    )
    .execute(conn)?;
    crate::on_backend!(conn, c => diesel::insert_into(review_skips::table)
        .values((
            review_skips::task.eq(task),
            review_skips::item_id.eq(item_id),
            review_skips::reviewer.eq(reviewer),
            review_skips::skipped_at.eq(at),
        ))
        .on_conflict((review_skips::task, review_skips::item_id, review_skips::reviewer))
        .do_update()
        .set(review_skips::skipped_at.eq(at))
        .execute(c))?;
    Ok(())
}

/// Records `reviewer`'s flag on the item with their note (a later flag
/// replaces an earlier one).
pub fn record_flag(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    note: &str,
    at: Timestamp,
) -> QueryResult<()> {
    crate::on_backend!(conn, c => diesel::insert_into(review_flags::table)
        .values((
            review_flags::task.eq(task),
            review_flags::item_id.eq(item_id),
            review_flags::reviewer.eq(reviewer),
            review_flags::note.eq(note),
            review_flags::flagged_at.eq(at),
        ))
        .on_conflict((review_flags::task, review_flags::item_id, review_flags::reviewer))
        .do_update()
        .set((review_flags::note.eq(note), review_flags::flagged_at.eq(at)))
        .execute(c))?;
    Ok(())
}

/// The flags on an item: who, their note and when, oldest first.
pub fn flags_of(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
) -> QueryResult<Vec<(String, String, Timestamp)>> {
    review_flags::table
        .filter(review_flags::task.eq(task))
        .filter(review_flags::item_id.eq(item_id))
        .order(review_flags::flagged_at.asc())
        .select((
            review_flags::reviewer,
            review_flags::note,
            review_flags::flagged_at,
        ))
        .load(conn)
}

/// Moves the item's lease to `expires`.
pub fn renew(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    expires: Timestamp,
) -> QueryResult<()> {
    diesel::update(items::table.find((task, item_id)))
        .set(items::lease_expires_at.eq(Some(expires)))
        .execute(conn)
        .map(drop)
}

/// Frees the item's lease (it stays in its queue).
pub fn release(conn: &mut DbConnection, task: &str, item_id: &str) -> QueryResult<()> {
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::lease_owner.eq(None::<String>),
            items::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)
        .map(drop)
}

/// Frees the item's lease and moves it to `next`; with `decided_at`, the
/// item is also decided then. One statement: it runs for every label.
pub fn close(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    next: ReviewState,
    decided_at: Option<Timestamp>,
) -> QueryResult<()> {
    let release = (
        items::review_state.eq(next),
        items::lease_owner.eq(None::<String>),
        items::lease_expires_at.eq(None::<Timestamp>),
    );
    let row = diesel::update(items::table.find((task, item_id)));
    match decided_at {
        Some(at) => row
            .set((
                release,
                items::status.eq(ItemStatus::Decided),
                items::decided_at.eq(Some(at)),
            ))
            .execute(conn),
        None => row.set(release).execute(conn),
    }
    .map(drop)
}

/// A reviewer's label as the `reviews` table holds it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = reviews)]
pub struct NewReview<'a> {
    pub task: &'a str,
    pub item_id: &'a str,
    pub reviewer: &'a str,
    pub label: &'a str,
    pub comment: Option<&'a str>,
    pub seconds_spent: f64,
    pub blind: bool,
    pub created_at: Timestamp,
}

/// Records a reviewer's label, and counts it against the model's in the
/// monitoring's agreement buckets.
pub fn record_review(conn: &mut DbConnection, review: &NewReview) -> QueryResult<()> {
    diesel::insert_into(reviews::table)
        .values(review)
        .execute(conn)?;
    crate::store::metrics::count_agreement(
        conn,
        review.task,
        review.item_id,
        review.label,
        review.blind,
        review.created_at,
        1,
    )
}

/// Whether `reviewer` has a label recorded for the item.
pub fn has_reviewed(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        reviews::table.find((task, item_id, reviewer)),
    ))
    .get_result(conn)
}

/// The labels recorded for an item.
pub fn votes(conn: &mut DbConnection, task: &str, item_id: &str) -> QueryResult<Vec<String>> {
    reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::item_id.eq(item_id))
        .select(reviews::label)
        .load(conn)
}

/// The labels recorded for an item with who gave them and their comments,
/// oldest first.
pub fn votes_with_comments(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
) -> QueryResult<Vec<(String, String, Option<String>)>> {
    reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::item_id.eq(item_id))
        .order(reviews::created_at.asc())
        .select((reviews::reviewer, reviews::label, reviews::comment))
        .load(conn)
}

/// Writes the human verdict `reviewer` reached on `basis`.
pub fn write_verdict(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    label: &str,
    reviewer: &str,
    basis: VerdictBasis,
    at: Timestamp,
) -> QueryResult<()> {
    diesel::insert_into(verdicts::table)
        .values((
            verdicts::task.eq(task),
            verdicts::item_id.eq(item_id),
            verdicts::label.eq(label),
            verdicts::source.eq(VerdictSource::Human),
            verdicts::confidence.eq(None::<f64>),
            verdicts::model_version.eq(None::<String>),
            verdicts::decided_by.eq(Some(reviewer)),
            verdicts::created_at.eq(at),
            verdicts::basis.eq(Some(basis)),
        ))
        .execute(conn)
        .map(drop)
}

/// The item `reviewer` labelled last in `task` after `since`, if any.
pub fn last_reviewed_since(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    since: Timestamp,
) -> QueryResult<Option<String>> {
    reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::reviewer.eq(reviewer))
        .filter(reviews::created_at.gt(since))
        .order(reviews::created_at.desc())
        .select(reviews::item_id)
        .first(conn)
        .optional()
}

/// Deletes a reviewer's label (and its count in the agreement buckets).
pub fn delete_review(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> QueryResult<()> {
    let review: Option<(String, bool, Timestamp)> = reviews::table
        .find((task, item_id, reviewer))
        .select((reviews::label, reviews::blind, reviews::created_at))
        .first(conn)
        .optional()?;
    let Some((label, blind, at)) = review else {
        return Ok(());
    };
    diesel::delete(reviews::table.find((task, item_id, reviewer))).execute(conn)?;
    crate::store::metrics::count_agreement(conn, task, item_id, &label, blind, at, -1)
}

/// Deletes the human verdict `reviewer` made on the item; returns how many
/// went (0 or 1).
pub fn withdraw_verdict(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
) -> QueryResult<usize> {
    diesel::delete(
        verdicts::table
            .filter(verdicts::task.eq(task))
            .filter(verdicts::item_id.eq(item_id))
            .filter(verdicts::source.eq(VerdictSource::Human))
            .filter(verdicts::decided_by.eq(reviewer)),
    )
    .execute(conn)
}

/// Makes a decided item queued again.
pub fn undecide(conn: &mut DbConnection, task: &str, item_id: &str) -> QueryResult<()> {
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::status.eq(ItemStatus::Queued),
            items::decided_at.eq(None::<Timestamp>),
        ))
        .execute(conn)
        .map(drop)
}

/// Puts the item back in the review queue, leased to `reviewer` until
/// `expires`.
pub fn reopen_for(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    expires: Timestamp,
) -> QueryResult<()> {
    diesel::update(items::table.find((task, item_id)))
        .set((
            items::review_state.eq(ReviewState::Pending),
            items::lease_owner.eq(Some(reviewer)),
            items::lease_expires_at.eq(Some(expires)),
        ))
        .execute(conn)
        .map(drop)
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

/// The queue figures of `task` at `at`.
pub fn depth(conn: &mut DbConnection, task: &str, at: Timestamp) -> QueryResult<Depth> {
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

/// The keys of items whose lease ended before `before` (a scan: run it on
/// a reading connection, not in the writer).
pub fn leases_ended_before(
    conn: &mut DbConnection,
    before: Timestamp,
) -> QueryResult<Vec<(String, String)>> {
    items::table
        .filter(items::lease_expires_at.lt(Some(before)))
        .select((items::task, items::id))
        .load(conn)
}

/// Clears the leases of the items `keys` that still ended before `before`
/// (one renewed or claimed since is left alone); returns how many.
pub fn clear_leases_ended_before(
    conn: &mut DbConnection,
    keys: &[(String, String)],
    before: Timestamp,
) -> QueryResult<usize> {
    let mut cleared = 0;
    for (task, id) in keys {
        cleared += diesel::update(
            items::table
                .find((task, id))
                .filter(items::lease_expires_at.lt(Some(before))),
        )
        .set((
            items::lease_owner.eq(None::<String>),
            items::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)?;
    }
    Ok(cleared)
}
