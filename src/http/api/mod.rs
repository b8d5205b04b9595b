//! The scoring API (JSON, token auth) and the health endpoints.

mod advisor;
mod auth;
pub mod body;
mod deployment;
pub mod export;
mod jobs;
mod metrics;
mod monitoring;
pub mod openapi;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::http::error::{AppError, ErrorBody};
use crate::http::state::AppState;
use crate::items;
use crate::tasks::TaskRuntime;
pub use auth::ApiClient;

/// Declares every path outside the web UI once, with the methods it takes
/// and their handlers: [`routes`] registers them (one resource per path
/// holding every method, so another method is a 405 with `Allow`, made JSON
/// by [`crate::http::middleware`], not a 404) and [`ROUTES`] lists them for
/// the test that holds the OpenAPI document to exactly these.
macro_rules! served {
    ($( $path:literal { $( $method:ident => $handler:path ),+ $(,)? } )*) => {
        /// Every path served here and its methods (lower case).
        pub const ROUTES: &[(&str, &[&str])] = &[ $( ($path, &[ $( stringify!($method) ),+ ]) ),* ];

        pub fn routes(cfg: &mut web::ServiceConfig) {
            $( cfg.service(web::resource($path) $( .route(web::$method().to($handler)) )+ ); )*
        }
    };
}

served! {
    "/healthz" { get => healthz }
    "/readyz" { get => readyz }
    "/metrics" { get => metrics::metrics }
    "/api/openapi.json" { get => openapi::document }
    "/api/v1/tasks" { get => list_tasks }
    "/api/v1/alerts" { get => monitoring::alerts }
    "/api/v1/tasks/{task}/monitoring" { get => monitoring::task_monitoring }
    "/api/v1/tasks/{task}/advisor" { get => advisor::advisor }
    "/api/v1/tasks/{task}/deployment" { get => deployment::get, put => deployment::put }
    "/api/v1/tasks/{task}/deployment/rollback" { post => deployment::rollback }
    "/api/v1/tasks/{task}/deployment/promote" { post => deployment::promote }
    "/api/v1/tasks/{task}/deployment/candidate" { delete => deployment::withdraw }
    "/api/v1/tasks/{task}/items" { post => submit_items }
    "/api/v1/tasks/{task}/items/{id}" { get => get_item }
    "/api/v1/tasks/{task}/jobs" { post => jobs::create }
    "/api/v1/tasks/{task}/jobs/{id}" { get => jobs::get }
    "/api/v1/tasks/{task}/jobs/{id}/results" { get => jobs::results }
    "/api/v1/tasks/{task}/labels" { get => export::labels }
    "/api/v1/tasks/{task}/datasets" { post => export::snapshot_create, get => export::snapshot_list }
    "/api/v1/tasks/{task}/datasets/{name}" { get => export::snapshot_get }
    "/api/v1/tasks/{task}/datasets/{name}/file" { get => export::snapshot_file }
}

