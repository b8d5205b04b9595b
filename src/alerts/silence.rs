//! Silences: an admin mutes an alert's kind in its task (or that one
//! alert) for a period. While a silence holds, the alerts it covers are
//! still raised, resolved and shown, but not emailed; when it ends, those
//! still firing and not acknowledged are emailed once (see `notify`).

use super::{is_item_sla, AlertError, Silence};
use crate::db::DbConnection;
use crate::domain::{now, Timestamp};
use crate::store::alerts::{self as store, NewSilence};
use crate::store::audit;

/// The longest reason a silence keeps.
pub const REASON_MAX_CHARS: usize = 500;

/// How long a silence holds: the periods the alerts page offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilencePeriod {
    Hour,
    FourHours,
    Day,
    Week,
}

impl SilencePeriod {
    pub const ALL: [SilencePeriod; 4] = [
        SilencePeriod::Hour,
        SilencePeriod::FourHours,
        SilencePeriod::Day,
        SilencePeriod::Week,
    ];

    /// `1h`, `4h`, `1d` or `1w`: the value a form sends.
    pub fn parse(s: &str) -> Option<SilencePeriod> {
        SilencePeriod::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SilencePeriod::Hour => "1h",
            SilencePeriod::FourHours => "4h",
            SilencePeriod::Day => "1d",
            SilencePeriod::Week => "1w",
        }
    }

    /// As people read it: `1 hour`, `1 week`.
    pub fn label(self) -> &'static str {
        match self {
            SilencePeriod::Hour => "1 hour",
            SilencePeriod::FourHours => "4 hours",
            SilencePeriod::Day => "1 day",
            SilencePeriod::Week => "1 week",
        }
    }

    pub fn duration(self) -> chrono::Duration {
        match self {
            SilencePeriod::Hour => chrono::Duration::hours(1),
            SilencePeriod::FourHours => chrono::Duration::hours(4),
            SilencePeriod::Day => chrono::Duration::days(1),
            SilencePeriod::Week => chrono::Duration::weeks(1),
        }
    }
}

/// What a silence covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every alert of the alert's kind in its task.
    Kind,
    /// Only this alert (its kind, task and subject). A per-item SLA alert
    /// stands for its task's group, so it is silenced by kind.
    Alert,
}

/// The silence among `silences` (those holding now) that covers `alert`,
/// the one that ends last.
pub fn covering<'a>(silences: &'a [Silence], alert: &super::Alert) -> Option<&'a Silence> {
    silences
        .iter()
        .filter(|s| s.kind == alert.kind && s.task == alert.task)
        .filter(|s| s.subject.as_deref().is_none_or(|x| x == alert.subject))
        .max_by_key(|s| s.ends_at)
}

/// Silences what `scope` says of alert `id` for `period` from now, with
/// its audit entry (`alert.silence`). Call it in a write transaction.
pub fn silence(
    conn: &mut DbConnection,
    id: i64,
    scope: Scope,
    period: SilencePeriod,
    reason: &str,
    actor: &str,
) -> Result<Silence, AlertError> {
    let reason = reason.trim();
    if reason.chars().count() > REASON_MAX_CHARS {
        return Err(AlertError::ReasonTooLong);
    }
    let alert = store::find(conn, id)?.ok_or(AlertError::UnknownAlert(id))?;
    let subject = match scope {
        Scope::Alert if !is_item_sla(&alert) => Some(alert.subject.as_str()),
        _ => None,
    };
    let at = now();
    let silence = store::add_silence(
        conn,
        &NewSilence {
            kind: alert.kind,
            task: &alert.task,
            subject,
            reason,
            created_by: actor,
            created_at: at,
            ends_at: at + period.duration(),
        },
    )?;
    audit::record(
        conn,
        actor,
        "alert.silence",
        Some(alert.task.as_str()).filter(|t| !t.is_empty()),
        Some(&silence.id.to_string()),
        serde_json::json!({
            "alert": id,
            "kind": alert.kind.as_str(),
            "subject": subject,
            "period": period.as_str(),
            "until": crate::domain::rfc3339(&silence.ends_at),
            "reason": reason,
        }),
    )?;
    tracing::info!(silence = silence.id, kind = %alert.kind, task = %alert.task, until = %silence.ends_at, "alerts silenced");
    Ok(silence)
}

/// Ends silence `id` now, with its audit entry (`alert.unsilence`); mail
/// resumes with the monitor's next pass. Call it in a write transaction.
pub fn end_silence(conn: &mut DbConnection, id: i64, actor: &str) -> Result<(), AlertError> {
    let silence = store::find_silence(conn, id)?.ok_or(AlertError::UnknownSilence(id))?;
    let at: Timestamp = now();
    if !store::end_silence(conn, id, actor, at)? {
        return Err(AlertError::SilenceEnded(id));
    }
    audit::record(
        conn,
        actor,
        "alert.unsilence",
        Some(silence.task.as_str()).filter(|t| !t.is_empty()),
        Some(&id.to_string()),
        serde_json::json!({
            "kind": silence.kind.as_str(),
            "subject": silence.subject,
            "was_until": crate::domain::rfc3339(&silence.ends_at),
        }),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AlertKind, Severity};

    fn alert(kind: AlertKind, task: &str, subject: &str) -> super::super::Alert {
        super::super::Alert {
            id: 1,
            kind,
            task: task.into(),
            subject: subject.into(),
            severity: Severity::Warning,
            summary: String::new(),
            numbers: "{}".into(),
            fired_at: now(),
            updated_at: now(),
            resolved_at: None,
            acknowledged_by: None,
            acknowledged_at: None,
            notified_at: None,
        }
    }

    fn silence(id: i64, kind: AlertKind, task: &str, subject: Option<&str>, hours: i64) -> Silence {
        Silence {
            id,
            kind,
            task: task.into(),
            subject: subject.map(String::from),
            reason: String::new(),
            created_by: "ana".into(),
            created_at: now(),
            ends_at: now() + chrono::Duration::hours(hours),
            ended_by: None,
        }
    }

    #[test]
    fn a_silence_covers_its_kind_in_its_task_or_only_its_subject() {
        let silences = [
            silence(1, AlertKind::Backlog, "t", None, 1),
            silence(2, AlertKind::DataDrift, "t", Some("age"), 1),
            silence(3, AlertKind::Backlog, "t", None, 4),
        ];
        let by = |a| covering(&silences, &a).map(|s| s.id);
        assert_eq!(
            by(alert(AlertKind::Backlog, "t", "")),
            Some(3),
            "the longest"
        );
        assert_eq!(by(alert(AlertKind::Backlog, "u", "")), None, "another task");
        assert_eq!(
            by(alert(AlertKind::ErrorRate, "t", "")),
            None,
            "another kind"
        );
        assert_eq!(by(alert(AlertKind::DataDrift, "t", "age")), Some(2));
        assert_eq!(by(alert(AlertKind::DataDrift, "t", "size")), None);
    }

    #[test]
    fn periods_read_back_from_their_form_values() {
        for p in SilencePeriod::ALL {
            assert_eq!(SilencePeriod::parse(p.as_str()), Some(p));
        }
        assert_eq!(SilencePeriod::parse("2h"), None);
        assert_eq!(SilencePeriod::Week.duration(), chrono::Duration::days(7));
    }
}
