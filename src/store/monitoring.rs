//! What the drift monitor reads and keeps: the scored items in arrival
//! order with their predictions, the reviewers' labels in time order with
//! the model's prediction beside them, and the monitor's own state and history.

use diesel::prelude::*;

use crate::db::schema::{items, monitor_evaluations, monitor_state, predictions, reviews};
use crate::db::DbConnection;
use crate::domain::{ItemStatus, QueueReason, Timestamp};

/// A position in a time-ordered stream: (time, item id).
pub type Cursor = (Timestamp, String);

/// A scored item as the monitor sees it.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct ScoredItem {
    pub id: String,
    pub created_at: Timestamp,
    /// The input as stored (features in card order).
    pub input: String,
    pub input_sha256: String,
    pub status: ItemStatus,
    pub reason: Option<QueueReason>,
    pub model_version: Option<String>,
    pub label: Option<String>,
    pub confidence: Option<f64>,
    pub error: Option<String>,
}

macro_rules! scored_items {
    ($task:expr) => {
        items::table
            .left_join(
                predictions::table.on(predictions::task
                    .eq(items::task)
                    .and(predictions::item_id.eq(items::id))
                    .and(items::model_version.eq(predictions::model_version.nullable()))),
            )
            .filter(items::task.eq($task))
            .select((
                items::id,
                items::created_at,
                items::input,
                items::input_sha256,
                items::status,
                items::reason,
                items::model_version,
                predictions::label.nullable(),
                predictions::confidence.nullable(),
                predictions::error.nullable(),
            ))
    };
}

/// Items after the cursor `(at, id)`: later, or as late with a greater id.
macro_rules! after_cursor {
    ($at:expr, $id:expr) => {
        items::created_at
            .gt(*$at)
            .or(items::created_at.eq(*$at).and(items::id.gt($id)))
    };
}

