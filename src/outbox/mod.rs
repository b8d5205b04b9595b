//! The outbox: every email and webhook is a row written in the transaction
//! of the event that causes it, so a message exists exactly when its event
//! does. A background worker ([`OutboxWorker`], in every instance) claims
//! due messages with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, SQLite:
//! inside the one writer's transaction), sends them, records each attempt,
//! and retries failures with capped exponential backoff until the message
//! is sent or, after `outbox.max_attempts`, dead. A dead message waits for
//! an admin to [`retry`] it.

mod deliver;
mod worker;

use std::collections::HashMap;

use chrono::Duration;
use diesel::QueryResult;

use crate::config::{OutboxSettings, Settings};
use crate::db::{DbConnection, DbError};
use crate::domain::{now, OutboxStatus};
use crate::store::outbox::{self as store, Failure};

pub use crate::store::outbox::{enqueue, Message, NewMessage};
pub use deliver::DeliveryError;
pub use worker::{ClientError, OutboxWorker};

/// Why a pass of the outbox worker failed (a failed delivery is not an
/// error of the pass: it is recorded and retried).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Db(#[from] DbError),
}

impl OutboxError {
    /// A stable code for logs and callers.
    pub fn code(&self) -> &'static str {
        match self {
            OutboxError::Db(_) => "database",
        }
    }
}

impl From<diesel::result::Error> for OutboxError {
    fn from(e: diesel::result::Error) -> Self {
        OutboxError::Db(e.into())
    }
}

/// What the outbox worker reads of the settings.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub outbox: OutboxSettings,
    /// `mail.max_per_recipient_per_hour`: more emails wait.
    pub max_per_recipient_per_hour: u32,
    /// `mail.digest_after`: this many emails to one recipient go as one.
    pub digest_after: u32,
    /// `mail.base_url`: where a digest's link points.
    pub base_url: String,
    /// Each task's `callback_secret`, which signs its webhooks.
    pub callback_secrets: HashMap<String, String>,
}

impl OutboxConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        OutboxConfig {
            outbox: settings.outbox.clone(),
            max_per_recipient_per_hour: settings.mail.max_per_recipient_per_hour,
            digest_after: settings.mail.digest_after,
            base_url: settings.mail.base_url.clone(),
            callback_secrets: settings
                .tasks
                .iter()
                .filter_map(|t| {
                    let secret = t.callback_secret.clone()?;
                    Some((t.name.as_str().to_string(), secret))
                })
                .collect(),
        }
    }
}

/// What one pass of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Messages claimed.
    pub claimed: usize,
    /// Messages sent.
    pub sent: usize,
    /// Messages whose attempt failed, to be retried after their backoff.
    pub failed: usize,
    /// Messages whose last attempt failed: dead until an admin retries.
    pub dead: usize,
    /// Messages put back unattempted (a recipient's hourly limit, or the
    /// lease running out).
    pub postponed: usize,
}

impl std::ops::AddAssign for Pass {
    fn add_assign(&mut self, other: Pass) {
        self.claimed += other.claimed;
        self.sent += other.sent;
        self.failed += other.failed;
        self.dead += other.dead;
        self.postponed += other.postponed;
    }
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

/// Records a failed attempt of each message `owner` still holds: it waits
/// for its backoff, or is dead after the last attempt. Returns how many
/// of each.
pub fn record_failure(
    conn: &mut DbConnection,
    ids: &[i64],
    owner: &str,
    error: &str,
    millis: i64,
    settings: &OutboxSettings,
) -> QueryResult<Pass> {
    let at = now();
    let mut pass = Pass::default();
    for &id in ids {
        let Some(attempts) = store::held_attempts(conn, id, owner)? else {
            continue;
        };
        let attempts = attempts + 1;
        let dead = attempts as u32 >= settings.max_attempts;
        store::mark_failed(
            conn,
            id,
            &Failure {
                attempts,
                status: if dead {
                    OutboxStatus::Dead
                } else {
                    OutboxStatus::Pending
                },
                next_attempt_at: at + backoff(attempts as u32, settings),
                error,
                millis,
                at,
            },
        )?;
        if dead {
            tracing::warn!(message = id, attempts, error, "outbox message is dead");
            pass.dead += 1;
        } else {
            pass.failed += 1;
        }
    }
    Ok(pass)
}

/// Sends a dead message again from its first attempt, and audits who
/// asked; `false` if it is not dead.
pub fn retry(conn: &mut DbConnection, id: i64, actor: &str) -> QueryResult<bool> {
    let retried = store::retry(conn, id)?;
    if retried {
        crate::store::audit::record(
            conn,
            actor,
            "outbox.retry",
            None,
            Some(&id.to_string()),
            serde_json::json!({}),
        )?;
    }
    Ok(retried)
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
