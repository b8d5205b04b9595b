//! What an export or a snapshot can fail with. The HTTP layer maps each
//! case to its answer; [`ExportError::code`] is the stable code it sends.

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A parameter the export does not take (a typo would otherwise
    /// silently export everything).
    #[error(
        "{name:?} is not an export parameter (format, since, until, source, kind, include, after)"
    )]
    UnknownParameter { name: String },
    /// A parameter (or a snapshot's name) with a value it cannot take.
    #[error("{message}")]
    InvalidValue {
        field: &'static str,
        message: String,
    },
    /// The task has a snapshot of this name recorded already.
    #[error(
        "task {task:?} has a snapshot named {name:?} already; snapshots are never overwritten"
    )]
    SnapshotExists { task: String, name: String },
    /// A file of the snapshot's name exists already (never overwritten).
    #[error("a snapshot file named {name:?} exists already for task {task:?}; snapshots are never overwritten")]
    SnapshotFileExists { task: String, name: String },
    /// Writing the export (or a snapshot file) failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ExportError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ExportError::InvalidValue {
            field,
            message: message.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ExportError::Io {
            context: context.into(),
            source,
        }
    }

    /// The stable, machine-readable code of the case.
    pub fn code(&self) -> &'static str {
        match self {
            ExportError::UnknownParameter { .. } => "unknown_field",
            ExportError::InvalidValue { .. } => "invalid_value",
            ExportError::SnapshotExists { .. } | ExportError::SnapshotFileExists { .. } => {
                "already_exists"
            }
            ExportError::Io { .. } => "io",
            ExportError::Db(_) => "database",
        }
    }

    /// The request field the error is about, if it is the caller's.
    pub fn field(&self) -> Option<&str> {
        match self {
            ExportError::UnknownParameter { name } => Some(name),
            ExportError::InvalidValue { field, .. } => Some(field),
            ExportError::SnapshotExists { .. } | ExportError::SnapshotFileExists { .. } => {
                Some("name")
            }
            ExportError::Io { .. } | ExportError::Db(_) => None,
        }
    }
}

impl From<diesel::result::Error> for ExportError {
    fn from(e: diesel::result::Error) -> Self {
        ExportError::Db(DbError::Query(e))
    }
}
