//! The email of an alert: who gets it, what it links to, and its figures;
//! written to the outbox in the transaction that raised or resolved it.
//!
//! What is told, and when ([`Outgoing::send`]):
//! - an open alert whose firing was not yet announced is emailed, unless a
//!   silence covers it: then it waits, unannounced, and is emailed by the
//!   first pass after the silence ends if it still fires and nobody
//!   acknowledged it;
//! - a resolved alert is emailed only if its firing was, and no silence
//!   covers it now;
//! - per-item SLA alerts go together: one email per task (and severity)
//!   listing the items, when there is more than one;
//! - nothing is ever sent twice for one alert and event (the outbox's
//!   dedupe key), and acknowledging mutes nothing but held-back firing
//!   email (there is no reminder to mute).

use std::collections::{BTreeMap, BTreeSet};

use diesel::QueryResult;

use super::{is_item_sla, silence::covering, Alert, AlertConfig, Notify};
use crate::db::DbConnection;
use crate::domain::{rfc3339, AlertKind, OutboxKind, Timestamp};
use crate::mail::{AlertMail, SlaItem, SlaItemsMail};
use crate::store::alerts as store;
use crate::store::outbox::{self as outbox, NewMessage};

/// Items an email about a task's late items lists; the rest are counted.
const ITEMS_LISTED: usize = 100;

/// The alerts a change resolved, to be told with the firing ones not yet
/// announced.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    pub resolved: Vec<Alert>,
}

impl Outgoing {
    /// Writes the emails of this change to the outbox (see the module's
    /// rules) and records which firings were announced at `at`.
    pub fn send(
        self,
        conn: &mut DbConnection,
        config: &AlertConfig,
        at: Timestamp,
    ) -> QueryResult<()> {
        let silences = store::active_silences(conn, at)?;
        let (held, fired): (Vec<Alert>, Vec<Alert>) = store::open_unannounced(conn)?
            .into_iter()
            .partition(|a| covering(&silences, a).is_some());
        if !held.is_empty() {
            tracing::debug!(held = held.len(), "silenced alerts not emailed");
        }
        for group in groups(&fired) {
            send_group(conn, config, &group)?;
        }
        let ids: Vec<i64> = fired.iter().map(|a| a.id).collect();
        store::mark_notified(conn, &ids, at)?;
        let resolved: Vec<Alert> = self
            .resolved
            .into_iter()
            .filter(|a| a.notified_at.is_some() && covering(&silences, a).is_none())
            .collect();
        for group in groups(&resolved) {
            send_group(conn, config, &group)?;
        }
        Ok(())
    }
}

/// Alerts emailed as one: per-item SLA alerts of one task and severity, or
/// any other alert alone. In the order of the alerts' ids (oldest first).
fn groups(alerts: &[Alert]) -> Vec<Vec<&Alert>> {
    let mut items: BTreeMap<(&str, &str), Vec<&Alert>> = BTreeMap::new();
    let mut out = Vec::new();
    for alert in alerts {
        if is_item_sla(alert) {
            items
                .entry((alert.task.as_str(), alert.severity.as_str()))
                .or_default()
                .push(alert);
        } else {
            out.push(vec![alert]);
        }
    }
    out.extend(items.into_values());
    out
}

fn send_group(conn: &mut DbConnection, config: &AlertConfig, group: &[&Alert]) -> QueryResult<()> {
    match group {
        [] => Ok(()),
        [one] => notify(conn, config, one),
        many => notify_items(conn, config, many),
    }
}

impl Notify {
    /// Who is told of an alert: everyone in `mail.recipients`, the task's
    /// `alert_recipients` and the alert severity's recipients, once each.
    pub fn recipients(&self, task: &str, severity: &str) -> Vec<String> {
        let mut all = BTreeSet::new();
        all.extend(self.everyone.iter().cloned());
        if let Some(list) = self.by_task.get(task) {
            all.extend(list.iter().cloned());
        }
        if let Some(list) = self.by_severity.get(severity) {
            all.extend(list.iter().cloned());
        }
        all.into_iter().collect()
    }

