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

/// One resource per path, holding every method it takes: another method
/// is a 405 with `Allow` (made JSON by [`crate::http::headers`]), not a 404.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, post, put, resource};
    cfg.service(resource("/healthz").route(get().to(healthz)))
        .service(resource("/readyz").route(get().to(readyz)))
        .service(resource("/metrics").route(get().to(metrics::metrics)))
        .service(
            web::scope("/api/v1")
                .service(resource("/tasks").route(get().to(list_tasks)))
                .service(resource("/alerts").route(get().to(monitoring::alerts)))
                .service(
                    resource("/tasks/{task}/monitoring")
                        .route(get().to(monitoring::task_monitoring)),
                )
                .service(resource("/tasks/{task}/advisor").route(get().to(advisor::advisor)))
                .service(
                    resource("/tasks/{task}/deployment")
                        .route(get().to(deployment::get))
                        .route(put().to(deployment::put)),
                )
                .service(
                    resource("/tasks/{task}/deployment/rollback")
                        .route(post().to(deployment::rollback)),
                )
                .service(
                    resource("/tasks/{task}/deployment/promote")
                        .route(post().to(deployment::promote)),
                )
                .service(
                    resource("/tasks/{task}/deployment/candidate")
                        .route(delete().to(deployment::withdraw)),
                )
                .service(resource("/tasks/{task}/items").route(post().to(submit_items)))
                .service(resource("/tasks/{task}/items/{id}").route(get().to(get_item)))
                .service(resource("/tasks/{task}/jobs").route(post().to(jobs::create)))
                .service(resource("/tasks/{task}/jobs/{id}").route(get().to(jobs::get)))
                .service(resource("/tasks/{task}/jobs/{id}/results").route(get().to(jobs::results)))
                .service(resource("/tasks/{task}/labels").route(get().to(export::labels)))
                .service(
                    resource("/tasks/{task}/datasets")
                        .route(post().to(export::snapshot_create))
                        .route(get().to(export::snapshot_list)),
                )
                .service(
                    resource("/tasks/{task}/datasets/{name}").route(get().to(export::snapshot_get)),
                )
                .service(
                    resource("/tasks/{task}/datasets/{name}/file")
                        .route(get().to(export::snapshot_file)),
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
