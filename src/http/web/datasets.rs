//! Admin pages for the data that trains models: label downloads, dataset
//! snapshots, and the model versions with the snapshot each was trained on.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::charts::{self, LineSeries, Lines, Unit, YRange};
use super::format::{self, when, when_rfc3339, When};
use super::session::SignedIn;
use super::{redirect, render, WebError};
use crate::export::snapshot::{self, SnapshotRow};
use crate::export::{Format, Params};
use crate::http::download::{export_response, file_response, query_pairs};
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::store::snapshots;
use crate::tasks::TaskRuntime;

/// The task a path names.
fn task(state: &AppState, name: &str) -> Result<std::sync::Arc<TaskRuntime>, AppError> {
    state
        .tasks
        .get(name)
        .cloned()
        .ok_or_else(|| AppError::UnknownTask(name.to_string()))
}

/// The reason for a refused request, shown to an admin (their own input).
fn refused(e: AppError) -> Result<String, WebError> {
    match e {
        AppError::InvalidInput { message, .. } | AppError::AlreadyExists { message, .. } => {
            Ok(message)
        }
        AppError::UnknownTask(task) => Ok(format!("There is no task named {task:?}.")),
        other => Err(other.into()),
    }
}

/// `GET /admin/export/{task}?format=…`: the labels as a download.
pub async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let request =
        query_pairs(&req).and_then(|pairs| Ok(Params::from_pairs(pairs)?.parse(Format::Csv)?));
    // An unknown task is a missing page (404); a bad query is shown on the
    // models page, where the export form is.
    let task = task(&state, &path)?;
    match request {
        Ok(request) => Ok(export_response(&state.db, &task, request)),
        Err(e) => models_page(&state, &signed_in, Some(refused(e)?)).await,
    }
}

pub struct VersionRow {
    pub version: String,
    pub state: &'static str,
    pub created_at: When,
    pub rows: usize,
    pub accuracy: String,
    pub roc_auc: String,
    pub data_sha256: String,
    /// The snapshot whose hash the card cites, if one is recorded.
    pub snapshot: Option<String>,
}

pub struct TaskModels {
    pub task: String,
    pub versions: Vec<VersionRow>,
    pub snapshots: Vec<SnapshotView>,
    /// The threshold advisor on the live version and on the candidate.
    pub advice: Vec<AdviceView>,
    /// Live, candidate and previous, and the candidate beside live.
    pub deployment: Option<super::deployment::DeploymentView>,
}

/// The threshold advisor's answer for the live version, as the page shows
/// it: the defaults of the API (1 % target, δ 5 %) and the task's costs.
pub struct AdviceView {
    /// `live` or `candidate`.
    pub role: &'static str,
    pub version: String,
    pub target: String,
    pub delta: String,
    pub current: String,
    pub recommended: Option<(String, String)>,
    pub labelled: u64,
    pub note: String,
    pub more_labels: Option<u64>,
    pub cheapest: Option<String>,
    /// Automation rate, and error among automated items (observed and its
    /// bound, against the target), over the thresholds the labels reach.
    pub charts: Option<(String, String)>,
}

