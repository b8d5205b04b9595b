//! The store's own errors: what a query can fail with, and what the pool
//! and the writer add. No HTTP here; the layers above map these to theirs.

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The query failed (a constraint, a lost connection, bad SQL).
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    /// No connection could be had in time (pool exhausted, server down).
    #[error("no database connection: {0}")]
    Busy(String),
    /// The writer has stopped or dropped the work, or its commit failed.
    #[error("the database writer is unavailable: {0}")]
    Closed(String),
}

impl DbError {
    /// Another writer inserted the same key at the same moment.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// Worth trying again later: the database is busy or restarting.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Busy(_) | DbError::Closed(_))
    }
}
