//! The outbox table and its attempts: queries only. The claim is where
//! the backends differ (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the
//! one writer's transaction already excludes other claimers).

use std::collections::BTreeMap;

use chrono::Duration;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp as SqlTimestamp};

use crate::db::schema::{outbox, outbox_attempts};
use crate::db::DbConnection;
use crate::domain::{now, OutboxKind, OutboxStatus, Timestamp};

/// A message as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Message {
    pub id: i64,
    pub kind: OutboxKind,
    pub destination: String,
    pub task: Option<String>,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// A message to write.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub kind: OutboxKind,
    pub destination: &'a str,
    pub task: Option<&'a str>,
    pub subject: &'a str,
    pub body: &'a str,
    pub html: Option<&'a str>,
    /// A second message with the same key is not written.
    pub dedupe_key: Option<&'a str>,
}

/// Writes a message, due now; call it inside the transaction of the event.
/// Returns whether it was written (`false`: its dedupe key exists).
pub fn enqueue(conn: &mut DbConnection, m: &NewMessage) -> QueryResult<bool> {
    let at = now();
    let values = (
        outbox::kind.eq(m.kind),
        outbox::destination.eq(m.destination),
        outbox::task.eq(m.task),
        outbox::subject.eq(m.subject),
        outbox::body.eq(m.body),
        outbox::html.eq(m.html),
        outbox::dedupe_key.eq(m.dedupe_key),
        outbox::status.eq(OutboxStatus::Pending),
        outbox::attempts.eq(0),
        outbox::next_attempt_at.eq(at),
        outbox::created_at.eq(at),
    );
    let written = crate::on_backend!(conn, c => diesel::insert_into(outbox::table)
        .values(values)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(written > 0)
}

/// Deletes the pending webhooks of `task` named `subject` that no instance
/// holds (an unexpired lease means one is being sent); returns how many.
pub fn withdraw_webhooks(conn: &mut DbConnection, task: &str, subject: &str) -> QueryResult<usize> {
    let now = now();
    diesel::delete(
        outbox::table
            .filter(outbox::kind.eq(OutboxKind::Webhook))
            .filter(outbox::task.eq(task))
            .filter(outbox::subject.eq(subject))
            .filter(outbox::status.eq(OutboxStatus::Pending))
            .filter(
                outbox::lease_expires_at
                    .is_null()
                    .or(outbox::lease_expires_at.lt(now)),
            ),
    )
    .execute(conn)
}

/// Whether a message is due now (claimed or not).
pub fn any_due(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        outbox::table
            .filter(outbox::status.eq(OutboxStatus::Pending))
            .filter(outbox::next_attempt_at.le(now())),
    ))
    .get_result(conn)
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Claims up to `limit` due messages for `owner` until `now + lease`.
pub fn claim(
    conn: &mut DbConnection,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    let at = now();
    let skip_locked = match conn {
        DbConnection::Pg(_) => "FOR UPDATE SKIP LOCKED",
        DbConnection::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE outbox SET lease_owner = $1, lease_expires_at = $2 \
         WHERE id IN ( \
           SELECT o.id FROM outbox o \
           WHERE o.status = 'pending' AND o.next_attempt_at <= $3 \
             AND (o.lease_expires_at IS NULL OR o.lease_expires_at < $3) \
           ORDER BY o.next_attempt_at, o.id \
           LIMIT $4 {skip_locked}) \
         RETURNING id"
    );
    let ids: Vec<i64> = diesel::sql_query(sql)
        .bind::<Text, _>(owner)
        .bind::<SqlTimestamp, _>(at + lease)
        .bind::<SqlTimestamp, _>(at)
        .bind::<BigInt, _>(limit)
        .load::<ClaimedId>(conn)?
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    outbox::table
        .filter(outbox::id.eq_any(&ids))
        .filter(outbox::lease_owner.eq(owner))
        .order(outbox::id)
        .select(Message::as_select())
        .load(conn)
}

fn record_attempt(
    conn: &mut DbConnection,
    id: i64,
    at: Timestamp,
    error: Option<&str>,
    millis: i64,
) -> QueryResult<()> {
    diesel::insert_into(outbox_attempts::table)
        .values((
            outbox_attempts::message_id.eq(id),
            outbox_attempts::at.eq(at),
            outbox_attempts::ok.eq(error.is_none()),
            outbox_attempts::error.eq(error),
            outbox_attempts::millis.eq(millis),
        ))
        .execute(conn)
        .map(drop)
}

