//! Label export and dataset snapshots over the API.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{task, ApiClient};
use crate::domain::rfc3339;
use crate::export::snapshot::{self, SnapshotRow};
use crate::export::{Format, Params};
use crate::http::download::{export_response, file_response, query_pairs};
use crate::http::error::{AppError, ErrorBody};
use crate::http::state::AppState;
use crate::store::snapshots;

/// A snapshot as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Dataset)]
pub struct SnapshotDoc {
    pub task: String,
    pub name: String,
    /// `jsonl` or `csv`.
    pub format: String,
    pub rows: i64,
    pub bytes: i64,
    /// The filters it was made with.
    #[schema(value_type = Object)]
    pub filters: serde_json::Value,
    pub sha256: String,
    pub created_at: String,
    pub created_by: String,
}

impl From<&SnapshotRow> for SnapshotDoc {
    fn from(r: &SnapshotRow) -> Self {
        SnapshotDoc {
            task: r.task.clone(),
            name: r.name.clone(),
            format: r.format.clone(),
            rows: r.row_count,
            bytes: r.byte_count,
            filters: serde_json::from_str(&r.filters).unwrap_or(serde_json::Value::Null),
            sha256: r.sha256.clone(),
            created_at: rfc3339(&r.created_at),
            created_by: r.created_by.clone(),
        }
    }
}

/// What to export: each key at most once, any other key is a 400.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only: `Params::from_pairs` reads the query
struct LabelQuery {
    /// `jsonl` (default) or `csv`.
    #[param(pattern = "^(jsonl|csv)$")]
    format: Option<String>,
    /// From this time: RFC 3339, or a date (2026-11-28).
    since: Option<String>,
    /// Before this time: RFC 3339, or a date.
    until: Option<String>,
    /// `human`, `model` or `all` (default).
    #[param(pattern = "^(human|model|all)$")]
    source: Option<String>,
    /// `audit`, `uncertain` or `all` (default).
    #[param(pattern = "^(audit|uncertain|all)$")]
    kind: Option<String>,
    /// Comma-separated: `predictions`, `reviews`.
    include: Option<String>,
    /// Resume after this item id.
    after: Option<String>,
}

/// `GET /api/v1/tasks/{task}/labels?format=&since=&until=&source=&kind=&include=&after=`
/// The labelled items as JSON lines or CSV, streamed.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/labels", tag = "labels",
    params(super::openapi::TaskParam, LabelQuery),
    responses(
        (status = 200, description = "the labels, one item a line (a download)",
            content((String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "unknown_parameter, repeated_parameter, invalid_value, invalid_query",
            body = ErrorBody),
    ))]
pub async fn labels(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let request = Params::from_pairs(query_pairs(&req)?)?.parse(Format::Jsonl)?;
    Ok(export_response(&state.db, &task, request))
}

/// A snapshot to make: its name and the export's filters (as in
/// `GET …/labels`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewDataset)]
struct SnapshotBody {
    name: String,
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    include: Option<String>,
}

/// `POST /api/v1/tasks/{task}/datasets` `{"name": …, filters…}`: 201 with
/// the snapshot's record.
#[utoipa::path(post, path = "/api/v1/tasks/{task}/datasets", tag = "labels",
    params(super::openapi::TaskParam),
    request_body(content = SnapshotBody, content_type = "application/json"),
    responses(
        (status = 201, description = "the snapshot is written", body = SnapshotDoc),
        (status = 400, description = "malformed_json, invalid_body, invalid_value", body = ErrorBody),
        (status = 409, description = "already_exists: a snapshot of this name", body = ErrorBody),
    ))]
pub async fn snapshot_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let value = super::body::read_json(&req, payload, 64 * 1024).await?;
    let body: SnapshotBody = serde_json::from_value(value)
        .map_err(|e| AppError::invalid("invalid_body", "body", e.to_string()))?;
    let params = Params {
        format: body.format,
        since: body.since,
        until: body.until,
        source: body.source,
        kind: body.kind,
        include: body.include,
        after: None,
    };
    let request = params.parse(Format::Jsonl)?;
    let row = snapshot::create(
        &state.db,
        &state.settings.datasets.dir,
        &task,
        body.name,
        request,
        format!("token:{}", client.0),
    )
    .await?;
    Ok(HttpResponse::Created().json(SnapshotDoc::from(&row)))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = DatasetList)]
struct SnapshotList {
    datasets: Vec<SnapshotDoc>,
}

/// `GET /api/v1/tasks/{task}/datasets`
#[utoipa::path(get, path = "/api/v1/tasks/{task}/datasets", tag = "labels",
    params(super::openapi::TaskParam),
    responses((status = 200, description = "the task's snapshots", body = SnapshotList)))]
pub async fn snapshot_list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?.name().to_string();
    let rows = state
        .db
        .read(move |conn| Ok::<_, AppError>(snapshots::list(conn, Some(&task))?))
        .await?;
    Ok(HttpResponse::Ok().json(SnapshotList {
        datasets: rows.iter().map(SnapshotDoc::from).collect(),
    }))
}

/// The snapshot a `{task}/{name}` path names.
async fn find(
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<SnapshotRow, AppError> {
    let (task_name, name) = path.into_inner();
    let task = task(state, &task_name)?.name().to_string();
    state
        .db
        .read(move |conn| snapshots::find(conn, &task, &name)?.ok_or(AppError::NotFound))
        .await
}

/// `GET /api/v1/tasks/{task}/datasets/{name}`
#[utoipa::path(get, path = "/api/v1/tasks/{task}/datasets/{name}", tag = "labels",
    params(super::openapi::TaskParam, ("name" = String, Path, description = "the snapshot's name")),
    responses((status = 200, description = "the snapshot", body = SnapshotDoc)))]
pub async fn snapshot_get(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, path).await?;
    Ok(HttpResponse::Ok().json(SnapshotDoc::from(&row)))
}

/// `GET /api/v1/tasks/{task}/datasets/{name}/file`
#[utoipa::path(get, path = "/api/v1/tasks/{task}/datasets/{name}/file", tag = "labels",
    params(super::openapi::TaskParam, ("name" = String, Path, description = "the snapshot's name")),
    responses((status = 200, description = "the snapshot's file (a download)",
        headers(("X-Content-SHA256" = String, description = "the file's SHA-256")),
        content((String = "application/x-ndjson"), (String = "text/csv")))))]
pub async fn snapshot_file(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, path).await?;
    Ok(file_response(&row))
}
