//! The Models page's deployment panel (admins, CSRF): live, candidate and
//! previous with the candidate compared with live on the same items, and
//! the forms that set a candidate, promote, withdraw and roll back — the
//! same services as the deployment API and `verdict deploy`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::charts::{self, HistogramPair, Size};
use super::format::{when_rfc3339, When};
use super::session::SignedIn;
use super::{redirect, WebError};
use crate::config::TaskConfig;
use crate::db::DbConnection;
use crate::domain::{CandidateMode, Timestamp};
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::lifecycle::{self, Agreement, Comparison, VersionStats};
use crate::tasks::Deployment;

/// One figure of the comparison: live's and the candidate's.
pub struct FigureRow {
    pub name: &'static str,
    pub title: &'static str,
    pub live: String,
    pub candidate: String,
}

pub struct ComparisonView {
    pub since: When,
    pub items: u64,
    pub live: String,
    pub candidate: String,
    pub rows: Vec<FigureRow>,
    pub versions: String,
    pub chart: String,
    /// What promotion still needs, if anything.
    pub short: Option<String>,
}

pub struct DeploymentView {
    pub live: Option<String>,
    pub candidate: Option<String>,
    pub mode: Option<String>,
    pub previous: Option<String>,
    pub updated: String,
    pub comparison: Option<ComparisonView>,
    /// Registered versions that may become the candidate.
    pub choices: Vec<String>,
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn agreement(a: &Agreement) -> String {
    if a.compared == 0 {
        return "— (none yet)".into();
    }
    let (lo, hi) =
        crate::monitoring::stats::wilson(a.agree, a.compared, 0.95).unwrap_or((0.0, 1.0));
    format!(
        "{} ({} of {}; 95 % {:.1}–{:.1} %)",
        pct(a.rate()),
        a.agree,
        a.compared,
        lo * 100.0,
        hi * 100.0
    )
}

fn ms(us: Option<i64>) -> String {
    us.map(|u| format!("{:.3} ms", u as f64 / 1000.0))
        .unwrap_or_else(|| "—".into())
}

fn mode_text(mode: CandidateMode, percent: Option<i32>) -> String {
    match (mode, percent) {
        (CandidateMode::Canary, Some(p)) => format!("canary, {p} % of items"),
        _ => "shadow: scores every item, decides none".into(),
    }
}

impl ComparisonView {
    fn new(config: &TaskConfig, c: &Comparison, now: &Timestamp) -> Self {
        let figure = |name, title, f: &dyn Fn(&VersionStats) -> String| FigureRow {
            name,
            title,
            live: f(&c.live),
            candidate: f(&c.candidate),
        };
        let rows = vec![
            figure(
                "Items scored",
                "in the comparison window (the newest 20,000 at most)",
                &|s| s.scored.to_string(),
            ),
            figure(
                "Items decided",
                "the items whose verdict came from this version",
                &|s| s.acted.to_string(),
            ),
            figure(
                "Agreement with blind audits",
                "unbiased: blind audits and blind samples only",
                &|s| agreement(&s.blind),
            ),
            figure(
                "Agreement with all human verdicts",
                "includes the queue's hard cases, so lower than on average items",
                &|s| agreement(&s.human),
            ),
            figure(
                "Automation rate at the threshold",
                "share of items whose confidence reaches the task's threshold",
                &|s| pct(s.automation_rate),
            ),
            figure(
                "Errors",
                "forward passes that failed or gave no finite output",
                &|s| s.errors.to_string(),
            ),
            figure("Forward pass p50", "per item", &|s| ms(s.forward_p50_us)),
            figure("Forward pass p99", "per item", &|s| ms(s.forward_p99_us)),
        ];
        let edges: Vec<f64> = (0..=10).map(|i| i as f64 / 10.0).collect();
        let chart = charts::histogram_pair(&HistogramPair {
            names: ("live", "candidate"),
            title: "Confidence: live (grey bars) and candidate (blue outline)",
            edges: &edges,
            reference: &c.live.confidence,
            current: &c.candidate.confidence,
            size: Size::Full,
        });
        let rules = &config.candidate;
        let short = (c.candidate.scored < rules.min_items
            || c.candidate.human.compared < rules.min_audits)
            .then(|| {
                format!(
                    "Promotion needs {} items scored (has {}) and {} human verdicts to compare (has {}); until then it takes “force” and a reason.",
                    rules.min_items, c.candidate.scored, rules.min_audits, c.candidate.human.compared
                )
            });
        ComparisonView {
            since: when_rfc3339(&c.since, now),
            items: c.items,
            live: c.live.version.clone(),
            candidate: c.candidate.version.clone(),
            rows,
            versions: agreement(&c.versions),
            chart,
            short,
        }
    }
}

impl DeploymentView {
    pub fn new(
        config: &TaskConfig,
        d: &Deployment,
        comparison: Option<&Comparison>,
        versions: &[String],
        now: &Timestamp,
    ) -> Self {
        DeploymentView {
            live: d.live_version.clone(),
            candidate: d.candidate_version.clone(),
            mode: d.candidate_mode.map(|m| mode_text(m, d.canary_percent)),
            previous: d.previous_version.clone(),
            updated: format!(
                "{} by {}",
                super::format::when(&d.updated_at, now).relative,
                d.updated_by
            ),
            comparison: comparison.map(|c| ComparisonView::new(config, c, now)),
            choices: versions
                .iter()
                .filter(|v| d.live_version.as_deref() != Some(v.as_str()))
                .cloned()
                .collect(),
        }
    }
}

#[derive(Deserialize)]
pub struct CandidateForm {
    csrf: String,
    version: String,
    mode: String,
    #[serde(default)]
    percent: String,
    why: String,
}

#[derive(Deserialize)]
pub struct WhyForm {
    csrf: String,
    why: String,
    /// Promote past the guard rails.
    #[serde(default)]
    force: Option<String>,
}

fn why_of(why: &str, action: &str) -> Result<String, AppError> {
    let why = why.trim();
    if why.is_empty() {
        return Err(AppError::invalid(
            "invalid_body",
            "why",
            format!("Say why you {action}."),
        ));
    }
    Ok(why.to_string())
}

/// The page again with the refusal, or back to the page.
async fn answer(
    state: &AppState,
    signed_in: &SignedIn,
    result: Result<(), AppError>,
) -> Result<HttpResponse, WebError> {
    match result {
        Ok(()) => Ok(redirect("/admin/models")),
        Err(AppError::InvalidInput { message, .. } | AppError::Refused { message, .. }) => {
            super::datasets::models_page(state, signed_in, Some(message)).await
        }
        Err(AppError::UnknownVersion { task, version }) => {
            super::datasets::models_page(
                state,
                signed_in,
                Some(format!("Task {task} has no version {version:?}.")),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

fn config_of(state: &AppState, task: &str) -> Result<TaskConfig, WebError> {
    state
        .settings
        .task(task)
        .cloned()
        .ok_or_else(|| AppError::UnknownTask(task.to_string()).into())
}

/// One deployment change from an admin's form: the CSRF token and a why
/// checked, `change` run in a write transaction as the signed-in admin;
/// back to the page, or the page again with the refusal.
async fn change<F>(
    state: &AppState,
    signed_in: &SignedIn,
    task: &str,
    csrf: &str,
    why: &str,
    action: &str,
    change: F,
) -> Result<HttpResponse, WebError>
where
    F: FnOnce(&mut DbConnection, &TaskConfig, &str, &str) -> Result<(), AppError> + Send + 'static,
{
    signed_in.admin_post(csrf)?;
    let config = config_of(state, task)?;
    let actor = signed_in.user.name.clone();
    let result = match why_of(why, action) {
        Ok(why) => {
            state
                .db
                .write(move |conn| change(conn, &config, &actor, &why))
                .await
        }
        Err(e) => Err(e),
    };
    answer(state, signed_in, result).await
}

/// `POST /admin/models/{task}/candidate`.
pub async fn set_candidate(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<CandidateForm>,
) -> Result<HttpResponse, WebError> {
    let form = form.into_inner();
    let chosen = CandidateMode::parse(&form.mode)
        .ok_or_else(|| AppError::invalid("invalid_value", "mode", "Choose shadow or canary."))
        .and_then(|mode| match mode {
            CandidateMode::Shadow => Ok((mode, None)),
            CandidateMode::Canary => form
                .percent
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .map(|p| (mode, Some(p)))
                .ok_or_else(|| {
                    AppError::invalid(
                        "invalid_value",
                        "percent",
                        "A canary needs a percent: a whole number from 1 to 100.",
                    )
                }),
        });
    let version = form.version;
    change(
        &state,
        &signed_in,
        &path,
        &form.csrf,
        &form.why,
        "set this candidate",
        move |conn, config, actor, why| {
            let (mode, percent) = chosen?;
            lifecycle::set_candidate(conn, config, &version, mode, percent, actor, why)?;
            Ok(())
        },
    )
    .await
}

/// `POST /admin/models/{task}/promote`.
pub async fn promote(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<WhyForm>,
) -> Result<HttpResponse, WebError> {
    let force = form.force.is_some();
    change(
        &state,
        &signed_in,
        &path,
        &form.csrf,
        &form.why,
        "promote",
        move |conn, config, actor, why| {
            lifecycle::promote(conn, config, actor, why, force)?;
            Ok(())
        },
    )
    .await
}

/// `POST /admin/models/{task}/withdraw`.
pub async fn withdraw(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<WhyForm>,
) -> Result<HttpResponse, WebError> {
    change(
        &state,
        &signed_in,
        &path,
        &form.csrf,
        &form.why,
        "withdraw the candidate",
        |conn, config, actor, why| {
            lifecycle::withdraw(conn, config.name.as_str(), actor, why)?;
            Ok(())
        },
    )
    .await
}

/// `POST /admin/models/{task}/rollback`.
pub async fn rollback(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<WhyForm>,
) -> Result<HttpResponse, WebError> {
    change(
        &state,
        &signed_in,
        &path,
        &form.csrf,
        &form.why,
        "roll back",
        |conn, config, actor, why| {
            let task = config.name.as_str();
            match crate::tasks::rollback(conn, task, actor, why)? {
                Some(_) => Ok(()),
                None => Err(AppError::Refused {
                    code: "no_previous_version",
                    message: format!("Task {task} has no previous version to roll back to."),
                }),
            }
        },
    )
    .await
}
