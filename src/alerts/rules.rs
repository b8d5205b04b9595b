//! The queue's own alert rules: items past their SLA, the backlog, the
//! oldest waiting item, the share of items that failed to score, and dead
//! outbox messages. Measuring only reads.

use std::collections::HashSet;

use diesel::QueryResult;

use super::{AlertConfig, Firing};
use crate::config::SlaAlerts;
use crate::db::DbConnection;
use crate::domain::{now, rfc3339, AlertKind, OutboxStatus, Severity, Timestamp};
use crate::store::alerts::{self as store, ScoringErrors};

/// Overdue items one pass looks at (per-item SLA alerts).
const OVERDUE_LISTED: usize = 1000;

/// Overdue items a batched SLA alert names.
const OVERDUE_NAMED: usize = 20;

/// The newest items of the error-rate window a pass reads: the share among
/// 10,000 items is as telling as among all of them, and a busy task's
/// window (a million items in 15 minutes at 1,000/s) is not read every pass.
pub const ERROR_RATE_SAMPLE: i64 = 10_000;

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

/// Over when each of the last `for_evaluations` complete minutes had at
/// least `min_sample` items and a 99th percentile of scoring time per item
/// (`total` stage, from the metrics store's buckets) above `threshold`
/// seconds.
fn p99_latency(
    conn: &mut DbConnection,
    rule: &crate::config::Rule,
    task: &str,
) -> QueryResult<Option<(String, serde_json::Value)>> {
    use crate::monitoring::{Histogram, LATENCY_BOUNDS};
    if !rule.enabled {
        return Ok(None);
    }
    let minutes = i64::from(rule.for_evaluations);
    let to = crate::monitoring::recorder::current_minute();
    let from = to - minutes;
    let rows =
        crate::store::metrics::sums(conn, task, crate::domain::MetricSeries::Stage, from, to, 1)?;
    let mut p99s = Vec::new();
    for minute in from..to {
        let mut h = Histogram::default();
        for s in rows
            .iter()
            .filter(|s| s.slot == minute && s.name == "total")
        {
            h.merge(&Histogram {
                count: s.count.max(0) as u64,
                sum: s.total,
                buckets: s.buckets.map(|b| b.max(0) as u64),
            });
        }
        match h.quantile(&LATENCY_BOUNDS, 0.99) {
            Some(p99) if h.count >= rule.min_sample && p99 > rule.threshold => p99s.push(p99),
            _ => return Ok(None),
        }
    }
    let worst = p99s.iter().cloned().fold(0.0, f64::max);
    Ok(Some((
        format!(
            "scoring p99 over {:.0} ms for {minutes} minutes (worst {:.0} ms)",
            rule.threshold * 1000.0,
            worst * 1000.0
        ),
        serde_json::json!({"p99 (s) per minute": p99s, "threshold (s)": rule.threshold, "minutes": minutes}),
    )))
}

/// "1 item" or "3 items", with the verb that follows in agreement.
fn count_of(n: i64, one: &str, many: &str, verb_one: &str, verb_many: &str) -> String {
    if n == 1 {
        format!("1 {one} {verb_one}")
    } else {
        format!("{n} {many} {verb_many}")
    }
}

/// Evaluates every rule over every task, reading only: on SQLite it runs on
/// a reading connection, so the counts over a large table never hold up the
/// one writer.
pub fn measure(conn: &mut DbConnection, config: &AlertConfig) -> QueryResult<Vec<Finding>> {
    let mut findings = Vec::new();
    let at = now();
    let rules = &config.rules;
    for task in &config.tasks {
        let task = task.as_str();
        findings.push(sla(conn, config, task, at)?);

        // Backlog.
        let queued = store::count_waiting(conn, task)?;
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
        let oldest = store::oldest_waiting(conn, task)?;
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
        let ScoringErrors { total, failed } =
            store::scoring_errors(conn, task, since, ERROR_RATE_SAMPLE)?;
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

        // Scoring latency.
        findings.push(Finding::threshold(
            AlertKind::P99Latency,
            task,
            Severity::Warning,
            p99_latency(conn, &rules.p99_latency, task)?,
        ));
    }

    // The outbox itself.
    let dead = crate::store::outbox::count(conn, OutboxStatus::Dead)?;
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

/// Items of `task` past their SLA at `at`: one alert per item, or one for
/// the task naming the most late.
fn sla(
    conn: &mut DbConnection,
    config: &AlertConfig,
    task: &str,
    at: Timestamp,
) -> QueryResult<Finding> {
    let overdue = store::overdue(conn, task, at, OVERDUE_LISTED as i64)?;
    let late = |deadline: &Option<Timestamp>| deadline.map_or(0, |d| (at - d).num_minutes());
    let mut finding = Finding::new(AlertKind::SlaBreach, task, []);
    match config.rules.sla {
        SlaAlerts::PerItem => {
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
                // Beyond the first ones listed: keep the alerts of items
                // that are still overdue.
                for subject in store::open_subjects(conn, AlertKind::SlaBreach, task)? {
                    if store::is_overdue(conn, task, &subject, at)? {
                        finding.still.insert(subject);
                    }
                }
            }
        }
        SlaAlerts::Batched => {
            if !overdue.is_empty() {
                let count = store::count_overdue(conn, task, at)?;
                let listed: Vec<&str> = overdue
                    .iter()
                    .take(OVERDUE_NAMED)
                    .map(|(id, _)| id.as_str())
                    .collect();
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
        }
    }
    Ok(finding)
}
