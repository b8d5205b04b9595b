//! `GET /metrics`: the Prometheus exposition, behind a bearer token when
//! `[monitoring] metrics_token` is set.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::monitoring::{process, prometheus};

/// The Prometheus text exposition (a bearer token only when
/// `[monitoring] metrics_token` is set).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "the metrics", content((String = "text/plain")))))]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if let Some(expected) = &state.settings.monitoring.metrics_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::crypto::same_token(given.trim(), expected.trim()) {
            return Err(AppError::Unauthorized);
        }
    }
    let tasks: Vec<String> = state.tasks.all().map(|t| t.name().to_string()).collect();
    let gauges = state
        .db
        .read(move |conn| prometheus::gauges(conn, &tasks).map_err(AppError::from))
        .await?;
    let text = prometheus::render(
        &state.recorder.totals(),
        &gauges,
        &state.limits.refusals(),
        &process::read(),
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, prometheus::CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}
