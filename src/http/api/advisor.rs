//! `GET /api/v1/tasks/{task}/advisor`: how far the task may automate, with
//! a guarantee (see [`crate::advisor`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{task, ApiClient};
use crate::advisor::{self, Advice, Costs, Params};
use crate::http::download::query_pairs;
use crate::http::error::{AppError, ErrorBody};
use crate::http::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AdvisorReport)]
struct AdvisorDoc {
    task: String,
    version: String,
    /// The task's threshold now (partial automation), for comparison.
    current_threshold: Option<f64>,
    #[serde(flatten)]
    advice: Advice,
}

/// A number from the query in `range` (open at 0, closed or open at 1).
fn number(field: &str, value: &str, below_one: bool) -> Result<f64, AppError> {
    let n: f64 = value.parse().map_err(|_| {
        AppError::invalid(
            "invalid_query",
            field.to_string(),
            format!("{field} must be a number"),
        )
    })?;
    let ok = n.is_finite()
        && if below_one {
            n > 0.0 && n < 1.0
        } else {
            n >= 0.0
        };
    if !ok {
        let range = if below_one {
            "between 0 and 1 (exclusive)"
        } else {
            "0 or more"
        };
        return Err(AppError::invalid(
            "out_of_range",
            field.to_string(),
            format!("{field} must be {range}"),
        ));
    }
    Ok(n)
}

/// `?target_error=0.01&delta=0.05&version=V&review_cost=C&error_cost=C`:
/// The advisor's question; each key at most once.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
struct AdvisorQuery {
    /// The highest error rate to accept among automated verdicts (default 0.01).
    #[param(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    target_error: Option<f64>,
    /// The chance that the guarantee fails, at most (default 0.05).
    #[param(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
    delta: Option<f64>,
    /// A model version (default: the live one).
    version: Option<String>,
    /// What a human review costs (default: the task's).
    #[param(minimum = 0.0)]
    review_cost: Option<f64>,
    /// What a wrong automated verdict costs (default: the task's).
    #[param(minimum = 0.0)]
    error_cost: Option<f64>,
}

/// target 1 % and δ 5 % by default, the live version, the task's costs.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/advisor", tag = "monitoring",
    params(super::openapi::TaskParam, AdvisorQuery),
    responses(
        (status = 200, description = "the advice", body = AdvisorDoc),
        (status = 400, description = "unknown_parameter, repeated_parameter, invalid_query, \
            out_of_range, no_live_model", body = ErrorBody),
        (status = 404, description = "unknown_task, unknown_version", body = ErrorBody),
    ))]
pub async fn advisor(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let (mut target, mut delta, mut version) = (0.01, 0.05, None);
    let (mut review_cost, mut error_cost) = (task.config.review_cost, task.config.error_cost);
    let mut seen = std::collections::HashSet::new();
    for (key, value) in query_pairs(&req)? {
        if !seen.insert(key.clone()) {
            return Err(AppError::invalid(
                "repeated_parameter",
                key,
                "give each parameter once",
            ));
        }
        match key.as_str() {
            "target_error" => target = number(&key, &value, true)?,
            "delta" => delta = number(&key, &value, true)?,
            "review_cost" => review_cost = Some(number(&key, &value, false)?),
            "error_cost" => error_cost = Some(number(&key, &value, false)?),
            "version" => version = Some(value),
            other => {
                return Err(AppError::invalid(
                    "unknown_parameter",
                    other.to_string(),
                    "expected target_error, delta, version, review_cost or error_cost",
                ))
            }
        }
    }
    let version = match version {
        Some(v) => v,
        None => task.live().map(|m| m.card.version.clone()).ok_or_else(|| {
            AppError::invalid(
                "no_live_model",
                "version",
                "the task has no live model: name a version",
            )
        })?,
    };
    let params = Params {
        target_error: target,
        delta,
        costs: review_cost
            .zip(error_cost)
            .map(|(review, error)| Costs { review, error }),
    };
    let (name, v) = (task.name().to_string(), version.clone());
    let advice = state
        .db
        .read(move |conn| advisor::for_version(conn, &name, &v, params).map_err(AppError::from))
        .await?
        .ok_or_else(|| AppError::UnknownVersion {
            task: task.name().to_string(),
            version: version.clone(),
        })?;
    Ok(HttpResponse::Ok().json(AdvisorDoc {
        task: task.name().to_string(),
        version,
        current_threshold: task.config.threshold,
        advice,
    }))
}