/// 404 for every path no route takes: JSON under /api, a page elsewhere.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    if req.path().starts_with("/api/") {
        AppError::NotFound.error_response()
    } else {
        crate::http::web::not_found_page()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`: the process answers.
    status: &'static str,
}

/// The process answers (liveness).
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = Health)))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
struct Readiness {
    ready: bool,
    database: bool,
    tasks: Vec<TaskReadiness>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TaskReadiness {
    task: String,
    model_loaded: bool,
    ready: bool,
}

/// Ready when the database answers and every task has the model it needs.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "not ready: the database or a task's model is missing", body = Readiness),
))]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = state.db.ping().await.is_ok();
    let tasks: Vec<TaskReadiness> = state
        .tasks
        .all()
        .map(|t| TaskReadiness {
            task: t.name().to_string(),
            model_loaded: t.live().is_some(),
            ready: t.ready(),
        })
        .collect();
    let ready = database && tasks.iter().all(|t| t.ready);
    let body = Readiness {
        ready,
        database,
        tasks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub(crate) fn task(state: &AppState, name: &str) -> Result<Arc<TaskRuntime>, AppError> {
    state
        .tasks
        .get(name)
        .cloned()
        .ok_or_else(|| AppError::UnknownTask(name.to_string()))
}

#[derive(Serialize, utoipa::ToSchema)]
struct TaskSummary {
    name: String,
    description: String,
    #[schema(value_type = crate::domain::AutomationLevel)]
    automation: &'static str,
    threshold: Option<f64>,
    label_thresholds: std::collections::BTreeMap<String, f64>,
    audit_rate: f64,
    sla_minutes: u32,
    live_model_version: Option<String>,
    labels: Vec<String>,
    features: Vec<String>,
    queue_depth: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TaskList {
    tasks: Vec<TaskSummary>,
}

/// The tasks, their settings, live model and queue depth.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    responses((status = 200, description = "the tasks", body = TaskList)))]
async fn list_tasks(
    state: web::Data<AppState>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let depths = state
        .db
        .read(|conn| crate::store::items::queue_depths(conn).map_err(AppError::from))
        .await?;
    let tasks = state
        .tasks
        .all()
        .map(|t| {
            let live = t.live();
            TaskSummary {
                name: t.name().to_string(),
                description: t.config.description.clone(),
                automation: t.config.automation.as_str(),
                threshold: t.config.threshold,
                label_thresholds: t.config.label_thresholds.clone(),
                audit_rate: t.config.audit_rate,
                sla_minutes: t.config.sla_minutes,
                live_model_version: live.as_ref().map(|m| m.version().to_string()),
                labels: live
                    .as_ref()
                    .map(|m| m.card.labels.clone())
                    .unwrap_or_default(),
                features: live
                    .as_ref()
                    .map(|m| m.card.features.iter().map(|f| f.name.clone()).collect())
                    .unwrap_or_default(),
                queue_depth: depths.get(t.name()).copied().unwrap_or(0),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(TaskList { tasks }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = BatchResult)]
struct Batch {
    items: Vec<items::ItemDoc>,
}

/// Scores one item (`{"id", "input"}`: 201, or 200 for a known id) or a
/// batch (`{"items": […]}`: 200), durably stored before the answer.
#[utoipa::path(post, path = "/api/v1/tasks/{task}/items", tag = "items",
    params(openapi::TaskParam),
    request_body(content = openapi::Submission, content_type = "application/json"),
    responses(
        (status = 200, description = "a batch scored, or an item already known (its stored result)",
            body = openapi::Scored),
        (status = 201, description = "a new item scored and stored", body = items::ItemDoc),
        (status = 400, description = "malformed_json, wrong_type, missing_field, unknown_field, \
            duplicate_field, invalid_id, empty_batch, batch_too_large, or the input does not fit \
            the live model (unknown_feature, missing_feature, not_a_number, …); `field` names it",
            body = ErrorBody),
        (status = 409, description = "idempotency_conflict: the id is known with another input",
            body = ErrorBody),
    ))]
async fn submit_items(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let name = task.name().to_string();
    let scored = async {
        let value = body::read_json(&req, payload, state.settings.server.max_body_bytes).await?;
        let (submissions, batch) = body::submissions(value, state.settings.server.max_batch_items)?;
        let outcomes =
            crate::scoring::submit(&state.scoring, &state.recorder, task, submissions, batch)
                .await?;
        Ok::<_, AppError>((outcomes, batch))
    }
    .await;
    let (mut outcomes, batch) = scored.inspect_err(|e| state.recorder.rejected(&name, e.code()))?;
    if batch {
        Ok(HttpResponse::Ok().json(Batch {
            items: outcomes.into_iter().map(|o| o.doc).collect(),
        }))
    } else {
        let outcome = outcomes.pop().expect("one outcome for one item");
        let mut response = if outcome.created {
            HttpResponse::Created()
        } else {
            HttpResponse::Ok()
        };
        Ok(response.json(outcome.doc))
    }
}

/// An item's verdict, prediction and state.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/items/{id}", tag = "items",
    params(openapi::TaskParam, ("id" = String, Path, description = "the item's id")),
    responses(
        (status = 200, description = "the item", body = items::ItemDoc),
        (status = 400, description = "invalid_id", body = ErrorBody),
        (status = 404, description = "unknown_task, item_not_found", body = ErrorBody),
    ))]
async fn get_item(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let (task_name, id) = path.into_inner();
    let task = task(&state, &task_name)?;
    let id = crate::domain::ItemId::parse(&id)
        .map_err(|e| AppError::invalid("invalid_id", "id", e))?
        .to_string();
    let name = task.name().to_string();
    let doc = state
        .db
        .read(move |conn| {
            items::load_doc(conn, &name, &id)?.ok_or(AppError::ItemNotFound { task: name, id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}
