//! Why items could not be scored, with stable codes.

use crate::db::DbError;

/// What is wrong with one field of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputProblem {
    MissingField,
    UnknownField,
    WrongType,
    NotFinite,
    OutOfRange,
}

impl InputProblem {
    pub fn code(self) -> &'static str {
        match self {
            InputProblem::MissingField => "missing_field",
            InputProblem::UnknownField => "unknown_field",
            InputProblem::WrongType => "wrong_type",
            InputProblem::NotFinite => "not_finite",
            InputProblem::OutOfRange => "out_of_range",
        }
    }
}

/// Why items could not be scored; nothing of the request is written.
#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    /// A field of an input is wrong; `field` says where (`input.age`, or
    /// `items[3].input.age` in a batch).
    #[error("{message}")]
    Invalid {
        problem: InputProblem,
        field: String,
        message: String,
    },
    /// A known id came with another input.
    #[error("{message}")]
    Conflict { field: String, message: String },
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<diesel::result::Error> for ScoringError {
    fn from(e: diesel::result::Error) -> Self {
        ScoringError::Database(e.into())
    }
}

impl ScoringError {
    pub(super) fn invalid(
        problem: InputProblem,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ScoringError::Invalid {
            problem,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A stable code for the kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            ScoringError::Invalid { problem, .. } => problem.code(),
            ScoringError::Conflict { .. } => "idempotency_conflict",
            ScoringError::Database(_) => "internal",
        }
    }

    /// Prefixes the field with where it sits, e.g. `items[3].`.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            ScoringError::Invalid {
                problem,
                field,
                message,
            } => ScoringError::Invalid {
                problem,
                field: format!("{prefix}{field}"),
                message,
            },
            ScoringError::Conflict { field, message } => ScoringError::Conflict {
                field: format!("{prefix}{field}"),
                message,
            },
            other => other,
        }
    }
}
