//! `GET /api/v1/tasks/{task}/monitoring`: the dashboard's figures as JSON;
//! `GET /api/v1/alerts`: alerts by task and state.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::{task, ApiClient};
use crate::domain::{now, rfc3339, Timestamp};
use crate::http::download::query_pairs;
use crate::http::error::{AppError, ErrorBody};
use crate::http::state::AppState;
use crate::monitoring::build::{self, Range, Span};
use crate::monitoring::report::AlertLine;

/// Longest range a report covers.
const MAX_RANGE_DAYS: i64 = 90;

fn parse_time(field: &'static str, value: &str) -> Result<Timestamp, AppError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.naive_utc())
        .map_err(|_| {
            AppError::invalid(
                "invalid_time",
                field,
                format!("{field} must be an RFC 3339 time such as 2026-11-29T10:00:00Z"),
            )
        })
}

/// `span=hour|day|week` (ending now), or `since` (and `until`, default
/// now) as RFC 3339 times; by default the last hour. Each key once.
fn range_of(req: &HttpRequest) -> Result<Range, AppError> {
    let (mut span, mut since, mut until) = (None, None, None);
    for (key, value) in query_pairs(req)? {
        let slot = match key.as_str() {
            "span" => &mut span,
            "since" => &mut since,
            "until" => &mut until,
            other => {
                return Err(AppError::invalid(
                    "unknown_parameter",
                    other.to_string(),
                    "expected span, since or until",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(AppError::invalid(
                "repeated_parameter",
                key,
                "give each parameter once",
            ));
        }
    }
    if let Some(span) = span {
        if since.is_some() || until.is_some() {
            return Err(AppError::invalid(
                "invalid_query",
                "span",
                "give span or since/until, not both",
            ));
        }
        return Span::parse(&span).map(Span::ending_now).ok_or_else(|| {
            AppError::invalid("invalid_query", "span", "span must be hour, day or week")
        });
    }
    let until = until
        .as_deref()
        .map(|u| parse_time("until", u))
        .transpose()?
        .unwrap_or_else(now);
    let since = match since {
        Some(s) => parse_time("since", &s)?,
        None => until - chrono::Duration::hours(1),
    };
    if since >= until {
        return Err(AppError::invalid(
            "invalid_query",
            "since",
            "since must be before until",
        ));
    }
    if until - since > chrono::Duration::days(MAX_RANGE_DAYS) {
        return Err(AppError::invalid(
            "invalid_query",
            "since",
            format!("a range covers at most {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok(Range::new(since, until))
}

/// The range of a report: `span`, or `since`/`until`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only: `range_of` reads the query
struct RangeQuery {
    /// `hour`, `day` or `week`, ending now (not with since/until).
    #[param(pattern = "^(hour|day|week)$")]
    span: Option<String>,
    /// RFC 3339; by default an hour before `until`.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339; by default now. At most 90 days after `since`.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// `GET /api/v1/tasks/{task}/monitoring?span=|since=&until=`
/// The dashboard's figures: throughput, latency, output, drift, agreement
/// with humans, estimates and alerts.
#[utoipa::path(get, path = "/api/v1/tasks/{task}/monitoring", tag = "monitoring",
    params(super::openapi::TaskParam, RangeQuery),
    responses(
        (status = 200, description = "the report", body = crate::monitoring::report::TaskReport),
        (status = 400, description = "unknown_parameter, repeated_parameter, invalid_time, invalid_query",
            body = ErrorBody),
    ))]
pub async fn task_monitoring(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let task = task(&state, &path)?;
    let range = range_of(&req)?;
    let report = state
        .db
        .read(move |conn| build::report_of(conn, &task, &range).map_err(AppError::from))
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AlertList {
    alerts: Vec<AlertDoc>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Alert)]
struct AlertDoc {
    task: String,
    #[serde(flatten)]
    line: AlertLine,
    /// The figures that fired it.
    #[schema(value_type = Object)]
    numbers: serde_json::Value,
    /// `open` or `resolved`.
    #[schema(value_type = String, pattern = "^(open|resolved)$")]
    state: &'static str,
    /// The admin who acknowledged it while it was open, and when (RFC
    /// 3339); an acknowledged alert is not emailed again.
    acknowledged_by: Option<String>,
    #[schema(format = DateTime)]
    acknowledged_at: Option<String>,
    /// When its firing was announced (email, webhooks); `null` while a
    /// silence holds it back, or when it was acknowledged before that.
    #[schema(format = DateTime)]
    notified_at: Option<String>,
}

/// `GET /api/v1/alerts?task=&state=open|resolved|all` (default all): the
/// Which alerts.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documentation only
struct AlertQuery {
    /// Only this task's.
    task: Option<String>,
    /// `open`, `resolved` or `all` (default).
    #[param(pattern = "^(open|resolved|all)$")]
    state: Option<String>,
}

/// open alerts and the 200 newest resolved ones.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "monitoring",
    params(AlertQuery),
    responses(
        (status = 200, description = "the alerts", body = AlertList),
        (status = 400, description = "unknown_parameter, repeated_parameter, invalid_query", body = ErrorBody),
        (status = 404, description = "unknown_task", body = ErrorBody),
    ))]
pub async fn alerts(
    req: HttpRequest,
    state: web::Data<AppState>,
    _client: ApiClient,
) -> Result<HttpResponse, AppError> {
    let (mut task_filter, mut state_filter) = (None, None);
    for (key, value) in query_pairs(&req)? {
        let slot = match key.as_str() {
            "task" => &mut task_filter,
            "state" => &mut state_filter,
            other => {
                return Err(AppError::invalid(
                    "unknown_parameter",
                    other.to_string(),
                    "expected task or state",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(AppError::invalid(
                "repeated_parameter",
                key,
                "give each parameter once",
            ));
        }
    }
    if let Some(t) = &task_filter {
        task(&state, t)?;
    }
    let (want_open, want_resolved) = match state_filter.as_deref() {
        None | Some("all") => (true, true),
        Some("open") => (true, false),
        Some("resolved") => (false, true),
        Some(_) => {
            return Err(AppError::invalid(
                "invalid_query",
                "state",
                "state must be open, resolved or all",
            ))
        }
    };
    let (open, resolved) = state
        .db
        .read(|conn| crate::store::alerts::list(conn, 200).map_err(AppError::from))
        .await?;
    let doc = |a: crate::alerts::Alert, state: &'static str| AlertDoc {
        task: a.task.clone(),
        numbers: serde_json::from_str(&a.numbers).unwrap_or(serde_json::Value::Null),
        state,
        acknowledged_by: a.acknowledged_by.clone(),
        acknowledged_at: a.acknowledged_at.as_ref().map(rfc3339),
        notified_at: a.notified_at.as_ref().map(rfc3339),
        line: AlertLine::from(a),
    };
    let alerts = open
        .into_iter()
        .filter(|_| want_open)
        .map(|a| doc(a, "open"))
        .chain(
            resolved
                .into_iter()
                .filter(|_| want_resolved)
                .map(|a| doc(a, "resolved")),
        )
        .filter(|d| task_filter.as_ref().is_none_or(|t| &d.task == t))
        .collect();
    Ok(HttpResponse::Ok().json(AlertList { alerts }))
}
