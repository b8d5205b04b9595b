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

    /// The index of the item a batch's error names (`items[3].…` → 3).
    pub fn item_index(&self) -> Option<usize> {
        let field = match self {
            ScoringError::Invalid { field, .. } | ScoringError::Conflict { field, .. } => field,
            ScoringError::Database(_) => return None,
        };
        let rest = field.strip_prefix("items[")?;
        rest[..rest.find(']')?].parse().ok()
    }

    /// The error without the batch's prefix on its field (`input.age`
    /// rather than `items[3].input.age`).
    pub fn unprefixed(self) -> Self {
        let strip = |field: String| match field.find("].") {
            Some(end) if field.starts_with("items[") => field[end + 2..].to_string(),
            _ => field,
        };
        match self {
            ScoringError::Invalid {
                problem,
                field,
                message,
            } => ScoringError::Invalid {
                problem,
                field: strip(field),
                message,
            },
            ScoringError::Conflict { field, message } => ScoringError::Conflict {
                field: strip(field),
                message,
            },
            other => other,
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
