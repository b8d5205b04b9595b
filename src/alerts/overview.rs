//! What the alerts page shows: the open alerts, the lately resolved ones
//! and the silences that hold, with a task's per-item SLA alerts gathered
//! into one entry.

use std::collections::BTreeMap;

use super::{is_item_sla, notify::deadline, silence::covering, Alert, Silence};
use crate::db::DbConnection;
use crate::domain::{AlertKind, Timestamp};
use crate::store::alerts as store;

/// One line of the alerts page.
#[derive(Debug, Clone)]
pub enum Entry {
    /// An alert on its own, and the silence that holds its email, if any.
    One {
        alert: Alert,
        silence: Option<Silence>,
    },
    /// The per-item SLA alerts of one task, the most late first, and the
    /// silence of the task's SLA alerts, if any.
    Items {
        task: String,
        alerts: Vec<Alert>,
        silence: Option<Silence>,
    },
}

impl Entry {
    /// The alert the entry's buttons act on (for a group: any of them, as
    /// acknowledging or silencing one acts on the group).
    pub fn alert(&self) -> &Alert {
        match self {
            Entry::One { alert, .. } => alert,
            Entry::Items { alerts, .. } => &alerts[0],
        }
    }

    /// When it fired: for a group, when its first item did.
    pub fn fired_at(&self) -> Timestamp {
        match self {
            Entry::One { alert, .. } => alert.fired_at,
            Entry::Items { alerts, .. } => {
                alerts.iter().map(|a| a.fired_at).min().unwrap_or_default()
            }
        }
    }

    /// When it resolved: for a group, when its last item did.
    pub fn resolved_at(&self) -> Option<Timestamp> {
        match self {
            Entry::One { alert, .. } => alert.resolved_at,
            Entry::Items { alerts, .. } => alerts.iter().filter_map(|a| a.resolved_at).max(),
        }
    }
}

/// The alerts page's content at `at`.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Newest first; a task's item alerts where its newest one would be.
    pub open: Vec<Entry>,
    /// The newest `resolved_limit` resolved alerts, grouped the same way.
    pub resolved: Vec<Entry>,
    /// The silences that hold, those ending first first.
    pub silences: Vec<Silence>,
}

pub fn overview(
    conn: &mut DbConnection,
    at: Timestamp,
    resolved_limit: i64,
) -> diesel::QueryResult<Overview> {
    let (open, resolved) = store::list(conn, resolved_limit)?;
    let silences = store::active_silences(conn, at)?;
    Ok(Overview {
        open: entries(open, &silences),
        resolved: entries(resolved, &silences),
        silences,
    })
}

/// `alerts` (in their order) as entries: the per-item SLA alerts of a task
/// together, at the place of the first of them.
fn entries(alerts: Vec<Alert>, silences: &[Silence]) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut group_of: BTreeMap<String, usize> = BTreeMap::new();
    for alert in alerts {
        if !is_item_sla(&alert) {
            let silence = covering(silences, &alert).cloned();
            out.push(Entry::One { alert, silence });
            continue;
        }
        match group_of.get(&alert.task) {
            Some(&i) => {
                if let Entry::Items { alerts, .. } = &mut out[i] {
                    alerts.push(alert);
                }
            }
            None => {
                group_of.insert(alert.task.clone(), out.len());
                let silence = silences
                    .iter()
                    .filter(|s| s.kind == AlertKind::SlaBreach && s.task == alert.task)
                    .filter(|s| s.subject.is_none())
                    .max_by_key(|s| s.ends_at)
                    .cloned();
                out.push(Entry::Items {
                    task: alert.task.clone(),
                    alerts: vec![alert],
                    silence,
                });
            }
        }
    }
    // A group of one is an alert like any other.
    for entry in &mut out {
        if let Entry::Items {
            alerts, silence, ..
        } = entry
        {
            alerts.sort_by_key(|a| (deadline(a), a.subject.clone()));
            if alerts.len() == 1 {
                *entry = Entry::One {
                    alert: alerts.remove(0),
                    silence: silence.take(),
                };
            }
        }
    }
    out
}
