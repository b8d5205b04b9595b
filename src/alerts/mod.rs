//! Alerts: a record of something that needs a person (kind, task,
//! severity, the figures that fired it), firing until resolved. At most one
//! alert per kind, task and subject is open (a unique index says so), so a
//! rule that keeps firing raises one alert, not one per check. Raising and
//! resolving write the email to the outbox in the same transaction: one
//! email when it fires, one when it resolves. Items past their SLA, raised
//! one alert per item, are emailed together: one email per task and pass
//! listing them.
//!
//! People act on alerts: [`acknowledge`] one (or a task's group of item
//! alerts), or [`silence`] its kind for a period: a silenced alert is
//! recorded and shown but not emailed, and an alert that fired under a
//! silence is emailed once when the silence ends if it still fires and
//! nobody acknowledged it (see [`notify`]).
//!
//! Any part of the service may [`raise`] and [`resolve`]; the monitor job
//! ([`AlertMonitor`]) evaluates the queue's own rules ([`rules::measure`])
//! every `alerts.interval_ms` and [`apply`]s what it found.

mod ack;
mod monitor;
mod notify;
mod overview;
pub mod rules;
mod silence;

use std::collections::{BTreeMap, HashSet};

use crate::config::{AlertSettings, Settings};
use crate::db::{DbConnection, DbError};
use crate::domain::{now, AlertKind, Severity};
use crate::store::alerts::{self as store, NewAlert};

pub use crate::store::alerts::{Alert, Silence};
pub use ack::acknowledge;
pub use monitor::AlertMonitor;
pub use notify::numbers;
pub use overview::{overview, Entry, Overview};
pub use rules::{measure, Finding};
pub use silence::{end_silence, silence, Scope, SilencePeriod, REASON_MAX_CHARS};

/// Why an alert could not be raised, resolved, evaluated or acted on.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("there is no alert {0}")]
    UnknownAlert(i64),
    #[error("alert {0} is resolved")]
    Resolved(i64),
    #[error("there is no silence {0}")]
    UnknownSilence(i64),
    #[error("silence {0} has ended")]
    SilenceEnded(i64),
    #[error("a silence's reason is at most {REASON_MAX_CHARS} characters")]
    ReasonTooLong,
}

impl AlertError {
    /// A stable code for logs and callers.
    pub fn code(&self) -> &'static str {
        match self {
            AlertError::Db(_) => "database",
            AlertError::UnknownAlert(_) => "unknown_alert",
            AlertError::Resolved(_) => "alert_resolved",
            AlertError::UnknownSilence(_) => "unknown_silence",
            AlertError::SilenceEnded(_) => "silence_ended",
            AlertError::ReasonTooLong => "reason_too_long",
        }
    }
}

impl From<diesel::result::Error> for AlertError {
    fn from(e: diesel::result::Error) -> Self {
        AlertError::Db(e.into())
    }
}

/// What the alert rules and their email read of the settings.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// The rules' thresholds and the monitor's interval.
    pub rules: AlertSettings,
    /// The configured tasks, in order.
    pub tasks: Vec<String>,
    /// Who is emailed, and where links point; `None` without a mail server
    /// (alerts are still recorded).
    pub email: Option<Notify>,
}

/// Who is told of an alert, and where its link points.
#[derive(Debug, Clone, Default)]
pub struct Notify {
    /// `mail.recipients`: every alert.
    pub everyone: Vec<String>,
    /// `mail.severity_recipients`: the alerts of one severity.
    pub by_severity: BTreeMap<String, Vec<String>>,
    /// Each task's `alert_recipients`.
    pub by_task: BTreeMap<String, Vec<String>>,
    /// `mail.base_url`: this service as people reach it.
    pub base_url: String,
}

impl AlertConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        AlertConfig {
            rules: settings.alerts.clone(),
            tasks: settings
                .tasks
                .iter()
                .map(|t| t.name.as_str().to_string())
                .collect(),
            email: settings.smtp.as_ref().map(|_| Notify {
                everyone: settings.mail.recipients.clone(),
                by_severity: settings.mail.severity_recipients.clone(),
                by_task: settings
                    .tasks
                    .iter()
                    .map(|t| (t.name.as_str().to_string(), t.alert_recipients.clone()))
                    .collect(),
                base_url: settings.mail.base_url.clone(),
            }),
        }
    }
}