/// Marks messages this owner holds as sent by one `delivery`; returns how
/// many it still held.
pub fn mark_sent(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    delivery: &str,
    millis: i64,
) -> QueryResult<usize> {
    let at = now();
    let mut marked = 0;
    for &id in ids {
        let updated = diesel::update(
            outbox::table
                .filter(outbox::id.eq(id))
                .filter(outbox::lease_owner.eq(owner)),
        )
        .set((
            outbox::status.eq(OutboxStatus::Sent),
            outbox::attempts.eq(outbox::attempts + 1),
            outbox::sent_at.eq(Some(at)),
            outbox::delivery.eq(Some(delivery)),
            outbox::last_error.eq(None::<String>),
            outbox::lease_owner.eq(None::<String>),
            outbox::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)?;
        if updated > 0 {
            record_attempt(conn, id, at, None, millis)?;
            marked += 1;
        }
    }
    Ok(marked)
}

/// The attempts so far of a message `owner` holds; `None` if it holds it
/// no longer.
pub fn held_attempts(conn: &mut DbConnection, id: i64, owner: &str) -> QueryResult<Option<i32>> {
    outbox::table
        .filter(outbox::id.eq(id))
        .filter(outbox::lease_owner.eq(owner))
        .select(outbox::attempts)
        .get_result(conn)
        .optional()
}

/// One failed attempt of a message, as the worker decided to record it.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// Attempts including this one.
    pub attempts: i32,
    /// `Pending` (to retry at `next_attempt_at`) or `Dead`.
    pub status: OutboxStatus,
    pub next_attempt_at: Timestamp,
    pub error: &'a str,
    pub millis: i64,
    pub at: Timestamp,
}

/// Records a failed attempt and releases the message's lease.
pub fn mark_failed(conn: &mut DbConnection, id: i64, f: &Failure) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq(f.status),
            outbox::attempts.eq(f.attempts),
            outbox::next_attempt_at.eq(f.next_attempt_at),
            outbox::last_error.eq(Some(f.error)),
            outbox::lease_owner.eq(None::<String>),
            outbox::lease_expires_at.eq(None::<Timestamp>),
        ))
        .execute(conn)?;
    record_attempt(conn, id, f.at, Some(f.error), f.millis)
}

/// Puts messages back without an attempt, due at `until` (rate limit);
/// returns how many this owner still held.
pub fn postpone(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    until: Timestamp,
) -> QueryResult<usize> {
    diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::lease_owner.eq(owner)),
    )
    .set((
        outbox::next_attempt_at.eq(until),
        outbox::lease_owner.eq(None::<String>),
        outbox::lease_expires_at.eq(None::<Timestamp>),
    ))
    .execute(conn)
}

/// Makes a dead message pending again from its first attempt; `false` if
/// it is not dead.
pub fn retry(conn: &mut DbConnection, id: i64) -> QueryResult<bool> {
    let updated = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::status.eq(OutboxStatus::Dead)),
    )
    .set((
        outbox::status.eq(OutboxStatus::Pending),
        outbox::attempts.eq(0),
        outbox::next_attempt_at.eq(now()),
    ))
    .execute(conn)?;
    Ok(updated > 0)
}

/// The newest messages with `status`.
pub fn list(
    conn: &mut DbConnection,
    status: OutboxStatus,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    outbox::table
        .filter(outbox::status.eq(status))
        .order(outbox::id.desc())
        .limit(limit)
        .select(Message::as_select())
        .load(conn)
}

/// Messages per status.
pub fn counts(conn: &mut DbConnection) -> QueryResult<BTreeMap<String, i64>> {
    let rows: Vec<(String, i64)> = outbox::table
        .group_by(outbox::status)
        .select((outbox::status, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Messages with `status`.
pub fn count(conn: &mut DbConnection, status: OutboxStatus) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::status.eq(status))
        .count()
        .get_result(conn)
}

/// When `destination` may get its next email under a limit of `max` sends
/// an hour: `None` if now. A digest is one send however many messages it
/// carried (they share a delivery).
pub fn rate_limited_until(
    conn: &mut DbConnection,
    destination: &str,
    max: u32,
) -> QueryResult<Option<Timestamp>> {
    let at = now();
    let hour = Duration::hours(1);
    let mut sends: Vec<(Option<String>, Option<Timestamp>)> = outbox::table
        .filter(outbox::destination.eq(destination))
        .filter(outbox::kind.eq(OutboxKind::Email))
        .filter(outbox::sent_at.gt(Some(at - hour)))
        .select((outbox::delivery, outbox::sent_at))
        .load(conn)?;
    sends.sort_by_key(|(_, t)| *t);
    sends.dedup_by(|a, b| a.0 == b.0);
    if sends.len() < max as usize {
        return Ok(None);
    }
    // The window frees when the oldest counted send leaves it.
    let oldest = sends[sends.len() - max as usize].1.unwrap_or(at);
    Ok(Some(oldest + hour))
}
