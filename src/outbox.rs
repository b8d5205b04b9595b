//! The outbox: every email and webhook is a row written in the transaction
//! of the event that causes it, so a message exists exactly when its event
//! does. A background worker (in every instance) claims due messages with a
//! lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, SQLite: inside the one
//! writer's transaction), sends them, records each attempt, and retries
//! failures with capped exponential backoff until the message is sent or,
//! after `outbox.max_attempts`, dead. A dead message waits for an admin to
//! retry it.

use std::collections::BTreeMap;

use actix_web::web;
use chrono::Duration;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp as SqlTimestamp};

use crate::config::OutboxSettings;
use crate::db::schema::{outbox, outbox_attempts};
use crate::db::DbConnection;
use crate::domain::{now, OutboxKind, OutboxStatus, Timestamp};
use crate::http::error::AppError;
use crate::http::state::AppState;

/// Messages one worker pass claims at most.
const CLAIM_BATCH: i64 = 100;

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

/// The wait before the next attempt after `attempts` failures: the base,
/// doubled for each further failure, capped.
pub fn backoff(attempts: u32, settings: &OutboxSettings) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let ms = settings
        .backoff_base_ms
        .saturating_mul(1u64 << doublings)
        .min(settings.backoff_max_ms);
    Duration::milliseconds(ms as i64)
}

/// Whether a message is due now (claimed or not).
fn any_due(conn: &mut DbConnection) -> QueryResult<bool> {
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
    let skip_locked = if matches!(conn, DbConnection::Pg(_)) {
        "FOR UPDATE SKIP LOCKED"
    } else {
        ""
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

/// Marks messages this owner holds as sent by one `delivery`.
pub fn mark_sent(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    delivery: &str,
    millis: i64,
) -> QueryResult<()> {
    let at = now();
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
        }
    }
    Ok(())
}

/// Records a failed attempt: the message waits for its backoff, or is dead
/// after the last attempt.
pub fn mark_failed(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    error: &str,
    millis: i64,
    settings: &OutboxSettings,
) -> QueryResult<()> {
    let at = now();
    for &id in ids {
        let attempts: Option<i32> = outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::lease_owner.eq(owner))
            .select(outbox::attempts)
            .get_result(conn)
            .optional()?;
        let Some(attempts) = attempts else { continue };
        let attempts = attempts + 1;
        let dead = attempts as u32 >= settings.max_attempts;
        diesel::update(outbox::table.find(id))
            .set((
                outbox::status.eq(if dead {
                    OutboxStatus::Dead
                } else {
                    OutboxStatus::Pending
                }),
                outbox::attempts.eq(attempts),
                outbox::next_attempt_at.eq(at + backoff(attempts as u32, settings)),
                outbox::last_error.eq(Some(error)),
                outbox::lease_owner.eq(None::<String>),
                outbox::lease_expires_at.eq(None::<Timestamp>),
            ))
            .execute(conn)?;
        record_attempt(conn, id, at, Some(error), millis)?;
        if dead {
            tracing::warn!(message = id, attempts, error, "outbox message is dead");
        }
    }
    Ok(())
}

/// Puts messages back without an attempt, due at `until` (rate limit).
pub fn postpone(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    until: Timestamp,
) -> QueryResult<()> {
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
    .map(drop)
}

/// Sends a dead message again from its first attempt; `false` if it is not
/// dead.
pub fn retry(conn: &mut DbConnection, id: i64, actor: &str) -> QueryResult<bool> {
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
    if updated > 0 {
        crate::store::audit::record(
            conn,
            actor,
            "outbox.retry",
            None,
            Some(&id.to_string()),
            serde_json::json!({}),
        )?;
    }
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

/// When `destination` may get its next email under a limit of `max` sends
/// an hour: `None` if now.
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

/// The background worker: claims due messages, sends them, records the
/// outcome. Runs until the process ends.
pub async fn run(state: web::Data<AppState>) {
    let owner = crate::crypto::random_token()[..16].to_string();
    let settings = state.settings.outbox.clone();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(
            settings.webhook_timeout_secs,
        ))
        .build()
        .expect("an HTTP client");
    let poll = std::time::Duration::from_millis(settings.poll_ms);
    loop {
        match pass(&state, &owner, &http).await {
            // More may be due: go again at once.
            Ok(n) if n as i64 >= CLAIM_BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox pass failed"),
        }
        tokio::time::sleep(poll).await;
    }
}

/// What one send delivers.
enum Job {
    Webhook(Message),
    /// Emails to one recipient, rate-limit checked together.
    Emails(String, Vec<Message>),
}

impl Job {
    fn ids(&self) -> Vec<i64> {
        match self {
            Job::Webhook(m) => vec![m.id],
            Job::Emails(_, group) => group.iter().map(|m| m.id).collect(),
        }
    }
}

