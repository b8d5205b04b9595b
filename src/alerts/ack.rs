//! Acknowledging: an admin says they have seen a firing alert. The alert
//! stays open and resolves as usual when its condition clears (and its
//! resolution is emailed as usual); an alert held back by a silence is not
//! emailed when the silence ends once someone acknowledged it.

use super::{is_item_sla, AlertError};
use crate::db::DbConnection;
use crate::domain::now;
use crate::store::alerts as store;
use crate::store::audit;

/// Acknowledges the open alert `id` as `actor`, with its audit entry
/// (`alert.acknowledge`). A per-item SLA alert stands for its task's group:
/// every open one of the task is acknowledged. Returns how many alerts were
/// newly acknowledged (0: all were already). Call it in a write
/// transaction.
pub fn acknowledge(conn: &mut DbConnection, id: i64, actor: &str) -> Result<usize, AlertError> {
    let alert = store::find(conn, id)?.ok_or(AlertError::UnknownAlert(id))?;
    if alert.resolved_at.is_some() {
        return Err(AlertError::Resolved(id));
    }
    let ids: Vec<i64> = if is_item_sla(&alert) {
        store::open_of_kind(conn, alert.kind, &alert.task)?
            .into_iter()
            .filter(is_item_sla)
            .map(|a| a.id)
            .collect()
    } else {
        vec![id]
    };
    let done = store::acknowledge(conn, &ids, actor, now())?;
    if done.is_empty() {
        return Ok(0);
    }
    audit::record(
        conn,
        actor,
        "alert.acknowledge",
        Some(alert.task.as_str()).filter(|t| !t.is_empty()),
        Some(&id.to_string()),
        serde_json::json!({
            "kind": alert.kind.as_str(),
            "summary": alert.summary,
            "alerts": done,
        }),
    )?;
    tracing::info!(alert = id, count = done.len(), kind = %alert.kind, task = %alert.task, "alert acknowledged");
    Ok(done.len())
}
