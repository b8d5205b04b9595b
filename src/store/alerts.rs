//! The alerts and alert_silences tables, and the counts the alert rules read from the items
//! and predictions tables: queries only. At most one alert per kind, task
//! and subject is open (a unique index says so).

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp as SqlTimestamp};

use crate::db::schema::{alert_silences, alerts, items};
use crate::db::DbConnection;
use crate::domain::{AlertKind, ReviewState, Severity, Timestamp};

/// The advisory lock the monitor takes on PostgreSQL: this key ("vrd" + 1)
/// and the hash of the schema, so instances sharing a schema exclude each
/// other while separate deployments in other schemas of the same database
/// (advisory locks are database-wide) do not wait for one another.
const MONITOR_LOCK: i32 = 0x7672_6401;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alerts)]
pub struct Alert {
    pub id: i64,
    pub kind: AlertKind,
    pub task: String,
    pub subject: String,
    pub severity: Severity,
    pub summary: String,
    pub numbers: String,
    pub fired_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// Who acknowledged it while it was open, and when.
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<Timestamp>,
    /// When its firing was announced; `None` while a silence holds it.
    pub notified_at: Option<Timestamp>,
}

/// An alert to raise.
#[derive(Debug, Clone, Copy)]
pub struct NewAlert<'a> {
    pub kind: AlertKind,
    /// `""` for the whole service.
    pub task: &'a str,
    /// What within the task: `""`, or e.g. an item id.
    pub subject: &'a str,
    pub severity: Severity,
    pub summary: &'a str,
    /// The figures that fired it, a JSON object.
    pub numbers: &'a str,
}

/// The open alert of `kind`, `task` and `subject`.
pub fn open(
    conn: &mut DbConnection,
    kind: AlertKind,
    task: &str,
    subject: &str,
) -> QueryResult<Option<Alert>> {
    alerts::table
        .filter(alerts::kind.eq(kind))
        .filter(alerts::task.eq(task))
        .filter(alerts::subject.eq(subject))
        .filter(alerts::resolved_at.is_null())
        .select(Alert::as_select())
        .get_result(conn)
        .optional()
}

/// Raises an alert at `at`, or updates the figures of the open one.
/// Returns the alert if it is new.
pub fn raise(conn: &mut DbConnection, new: &NewAlert, at: Timestamp) -> QueryResult<Option<Alert>> {
    if let Some(existing) = open(conn, new.kind, new.task, new.subject)? {
        diesel::update(alerts::table.find(existing.id))
            .set((
                alerts::numbers.eq(new.numbers),
                alerts::summary.eq(new.summary),
                alerts::updated_at.eq(at),
            ))
            .execute(conn)?;
        return Ok(None);
    }
    diesel::insert_into(alerts::table)
        .values((
            alerts::kind.eq(new.kind),
            alerts::task.eq(new.task),
            alerts::subject.eq(new.subject),
            alerts::severity.eq(new.severity),
            alerts::summary.eq(new.summary),
            alerts::numbers.eq(new.numbers),
            alerts::fired_at.eq(at),
            alerts::updated_at.eq(at),
        ))
        .execute(conn)?;
    open(conn, new.kind, new.task, new.subject)?
        .ok_or(diesel::result::Error::NotFound)
        .map(Some)
}

/// The alert `id`.
pub fn find(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Alert>> {
    alerts::table
        .find(id)
        .select(Alert::as_select())
        .get_result(conn)
        .optional()
}

/// Records that the firing of the alerts `ids` was announced at `at`.
pub fn mark_notified(conn: &mut DbConnection, ids: &[i64], at: Timestamp) -> QueryResult<()> {
    for chunk in ids.chunks(500) {
        diesel::update(alerts::table.filter(alerts::id.eq_any(chunk)))
            .set(alerts::notified_at.eq(Some(at)))
            .execute(conn)?;
    }
    Ok(())
}

/// The open alerts whose firing was never announced (a silence held it)
/// and that nobody acknowledged, oldest first.
pub fn open_unannounced(conn: &mut DbConnection) -> QueryResult<Vec<Alert>> {
    alerts::table
        .filter(alerts::resolved_at.is_null())
        .filter(alerts::notified_at.is_null())
        .filter(alerts::acknowledged_at.is_null())
        .order(alerts::id)
        .select(Alert::as_select())
        .load(conn)
}

/// Acknowledges those of the alerts `ids` that are open and not yet
/// acknowledged; returns their ids.
pub fn acknowledge(
    conn: &mut DbConnection,
    ids: &[i64],
    by: &str,
    at: Timestamp,
) -> QueryResult<Vec<i64>> {
    let mut done = Vec::new();
    for chunk in ids.chunks(500) {
        let open: Vec<i64> = alerts::table
            .filter(alerts::id.eq_any(chunk))
            .filter(alerts::resolved_at.is_null())
            .filter(alerts::acknowledged_at.is_null())
            .select(alerts::id)
            .load(conn)?;
        diesel::update(alerts::table.filter(alerts::id.eq_any(&open)))
            .set((
                alerts::acknowledged_by.eq(Some(by)),
                alerts::acknowledged_at.eq(Some(at)),
            ))
            .execute(conn)?;
        done.extend(open);
    }
    Ok(done)
}

/// A silence: while it holds (until `ends_at`), the alerts of `kind` in
/// `task` (only the one of `subject`, when set) are not emailed.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alert_silences)]
pub struct Silence {
    pub id: i64,
    pub kind: AlertKind,
    pub task: String,
    pub subject: Option<String>,
    pub reason: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub ends_at: Timestamp,
    pub ended_by: Option<String>,
}

/// A silence to add.
#[derive(Debug, Clone, Copy, Insertable)]
#[diesel(table_name = alert_silences)]
pub struct NewSilence<'a> {
    pub kind: AlertKind,
    pub task: &'a str,
    pub subject: Option<&'a str>,
    pub reason: &'a str,
    pub created_by: &'a str,
    pub created_at: Timestamp,
    pub ends_at: Timestamp,
}

