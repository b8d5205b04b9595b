//! One error type for request handlers, with stable machine-readable codes.
//! Internal detail is logged, never sent to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A field of the request is wrong; `code` says how.
    #[error("{message}")]
    InvalidInput {
        code: &'static str,
        field: String,
        message: String,
    },
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no task named {0:?}")]
    UnknownTask(String),
    #[error("no item {id:?} in task {task:?}")]
    ItemNotFound { task: String, id: String },
    #[error("task {task:?} has no model version {version:?}")]
    UnknownVersion { task: String, version: String },
    #[error("a valid API token is needed: send Authorization: Bearer <token>")]
    Unauthorized,
    #[error("{message}")]
    Conflict { field: String, message: String },
    /// A named thing that must not be overwritten exists already.
    #[error("{message}")]
    AlreadyExists { field: String, message: String },
    #[error("there is nothing at this address")]
    NotFound,
    /// A rollback with no previous version to go back to.
    #[error("task {0:?} has no previous version to roll back to")]
    NoPreviousVersion(String),
    /// The request is sound but the state of things refuses it (a
    /// deployment change that does not apply now); `code` says why.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("the service is unavailable: {0}")]
    Unavailable(String),
    /// An endpoint was sent a body of a type it does not take; `accepted`
    /// names what it takes ([`AppError::JSON_BODY`] for the JSON ones).
    #[error("send the body as {accepted}{}", .got.as_deref().map(|t| format!(" (this request said {t:?})")).unwrap_or_else(|| " (this request named no type)".into()))]
    UnsupportedMediaType {
        got: Option<String>,
        accepted: &'static str,
    },
    /// A known path asked with a method it does not take; `allow` lists
    /// the ones it does (also sent as the `Allow` header).
    #[error("{method} is not allowed here; this path takes {allow}")]
    MethodNotAllowed { method: String, allow: String },
    /// Anything refused before a handler ran (actix's own 4xx), with the
    /// status it had.
    #[error("{message}")]
    Refused4xx {
        status: u16,
        code: &'static str,
        message: String,
    },
    /// Too many requests (or failed authentications) from this token or
    /// address: try again in `retry_after` seconds (also the
    /// `Retry-After` header).
    #[error("too many requests; try again in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// What a JSON endpoint takes, as a 415 says it.
    pub const JSON_BODY: &'static str = "JSON with Content-Type: application/json";

    pub fn invalid(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        AppError::InvalidInput {
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidInput { code, .. } => code,
            AppError::MalformedJson(_) => "malformed_json",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnknownTask(_) => "unknown_task",
            AppError::ItemNotFound { .. } => "item_not_found",
            AppError::UnknownVersion { .. } => "unknown_version",
            AppError::Unauthorized => "unauthorized",
            AppError::Conflict { .. } => "idempotency_conflict",
            AppError::AlreadyExists { .. } => "already_exists",
            AppError::NotFound => "not_found",
            AppError::NoPreviousVersion(_) => "no_previous_version",
            AppError::Refused { code, .. } => code,
            AppError::Unavailable(_) => "unavailable",
            AppError::UnsupportedMediaType { .. } => "unsupported_media_type",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::Refused4xx { code, .. } => code,
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Internal(_) => "internal",
        }
    }

    /// Prefixes the field with where it sits, e.g. `items[3].`.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            AppError::InvalidInput {
                code,
                field,
                message,
            } => AppError::InvalidInput {
                code,
                field: format!("{prefix}{field}"),
                message,
            },
            AppError::Conflict { field, message } => AppError::Conflict {
                field: format!("{prefix}{field}"),
                message,
            },
            other => other,
        }
    }
}

/// Every error the API answers with.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable and machine-readable (`invalid_input`, `unknown_task`, …).
    #[schema(value_type = String)]
    pub code: &'a str,
    /// For people: what to change.
    pub message: String,
    /// The field of the request it is about, where there is one
    /// (`input.age`, `items[3].id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub field: Option<&'a str>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::InvalidInput { .. } | AppError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnknownTask(_)
            | AppError::ItemNotFound { .. }
            | AppError::UnknownVersion { .. }
            | AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Conflict { .. }
            | AppError::AlreadyExists { .. }
            | AppError::NoPreviousVersion(_)
            | AppError::Refused { .. } => StatusCode::CONFLICT,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Refused4xx { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            AppError::Internal(detail) | AppError::Unavailable(detail) => {
                tracing::error!(error = %detail, code = self.code(), "request failed");
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    "the service is unavailable; try again".to_string()
                } else {
                    "internal error; the details are in the server log".to_string()
                }
            }
            other => other.to_string(),
        };
        let field = match self {
            AppError::InvalidInput { field, .. }
            | AppError::Conflict { field, .. }
            | AppError::AlreadyExists { field, .. } => Some(field.as_str()),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let AppError::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, allow.as_str()));
        }
        if let AppError::RateLimited { retry_after } = self {
            response.insert_header((header::RETRY_AFTER, retry_after.max(&1).to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                field,
            },
        })
    }
}

