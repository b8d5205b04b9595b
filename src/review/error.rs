//! Why a review action was refused, with a stable code per case.

use crate::db::DbError;

/// Why a claim, label, skip, renewal or undo did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such item in the task.
    #[error("no item {id:?} in task {task:?}")]
    UnknownItem { task: String, id: String },
    /// The label is not one of the task's.
    #[error("{0:?} is not a label of this task")]
    UnknownLabel(String),
    /// The time spent is negative or not a number.
    #[error("seconds spent must be a non-negative number")]
    BadTimeSpent,
    /// The reviewer's claim expired and the item passed to someone else (or
    /// was finished by others).
    #[error("your claim on this item has expired or passed to someone else; take the next item")]
    StaleLease,
    /// The reviewer's own claim expired; nobody has taken the item since.
    #[error("your claim on this item has expired; take it again from the queue")]
    LeaseExpired,
    /// The reviewer holds no claim on the item (never had one, gave it
    /// back, or it lapsed long ago).
    #[error("you hold no claim on this item")]
    NotClaimed,
    /// The reviewer's label for this item is recorded already.
    #[error("you have labelled this item already")]
    AlreadyLabelled,
    /// No label of the reviewer's is young enough to take back.
    #[error("there is no recent label of yours to take back")]
    NothingToUndo,
    /// A flag or a correction needs a note saying why.
    #[error("say why in a note")]
    NoteRequired,
    /// The note is longer than a note should be.
    #[error("the note is too long")]
    NoteTooLong,
    /// The item waits for an admin already.
    #[error("the item is with the admins already")]
    AlreadyFlagged,
    /// The item waits for review already: there is nothing to reopen.
    #[error("the item is waiting for review already")]
    AlreadyWaiting,
    /// The verdict is that label already.
    #[error("the verdict is that label already")]
    SameVerdict,
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ReviewError {
    /// The stable, machine-readable name of the case.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewError::UnknownItem { .. } => "unknown_item",
            ReviewError::UnknownLabel(_) => "unknown_label",
            ReviewError::BadTimeSpent => "out_of_range",
            ReviewError::StaleLease => "stale_lease",
            ReviewError::LeaseExpired => "lease_expired",
            ReviewError::NotClaimed => "not_claimed",
            ReviewError::AlreadyLabelled => "already_labelled",
            ReviewError::NothingToUndo => "nothing_to_undo",
            ReviewError::NoteRequired => "note_required",
            ReviewError::NoteTooLong => "note_too_long",
            ReviewError::AlreadyFlagged => "already_flagged",
            ReviewError::AlreadyWaiting => "already_waiting",
            ReviewError::SameVerdict => "same_verdict",
            ReviewError::Database(_) => "database",
        }
    }
}

impl From<diesel::result::Error> for ReviewError {
    fn from(e: diesel::result::Error) -> Self {
        ReviewError::Database(DbError::Query(e))
    }
}