/// A condition that holds now.
#[derive(Debug, Clone)]
pub struct Firing {
    pub kind: AlertKind,
    /// `""` for the whole service.
    pub task: String,
    /// What within the task: `""`, or e.g. an item id.
    pub subject: String,
    pub severity: Severity,
    pub summary: String,
    /// The figures that fired it: a JSON object.
    pub numbers: serde_json::Value,
}

/// Whether an alert is one of the per-item SLA alerts, which are shown
/// and emailed together per task.
pub fn is_item_sla(alert: &Alert) -> bool {
    alert.kind == AlertKind::SlaBreach && !alert.subject.is_empty()
}

/// Raises an alert, or updates the figures of the open one. Only a new
/// alert is emailed (unless a silence holds it). Returns whether it is new.
pub fn raise(
    conn: &mut DbConnection,
    config: &AlertConfig,
    f: &Firing,
) -> diesel::QueryResult<bool> {
    let new = raise_quietly(conn, f)?;
    notify::Outgoing::default().send(conn, config, now())?;
    Ok(new)
}

/// [`raise`] without its email (which [`notify::Outgoing`] sends).
fn raise_quietly(conn: &mut DbConnection, f: &Firing) -> diesel::QueryResult<bool> {
    let numbers = f.numbers.to_string();
    let new = NewAlert {
        kind: f.kind,
        task: &f.task,
        subject: &f.subject,
        severity: f.severity,
        summary: &f.summary,
        numbers: &numbers,
    };
    if store::raise(conn, &new, now())?.is_none() {
        return Ok(false);
    }
    tracing::warn!(kind = f.kind.as_str(), task = %f.task, subject = %f.subject, summary = %f.summary, "alert fired");
    Ok(true)
}

/// Resolves the open alert of `kind`, `task` and `subject`, if any, and
/// emails that it is resolved.
pub fn resolve(
    conn: &mut DbConnection,
    config: &AlertConfig,
    kind: AlertKind,
    task: &str,
    subject: &str,
) -> diesel::QueryResult<bool> {
    let Some(alert) = store::open(conn, kind, task, subject)? else {
        return Ok(false);
    };
    let mut mail = notify::Outgoing::default();
    resolve_alert(conn, &mut mail, alert)?;
    mail.send(conn, config, now())?;
    Ok(true)
}

fn resolve_alert(
    conn: &mut DbConnection,
    mail: &mut notify::Outgoing,
    mut alert: Alert,
) -> diesel::QueryResult<()> {
    let at = now();
    store::resolve(conn, alert.id, at)?;
    alert.resolved_at = Some(at);
    tracing::info!(kind = %alert.kind, task = %alert.task, subject = %alert.subject, "alert resolved");
    mail.resolved.push(alert);
    Ok(())
}

/// What one pass of the monitor ([`apply`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Whether this instance applied the findings (on PostgreSQL another
    /// instance may hold the monitor's lock).
    pub applied: bool,
    /// Alerts raised anew.
    pub raised: usize,
    /// Alerts resolved.
    pub resolved: usize,
}

/// Raises what fires and resolves what no longer does, in a write
/// transaction, then emails what it changed (and what a silence that has
/// ended held back). On PostgreSQL only the instance that gets the
/// advisory lock applies; the others do nothing.
pub fn apply(
    conn: &mut DbConnection,
    config: &AlertConfig,
    findings: &[Finding],
) -> diesel::QueryResult<Pass> {
    if !store::try_monitor_lock(conn)? {
        return Ok(Pass::default());
    }
    let mut applied = Pass {
        applied: true,
        ..Pass::default()
    };
    let mut mail = notify::Outgoing::default();
    for finding in findings {
        let mut holds: HashSet<&str> = finding.still.iter().map(String::as_str).collect();
        for firing in &finding.firing {
            applied.raised += usize::from(raise_quietly(conn, firing)?);
            holds.insert(&firing.subject);
        }
        for alert in store::open_of_kind(conn, finding.kind, &finding.task)? {
            if !holds.contains(alert.subject.as_str()) {
                resolve_alert(conn, &mut mail, alert)?;
                applied.resolved += 1;
            }
        }
    }
    // Alerts of tasks no longer configured cannot clear by themselves.
    let configured: Vec<&str> = config.tasks.iter().map(String::as_str).collect();
    for alert in store::open_outside(conn, &configured)? {
        resolve_alert(conn, &mut mail, alert)?;
        applied.resolved += 1;
    }
    mail.send(conn, config, now())?;
    Ok(applied)
}
