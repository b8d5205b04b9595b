//! "Unsure": a reviewer hands the item to an admin with a note saying why.

use crate::db::DbConnection;
use crate::domain::{now, ReviewState, Timestamp};
use crate::store::queue as store;

use super::{held_or_reclaimed, ReviewError};

/// The longest note a flag keeps, in characters.
pub const MAX_NOTE: usize = 2_000;

/// A reviewer's flag on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub reviewer: String,
    pub note: String,
    pub at: Timestamp,
}

/// Flags the item `reviewer` holds (or held, if nobody took it since) for
/// an admin: the note is kept, the claim ends and the item moves to the
/// adjudication queue, where the admin's label decides it. Labels other
/// reviewers gave stay and are shown to the admin.
pub fn flag(
    conn: &mut DbConnection,
    task: &str,
    item_id: &str,
    reviewer: &str,
    note: &str,
) -> Result<(), ReviewError> {
    let note = note.trim();
    if note.is_empty() {
        return Err(ReviewError::NoteRequired);
    }
    if note.chars().count() > MAX_NOTE {
        return Err(ReviewError::NoteTooLong);
    }
    let lease = held_or_reclaimed(conn, task, item_id, reviewer)?;
    if lease.item.review_state == ReviewState::Adjudication {
        // Already with the admins (an admin adjudicating flags nothing).
        return Err(ReviewError::AlreadyFlagged);
    }
    let at = now();
    store::record_flag(conn, task, item_id, reviewer, note, at)?;
    store::close(conn, task, item_id, ReviewState::Adjudication, None)?;
    crate::store::audit::record(
        conn,
        reviewer,
        "review.flag",
        Some(task),
        Some(item_id),
        serde_json::json!({ "note": note }),
    )?;
    Ok(())
}

/// The flags on an item, oldest first.
pub fn flags(conn: &mut DbConnection, task: &str, item_id: &str) -> Result<Vec<Flag>, ReviewError> {
    Ok(store::flags_of(conn, task, item_id)?
        .into_iter()
        .map(|(reviewer, note, at)| Flag { reviewer, note, at })
        .collect())
}