impl AppError {
    /// The JSON error for a response actix (or a resource's default) made
    /// with an empty or non-JSON body under `/api`: the same status, a
    /// stable code for it, a sentence saying what to change.
    pub fn for_status(status: StatusCode, method: &str, allow: Option<&str>) -> AppError {
        if status == StatusCode::METHOD_NOT_ALLOWED {
            return AppError::MethodNotAllowed {
                method: method.to_string(),
                allow: allow.unwrap_or("no method").to_string(),
            };
        }
        let (code, message) = match status.as_u16() {
            400 => ("bad_request", "the request could not be read as sent"),
            401 => return AppError::Unauthorized,
            404 => return AppError::NotFound,
            408 => ("request_timeout", "the request took too long to arrive"),
            411 => ("length_required", "send a Content-Length"),
            413 => ("payload_too_large", "the body is too large"),
            414 => ("uri_too_long", "the address is too long"),
            415 => (
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            429 => ("rate_limited", "too many requests; try again later"),
            431 => ("header_too_large", "the request's headers are too large"),
            s if s < 500 => ("bad_request", "the request was refused"),
            _ => return AppError::Internal(format!("an error response without a body: {status}")),
        };
        AppError::Refused4xx {
            status: status.as_u16(),
            code,
            message: message.to_string(),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            // Only another instance writing the same key at the same moment
            // gets here (one instance serialises its writes).
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => AppError::Conflict {
                field: "id".into(),
                message: "an item with this id was submitted at the same moment; send it again to get the stored result".into(),
            },
            e => AppError::Internal(format!("database: {e}")),
        }
    }
}

impl From<crate::rate_limits::Limited> for AppError {
    fn from(e: crate::rate_limits::Limited) -> Self {
        AppError::RateLimited {
            retry_after: e.retry_after,
        }
    }
}

impl From<crate::db::DbError> for AppError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Query(e) => AppError::from(e),
            DbError::Busy(detail) | DbError::Closed(detail) => AppError::Unavailable(detail),
        }
    }
}

impl From<crate::scoring::ScoringError> for AppError {
    fn from(e: crate::scoring::ScoringError) -> Self {
        use crate::scoring::ScoringError;
        match e {
            ScoringError::Invalid {
                problem,
                field,
                message,
            } => AppError::InvalidInput {
                code: problem.code(),
                field,
                message,
            },
            ScoringError::Conflict { field, message } => AppError::Conflict { field, message },
            ScoringError::Database(e) => e.into(),
        }
    }
}

impl From<crate::export::ExportError> for AppError {
    fn from(e: crate::export::ExportError) -> Self {
        use crate::export::ExportError;
        match e {
            ExportError::UnknownParameter { ref name } => AppError::InvalidInput {
                code: e.code(),
                field: name.clone(),
                message: e.to_string(),
            },
            ExportError::InvalidValue { field, message } => AppError::InvalidInput {
                code: "invalid_value",
                field: field.into(),
                message,
            },
            ExportError::SnapshotExists { .. } | ExportError::SnapshotFileExists { .. } => {
                AppError::AlreadyExists {
                    field: "name".into(),
                    message: e.to_string(),
                }
            }
            ExportError::Io { .. } => AppError::Internal(e.to_string()),
            ExportError::Db(e) => AppError::from(e),
        }
    }
}

impl From<crate::lifecycle::LifecycleError> for AppError {
    fn from(e: crate::lifecycle::LifecycleError) -> Self {
        use crate::lifecycle::LifecycleError;
        match e {
            LifecycleError::UnknownVersion { task, version } => {
                AppError::UnknownVersion { task, version }
            }
            LifecycleError::Db(e) => e.into(),
            other => AppError::Refused {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}
