//! Batch scoring jobs and their result chunks: queries only. The claim is
//! where the backends differ (PostgreSQL: `FOR UPDATE SKIP LOCKED`;
//! SQLite: the one writer's transaction already excludes other claimers).

use chrono::Duration;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamp as SqlTimestamp};

use crate::db::schema::{score_job_results, score_jobs};
use crate::db::DbConnection;
use crate::domain::{JobState, Timestamp};

/// A job as stored, without its file.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = score_jobs)]
pub struct JobRow {
    pub id: String,
    pub task: String,
    pub format: String,
    pub state: JobState,
    pub input_bytes: i64,
    pub chunk_rows: i64,
    #[diesel(embed)]
    pub counts: Counts,
    pub error_line: Option<i64>,
    pub error_code: Option<String>,
    pub error_field: Option<String>,
    pub error_message: Option<String>,
    pub created_by: String,
    pub attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// A job to write, queued.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub task: &'a str,
    pub format: &'a str,
    pub input: &'a [u8],
    pub chunk_rows: i64,
    pub created_by: &'a str,
    pub created_at: Timestamp,
}

/// A job's counts after a chunk (or at its end).
#[derive(Debug, Clone, Copy, Default, Queryable, Selectable)]
#[diesel(table_name = score_jobs)]
pub struct Counts {
    pub chunks_done: i64,
    pub rows_read: i64,
    pub scored: i64,
    pub created: i64,
    pub automated: i64,
    pub queued: i64,
    pub refused: i64,
}

/// Where a failed job stopped.
pub struct Failure<'a> {
    pub line: Option<i64>,
    pub code: &'a str,
    pub field: &'a str,
    pub message: &'a str,
}

pub fn insert(conn: &mut DbConnection, job: &NewJob) -> QueryResult<()> {
    diesel::insert_into(score_jobs::table)
        .values((
            score_jobs::id.eq(job.id),
            score_jobs::task.eq(job.task),
            score_jobs::format.eq(job.format),
            score_jobs::state.eq(JobState::Queued),
            score_jobs::input.eq(job.input),
            score_jobs::input_bytes.eq(job.input.len() as i64),
            score_jobs::chunk_rows.eq(job.chunk_rows),
            score_jobs::chunks_done.eq(0),
            score_jobs::rows_read.eq(0),
            score_jobs::scored.eq(0),
            score_jobs::created.eq(0),
            score_jobs::automated.eq(0),
            score_jobs::queued.eq(0),
            score_jobs::refused.eq(0),
            score_jobs::created_by.eq(job.created_by),
            score_jobs::attempts.eq(0),
            score_jobs::created_at.eq(job.created_at),
        ))
        .execute(conn)
        .map(drop)
}

/// One job of `task`.
pub fn find(conn: &mut DbConnection, task: &str, id: &str) -> QueryResult<Option<JobRow>> {
    score_jobs::table
        .filter(score_jobs::id.eq(id))
        .filter(score_jobs::task.eq(task))
        .select(JobRow::as_select())
        .get_result(conn)
        .optional()
}

/// The uploaded file of a job.
pub fn input(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<u8>> {
    score_jobs::table
        .filter(score_jobs::id.eq(id))
        .select(score_jobs::input)
        .get_result(conn)
}

/// Whether a job waits for an instance: queued, or running under a
/// lease that has run out (its instance died).
pub fn any_due(conn: &mut DbConnection, now: Timestamp) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        score_jobs::table
            .filter(score_jobs::state.eq_any([JobState::Queued, JobState::Running]))
            .filter(
                score_jobs::lease_expires_at
                    .is_null()
                    .or(score_jobs::lease_expires_at.lt(now)),
            ),
    ))
    .get_result(conn)
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Claims the oldest due job for `owner` until `now + lease`; marks it
/// running and counts the attempt.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    now: Timestamp,
    lease: Duration,
) -> QueryResult<Option<JobRow>> {
    let skip_locked = match conn {
        DbConnection::Pg(_) => "FOR UPDATE SKIP LOCKED",
        DbConnection::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE score_jobs SET lease_owner = $1, lease_expires_at = $2, state = 'running', \
           attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
         WHERE id IN ( \
           SELECT j.id FROM score_jobs j \
           WHERE j.state IN ('queued', 'running') \
             AND (j.lease_expires_at IS NULL OR j.lease_expires_at < $3) \
           ORDER BY j.created_at, j.id \
           LIMIT 1 {skip_locked}) \
         RETURNING id"
    );
    let claimed: Option<ClaimedId> = diesel::sql_query(sql)
        .bind::<Text, _>(owner)
        .bind::<SqlTimestamp, _>(now + lease)
        .bind::<SqlTimestamp, _>(now)
        .get_result(conn)
        .optional()?;
    let Some(claimed) = claimed else {
        return Ok(None);
    };
    score_jobs::table
        .filter(score_jobs::id.eq(claimed.id))
        .select(JobRow::as_select())
        .get_result(conn)
        .optional()
}

