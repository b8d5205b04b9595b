//! An admin corrects a decision after the fact: overrules the verdict (a
//! model's or a human's), or sends the item back for review. Both need a
//! reason, both are in the audit log with what was there before, and a
//! task with a `callback_url` hears of the new verdict.

use chrono::Duration;

use crate::db::DbConnection;
use crate::domain::{now, ReviewState};
use crate::store::corrections;
use crate::store::items as items_store;
use crate::store::queue as store;

use super::{ReviewError, Rules, MAX_NOTE};

fn reason_of(reason: &str) -> Result<&str, ReviewError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ReviewError::NoteRequired);
    }
    if reason.chars().count() > MAX_NOTE {
        return Err(ReviewError::NoteTooLong);
    }
    Ok(reason)
}

/// The item's verdict as the audit log records it, or null.
fn verdict_json(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
) -> Result<serde_json::Value, ReviewError> {
    Ok(items_store::verdicts_of(conn, task, &[item_id])?
        .pop()
        .map_or(serde_json::Value::Null, |v| {
            serde_json::json!({
                "label": v.label,
                "source": v.source,
                "basis": v.basis,
                "decided_by": v.decided_by,
            })
        }))
}

/// Makes `label` the item's verdict, decided by `admin` (basis
/// `correction`) for `reason`: it replaces the verdict there was (or
/// decides a waiting item; a reviewer's claim on it ends), an unsent
/// webhook of the old verdict is withdrawn and the new one is sent.
pub fn overrule(
    conn: &mut DbConnection,
    task: &str,
    rules: &Rules,
    item_id: &str,
    admin: &str,
    label: &str,
    reason: &str,
) -> Result<(), ReviewError> {
    if !rules.labels.iter().any(|l| l == label) {
        return Err(ReviewError::UnknownLabel(label.to_string()));
    }
    let reason = reason_of(reason)?;
    if items_store::find_item(conn, task, item_id)?.is_none() {
        return Err(ReviewError::UnknownItem {
            task: task.into(),
            id: item_id.into(),
        });
    }
    let before = verdict_json(conn, task, item_id)?;
    if before["label"] == label {
        return Err(ReviewError::SameVerdict);
    }
    corrections::overrule(conn, task, item_id, label, admin, now())?;
    crate::webhooks::withdraw(conn, task, item_id)?;
    if let Some(url) = &rules.callback_url {
        crate::webhooks::enqueue_verdict(conn, task, item_id, url)?;
    }
    crate::store::audit::record(
        conn,
        admin,
        "verdict.overrule",
        Some(task),
        Some(item_id),
        serde_json::json!({"before": before, "label": label, "reason": reason}),
    )?;
    Ok(())
}

/// Sends the item back to the review queue for `reason`, due within `sla`:
/// its verdict goes (an unsent webhook of it is withdrawn) and so do the
/// labels reviewers gave it, so that it is decided afresh and anyone may
/// take it — both are kept in the audit log's entry. An item that waits
/// for review already is refused.
pub fn reopen(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    admin: &str,
    reason: &str,
    sla: Duration,
) -> Result<(), ReviewError> {
    let reason = reason_of(reason)?;
    let Some(item) = items_store::find_item(conn, task, item_id)? else {
        return Err(ReviewError::UnknownItem {
            task: task.into(),
            id: item_id.into(),
        });
    };
    if matches!(
        item.review_state,
        ReviewState::Pending | ReviewState::Adjudication
    ) {
        return Err(ReviewError::AlreadyWaiting);
    }
    let before = verdict_json(conn, task, item_id)?;
    let votes = store::votes_with_comments(conn, task, item_id)?;
    for (reviewer, _, _) in &votes {
        store::delete_review(conn, task, item_id, reviewer)?;
    }
    let at = now();
    corrections::reopen(conn, task, item_id, at + sla)?;
    crate::webhooks::withdraw(conn, task, item_id)?;
    let labels: Vec<_> = votes
        .iter()
        .map(|(reviewer, label, comment)| {
            serde_json::json!({"reviewer": reviewer, "label": label, "comment": comment})
        })
        .collect();
    crate::store::audit::record(
        conn,
        admin,
        "item.reopen",
        Some(task),
        Some(item_id),
        serde_json::json!({"before": before, "reviews": labels, "reason": reason}),
    )?;
    Ok(())
}
