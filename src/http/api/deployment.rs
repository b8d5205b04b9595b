//! `GET /api/v1/tasks/{task}/deployment` and `POST …/deployment/rollback`:
//! which version serves, and the instant way back.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{task, ApiClient};
use crate::domain::rfc3339;
use crate::http::error::AppError;
use crate::http::state::AppState;

#[derive(Serialize)]
struct DeploymentDoc {
    task: String,
    live: Option<String>,
    previous: Option<String>,
    candidate: Option<String>,
    mode: Option<String>,
    canary_percent: Option<i32>,
    updated_at: Option<String>,
    updated_by: Option<String>,
    /// How soon every instance applies a change.
    applied_within_ms: u64,
}

async fn doc(state: &AppState, name: &str) -> Result<DeploymentDoc, AppError> {
    let task_name = name.to_string();
    let d = state
        .db
        .read(move |conn| crate::tasks::deployment(conn, &task_name).map_err(AppError::from))
        .await?;
    Ok(DeploymentDoc {
        task: name.to_string(),
        live: d.as_ref().and_then(|d| d.live_version.clone()),
        previous: d.as_ref().and_then(|d| d.previous_version.clone()),
        candidate: d.as_ref().and_then(|d| d.candidate_version.clone()),
        mode: d.as_ref().and_then(|d| d.candidate_mode.clone()),
        canary_percent: d.as_ref().and_then(|d| d.canary_percent),
        updated_at: d.as_ref().map(|d| rfc3339(&d.updated_at)),
        updated_by: d.map(|d| d.updated_by),
        applied_within_ms: state.settings.server.deployment_poll_ms,
    })
}

pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    Ok(HttpResponse::Ok().json(doc(&state, task.name()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    /// Why, for the audit log.
    why: String,
}

/// Body `{"why": "…"}` (required): the previous version is live again.
pub async fn rollback(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let bytes = super::body::read(&req, payload, 16 * 1024).await?;
    let body: RollbackBody = serde_json::from_value(super::body::parse_json(&bytes)?)
        .map_err(|e| AppError::invalid("invalid_body", "why", e.to_string()))?;
    let why = body.why.trim().to_string();
    if why.is_empty() {
        return Err(AppError::invalid(
            "invalid_body",
            "why",
            "say why you roll back",
        ));
    }
    let (name, actor) = (task.name().to_string(), format!("token:{}", client.0));
    let now_live = state
        .db
        .write(move |conn| {
            crate::tasks::rollback(conn, &name, &actor, &why).map_err(AppError::from)
        })
        .await?;
    if now_live.is_none() {
        return Err(AppError::NoPreviousVersion(task.name().to_string()));
    }
    Ok(HttpResponse::Ok().json(doc(&state, task.name()).await?))
}