/// Stores chunk `chunk`'s result lines with the counts after it and
/// renews the lease, if `owner` still holds the job; returns whether it
/// did (`false`: the lease was lost, and nothing is written).
pub fn record_chunk(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    chunk: i64,
    body: &[u8],
    counts: &Counts,
    lease_until: Timestamp,
) -> QueryResult<bool> {
    let updated = diesel::update(
        score_jobs::table
            .filter(score_jobs::id.eq(id))
            .filter(score_jobs::lease_owner.eq(owner))
            .filter(score_jobs::state.eq(JobState::Running)),
    )
    .set((
        score_jobs::chunks_done.eq(counts.chunks_done),
        score_jobs::rows_read.eq(counts.rows_read),
        score_jobs::scored.eq(counts.scored),
        score_jobs::created.eq(counts.created),
        score_jobs::automated.eq(counts.automated),
        score_jobs::queued.eq(counts.queued),
        score_jobs::refused.eq(counts.refused),
        score_jobs::lease_expires_at.eq(Some(lease_until)),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Ok(false);
    }
    // A chunk stored by a holder that lost the lease after its commit is
    // the same lines (scoring is idempotent): keep the first.
    crate::on_backend!(conn, c => diesel::insert_into(score_job_results::table)
        .values((
            score_job_results::job_id.eq(id),
            score_job_results::chunk.eq(chunk),
            score_job_results::body.eq(body),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(true)
}

/// Ends a job `owner` holds: done, or failed with `failure`; returns
/// whether it still held it.
pub fn finish(
    conn: &mut DbConnection,
    id: &str,
    owner: &str,
    counts: &Counts,
    failure: Option<&Failure>,
    at: Timestamp,
) -> QueryResult<bool> {
    let state = if failure.is_some() {
        JobState::Failed
    } else {
        JobState::Done
    };
    let updated = diesel::update(
        score_jobs::table
            .filter(score_jobs::id.eq(id))
            .filter(score_jobs::lease_owner.eq(owner))
            .filter(score_jobs::state.eq(JobState::Running)),
    )
    .set((
        score_jobs::state.eq(state),
        score_jobs::chunks_done.eq(counts.chunks_done),
        score_jobs::rows_read.eq(counts.rows_read),
        score_jobs::scored.eq(counts.scored),
        score_jobs::created.eq(counts.created),
        score_jobs::automated.eq(counts.automated),
        score_jobs::queued.eq(counts.queued),
        score_jobs::refused.eq(counts.refused),
        score_jobs::error_line.eq(failure.and_then(|f| f.line)),
        score_jobs::error_code.eq(failure.map(|f| f.code)),
        score_jobs::error_field.eq(failure.map(|f| f.field)),
        score_jobs::error_message.eq(failure.map(|f| f.message)),
        score_jobs::lease_owner.eq(None::<String>),
        score_jobs::lease_expires_at.eq(None::<Timestamp>),
        score_jobs::finished_at.eq(Some(at)),
    ))
    .execute(conn)?;
    Ok(updated > 0)
}

/// Result chunks of a job after chunk `after` (all from `None`), at most
/// `limit`, in order.
pub fn results(
    conn: &mut DbConnection,
    id: &str,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<(i64, Vec<u8>)>> {
    score_job_results::table
        .filter(score_job_results::job_id.eq(id))
        .filter(score_job_results::chunk.gt(after.unwrap_or(-1)))
        .order(score_job_results::chunk)
        .limit(limit)
        .select((score_job_results::chunk, score_job_results::body))
        .load(conn)
}
