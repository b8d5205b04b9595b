//! The email of an alert: who gets it, what it links to, and its figures;
//! written to the outbox in the transaction that raised or resolved it.

use std::collections::BTreeSet;

use diesel::QueryResult;

use super::{Alert, AlertConfig, Notify};
use crate::db::DbConnection;
use crate::domain::{rfc3339, AlertKind, OutboxKind};
use crate::mail::AlertMail;
use crate::store::outbox::{self as outbox, NewMessage};

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
pub(super) fn notify(
    conn: &mut DbConnection,
    config: &AlertConfig,
    alert: &Alert,
) -> QueryResult<()> {
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
    for to in email.recipients(&alert.task, alert.severity.as_str()) {
        let key = format!("alert:{}:{event}:{to}", alert.id);
        outbox::enqueue(
            conn,
            &NewMessage {
                kind: OutboxKind::Email,
                destination: &to,
                task: Some(alert.task.as_str()).filter(|t| !t.is_empty()),
                subject: &subject,
                body: &text,
                html: Some(&html),
                dedupe_key: Some(&key),
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
