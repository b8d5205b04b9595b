//! `GET /api/v1/tasks/{task}/deployment` (which versions serve, and the
//! candidate compared with live on the same items), `PUT` it to set a
//! candidate (shadow, or canary with a percent), `POST …/promote`,
//! `POST …/rollback` and `DELETE …/candidate`. Every change needs a why
//! and is audited; every instance applies it within the poll interval.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{task, ApiClient};
use crate::config::TaskConfig;
use crate::db::DbConnection;
use crate::domain::{rfc3339, CandidateMode};
use crate::http::error::{AppError, ErrorBody};
use crate::http::state::AppState;
use crate::tasks::TaskRuntime;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Deployment)]
struct DeploymentDoc {
    task: String,
    live: Option<String>,
    previous: Option<String>,
    candidate: Option<String>,
    #[schema(value_type = Option<CandidateMode>)]
    mode: Option<&'static str>,
    canary_percent: Option<i32>,
    candidate_since: Option<String>,
    /// Live and candidate on the items both scored since it was set.
    comparison: Option<crate::lifecycle::Comparison>,
    updated_at: Option<String>,
    updated_by: Option<String>,
    /// How soon every instance applies a change.
    applied_within_ms: u64,
}

async fn doc(state: &AppState, name: &str) -> Result<DeploymentDoc, AppError> {
    let config = state
        .settings
        .task(name)
        .cloned()
        .ok_or_else(|| AppError::UnknownTask(name.to_string()))?;
    let (d, comparison) = state
        .db
        .read(move |conn| {
            let d = crate::tasks::deployment(conn, config.name.as_str())?;
            let comparison = match &d {
                Some(d) => crate::lifecycle::compare(conn, &config, d)?,
                None => None,
            };
            Ok::<_, AppError>((d, comparison))
        })
        .await?;
    Ok(DeploymentDoc {
        task: name.to_string(),
        live: d.as_ref().and_then(|d| d.live_version.clone()),
        previous: d.as_ref().and_then(|d| d.previous_version.clone()),
        candidate: d.as_ref().and_then(|d| d.candidate_version.clone()),
        mode: d
            .as_ref()
            .and_then(|d| d.candidate_mode)
            .map(|m| m.as_str()),
        canary_percent: d.as_ref().and_then(|d| d.canary_percent),
        candidate_since: d
            .as_ref()
            .and_then(|d| d.candidate_since)
            .map(|t| rfc3339(&t)),
        comparison,
        updated_at: d.as_ref().map(|d| rfc3339(&d.updated_at)),
        updated_by: d.map(|d| d.updated_by),
        applied_within_ms: state.settings.server.deployment_poll_ms,
    })
}

/// Which versions serve, and the candidate compared with live.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/deployment", tag = "deployment",
    params(super::openapi::TaskParam),
    responses((status = 200, description = "the deployment", body = DeploymentDoc)))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    Ok(HttpResponse::Ok().json(doc(&state, task.name()).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Promotion)]
struct WhyBody {
    /// Why, for the audit log.
    #[schema(min_length = 1)]
    why: String,
    /// Promote: past the guard rails.
    #[serde(default)]
    force: bool,
}

/// The body's `why`, required and not blank, and `force`.
async fn why_of(
    req: &HttpRequest,
    payload: web::Payload,
    action: &str,
    force_allowed: bool,
) -> Result<(String, bool), AppError> {
    let body: WhyBody =
        serde_json::from_value(super::body::read_json(req, payload, 16 * 1024).await?)
            .map_err(|e| AppError::invalid("invalid_body", "why", e.to_string()))?;
    let why = body.why.trim().to_string();
    if why.is_empty() {
        return Err(AppError::invalid(
            "invalid_body",
            "why",
            format!("say why you {action}"),
        ));
    }
    if body.force && !force_allowed {
        return Err(AppError::invalid(
            "invalid_body",
            "force",
            format!("force does not apply when you {action}"),
        ));
    }
    Ok((why, body.force))
}

/// A change's reason (rollback, withdrawal).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documentation only: read as a `WhyBody` without force
struct Reason {
    /// Why, for the audit log.
    #[schema(min_length = 1)]
    why: String,
}

fn actor(client: &ApiClient) -> String {
    format!("token:{}", client.0)
}

/// Runs one change as the token's client in a write transaction, then
/// answers with the deployment as it now is.
async fn apply<F>(
    state: &AppState,
    task: &TaskRuntime,
    client: &ApiClient,
    change: F,
) -> Result<HttpResponse, AppError>
where
    F: FnOnce(&mut DbConnection, &TaskConfig, &str) -> Result<(), AppError> + Send + 'static,
{
    let (config, actor) = (task.config.clone(), actor(client));
    state
        .db
        .write(move |conn| change(conn, &config, &actor))
        .await?;
    Ok(HttpResponse::Ok().json(doc(state, task.name()).await?))
}