impl AdviceView {
    fn new(
        role: &'static str,
        version: String,
        current: Option<f64>,
        a: &crate::advisor::Advice,
    ) -> AdviceView {
        // Thresholds with enough labels to be tested at all (above, the
        // bound says only that there are few), down to the one that takes
        // in every label, low to high
        // (below it nothing changes).
        let least = crate::advisor::least_labels(a.target_error, a.delta);
        let all_in = a
            .points
            .iter()
            .find(|p| p.labelled == a.labelled)
            .map_or(0.0, |p| p.threshold);
        let reached: Vec<&crate::advisor::Point> = a
            .points
            .iter()
            .filter(|p| p.labelled >= least && p.threshold >= all_in)
            .rev()
            .collect();
        let charts = (reached.len() >= 2).then(|| {
            let x: Vec<String> = reached
                .iter()
                .map(|p| format!("{:.3}", p.threshold))
                .collect();
            let automation: Vec<Option<f64>> =
                reached.iter().map(|p| Some(p.automation_rate)).collect();
            let observed: Vec<Option<f64>> = reached.iter().map(|p| p.error_rate).collect();
            let bound: Vec<Option<f64>> = reached.iter().map(|p| Some(p.error_bound)).collect();
            let automation_chart = charts::lines(&Lines {
                title: "Automation rate by threshold",
                y_label: "automated",
                x_labels: &x,
                series: &[LineSeries {
                    name: "share automated",
                    color: charts::BLUE,
                    dashed: false,
                    values: &automation,
                }],
                unit: Unit::Share,
                y_range: YRange::FromZero,
                reference: None,
            });
            let error_chart = charts::lines(&Lines {
                title: "Error among automated verdicts by threshold",
                y_label: "error",
                x_labels: &x,
                series: &[
                    LineSeries {
                        name: "observed",
                        color: charts::AMBER,
                        dashed: false,
                        values: &observed,
                    },
                    LineSeries {
                        name: "upper bound",
                        color: charts::RED,
                        dashed: true,
                        values: &bound,
                    },
                ],
                unit: Unit::Share,
                y_range: YRange::FromZero,
                reference: Some(("target", a.target_error)),
            });
            (automation_chart, error_chart)
        });
        AdviceView {
            role,
            version,
            target: format::pct(a.target_error),
            delta: format::pct(a.delta),
            current: current.map_or("none".into(), |t| format!("{t:.3}")),
            recommended: a
                .recommended
                .zip(a.automation_rate)
                .map(|(t, r)| (format!("{t:.3}"), format::pct(r))),
            labelled: a.labelled,
            note: a.note.clone(),
            more_labels: a.more_labels_needed,
            cheapest: a.cheapest.as_ref().map(|c| match c.threshold {
                Some(t) => format!("threshold {t:.3}: {:.1} per 1,000 items", c.cost_per_1000),
                None => format!("automating nothing: {:.1} per 1,000 items", c.cost_per_1000),
            }),
            charts,
        }
    }
}

pub struct SnapshotView {
    pub name: String,
    pub format: String,
    pub rows: i64,
    pub sha256: String,
    pub filters: String,
    pub created_at: When,
    pub created_by: String,
}

impl SnapshotView {
    fn new(r: &SnapshotRow, now: &crate::domain::Timestamp) -> Self {
        SnapshotView {
            name: r.name.clone(),
            format: r.format.clone(),
            rows: r.row_count,
            sha256: r.sha256.clone(),
            filters: describe_filters(&r.filters),
            created_at: when(&r.created_at, now),
            created_by: r.created_by.clone(),
        }
    }
}

/// `{"source":"human","kind":"all",…}` as `source=human` (defaults left out).
fn describe_filters(json: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(json) else {
        return String::new();
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, v)| !matches!(v, serde_json::Value::Null | serde_json::Value::Bool(false)))
        .filter(|(_, v)| v.as_str() != Some("all"))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    if parts.is_empty() {
        "all labels".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::ml::card::accuracy_text;

    #[test]
    fn a_perfect_score_on_a_small_test_set_says_what_it_is_worth() {
        assert_eq!(accuracy_text(1.0, 113), "≥ 0.967 (1.000 on 113)");
        assert_eq!(accuracy_text(0.9, 100), "0.900 (0.825–0.945, n 100)");
        assert_eq!(accuracy_text(0.5, 0), "0.500");
    }
}

#[derive(Template)]
#[template(path = "admin/models.html")]
struct ModelsPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    tasks: Vec<TaskModels>,
    message: Option<String>,
}

