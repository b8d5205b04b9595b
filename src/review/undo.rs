//! Taking back a label within a short window.

use chrono::Duration;

use crate::db::DbConnection;
use crate::domain::{now, QueueKind};
use crate::store::queue as store;

use super::{held_by, skip, ReviewError};

/// How long after labelling a reviewer may take the label back.
pub const UNDO_WINDOW: Duration = Duration::seconds(30);

/// Takes back the reviewer's last label in `task` if it is younger than
/// [`UNDO_WINDOW`]: the review goes, a verdict it made goes (with its
/// unsent webhook), and the item is the reviewer's claimed item again,
/// leased for `lease`. The review item the reviewer held goes back to the
/// queue first, so the undone one is their only claim. Returns the undone
/// item's id; [`ReviewError::NothingToUndo`] changes nothing.
pub fn undo_last(
    conn: &mut DbConnection,
    task: &str,
    reviewer: &str,
    lease: Duration,
) -> Result<String, ReviewError> {
    let at = now();
    let Some(item_id) = store::last_reviewed_since(conn, task, reviewer, at - UNDO_WINDOW)? else {
        return Err(ReviewError::NothingToUndo);
    };
    if let Some(current) = held_by(conn, QueueKind::Review, task, reviewer)? {
        skip(conn, task, &current.item.id, reviewer)?;
    }
    store::delete_review(conn, task, &item_id, reviewer)?;
    // (A label that completed a consensus or a tie is undone the same way:
    // the item waits again for this reviewer's label.)
    if store::withdraw_verdict(conn, task, &item_id, reviewer)? > 0 {
        crate::webhooks::withdraw(conn, task, &item_id)?;
        store::undecide(conn, task, &item_id)?;
    }
    store::reopen_for(conn, task, &item_id, reviewer, at + lease)?;
    crate::store::audit::record(
        conn,
        reviewer,
        "review.undo",
        Some(task),
        Some(&item_id),
        serde_json::json!({}),
    )?;
    Ok(item_id)
}