    /// Where an alert is seen in the web UI.
    pub fn link(&self, alert: &Alert) -> String {
        let base = self.base_url.trim_end_matches('/');
        if alert.kind == AlertKind::SlaBreach && !alert.subject.is_empty() {
            format!("{base}/admin/items/{}/{}", alert.task, alert.subject)
        } else {
            format!("{base}/admin/alerts")
        }
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
fn notify(conn: &mut DbConnection, config: &AlertConfig, alert: &Alert) -> QueryResult<()> {
    let Some(email) = &config.email else {
        return Ok(());
    };
    let fired = alert.resolved_at.is_none();
    let mail = AlertMail {
        fired,
        kind: alert.kind.as_str(),
        task: &alert.task,
        severity: alert.severity.as_str(),
        summary: &alert.summary,
        numbers: numbers(alert),
        fired_at: rfc3339(&alert.fired_at),
        resolved_at: alert.resolved_at.as_ref().map(rfc3339),
        link: email.link(alert),
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
    let keys = |to: &str| format!("alert:{}:{event}:{to}", alert.id);
    let recipients = email.recipients(&alert.task, alert.severity.as_str());
    enqueue_each(
        conn,
        &recipients,
        &alert.task,
        &subject,
        (&text, &html),
        keys,
    )
}

/// A per-item SLA alert's deadline as stored in its figures (RFC 3339).
pub(super) fn deadline(alert: &Alert) -> String {
    serde_json::from_str::<serde_json::Value>(&alert.numbers)
        .ok()
        .and_then(|v| v["deadline"].as_str().map(String::from))
        .unwrap_or_default()
}

/// A per-item SLA alert's item as an email lists it, from its figures.
fn sla_item(email: &Notify, alert: &Alert) -> SlaItem {
    let figures: serde_json::Value = serde_json::from_str(&alert.numbers).unwrap_or_default();
    let deadline = figures["deadline"].as_str().unwrap_or_default();
    SlaItem {
        id: alert.subject.clone(),
        // `2026-11-28 13:10 UTC` (the text as stored when it does not parse).
        deadline: chrono::DateTime::parse_from_rfc3339(deadline)
            .map(|t| t.to_utc().format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_else(|_| deadline.to_string()),
        minutes_late: figures["minutes late"].as_i64().unwrap_or_default(),
        link: email.link(alert),
    }
}

/// Writes one email per recipient about the per-item SLA alerts `alerts`
/// of one task and severity, all fired or all resolved, listing the items
/// (the most late first). The dedupe key names the first alert: each alert
/// is in one group per event.
fn notify_items(
    conn: &mut DbConnection,
    config: &AlertConfig,
    alerts: &[&Alert],
) -> QueryResult<()> {
    let Some(email) = &config.email else {
        return Ok(());
    };
    let first = alerts[0];
    let fired = first.resolved_at.is_none();
    let mut alerts = alerts.to_vec();
    alerts.sort_by_cached_key(|a| (deadline(a), a.subject.clone()));
    let mut items: Vec<SlaItem> = alerts.iter().map(|a| sla_item(email, a)).collect();
    let count = items.len();
    items.truncate(ITEMS_LISTED);
    let mail = SlaItemsMail {
        fired,
        task: &first.task,
        severity: first.severity.as_str(),
        count,
        items,
        link: format!("{}/admin/alerts", email.base_url.trim_end_matches('/')),
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
    let id = alerts.iter().map(|a| a.id).min().unwrap_or(first.id);
    let keys = |to: &str| format!("alerts:sla_items:{id}:{event}:{to}");
    let recipients = email.recipients(&first.task, first.severity.as_str());
    enqueue_each(
        conn,
        &recipients,
        &first.task,
        &subject,
        (&text, &html),
        keys,
    )
}

/// One email per recipient into the outbox, each with its dedupe key.
fn enqueue_each(
    conn: &mut DbConnection,
    recipients: &[String],
    task: &str,
    subject: &str,
    (text, html): (&str, &str),
    key: impl Fn(&str) -> String,
) -> QueryResult<()> {
    for to in recipients {
        outbox::enqueue(
            conn,
            &NewMessage {
                kind: OutboxKind::Email,
                destination: to,
                task: Some(task).filter(|t| !t.is_empty()),
                subject,
                body: text,
                html: Some(html),
                dedupe_key: Some(&key(to)),
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{now, Severity};

    fn alert(kind: AlertKind, task: &str, subject: &str) -> Alert {
        Alert {
            id: 1,
            kind,
            task: task.into(),
            subject: subject.into(),
            severity: Severity::Warning,
            summary: String::new(),
            numbers: r#"{"waiting": 7, "items": ["a", "b"], "deadline": "soon"}"#.into(),
            fired_at: now(),
            updated_at: now(),
            resolved_at: None,
            acknowledged_by: None,
            acknowledged_at: None,
            notified_at: None,
        }
    }

    #[test]
    fn recipients_are_everyone_the_task_and_the_severity_once_each() {
        let notify = Notify {
            everyone: vec!["oncall@x".into(), "b@x".into()],
            by_severity: [("warning".to_string(), vec!["b@x".to_string()])].into(),
            by_task: [("t".to_string(), vec!["t@x".to_string()])].into(),
            base_url: String::new(),
        };
        assert_eq!(
            notify.recipients("t", "warning"),
            ["b@x", "oncall@x", "t@x"]
        );
        assert_eq!(notify.recipients("other", "critical"), ["b@x", "oncall@x"]);
    }

    #[test]
    fn an_item_alert_links_to_the_item_and_others_to_the_alerts_page() {
        let notify = Notify {
            base_url: "http://v.example/".into(),
            ..Default::default()
        };
        assert_eq!(
            notify.link(&alert(AlertKind::SlaBreach, "t", "i1")),
            "http://v.example/admin/items/t/i1"
        );
        assert_eq!(
            notify.link(&alert(AlertKind::Backlog, "t", "")),
            "http://v.example/admin/alerts"
        );
    }

    #[test]
    fn numbers_name_each_figure_and_join_lists() {
        let mut got = numbers(&alert(AlertKind::Backlog, "t", ""));
        got.sort();
        assert_eq!(
            got,
            [
                ("deadline".to_string(), "soon".to_string()),
                ("items".to_string(), "a, b".to_string()),
                ("waiting".to_string(), "7".to_string()),
            ]
        );
    }
}