/// Up to `limit` items of `task` after `after`, oldest first (by arrival,
/// then id).
pub fn items_after(
    conn: &mut DbConnection,
    task: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> QueryResult<Vec<ScoredItem>> {
    let query = scored_items!(task)
        .order((items::created_at.asc(), items::id.asc()))
        .limit(limit);
    match after {
        Some((at, id)) => query.filter(after_cursor!(at, id)).load(conn),
        None => query.load(conn),
    }
}

/// How many items of `task` came after `after`, counting at most `limit`
/// (reads at most `limit` index keys).
pub fn count_after(
    conn: &mut DbConnection,
    task: &str,
    after: Option<&Cursor>,
    limit: i64,
) -> QueryResult<i64> {
    let query = items::table
        .filter(items::task.eq(task))
        .select(items::id)
        .order((items::created_at.asc(), items::id.asc()))
        .limit(limit);
    let found: Vec<String> = match after {
        Some((at, id)) => query.filter(after_cursor!(at, id)).load(conn)?,
        None => query.load(conn)?,
    };
    Ok(found.len() as i64)
}

/// How many items of `task` came after `after` up to and including `upto`
/// (an index-only count).
pub fn count_between(
    conn: &mut DbConnection,
    task: &str,
    after: Option<&Cursor>,
    upto: &Cursor,
) -> QueryResult<i64> {
    let (until, last) = upto;
    let query = items::table
        .filter(items::task.eq(task))
        .filter(
            items::created_at
                .lt(*until)
                .or(items::created_at.eq(*until).and(items::id.le(last))),
        )
        .count();
    match after {
        Some((at, id)) => query.filter(after_cursor!(at, id)).get_result(conn),
        None => query.get_result(conn),
    }
}

/// Whether `task` has at least `n` items (reads at most `n` keys).
pub fn has_items(conn: &mut DbConnection, task: &str, n: i64) -> QueryResult<bool> {
    let found: Vec<String> = items::table
        .filter(items::task.eq(task))
        .select(items::id)
        .limit(n)
        .load(conn)?;
    Ok(found.len() as i64 >= n)
}

/// The `n` newest items of `task`, newest first.
pub fn latest_items(conn: &mut DbConnection, task: &str, n: i64) -> QueryResult<Vec<ScoredItem>> {
    scored_items!(task)
        .order((items::created_at.desc(), items::id.desc()))
        .limit(n)
        .load(conn)
}

/// A human label (one reviewer's review: a verdict, a vote or a blind
/// audit) with the model's prediction for the item beside it.
#[derive(Debug, Clone, PartialEq, Queryable)]
pub struct Reviewed {
    pub item_id: String,
    pub reviewer: String,
    /// When the reviewer labelled it.
    pub decided_at: Timestamp,
    pub human: String,
    /// The reviewer did not see the model's prediction.
    pub blind: bool,
    pub audit: bool,
    pub model_version: Option<String>,
    /// The model's label (none when it failed or did not run).
    pub predicted: Option<String>,
}

/// A position in the reviews: (time, item id, reviewer).
pub type ReviewCursor = (Timestamp, String, String);

macro_rules! reviewed {
    ($task:expr) => {
        reviews::table
            .inner_join(
                items::table.on(items::task
                    .eq(reviews::task)
                    .and(items::id.eq(reviews::item_id))),
            )
            .left_join(
                predictions::table.on(predictions::task
                    .eq(items::task)
                    .and(predictions::item_id.eq(items::id))
                    .and(items::model_version.eq(predictions::model_version.nullable()))),
            )
            .filter(reviews::task.eq($task))
            .select((
                reviews::item_id,
                reviews::reviewer,
                reviews::created_at,
                reviews::label,
                reviews::blind,
                items::audit,
                items::model_version,
                predictions::label.nullable(),
            ))
    };
}

/// Up to `limit` reviews of `task` after `after`, oldest first.
pub fn reviewed_after(
    conn: &mut DbConnection,
    task: &str,
    after: Option<&ReviewCursor>,
    limit: i64,
) -> QueryResult<Vec<Reviewed>> {
    let query = reviewed!(task)
        .order((
            reviews::created_at.asc(),
            reviews::item_id.asc(),
            reviews::reviewer.asc(),
        ))
        .limit(limit);
    match after {
        Some((at, id, reviewer)) => query
            .filter(
                reviews::created_at
                    .gt(*at)
                    .or(reviews::created_at.eq(*at).and(
                        reviews::item_id
                            .gt(id)
                            .or(reviews::item_id.eq(id).and(reviews::reviewer.gt(reviewer))),
                    )),
            )
            .load(conn),
        None => query.load(conn),
    }
}

/// The monitor's latest state of `task` (JSON), if it has one.
pub fn state(conn: &mut DbConnection, task: &str) -> QueryResult<Option<String>> {
    monitor_state::table
        .filter(monitor_state::task.eq(task))
        .select(monitor_state::state)
        .first(conn)
        .optional()
}

/// Replaces the monitor's state of `task`.
pub fn save_state(
    conn: &mut DbConnection,
    task: &str,
    at: Timestamp,
    state: &str,
) -> QueryResult<()> {
    crate::on_backend!(conn, c => diesel::insert_into(monitor_state::table)
        .values((
            monitor_state::task.eq(task),
            monitor_state::updated_at.eq(at),
            monitor_state::state.eq(state),
        ))
        .on_conflict(monitor_state::task)
        .do_update()
        .set((monitor_state::updated_at.eq(at), monitor_state::state.eq(state)))
        .execute(c))?;
    Ok(())
}

/// One evaluation of a window, for the history.
#[derive(Debug, Clone, PartialEq, Queryable, Insertable)]
#[diesel(table_name = monitor_evaluations)]
pub struct EvaluationRow {
    pub task: String,
    pub evaluated_at: Timestamp,
    pub items_seen: i64,
    pub model_version: String,
    /// JSON.
    pub summary: String,
}

/// Adds evaluations (one already there is kept).
pub fn add_evaluations(conn: &mut DbConnection, rows: &[EvaluationRow]) -> QueryResult<()> {
    for row in rows {
        crate::on_backend!(conn, c => diesel::insert_into(monitor_evaluations::table)
            .values(row)
            .on_conflict_do_nothing()
            .execute(c))?;
    }
    Ok(())
}

/// The evaluations of `task` in `since..until`, oldest first, at most
/// `limit` (evenly thinned by the caller if it wants fewer).
pub fn evaluations_between(
    conn: &mut DbConnection,
    task: &str,
    since: Timestamp,
    until: Timestamp,
    limit: i64,
) -> QueryResult<Vec<EvaluationRow>> {
    monitor_evaluations::table
        .filter(monitor_evaluations::task.eq(task))
        .filter(monitor_evaluations::evaluated_at.ge(since))
        .filter(monitor_evaluations::evaluated_at.lt(until))
        .order(monitor_evaluations::evaluated_at.asc())
        .limit(limit)
        .load(conn)
}

/// Deletes evaluations before `before`; returns how many.
pub fn prune_evaluations(conn: &mut DbConnection, before: Timestamp) -> QueryResult<usize> {
    diesel::delete(monitor_evaluations::table.filter(monitor_evaluations::evaluated_at.lt(before)))
        .execute(conn)
}
