//! `GET /api/v1/tasks/{task}/advisor`: how far the task may automate, with
//! a guarantee (see [`crate::advisor`]).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{task, ApiClient};
use crate::advisor::{self, Advice, Costs, Params};
use crate::http::download::query_pairs;
use crate::http::error::AppError;
use crate::http::state::AppState;

#[derive(Serialize)]
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
/// target 1 % and δ 5 % by default, the live version, the task's costs.
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