/// Adds a silence; returns it.
pub fn add_silence(conn: &mut DbConnection, new: &NewSilence) -> QueryResult<Silence> {
    crate::on_backend!(conn, c => diesel::insert_into(alert_silences::table)
        .values(new)
        .returning(Silence::as_returning())
        .get_result(c))
}

/// The silences that hold at `at`, those ending first first.
pub fn active_silences(conn: &mut DbConnection, at: Timestamp) -> QueryResult<Vec<Silence>> {
    alert_silences::table
        .filter(alert_silences::ends_at.gt(at))
        .order((alert_silences::ends_at, alert_silences::id))
        .select(Silence::as_select())
        .load(conn)
}

/// The silence `id`.
pub fn find_silence(conn: &mut DbConnection, id: i64) -> QueryResult<Option<Silence>> {
    alert_silences::table
        .find(id)
        .select(Silence::as_select())
        .get_result(conn)
        .optional()
}

/// Ends the silence `id` at `at` if it still holds then; returns whether
/// it did.
pub fn end_silence(conn: &mut DbConnection, id: i64, by: &str, at: Timestamp) -> QueryResult<bool> {
    let n = diesel::update(
        alert_silences::table
            .find(id)
            .filter(alert_silences::ends_at.gt(at)),
    )
    .set((
        alert_silences::ends_at.eq(at),
        alert_silences::ended_by.eq(Some(by)),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// Marks an alert resolved at `at`.
pub fn resolve(conn: &mut DbConnection, id: i64, at: Timestamp) -> QueryResult<()> {
    diesel::update(alerts::table.find(id))
        .set((alerts::resolved_at.eq(Some(at)), alerts::updated_at.eq(at)))
        .execute(conn)
        .map(drop)
}

/// The open alerts of `kind` in `task`.
pub fn open_of_kind(
    conn: &mut DbConnection,
    kind: AlertKind,
    task: &str,
) -> QueryResult<Vec<Alert>> {
    alerts::table
        .filter(alerts::kind.eq(kind))
        .filter(alerts::task.eq(task))
        .filter(alerts::resolved_at.is_null())
        .select(Alert::as_select())
        .load(conn)
}

/// The subjects of the open alerts of `kind` in `task`.
pub fn open_subjects(
    conn: &mut DbConnection,
    kind: AlertKind,
    task: &str,
) -> QueryResult<Vec<String>> {
    alerts::table
        .filter(alerts::kind.eq(kind))
        .filter(alerts::task.eq(task))
        .filter(alerts::resolved_at.is_null())
        .select(alerts::subject)
        .load(conn)
}

/// The open alerts of a task not among `tasks` (the whole service's, task
/// `""`, excepted).
pub fn open_outside(conn: &mut DbConnection, tasks: &[&str]) -> QueryResult<Vec<Alert>> {
    alerts::table
        .filter(alerts::resolved_at.is_null())
        .filter(alerts::task.ne(""))
        .filter(alerts::task.ne_all(tasks))
        .select(Alert::as_select())
        .load(conn)
}

/// Open alerts first (newest first), then the newest resolved ones.
pub fn list(conn: &mut DbConnection, resolved_limit: i64) -> QueryResult<(Vec<Alert>, Vec<Alert>)> {
    let open = alerts::table
        .filter(alerts::resolved_at.is_null())
        .order(alerts::fired_at.desc())
        .select(Alert::as_select())
        .load(conn)?;
    let resolved = alerts::table
        .filter(alerts::resolved_at.is_not_null())
        .order(alerts::resolved_at.desc())
        .limit(resolved_limit)
        .select(Alert::as_select())
        .load(conn)?;
    Ok((open, resolved))
}

/// In a write transaction: whether this instance is the one to apply the
/// monitor's findings. On PostgreSQL it takes a transaction-scoped advisory
/// lock, held by at most one instance; SQLite has one writer anyway.
pub fn try_monitor_lock(conn: &mut DbConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    match conn {
        DbConnection::Pg(pg) => {
            let got: Locked = diesel::sql_query(
                "SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema())) AS locked",
            )
            .bind::<diesel::sql_types::Integer, _>(MONITOR_LOCK)
            .get_result(pg)?;
            Ok(got.locked)
        }
        DbConnection::Sqlite(_) => Ok(true),
    }
}

/// The items of `task` waiting for a human.
macro_rules! waiting {
    ($task:expr) => {
        items::table
            .filter(items::task.eq($task))
            .filter(items::review_state.eq_any([ReviewState::Pending, ReviewState::Adjudication]))
    };
}

/// The first `limit` waiting items of `task` past their SLA deadline at
/// `at`, most late first: (id, deadline).
pub fn overdue(
    conn: &mut DbConnection,
    task: &str,
    at: Timestamp,
    limit: i64,
) -> QueryResult<Vec<(String, Option<Timestamp>)>> {
    waiting!(task)
        .filter(items::sla_deadline.lt(Some(at)))
        .order(items::sla_deadline)
        .limit(limit)
        .select((items::id, items::sla_deadline))
        .load(conn)
}

/// How many waiting items of `task` are past their SLA deadline at `at`.
pub fn count_overdue(conn: &mut DbConnection, task: &str, at: Timestamp) -> QueryResult<i64> {
    waiting!(task)
        .filter(items::sla_deadline.lt(Some(at)))
        .count()
        .get_result(conn)
}

/// Whether item `id` of `task` waits past its SLA deadline at `at`.
pub fn is_overdue(
    conn: &mut DbConnection,
    task: &str,
    id: &str,
    at: Timestamp,
) -> QueryResult<bool> {
    let n: i64 = waiting!(task)
        .filter(items::id.eq(id))
        .filter(items::sla_deadline.lt(Some(at)))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The alerts of `task` still open or fired since `since`, newest first.
pub fn of_task_since(
    conn: &mut DbConnection,
    task: &str,
    since: Timestamp,
) -> QueryResult<Vec<Alert>> {
    alerts::table
        .filter(alerts::task.eq(task))
        .filter(alerts::resolved_at.is_null().or(alerts::fired_at.ge(since)))
        .order(alerts::fired_at.desc())
        .limit(200)
        .select(Alert::as_select())
        .load(conn)
}

/// Open alerts per kind.
pub fn open_by_kind(conn: &mut DbConnection) -> QueryResult<Vec<(AlertKind, i64)>> {
    alerts::table
        .filter(alerts::resolved_at.is_null())
        .group_by(alerts::kind)
        .select((alerts::kind, diesel::dsl::count_star()))
        .load(conn)
}

/// How many items of `task` wait for a human.
pub fn count_waiting(conn: &mut DbConnection, task: &str) -> QueryResult<i64> {
    waiting!(task).count().get_result(conn)
}

/// When the oldest item of `task` waiting for a human arrived. Grouped by
/// review state so that SQLite reads the waiting items through the queue
/// index: a bare `MIN(created_at)` walks the arrival index from the oldest
/// item, every decided one of a large task included, until it meets a
/// waiting one.
pub fn oldest_waiting(conn: &mut DbConnection, task: &str) -> QueryResult<Option<Timestamp>> {
    let per_state: Vec<(ReviewState, Option<Timestamp>)> = waiting!(task)
        .group_by(items::review_state)
        .select((items::review_state, diesel::dsl::min(items::created_at)))
        .load(conn)?;
    Ok(per_state.into_iter().filter_map(|(_, t)| t).min())
}

#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct ScoringErrors {
    /// Items the model was to score.
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    /// Of those, the ones it failed.
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
}

/// Of the newest `sample` items of `task` since `since` that the model was
/// to score, how many there were and how many it failed: no model, an
/// error, or a non-finite output (reason `model_error`), or a failed
/// prediction beside a human-only path (shadow). Read backwards through the
/// items' (task, created_at) index and stopped after `sample` items, so a
/// pass reads the same few thousand rows whether the window holds a hundred
/// items or a million; the predictions table needs no index of its own.
pub fn scoring_errors(
    conn: &mut DbConnection,
    task: &str,
    since: Timestamp,
    sample: i64,
) -> QueryResult<ScoringErrors> {
    diesel::sql_query(
        "SELECT COUNT(*) AS total, \
           COALESCE(SUM(CASE WHEN i.reason = 'model_error' OR EXISTS ( \
             SELECT 1 FROM predictions p WHERE p.task = i.task AND p.item_id = i.id \
               AND p.error IS NOT NULL) THEN 1 ELSE 0 END), 0) AS failed \
         FROM (SELECT task, id, reason FROM items \
               WHERE task = $1 AND created_at >= $2 \
                 AND (reason IS NULL OR reason <> 'human_only') \
               ORDER BY created_at DESC LIMIT $3) i",
    )
    .bind::<Text, _>(task)
    .bind::<SqlTimestamp, _>(since)
    .bind::<BigInt, _>(sample)
    .get_result(conn)
}
