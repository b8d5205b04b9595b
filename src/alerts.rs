//! Alerts: a record of something that needs a person (kind, task,
//! severity, the figures that fired it), firing until resolved. At most one
//! alert per kind, task and subject is open (a unique index says so), so a
//! rule that keeps firing raises one alert, not one per check. Raising and
//! resolving write the email to the outbox in the same transaction: one
//! email when it fires, one when it resolves.
//!
//! Any part of the service may [`raise`] and [`resolve`]; the monitor job
//! ([`run`]) evaluates the queue's own rules every `alerts.interval_ms`.

use std::collections::{BTreeSet, HashSet};

use actix_web::web;
use diesel::prelude::*;

use crate::config::{Settings, SlaAlerts};
use diesel::sql_types::{BigInt, Text, Timestamp as SqlTimestamp};

use crate::db::schema::{alerts, items, outbox};
use crate::db::DbConnection;
use crate::domain::{now, rfc3339, Timestamp};
use crate::domain::{AlertKind, OutboxKind, OutboxStatus, ReviewState, Severity};
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::outbox::NewMessage;

/// Overdue items one pass looks at (per-item SLA alerts).
const OVERDUE_LISTED: usize = 1000;

/// The advisory lock key the monitor takes on PostgreSQL ("verdict" + 1).
const MONITOR_LOCK: i64 = 0x7665_7264_6963_7401;

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
}