pub(super) async fn models_page(
    state: &AppState,
    signed_in: &SignedIn,
    message: Option<String>,
) -> Result<HttpResponse, WebError> {
    let names: Vec<String> = state.tasks.all().map(|t| t.name().to_string()).collect();
    // What the advisor is asked per task: its costs and threshold.
    let asks: std::collections::HashMap<String, (crate::advisor::Params, Option<f64>)> = state
        .tasks
        .all()
        .map(|t| {
            let costs = t
                .config
                .review_cost
                .zip(t.config.error_cost)
                .map(|(review, error)| crate::advisor::Costs { review, error });
            let params = crate::advisor::Params {
                target_error: 0.01,
                delta: 0.05,
                costs,
            };
            (t.name().to_string(), (params, t.config.threshold))
        })
        .collect();
    let configs: std::collections::HashMap<String, crate::config::TaskConfig> = state
        .tasks
        .all()
        .map(|t| (t.name().to_string(), t.config.clone()))
        .collect();
    let tasks = state
        .db
        .read(move |conn| {
            let now = crate::domain::now();
            let snapshots = snapshots::list(conn, None)?;
            let mut tasks = Vec::new();
            for task in names {
                let current = crate::tasks::deployment(conn, &task)?;
                let deployment = current.as_ref().and_then(|d| d.live_version.clone());
                let role = |version: &str| match &current {
                    Some(d) if d.live_version.as_deref() == Some(version) => "live",
                    Some(d) if d.candidate_version.as_deref() == Some(version) => "candidate",
                    Some(d) if d.previous_version.as_deref() == Some(version) => "previous",
                    _ => "",
                };
                let registered = crate::store::tasks::versions(conn, &task)?;
                let deployment_view = match (&current, configs.get(&task)) {
                    (Some(d), Some(config)) => {
                        let comparison = crate::lifecycle::compare(conn, config, d)?;
                        let names: Vec<String> =
                            registered.iter().map(|v| v.version.clone()).collect();
                        Some(super::deployment::DeploymentView::new(
                            config,
                            d,
                            comparison.as_ref(),
                            &names,
                            &now,
                        ))
                    }
                    _ => None,
                };
                let mut versions: Vec<VersionRow> = registered
                    .iter()
                    .filter_map(|v| serde_json::from_str::<crate::ml::ModelCard>(&v.card).ok())
                    .map(|card| VersionRow {
                        state: role(&card.version),
                        snapshot: card.training.snapshot.clone().or_else(|| {
                            snapshots
                                .iter()
                                .find(|s| s.task == task && s.sha256 == card.training.data_sha256)
                                .map(|s| s.name.clone())
                        }),
                        version: card.version,
                        created_at: when_rfc3339(&card.created_at, &now),
                        rows: card.training.rows,
                        accuracy: crate::ml::card::accuracy_text(
                            card.metrics.accuracy,
                            card.training.test_rows,
                        ),
                        roc_auc: format!("{:.3}", card.metrics.roc_auc),
                        data_sha256: card.training.data_sha256,
                    })
                    .collect();
                versions.reverse();
                // The live version's advice, and the candidate's beside it.
                let mut advice = Vec::new();
                if let Some((params, threshold)) = asks.get(&task) {
                    let candidate = current.as_ref().and_then(|d| d.candidate_version.clone());
                    for (role, version) in [("live", deployment.clone()), ("candidate", candidate)]
                    {
                        let Some(version) = version else { continue };
                        if let Some(a) =
                            crate::advisor::for_version(conn, &task, &version, *params)?
                        {
                            advice.push(AdviceView::new(role, version, *threshold, &a));
                        }
                    }
                }
                tasks.push(TaskModels {
                    advice,
                    deployment: deployment_view,
                    snapshots: snapshots
                        .iter()
                        .filter(|s| s.task == task)
                        .map(|s| SnapshotView::new(s, &now))
                        .collect(),
                    task,
                    versions,
                });
            }
            Ok::<_, AppError>(tasks)
        })
        .await?;
    let status = if message.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        &ModelsPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            tasks,
            message,
        },
    ))
}

/// `GET /admin/models`: versions, their training data, the snapshots.
pub async fn models(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    models_page(&state, &signed_in, None).await
}

#[derive(Deserialize)]
pub struct SnapshotForm {
    csrf: String,
    name: String,
    format: String,
    source: String,
    kind: String,
}

/// `POST /admin/datasets/{task}`: takes a snapshot.
pub async fn take_snapshot(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<SnapshotForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let form = form.into_inner();
    let params = Params {
        format: Some(form.format),
        source: Some(form.source),
        kind: Some(form.kind),
        ..Params::default()
    };
    let result = async {
        let task = task(&state, &path)?;
        let request = params.parse(Format::Jsonl)?;
        let row = snapshot::create(
            &state.db,
            &state.settings.datasets.dir,
            &task,
            form.name.trim().to_string(),
            request,
            signed_in.user.name.clone(),
        )
        .await?;
        Ok::<_, AppError>(row)
    }
    .await;
    match result {
        Ok(_) => Ok(redirect("/admin/models")),
        Err(e) => models_page(&state, &signed_in, Some(refused(e)?)).await,
    }
}

/// `GET /admin/datasets/{task}/{name}`: the snapshot's file.
pub async fn snapshot_file(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let (task, name) = path.into_inner();
    let row = state
        .db
        .read(move |conn| Ok::<_, crate::db::DbError>(snapshots::find(conn, &task, &name)?))
        .await?;
    match row {
        Some(row) => Ok(file_response(&row)),
        None => Ok(super::not_found_page()),
    }
}
