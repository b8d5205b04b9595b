//! Batch scoring jobs: `POST /api/v1/tasks/{task}/jobs` takes a CSV or
//! JSONL file as the body (202 with the job and its `Location`), `GET
//! …/jobs/{id}` says how far it is, `GET …/jobs/{id}/results` streams the
//! result lines once it is done.

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::{body, task, ApiClient};
use crate::batch::jobs::{self, JobError};
use crate::batch::Format;
use crate::http::error::{AppError, ErrorBody};
use crate::http::state::AppState;

/// Result chunks read per query while streaming.
const RESULT_CHUNKS_PER_READ: i64 = 4;

fn app_error(e: JobError) -> AppError {
    match e {
        JobError::EmptyFile => AppError::invalid(e.code(), "body", e.to_string()),
        JobError::NotFound(_) => AppError::NotFound,
        JobError::NotDone { .. } => AppError::Refused {
            code: e.code(),
            message: e.to_string(),
        },
        JobError::Database(e) => e.into(),
    }
}

/// The file's format from its `Content-Type`; `None` for any other type.
fn format_of(req: &HttpRequest) -> Option<Format> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "text/csv" => Some(Format::Csv),
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Some(Format::Jsonl)
        }
        _ => None,
    }
}

/// Starts a batch job on a CSV file (a header row of feature names and an
/// `id` column) or JSON lines (`{"id", "input"}` a line).
#[utoipa::path(post, path = "/api/v1/tasks/{task}/jobs", tag = "jobs",
    params(super::openapi::TaskParam),
    request_body(description = "the file", content(
        (String = "text/csv"), (String = "application/x-ndjson"))),
    responses(
        (status = 202, description = "the job is queued", body = jobs::JobDoc,
            headers(("Location" = String, description = "the job's address"))),
        (status = 400, description = "empty_file", body = ErrorBody),
    ))]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let Some(format) = format_of(&req) else {
        return Err(AppError::UnsupportedMediaType {
            got: req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|t| t.chars().take(100).collect()),
            accepted: "a file with Content-Type: text/csv or application/x-ndjson",
        });
    };
    let limit = state.settings.jobs.max_upload_bytes;
    let bytes = body::read(&req, payload, limit).await?;
    let doc = jobs::create(
        &state.db,
        task.name(),
        format,
        bytes.to_vec(),
        &client.0,
        &state.settings.jobs,
    )
    .await
    .map_err(app_error)?;
    let location = format!("/api/v1/tasks/{}/jobs/{}", doc.task, doc.id);
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, location))
        .json(doc))
}

/// How far a job is.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/jobs/{id}", tag = "jobs",
    params(super::openapi::TaskParam, ("id" = String, Path, description = "the job's id")),
    responses((status = 200, description = "the job", body = jobs::JobDoc)))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let (task_name, id) = path.into_inner();
    let task = task(&state, &task_name)?;
    let doc = jobs::get(&state.db, task.name(), &id)
        .await
        .map_err(app_error)?;
    Ok(HttpResponse::Ok().json(doc))
}

/// The result lines, read from the database a few chunks at a time as the
/// client takes them.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/jobs/{id}/results", tag = "jobs",
    params(super::openapi::TaskParam, ("id" = String, Path, description = "the job's id")),
    responses(
        (status = 200, description = "one result a line, in the file's order",
            content((String = "application/x-ndjson"))),
        (status = 409, description = "job_not_done", body = ErrorBody),
    ))]
pub async fn results(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let (task_name, id) = path.into_inner();
    let task = task(&state, &task_name)?;
    jobs::done(&state.db, task.name(), &id)
        .await
        .map_err(app_error)?;
    let db = state.db.clone();
    let stream = futures_util::stream::unfold(
        (db, id, None::<i64>, false),
        |(db, id, after, finished)| async move {
            if finished {
                return None;
            }
            match jobs::results_after(&db, &id, after, RESULT_CHUNKS_PER_READ).await {
                Ok(chunks) if chunks.is_empty() => None,
                Ok(chunks) => {
                    let last = chunks.last().map(|(c, _)| *c);
                    let body: Vec<u8> = chunks.into_iter().flat_map(|(_, b)| b).collect();
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(body)),
                        (db, id, last, false),
                    ))
                }
                Err(e) => {
                    // After the first byte an error can only cut the body.
                    tracing::error!(error = %e, job = %id, "reading a job's results failed");
                    Some((
                        Err(std::io::Error::other("reading the results failed")),
                        (db, id, after, true),
                    ))
                }
            }
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}