/// Body `{"why": "…"}` (required): the previous version is live again.
#[utoipa::path(post, path = "/api/v1/tasks/{task}/deployment/rollback", tag = "deployment",
    params(super::openapi::TaskParam),
    request_body(content = Reason, content_type = "application/json"),
    responses(
        (status = 200, description = "rolled back: the deployment now", body = DeploymentDoc),
        (status = 400, description = "malformed_json, invalid_body (`why` missing or blank)", body = ErrorBody),
        (status = 409, description = "no_previous_version", body = ErrorBody),
    ))]
pub async fn rollback(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let (why, _) = why_of(&req, payload, "roll back", false).await?;
    apply(&state, &task, &client, move |conn, config, actor| {
        let name = config.name.as_str();
        match crate::tasks::rollback(conn, name, actor, &why)? {
            Some(_) => Ok(()),
            None => Err(AppError::NoPreviousVersion(name.to_string())),
        }
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Candidate)]
struct CandidateBody {
    /// A model version of the task.
    candidate: String,
    #[schema(value_type = CandidateMode)]
    mode: String,
    /// For a canary only: the share of items it decides.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100)]
    percent: Option<serde_json::Value>,
    /// Why, for the audit log.
    #[schema(min_length = 1)]
    why: String,
}

/// Body `{"candidate": "v2", "mode": "shadow" | "canary", "percent": 5,
/// "why": "…"}`: the candidate and how it runs (`percent`, a whole number
/// from 1 to 100, only for a canary).
#[utoipa::path(put, path = "/api/v1/tasks/{task}/deployment", tag = "deployment",
    params(super::openapi::TaskParam),
    request_body(content = CandidateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "the candidate is set: the deployment now", body = DeploymentDoc),
        (status = 400, description = "malformed_json, invalid_body, invalid_value", body = ErrorBody),
        (status = 404, description = "unknown_task, unknown_version", body = ErrorBody),
        (status = 409, description = "the change does not apply now (e.g. the candidate is live)", body = ErrorBody),
    ))]
pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let body: CandidateBody =
        serde_json::from_value(super::body::read_json(&req, payload, 16 * 1024).await?)
            .map_err(|e| AppError::invalid("invalid_body", "", e.to_string()))?;
    let mode = CandidateMode::parse(&body.mode).ok_or_else(|| {
        AppError::invalid(
            "invalid_value",
            "mode",
            format!("mode is one of {:?}", CandidateMode::NAMES),
        )
    })?;
    let percent = match (mode, body.percent) {
        (CandidateMode::Shadow, None) => None,
        (CandidateMode::Shadow, Some(_)) => {
            return Err(AppError::invalid(
                "invalid_value",
                "percent",
                "percent is for a canary; a shadow scores every item",
            ))
        }
        (CandidateMode::Canary, Some(p)) => match p.as_u64() {
            Some(p @ 1..=100) => Some(p as u32),
            _ => {
                return Err(AppError::invalid(
                    "invalid_value",
                    "percent",
                    format!("percent is a whole number from 1 to 100, got {p}"),
                ))
            }
        },
        (CandidateMode::Canary, None) => {
            return Err(AppError::invalid(
                "invalid_value",
                "percent",
                "a canary needs a percent (1–100)",
            ))
        }
    };
    let why = body.why.trim().to_string();
    if why.is_empty() {
        return Err(AppError::invalid(
            "invalid_body",
            "why",
            "say why you set this candidate",
        ));
    }
    let version = body.candidate;
    apply(&state, &task, &client, move |conn, config, actor| {
        crate::lifecycle::set_candidate(conn, config, &version, mode, percent, actor, &why)?;
        Ok(())
    })
    .await
}

/// Body `{"why": "…", "force": false}`: the candidate becomes live.
#[utoipa::path(post, path = "/api/v1/tasks/{task}/deployment/promote", tag = "deployment",
    params(super::openapi::TaskParam),
    request_body(content = WhyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "promoted: the deployment now", body = DeploymentDoc),
        (status = 400, description = "malformed_json, invalid_body", body = ErrorBody),
        (status = 409, description = "no candidate, or the guard rails refuse (force passes them)", body = ErrorBody),
    ))]
pub async fn promote(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let (why, force) = why_of(&req, payload, "promote", true).await?;
    apply(&state, &task, &client, move |conn, config, actor| {
        crate::lifecycle::promote(conn, config, actor, &why, force)?;
        Ok(())
    })
    .await
}

/// Body `{"why": "…"}`: the candidate stops running.
#[utoipa::path(delete, path = "/api/v1/tasks/{task}/deployment/candidate", tag = "deployment",
    params(super::openapi::TaskParam),
    request_body(content = Reason, content_type = "application/json"),
    responses(
        (status = 200, description = "withdrawn: the deployment now", body = DeploymentDoc),
        (status = 400, description = "malformed_json, invalid_body", body = ErrorBody),
        (status = 409, description = "no candidate to withdraw", body = ErrorBody),
    ))]
pub async fn withdraw(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ApiClient,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let (why, _) = why_of(&req, payload, "withdraw the candidate", false).await?;
    apply(&state, &task, &client, move |conn, config, actor| {
        crate::lifecycle::withdraw(conn, config.name.as_str(), actor, &why)?;
        Ok(())
    })
    .await
}
