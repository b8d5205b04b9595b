//! The scoring API (JSON, token auth) and the health endpoints.

mod advisor;
mod auth;
pub mod body;
mod deployment;
pub mod export;
mod jobs;
mod metrics;
mod monitoring;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::items;
use crate::tasks::TaskRuntime;
pub use auth::ApiClient;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(
            web::scope("/api/v1")
                .route("/tasks", web::get().to(list_tasks))
                .route("/alerts", web::get().to(monitoring::alerts))
                .route(
                    "/tasks/{task}/monitoring",
                    web::get().to(monitoring::task_monitoring),
                )
                .route("/tasks/{task}/advisor", web::get().to(advisor::advisor))
                .route("/tasks/{task}/deployment", web::get().to(deployment::get))
                .route("/tasks/{task}/deployment", web::put().to(deployment::put))
                .route(
                    "/tasks/{task}/deployment/rollback",
                    web::post().to(deployment::rollback),
                )
                .route(
                    "/tasks/{task}/deployment/promote",
                    web::post().to(deployment::promote),
                )
                .route(
                    "/tasks/{task}/deployment/candidate",
                    web::delete().to(deployment::withdraw),
                )
                .route("/tasks/{task}/items", web::post().to(submit_items))
                .route("/tasks/{task}/items/{id}", web::get().to(get_item))
                .route("/tasks/{task}/jobs", web::post().to(jobs::create))
                .route("/tasks/{task}/jobs/{id}", web::get().to(jobs::get))
                .route(
                    "/tasks/{task}/jobs/{id}/results",
                    web::get().to(jobs::results),
                )
                .route("/tasks/{task}/labels", web::get().to(export::labels))
                .route(
                    "/tasks/{task}/datasets",
                    web::post().to(export::snapshot_create),
                )
                .route(
                    "/tasks/{task}/datasets",
                    web::get().to(export::snapshot_list),
                )
                .route(
                    "/tasks/{task}/datasets/{name}",
                    web::get().to(export::snapshot_get),
                )
                .route(
                    "/tasks/{task}/datasets/{name}/file",
                    web::get().to(export::snapshot_file),
                ),
        );
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    database: bool,
    tasks: Vec<TaskReadiness>,
}

#[derive(Serialize)]
struct TaskReadiness {
    task: String,
    model_loaded: bool,
    ready: bool,
}

/// Ready when the database answers and every task has the model it needs.
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

#[derive(Serialize)]
struct TaskSummary {
    name: String,
    description: String,
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

#[derive(Serialize)]
struct TaskList {
    tasks: Vec<TaskSummary>,
}

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

#[derive(Serialize)]
struct Batch {
    items: Vec<items::ItemDoc>,
}

/// Scores one item (`{"id", "input"}`: 201, or 200 for a known id) or a
/// batch (`{"items": […]}`: 200), durably stored before the answer.
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
        let bytes = body::read(&req, payload, state.settings.server.max_body_bytes).await?;
        let value = body::parse_json(&bytes)?;
        let (submissions, batch) = body::submissions(value, state.settings.server.max_batch_items)?;
        let outcomes =
            crate::scoring::submit(&state.db, &state.recorder, task, submissions, batch).await?;
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

async fn get_item(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let (task_name, id) = path.into_inner();
    let task = task(&state, &task_name)?;
    let name = task.name().to_string();
    let doc = state
        .db
        .read(move |conn| {
            items::load_doc(conn, &name, &id)?.ok_or(AppError::ItemNotFound { task: name, id })
        })
        .await?;
    Ok(HttpResponse::Ok().json(doc))
}