/// "1 item" or "3 items", with the verb that follows in agreement.
fn count_of(n: i64, one: &str, many: &str, verb_one: &str, verb_many: &str) -> String {
    if n == 1 {
        format!("1 {one} {verb_one}")
    } else {
        format!("{n} {many} {verb_many}")
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

fn open(
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

/// Raises an alert, or updates the figures of the open one. Only a new
/// alert is emailed. Returns whether it is new.
pub fn raise(conn: &mut DbConnection, settings: &Settings, f: &Firing) -> QueryResult<bool> {
    let at = now();
    let numbers = f.numbers.to_string();
    if let Some(existing) = open(conn, f.kind, &f.task, &f.subject)? {
        diesel::update(alerts::table.find(existing.id))
            .set((
                alerts::numbers.eq(&numbers),
                alerts::summary.eq(&f.summary),
                alerts::updated_at.eq(at),
            ))
            .execute(conn)?;
        return Ok(false);
    }
    diesel::insert_into(alerts::table)
        .values((
            alerts::kind.eq(f.kind),
            alerts::task.eq(&f.task),
            alerts::subject.eq(&f.subject),
            alerts::severity.eq(f.severity),
            alerts::summary.eq(&f.summary),
            alerts::numbers.eq(&numbers),
            alerts::fired_at.eq(at),
            alerts::updated_at.eq(at),
        ))
        .execute(conn)?;
    let alert = open(conn, f.kind, &f.task, &f.subject)?.ok_or(diesel::result::Error::NotFound)?;
    tracing::warn!(kind = f.kind.as_str(), task = %f.task, subject = %f.subject, summary = %f.summary, "alert fired");
    notify(conn, settings, &alert)?;
    Ok(true)
}

/// What one rule found in one task: the alerts that fire now; every other
/// open alert of the rule in the task resolves.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: AlertKind,
    pub task: String,
    pub firing: Vec<Firing>,
    /// Subjects that still hold without being listed in `firing` (items
    /// overdue beyond the first ones listed).
    pub still: HashSet<String>,
}

impl Finding {
    fn new(kind: AlertKind, task: &str, firing: impl IntoIterator<Item = Firing>) -> Self {
        Finding {
            kind,
            task: task.into(),
            firing: firing.into_iter().collect(),
            still: HashSet::new(),
        }
    }

    /// A threshold rule of the whole task (no subject): it fires with
    /// `(summary, numbers)` when the rule is over its threshold.
    fn threshold(
        kind: AlertKind,
        task: &str,
        severity: Severity,
        over: Option<(String, serde_json::Value)>,
    ) -> Self {
        let firing = over.map(|(summary, numbers)| Firing {
            kind,
            task: task.into(),
            subject: String::new(),
            severity,
            summary,
            numbers,
        });
        Finding::new(kind, task, firing)
    }
}

/// Resolves the open alert of `kind`, `task` and `subject`, if any, and
/// emails that it is resolved.
pub fn resolve(
    conn: &mut DbConnection,
    settings: &Settings,
    kind: AlertKind,
    task: &str,
    subject: &str,
) -> QueryResult<bool> {
    let Some(alert) = open(conn, kind, task, subject)? else {
        return Ok(false);
    };
    resolve_alert(conn, settings, alert)?;
    Ok(true)
}

fn resolve_alert(
    conn: &mut DbConnection,
    settings: &Settings,
    mut alert: Alert,
) -> QueryResult<()> {
    let at = now();
    diesel::update(alerts::table.find(alert.id))
        .set((alerts::resolved_at.eq(Some(at)), alerts::updated_at.eq(at)))
        .execute(conn)?;
    alert.resolved_at = Some(at);
    tracing::info!(kind = %alert.kind, task = %alert.task, subject = %alert.subject, "alert resolved");
    notify(conn, settings, &alert)
}

/// Resolves the open alerts of `kind` in `task` whose subject is not in
/// `firing`.
fn resolve_all_but(
    conn: &mut DbConnection,
    settings: &Settings,
    kind: AlertKind,
    task: &str,
    firing: &HashSet<String>,
) -> QueryResult<()> {
    let stale: Vec<Alert> = alerts::table
        .filter(alerts::kind.eq(kind))
        .filter(alerts::task.eq(task))
        .filter(alerts::resolved_at.is_null())
        .select(Alert::as_select())
        .load(conn)?;
    for alert in stale {
        if !firing.contains(&alert.subject) {
            resolve_alert(conn, settings, alert)?;
        }
    }
    Ok(())
}

/// Who is told of an alert: everyone in `mail.recipients`, the task's
/// `alert_recipients` and the alert severity's recipients, once each.
pub fn recipients(settings: &Settings, task: &str, severity: &str) -> Vec<String> {
    let mut all = BTreeSet::new();
    all.extend(settings.mail.recipients.iter().cloned());
    if let Some(task) = settings.task(task) {
        all.extend(task.alert_recipients.iter().cloned());
    }
    if let Some(list) = settings.mail.severity_recipients.get(severity) {
        all.extend(list.iter().cloned());
    }
    all.into_iter().collect()
}

/// Where an alert is seen in the web UI.
pub fn link(settings: &Settings, alert: &Alert) -> String {
    let base = settings.mail.base_url.trim_end_matches('/');
    if alert.kind == AlertKind::SlaBreach && !alert.subject.is_empty() {
        format!("{base}/admin/items/{}/{}", alert.task, alert.subject)
    } else {
        format!("{base}/admin/alerts")
    }
}

/// The figures of an alert as name and value, in their stored order.
pub fn numbers(alert: &Alert) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Value>(&alert.numbers) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Writes the email of an alert that fired (or resolved) to the outbox,
/// one per recipient. Nothing without a mail server.
fn notify(conn: &mut DbConnection, settings: &Settings, alert: &Alert) -> QueryResult<()> {
    if settings.smtp.is_none() {
        return Ok(());
    }
    let fired = alert.resolved_at.is_none();
    let mail = crate::mail::AlertMail {
        fired,
        kind: alert.kind.as_str(),
        task: &alert.task,
        severity: alert.severity.as_str(),
        summary: &alert.summary,
        numbers: numbers(alert),
        fired_at: rfc3339(&alert.fired_at),
        resolved_at: alert.resolved_at.as_ref().map(rfc3339),
        link: link(settings, alert),
    };
    let subject = mail.subject();
    let (text, html) = match mail.render() {
        Ok(bodies) => bodies,
        Err(e) => {
            tracing::error!(error = %e, "cannot render an alert email");
            return Ok(());
        }
    };
    let event = if fired { "fired" } else { "resolved" };
    for to in recipients(settings, &alert.task, alert.severity.as_str()) {
        let key = format!("alert:{}:{event}:{to}", alert.id);
        crate::outbox::enqueue(
            conn,
            &NewMessage {
                kind: OutboxKind::Email,
                destination: &to,
                task: Some(&alert.task)
                    .filter(|t| !t.is_empty())
                    .map(|t| t.as_str()),
                subject: &subject,
                body: &text,
                html: Some(&html),
                dedupe_key: Some(&key),
            },
        )?;
    }
    Ok(())
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

#[derive(QueryableByName)]
struct ScoringErrors {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
}

/// Items of `task` since `since` that the model was to score, and those it
/// failed: no model, an error, or a non-finite output (reason
/// `model_error`), or a failed prediction beside a human-only path (shadow).
/// Read through the items' (task, created_at) index, so the predictions
/// table needs no index of its own for this.
fn scoring_errors(
    conn: &mut DbConnection,
    task: &str,
    since: Timestamp,
) -> QueryResult<ScoringErrors> {
    diesel::sql_query(
        "SELECT COUNT(*) AS total, \
           COALESCE(SUM(CASE WHEN i.reason = 'model_error' OR EXISTS ( \
             SELECT 1 FROM predictions p WHERE p.task = i.task AND p.item_id = i.id \
               AND p.error IS NOT NULL) THEN 1 ELSE 0 END), 0) AS failed \
         FROM items i \
         WHERE i.task = $1 AND i.created_at >= $2 \
           AND (i.reason IS NULL OR i.reason <> 'human_only')",
    )
    .bind::<Text, _>(task)
    .bind::<SqlTimestamp, _>(since)
    .get_result(conn)
}

/// One pass of the monitor: [`measure`], then [`apply`]. Call it in a
/// write transaction; returns whether this instance applied the findings.
pub fn evaluate(conn: &mut DbConnection, settings: &Settings) -> QueryResult<bool> {
    let findings = measure(conn, settings)?;
    apply(conn, settings, &findings)
}

/// Evaluates every rule over every task, reading only: on SQLite it runs on
/// a reading connection, so the counts over a large table never hold up the
/// one writer.
pub fn measure(conn: &mut DbConnection, settings: &Settings) -> QueryResult<Vec<Finding>> {
    let mut findings = Vec::new();
    let at = now();
    let rules = &settings.alerts;
    for task in &settings.tasks {
        let task = task.name.as_str();
        let waiting = || {
            items::table.filter(items::task.eq(task)).filter(
                items::review_state.eq_any([ReviewState::Pending, ReviewState::Adjudication]),
            )
        };

        // Items past their SLA.
        let overdue: Vec<(String, Option<Timestamp>)> = waiting()
            .filter(items::sla_deadline.lt(Some(at)))
            .order(items::sla_deadline)
            .limit(OVERDUE_LISTED as i64)
            .select((items::id, items::sla_deadline))
            .load(conn)?;
        let late = |deadline: &Option<Timestamp>| deadline.map_or(0, |d| (at - d).num_minutes());
        match rules.sla {
            SlaAlerts::PerItem => {
                let mut finding = Finding::new(AlertKind::SlaBreach, task, []);
                for (id, deadline) in &overdue {
                    finding.firing.push(Firing {
                        kind: AlertKind::SlaBreach,
                        task: task.into(),
                        subject: id.clone(),
                        severity: Severity::Warning,
                        summary: format!("item {id} is past its SLA"),
                        numbers: serde_json::json!({
                            "item": id,
                            "deadline": deadline.as_ref().map(rfc3339),
                            "minutes late": late(deadline),
                        }),
                    });
                }
                if overdue.len() == OVERDUE_LISTED {
                    // Beyond the first ones listed: keep the alerts of
                    // items that are still overdue.
                    let subjects: Vec<String> = alerts::table
                        .filter(alerts::kind.eq(AlertKind::SlaBreach))
                        .filter(alerts::task.eq(task))
                        .filter(alerts::resolved_at.is_null())
                        .select(alerts::subject)
                        .load(conn)?;
                    for subject in subjects {
                        let still: i64 = waiting()
                            .filter(items::id.eq(&subject))
                            .filter(items::sla_deadline.lt(Some(at)))
                            .count()
                            .get_result(conn)?;
                        if still > 0 {
                            finding.still.insert(subject);
                        }
                    }
                }
                findings.push(finding);
            }
            SlaAlerts::Batched => {
                let mut finding = Finding::new(AlertKind::SlaBreach, task, []);
                if !overdue.is_empty() {
                    let count: i64 = waiting()
                        .filter(items::sla_deadline.lt(Some(at)))
                        .count()
                        .get_result(conn)?;
                    let listed: Vec<&str> =
                        overdue.iter().take(20).map(|(id, _)| id.as_str()).collect();
                    finding.firing.push(Firing {
                        kind: AlertKind::SlaBreach,
                        task: task.into(),
                        subject: String::new(),
                        severity: Severity::Warning,
                        summary: format!(
                            "{} past {} SLA",
                            count_of(count, "item", "items", "is", "are"),
                            if count == 1 { "its" } else { "their" }
                        ),
                        numbers: serde_json::json!({
                            "items past SLA": count,
                            "most late (minutes)": late(&overdue[0].1),
                            "items": listed,
                        }),
                    });
                }
                findings.push(finding);
            }
        }

        // Backlog.
        let queued: i64 = waiting().count().get_result(conn)?;
        let over = match rules.backlog_items {
            Some(limit) if queued > limit => Some((
                format!(
                    "{} for a human",
                    count_of(queued, "item", "items", "waits", "wait")
                ),
                serde_json::json!({"waiting": queued, "threshold": limit}),
            )),
            _ => None,
        };
        findings.push(Finding::threshold(
            AlertKind::Backlog,
            task,
            Severity::Warning,
            over,
        ));

        // The oldest waiting item.
        let oldest: Option<Timestamp> = waiting()
            .select(diesel::dsl::min(items::created_at))
            .get_result(conn)?;
        let age = oldest.map(|t| (at - t).num_minutes());
        let over = match (rules.oldest_item_minutes, age) {
            (Some(limit), Some(age)) if age > limit => Some((
                format!("the oldest waiting item is {age} minutes old"),
                serde_json::json!({"oldest (minutes)": age, "threshold (minutes)": limit}),
            )),
            _ => None,
        };
        findings.push(Finding::threshold(
            AlertKind::OldestItem,
            task,
            Severity::Warning,
            over,
        ));

        // Scoring errors.
        let since = at - chrono::Duration::minutes(rules.error_rate_window_minutes);
        let ScoringErrors { total, failed } = scoring_errors(conn, task, since)?;
        let rate = if total > 0 {
            failed as f64 / total as f64
        } else {
            0.0
        };
        let over = match rules.error_rate {
            Some(limit) if total >= rules.error_rate_min_items && rate > limit => Some((
                format!("{:.1}% of items failed to score", rate * 100.0),
                serde_json::json!({
                    "failed": failed,
                    "items": total,
                    "window (minutes)": rules.error_rate_window_minutes,
                    "threshold": limit,
                }),
            )),
            _ => None,
        };
        findings.push(Finding::threshold(
            AlertKind::ErrorRate,
            task,
            Severity::Critical,
            over,
        ));
    }

    // The outbox itself.
    let dead: i64 = outbox::table
        .filter(outbox::status.eq(OutboxStatus::Dead))
        .count()
        .get_result(conn)?;
    let over = match rules.dead_messages {
        Some(limit) if dead > limit => Some((
            format!(
                "{} dead",
                count_of(dead, "outbox message", "outbox messages", "is", "are")
            ),
            serde_json::json!({"dead": dead, "threshold": limit}),
        )),
        _ => None,
    };
    findings.push(Finding::threshold(
        AlertKind::DeadMessages,
        "",
        Severity::Critical,
        over,
    ));
    Ok(findings)
}

/// Raises what fires and resolves what no longer does, in a write
/// transaction. On PostgreSQL only the instance that gets the advisory lock
/// applies; returns whether this one did.
pub fn apply(
    conn: &mut DbConnection,
    settings: &Settings,
    findings: &[Finding],
) -> QueryResult<bool> {
    if let DbConnection::Pg(pg) = conn {
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
        }
        let got: Locked = diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
            .bind::<diesel::sql_types::BigInt, _>(MONITOR_LOCK)
            .get_result(pg)?;
        if !got.locked {
            return Ok(false);
        }
    }
    for finding in findings {
        let mut holds = finding.still.clone();
        for firing in &finding.firing {
            raise(conn, settings, firing)?;
            holds.insert(firing.subject.clone());
        }
        resolve_all_but(conn, settings, finding.kind, &finding.task, &holds)?;
    }
    // Alerts of tasks no longer configured cannot clear by themselves.
    let configured: Vec<&str> = settings.tasks.iter().map(|t| t.name.as_str()).collect();
    let orphans: Vec<Alert> = alerts::table
        .filter(alerts::resolved_at.is_null())
        .filter(alerts::task.ne(""))
        .filter(alerts::task.ne_all(&configured))
        .select(Alert::as_select())
        .load(conn)?;
    for alert in orphans {
        resolve_alert(conn, settings, alert)?;
    }
    Ok(true)
}

/// The monitor job: evaluates the rules every `alerts.interval_ms`.
pub async fn run(state: web::Data<AppState>) {
    let every = std::time::Duration::from_millis(state.settings.alerts.interval_ms);
    loop {
        let job = state.clone();
        let measured = state
            .db
            .read(move |conn| measure(conn, &job.settings).map_err(AppError::from))
            .await;
        let job = state.clone();
        let result = match measured {
            Ok(findings) => {
                state
                    .db
                    .write(move |conn| {
                        apply(conn, &job.settings, &findings).map_err(AppError::from)
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "alert monitor pass failed");
        }
        tokio::time::sleep(every).await;
    }
}
