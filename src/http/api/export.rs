//! Label export and dataset snapshots over the API.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{task, ApiClient};
use crate::export::snapshot::{self, SnapshotDoc};
use crate::export::{self, Encoder, Format, Params, Request};
use crate::http::error::AppError;
use crate::http::state::AppState;

/// The query string as key/value pairs (unknown keys are refused later).
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, AppError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| AppError::invalid("invalid_query", "query", e.to_string()))
}

/// A streamed export as an HTTP response (a download).
pub fn export_response(
    state: &AppState,
    task: &crate::tasks::TaskRuntime,
    request: Request,
) -> HttpResponse {
    let name = task.name().to_string();
    let filename = format!("{name}-labels.{}", request.format.as_str());
    let content_type = request.format.content_type();
    let body = export::stream(state.db.clone(), name, request, export::columns_of(task));
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}

/// `GET /api/v1/tasks/{task}/labels?format=&since=&until=&source=&kind=&include=&after=`
pub async fn labels(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let request = Params::from_pairs(query_pairs(&req)?)?.parse(Format::Jsonl)?;
    Ok(export_response(&state, &task, request))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotBody {
    name: String,
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    include: Option<String>,
}

/// Writes a snapshot of the task's labels on the blocking pool and records
/// it: the shared path of the API and the web UI.
pub async fn create_snapshot(
    state: &AppState,
    task: &crate::tasks::TaskRuntime,
    name: String,
    request: Request,
    created_by: String,
) -> Result<snapshot::SnapshotRow, AppError> {
    snapshot::check_name(&name)?;
    let task_name = task.name().to_string();
    let (t, n) = (task_name.clone(), name.clone());
    if state
        .db
        .read(move |conn| Ok::<_, crate::http::error::AppError>(snapshot::find(conn, &t, &n)?))
        .await?
        .is_some()
    {
        return Err(AppError::AlreadyExists {
            field: "name".into(),
            message: format!(
                "task {task_name:?} has a snapshot named {name:?} already; snapshots are never overwritten"
            ),
        });
    }
    let dir = state.settings.datasets.dir.clone();
    let columns = export::columns_of(task);
    let db = state.db.clone();
    let row = state
        .db
        .read(move |_| {
            let mut encoder = Encoder::new(request.format, &request.filter, columns);
            let fetch = |after: Option<&str>, limit: i64| {
                let mut conn = db.get()?;
                export::page(&mut conn, &task_name, &request.filter, after, limit)
                    .map_err(AppError::from)
            };
            snapshot::write_file(
                &dir,
                &task_name,
                &name,
                &request,
                &mut encoder,
                fetch,
                &created_by,
                |_| {},
            )
        })
        .await?;
    let recorded = row.clone();
    if let Err(e) = state
        .db
        .write(move |conn| snapshot::record(conn, &recorded))
        .await
    {
        let _ = std::fs::remove_file(&row.path);
        return Err(e);
    }
    Ok(row)
}

/// `POST /api/v1/tasks/{task}/datasets` `{"name": …, filters…}`: 201 with
/// the snapshot's record.
pub async fn snapshot_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let bytes = super::body::read(&req, payload, 64 * 1024).await?;
    let value = super::body::parse_json(&bytes)?;
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
    let row = create_snapshot(
        &state,
        &task,
        body.name,
        request,
        format!("token:{}", client.0),
    )
    .await?;
    Ok(HttpResponse::Created().json(SnapshotDoc::from(&row)))
}

#[derive(Serialize)]
struct SnapshotList {
    datasets: Vec<SnapshotDoc>,
}

/// `GET /api/v1/tasks/{task}/datasets`
pub async fn snapshot_list(
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?.name().to_string();
    let rows = state
        .db
        .read(move |conn| Ok::<_, crate::http::error::AppError>(snapshot::list(conn, Some(&task))?))
        .await?;
    Ok(HttpResponse::Ok().json(SnapshotList {
        datasets: rows.iter().map(SnapshotDoc::from).collect(),
    }))
}

/// The snapshot a `{task}/{name}` path names.
async fn find(
    state: &AppState,
    path: web::Path<(String, String)>,
) -> Result<snapshot::SnapshotRow, AppError> {
    let (task_name, name) = path.into_inner();
    let task = task(state, &task_name)?.name().to_string();
    state
        .db
        .read(move |conn| snapshot::find(conn, &task, &name)?.ok_or(AppError::NotFound))
        .await
}

/// `GET /api/v1/tasks/{task}/datasets/{name}`
pub async fn snapshot_get(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, path).await?;
    Ok(HttpResponse::Ok().json(SnapshotDoc::from(&row)))
}

/// The snapshot's file as a download.
pub fn file_response(row: &snapshot::SnapshotRow) -> HttpResponse {
    let format = Format::parse(&row.format).unwrap_or(Format::Jsonl);
    let path = std::path::PathBuf::from(&row.path);
    let body = export::blocking_body(move |out| {
        let mut file = std::fs::File::open(&path)
            .map_err(|e| AppError::Internal(format!("cannot open {}: {e}", path.display())))?;
        std::io::copy(&mut file, out)
            .map_err(|e| AppError::Internal(format!("cannot send {}: {e}", path.display())))?;
        Ok(())
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, format.content_type()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}-{}.{}\"",
                row.task,
                row.name,
                format.as_str()
            ),
        ))
        .insert_header(("X-Content-SHA256", row.sha256.clone()))
        .streaming(body)
}

/// `GET /api/v1/tasks/{task}/datasets/{name}/file`
pub async fn snapshot_file(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let row = find(&state, path).await?;
    Ok(file_response(&row))
}