/// One pass of the worker; returns how many messages it claimed.
#[tracing::instrument(skip_all)]
async fn pass(
    state: &web::Data<AppState>,
    owner: &str,
    http: &reqwest::Client,
) -> Result<usize, AppError> {
    let lease_secs = state.settings.outbox.lease_secs;
    let lease = Duration::seconds(lease_secs as i64);
    // A read first: an idle outbox costs no write transaction.
    if !state
        .db
        .read(|conn| Ok::<_, crate::db::DbError>(any_due(conn)?))
        .await?
    {
        return Ok(0);
    }
    let who = owner.to_string();
    let claimed_at = std::time::Instant::now();
    let claimed = state
        .db
        .write(move |conn| claim(conn, &who, lease, CLAIM_BATCH).map_err(AppError::from))
        .await?;
    let n = claimed.len();
    let mut jobs = Vec::new();
    let mut emails: BTreeMap<String, Vec<Message>> = BTreeMap::new();
    for message in claimed {
        if message.kind == OutboxKind::Email {
            emails
                .entry(message.destination.clone())
                .or_default()
                .push(message);
        } else {
            jobs.push(Job::Webhook(message));
        }
    }
    jobs.extend(emails.into_iter().map(|(to, group)| Job::Emails(to, group)));
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        // A send may take up to its timeout, which validation keeps under
        // half the lease: past half the lease, give the rest back rather
        // than send after another instance may have claimed it.
        if claimed_at.elapsed() > std::time::Duration::from_secs(lease_secs) / 2 {
            let rest: Vec<i64> = std::iter::once(job)
                .chain(jobs)
                .flat_map(|j| j.ids())
                .collect();
            let who = owner.to_string();
            let at = now();
            state
                .db
                .write(move |conn| postpone(conn, &rest, &who, at).map_err(AppError::from))
                .await?;
            break;
        }
        match job {
            Job::Webhook(message) => {
                let started = std::time::Instant::now();
                let secret = message
                    .task
                    .as_deref()
                    .and_then(|t| state.settings.task(t))
                    .and_then(|t| t.callback_secret.clone());
                let outcome = crate::webhooks::send(http, &message, secret.as_deref()).await;
                finish(state, owner, vec![message.id], outcome, started).await?;
            }
            Job::Emails(destination, group) => {
                send_emails(state, owner, destination, group).await?;
            }
        }
    }
    Ok(n)
}

/// Sends the emails claimed for one recipient: held back over the hourly
/// limit, one digest when there are enough, else one by one.
async fn send_emails(
    state: &web::Data<AppState>,
    owner: &str,
    destination: String,
    group: Vec<Message>,
) -> Result<(), AppError> {
    let ids: Vec<i64> = group.iter().map(|m| m.id).collect();
    let Some(mailer) = state.mailer.clone() else {
        let outcome = Err("no mail server is configured ([smtp])".to_string());
        return finish(state, owner, ids, outcome, std::time::Instant::now()).await;
    };
    let max = state.settings.mail.max_per_recipient_per_hour;
    let to = destination.clone();
    let limited = state
        .db
        .read(move |conn| rate_limited_until(conn, &to, max).map_err(AppError::from))
        .await?;
    if let Some(until) = limited {
        tracing::info!(recipient = %destination, %until, messages = ids.len(), "rate limited: email waits");
        let who = owner.to_string();
        return state
            .db
            .write(move |conn| postpone(conn, &ids, &who, until).map_err(AppError::from))
            .await;
    }
    if group.len() >= state.settings.mail.digest_after as usize {
        let started = std::time::Instant::now();
        let outcome = mailer
            .send_digest(&destination, &group, &state.settings.mail.base_url)
            .await;
        return finish(state, owner, ids, outcome, started).await;
    }
    for message in group {
        let started = std::time::Instant::now();
        let outcome = mailer.send(&destination, &message).await;
        finish(state, owner, vec![message.id], outcome, started).await?;
    }
    Ok(())
}

async fn finish(
    state: &web::Data<AppState>,
    owner: &str,
    ids: Vec<i64>,
    outcome: Result<(), String>,
    started: std::time::Instant,
) -> Result<(), AppError> {
    let millis = started.elapsed().as_millis() as i64;
    let who = owner.to_string();
    let settings = state.settings.outbox.clone();
    match outcome {
        Ok(()) => {
            let delivery = crate::crypto::random_token()[..24].to_string();
            state
                .db
                .write(move |conn| {
                    mark_sent(conn, &ids, &who, &delivery, millis).map_err(AppError::from)
                })
                .await
        }
        Err(error) => {
            tracing::info!(messages = ?ids, %error, "outbox delivery failed; will retry");
            state
                .db
                .write(move |conn| {
                    mark_failed(conn, &ids, &who, &error, millis, &settings).map_err(AppError::from)
                })
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let settings = OutboxSettings {
            backoff_base_ms: 100,
            backoff_max_ms: 1000,
            ..Default::default()
        };
        let ms = |n| backoff(n, &settings).num_milliseconds();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5), ms(60)],
            [100, 200, 400, 800, 1000, 1000]
        );
    }
}
