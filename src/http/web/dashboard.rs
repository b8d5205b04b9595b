//! The monitoring dashboard, for admins: `GET /dashboard` (every task on
//! one page) and `GET /dashboard/{task}` (one task, section by section),
//! each over the last hour, day or week, and their live fragments
//! (`?live=1` on the overview, `/dashboard/{task}/live`) that
//! `static/dashboard.js` swaps in every few seconds. The figures are
//! [`build::task_report`]'s, the same the monitoring API returns; this
//! module only shapes them for reading ([`super::panels`]).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::panels::{self, OverviewView, TaskDash};
use super::session::SignedIn;
use super::{render, WebError};
use crate::db::DbError;
use crate::http::state::AppState;
use crate::monitoring::build::{self, Range, Span};
use crate::monitoring::report::TaskReport;
use crate::tasks::TaskRuntime;

/// A link of the range switcher.
pub struct SpanLink {
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

fn span_links(base: &str, current: Span) -> Vec<SpanLink> {
    Span::ALL
        .into_iter()
        .map(|s| SpanLink {
            name: s.as_str(),
            href: format!("{base}?span={}", s.as_str()),
            current: s == current,
        })
        .collect()
}

/// The query of a dashboard page: `span` (hour, day or week; default
/// hour) and, on the overview, `live` for the fragment. Other keys are
/// ignored; a bad or repeated span is a 400 page.
struct DashQuery {
    span: Span,
    live: bool,
}

fn query(req: &HttpRequest) -> Result<DashQuery, WebError> {
    let mut span = None;
    let mut live = false;
    for (key, value) in form_urlencoded::parse(req.query_string().as_bytes()) {
        match key.as_ref() {
            "span" => {
                let parsed = Span::parse(&value)
                    .ok_or(WebError::BadRequest("The range must be hour, day or week."))?;
                if span.replace(parsed).is_some() {
                    return Err(WebError::BadRequest("Give the range once."));
                }
            }
            "live" => live = true,
            _ => {}
        }
    }
    Ok(DashQuery {
        span: span.unwrap_or_default(),
        live,
    })
}

/// The reports of `tasks` over `range`, read on one connection.
async fn reports(
    state: &AppState,
    tasks: Vec<Arc<TaskRuntime>>,
    range: Range,
) -> Result<Vec<(Arc<TaskRuntime>, TaskReport)>, WebError> {
    let reports = state
        .db
        .read(move |conn| {
            tasks
                .into_iter()
                .map(|task| {
                    let report = build::report_of(conn, &task, &range)?;
                    Ok::<_, DbError>((task.clone(), report))
                })
                .collect::<Result<Vec<_>, DbError>>()
        })
        .await?;
    Ok(reports)
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    user: String,
    csrf: String,
    is_admin: bool,
    spans: Vec<SpanLink>,
    live_url: String,
    view: OverviewView,
}

/// The overview's live fragment: the cards only.
#[derive(Template)]
#[template(path = "dashboard/overview_cards.html")]
struct OverviewLive {
    view: OverviewView,
}

/// `GET /dashboard?span=` (and `&live=1` for the fragment).
pub async fn overview(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let q = query(&req)?;
    let range = q.span.ending_now();
    let tasks: Vec<_> = state.tasks.all().cloned().collect();
    let reports = reports(&state, tasks, range).await?;
    let reports: Vec<TaskReport> = reports.into_iter().map(|(_, r)| r).collect();
    let view = panels::overview(q.span, &reports);
    if q.live {
        return Ok(render(StatusCode::OK, &OverviewLive { view }));
    }
    Ok(render(
        StatusCode::OK,
        &OverviewPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            spans: span_links("/dashboard", q.span),
            live_url: format!("/dashboard?span={}&live=1", q.span.as_str()),
            view,
        },
    ))
}

#[derive(Template)]
#[template(path = "dashboard/task.html")]
struct TaskPage {
    user: String,
    csrf: String,
    is_admin: bool,
    spans: Vec<SpanLink>,
    live_url: String,
    view: TaskDash,
}

/// The task page's live fragment: its sections only.
#[derive(Template)]
#[template(path = "dashboard/task_sections.html")]
struct TaskLive {
    view: TaskDash,
}

/// The task's dashboard over the query's span.
async fn task_dash(
    req: &HttpRequest,
    state: &AppState,
    signed_in: &SignedIn,
    name: &str,
) -> Result<(Span, TaskDash), WebError> {
    signed_in.require_admin()?;
    let task = state
        .tasks
        .get(name)
        .cloned()
        .ok_or(WebError::NotFound("There is no such task."))?;
    let q = query(req)?;
    let mut reports = reports(state, vec![task], q.span.ending_now()).await?;
    let (task, report) = reports.pop().expect("one report for one task");
    Ok((q.span, panels::task(q.span, &task.config, &report)))
}

/// `GET /dashboard/{task}?span=`
pub async fn task(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let (span, view) = task_dash(&req, &state, &signed_in, &path).await?;
    let base = format!("/dashboard/{}", view.task);
    Ok(render(
        StatusCode::OK,
        &TaskPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            spans: span_links(&base, span),
            live_url: format!("{base}/live?span={}", span.as_str()),
            view,
        },
    ))
}

/// `GET /dashboard/{task}/live?span=`: the sections of the task page.
pub async fn task_live(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let (_, view) = task_dash(&req, &state, &signed_in, &path).await?;
    Ok(render(StatusCode::OK, &TaskLive { view }))
}

#[cfg(test)]
mod tests {
    //! The task page with every section full, rendered from a report
    //! built by hand, to look at: `cargo test --lib dashboard -- --ignored`
    //! writes `target/dashboard/task.html` (and the overview) with the
    //! stylesheet inlined, ready for a headless browser's screenshot.

    use super::*;
    use crate::monitoring::report::*;

    /// A report with realistic figures in every section: a day in
    /// 15-minute slots, 30 features (some drifted), reviews with gaps.
    pub fn full_report() -> TaskReport {
        let slots = 96;
        let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 27)
            .unwrap()
            .and_hms_opt(14, 0, 0)
            .unwrap();
        let at =
            |i: usize| crate::domain::rfc3339(&(start + chrono::Duration::minutes(15 * i as i64)));
        // A daily rhythm of traffic, with a failure burst in the afternoon.
        let series: Vec<SoftwareSlot> = (0..slots)
            .map(|i| {
                let hour = (14 + i / 4) % 24;
                let busy = if (8..20).contains(&hour) { 1.0 } else { 0.25 };
                let n = (600.0 * busy * (1.0 + 0.3 * ((i as f64) / 5.0).sin())) as u64;
                let failed = if (40..44).contains(&i) { 35 } else { n / 400 };
                SoftwareSlot {
                    start: at(i),
                    automated: n * 82 / 100,
                    queued: n * 18 / 100,
                    failed,
                    rejected: if i % 17 == 3 { 4 } else { 0 },
                    p50_ms: Some(2.1 + 0.4 * ((i as f64) / 7.0).cos()),
                    p99_ms: if i == 70 {
                        None
                    } else {
                        Some(9.0 + 3.0 * ((i as f64) / 3.0).sin().abs() + busy * 4.0)
                    },
                }
            })
            .collect();
        let (automated, queued, failed) = series.iter().fold((0, 0, 0), |a, s| {
            (a.0 + s.automated, a.1 + s.queued, a.2 + s.failed)
        });
        let items = automated + queued + failed;
        let stage = |stage: &str, p50: f64| StageLatency {
            stage: stage.into(),
            count: items,
            p50_ms: Some(p50),
            p95_ms: Some(p50 * 2.6),
            p99_ms: Some(p50 * 4.1),
        };
        let names = [
            "mean_radius",
            "mean_texture",
            "mean_perimeter",
            "mean_area",
            "mean_smoothness",
            "mean_compactness",
            "mean_concavity",
            "mean_concave_points",
            "mean_symmetry",
            "mean_fractal_dimension",
            "radius_error",
            "texture_error",
            "perimeter_error",
            "area_error",
            "smoothness_error",
            "compactness_error",
            "concavity_error",
            "concave_points_error",
            "symmetry_error",
            "fractal_dimension_error",
            "worst_radius",
            "worst_texture",
            "worst_perimeter",
            "worst_area",
            "worst_smoothness",
            "worst_compactness",
            "worst_concavity",
            "worst_concave_points",
            "worst_symmetry",
            "worst_fractal_dimension",
        ];
        let features: Vec<FeatureDrift> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let shift = if k < 4 {
                    0.35 - 0.06 * k as f64
                } else {
                    0.01 * (k % 5) as f64
                };
                let bins = 10;
                let reference = vec![1.0 / bins as f64; bins + 2]
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| if i == 0 || i == bins + 1 { 0.0 } else { v })
                    .collect::<Vec<_>>();
                let mut current: Vec<f64> = (0..bins + 2)
                    .map(|i| {
                        let x = i as f64 / (bins + 1) as f64;
                        (1.0 + shift * 6.0 * (x - 0.5)).max(0.05)
                    })
                    .collect();
                if k == 0 {
                    current[bins + 1] = 0.6;
                }
                let total: f64 = current.iter().sum();
                current.iter_mut().for_each(|v| *v /= total);
                let base = 10.0 + k as f64;
                let edges = (0..bins + 3)
                    .map(|i| base + i as f64 * 1.7 - if i == 0 { 3.0 } else { 0.0 })
                    .collect();
                let ks = 0.02 + shift * 0.6;
                FeatureDrift {
                    feature: name.to_string(),
                    test: Test {
                        statistic: ks,
                        pvalue: (-(ks * 60.0)).exp(),
                        threshold: Some(0.08),
                        alpha: 0.05 / 30.0,
                        drifted: ks > 0.08 && (-(ks * 60.0)).exp() < 0.05 / 30.0,
                    },
                    psi: shift * 0.9,
                    psi_threshold: Some(0.1),
                    out_of_range_share: if k == 0 { 0.043 } else { 0.0 },
                    distribution: Distribution {
                        edges,
                        reference,
                        current,
                    },
                }
            })
            .collect();
        let concept_series: Vec<AgreementSlot> = (0..slots)
            .map(|i| {
                let blind = if i % 6 == 0 || (i > 50 && i % 3 == 0) {
                    4
                } else {
                    0
                };
                let assisted = if i % 2 == 0 && !(30..38).contains(&i) {
                    6
                } else {
                    0
                };
                AgreementSlot {
                    start: at(i),
                    blind_reviewed: blind,
                    blind_agreed: if i > 60 { blind * 3 / 4 } else { blind },
                    assisted_reviewed: assisted,
                    assisted_agreed: assisted * 2 / 3,
                }
            })
            .collect();
        TaskReport {
            task: "tumor-triage".into(),
            since: at(0),
            until: at(slots),
            slot_minutes: 15,
            live_model_version: Some("v1".into()),
            software: Software {
                items,
                automated,
                queued,
                failed,
                rejected: series.iter().map(|s| s.rejected).sum(),
                items_per_minute: items as f64 / 1440.0,
                automated_share: automated as f64 / items as f64,
                queued_share: queued as f64 / items as f64,
                failed_share: failed as f64 / items as f64,
                stages: vec![
                    stage("featurise", 0.04),
                    stage("model", 0.9),
                    stage("policy", 0.01),
                    stage("store", 1.2),
                    stage("total", 2.3),
                ],
                series,
                queue_depth: 137,
                oldest_waiting_seconds: Some(2710.0),
                process: ProcessFigures {
                    cpu_percent: Some(23.4),
                    resident_bytes: Some(187_000_000),
                    open_fds: Some(41),
                    uptime_seconds: Some(3.0 * 86400.0 + 5000.0),
                },
            },
            output: Output {
                labels: vec![
                    LabelShare {
                        label: "benign".into(),
                        count: items * 55 / 100,
                        share: 0.55,
                        reference_share: Some(0.627),
                    },
                    LabelShare {
                        label: "malignant".into(),
                        count: items * 45 / 100,
                        share: 0.45,
                        reference_share: Some(0.373),
                    },
                ],
                confidence: Distribution {
                    edges: (0..=20).map(|i| i as f64 / 20.0).collect(),
                    reference: (0..20)
                        .map(|i| {
                            if i < 10 {
                                0.0
                            } else {
                                [0.005, 0.005, 0.01, 0.01, 0.02, 0.02, 0.03, 0.05, 0.1, 0.75]
                                    [i - 10]
                            }
                        })
                        .collect(),
                    current: (0..20)
                        .map(|i| {
                            if i < 10 {
                                0.0
                            } else {
                                [0.01, 0.02, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.14, 0.55][i - 10]
                            }
                        })
                        .collect(),
                },
                mean_confidence: Some(0.912),
                reference_mean_confidence: Some(0.951),
                share_below_threshold: Some(0.31),
                reference_automation_rate: Some(0.85),
                window: Some(OutputWindow {
                    items: 1000,
                    label_mix: Test {
                        statistic: 21.7,
                        pvalue: 3.2e-6,
                        threshold: None,
                        alpha: 0.01,
                        drifted: true,
                    },
                    confidence: Test {
                        statistic: 0.12,
                        pvalue: 0.0004,
                        threshold: Some(0.07),
                        alpha: 0.01,
                        drifted: true,
                    },
                    mean_confidence: Some(0.908),
                    share_below_threshold: Some(0.33),
                    failed_share: 0.004,
                    automation_rate: 0.66,
                    repeated_share: 0.012,
                    drifted: true,
                }),
            },
            drift: DataDrift {
                evaluated_at: Some(at(slots - 1)),
                model_version: Some("v1".into()),
                window_items: 1000,
                items_seen: 48_210,
                method: "sample".into(),
                alpha: 0.05 / 30.0,
                features,
            },
            concept: Concept {
                blind: Agreement {
                    reviewed: 124,
                    agreed: 113,
                    accuracy: Some(113.0 / 124.0),
                    interval: Some((0.848, 0.950)),
                    observations: 640,
                    page_hinkley: 61.2,
                    page_hinkley_threshold: 50.0,
                    drift: true,
                    detected_at: Some(at(80)),
                },
                assisted: Agreement {
                    reviewed: 264,
                    agreed: 176,
                    accuracy: Some(176.0 / 264.0),
                    interval: Some((0.608, 0.720)),
                    observations: 2210,
                    page_hinkley: 12.4,
                    page_hinkley_threshold: 50.0,
                    drift: false,
                    detected_at: None,
                },
                series: concept_series,
            },
            estimates: Estimates {
                reference_accuracy: Some(0.956),
                cbpe: Some(0.921),
                atc: Some(0.903),
                realised: Some(113.0 / 124.0),
                realised_interval: Some((0.848, 0.950)),
                realised_reviewed: 124,
                series: (0..24)
                    .map(|i| EstimateSlot {
                        at: at(i * 4),
                        cbpe: Some(0.95 - 0.0012 * i as f64),
                        atc: if i == 5 {
                            None
                        } else {
                            Some(0.94 - 0.0015 * i as f64)
                        },
                        worst_drift: Some(0.5 + 0.05 * i as f64),
                    })
                    .collect(),
            },
            alerts: vec![
                AlertLine {
                    id: 7,
                    kind: "data_drift".into(),
                    subject: "mean_radius".into(),
                    severity: "warning".into(),
                    summary: "mean_radius drifted: KS 0.23 over 0.08 <b>".into(),
                    fired_at: at(60),
                    resolved_at: None,
                },
                AlertLine {
                    id: 5,
                    kind: "failed_predictions".into(),
                    subject: String::new(),
                    severity: "critical".into(),
                    summary: "35 failed predictions in 15 minutes".into(),
                    fired_at: at(40),
                    resolved_at: Some(at(44)),
                },
            ],
        }
    }

    fn config() -> crate::config::TaskConfig {
        crate::config::Settings::default().tasks.remove(0)
    }

    fn standalone(html: &str) -> String {
        let css = include_str!("../../../static/verdict.css");
        html.replace(
            r#"<link rel="stylesheet" href="/static/verdict.css">"#,
            &format!("<style>{css}</style>"),
        )
    }

    fn page(report: &TaskReport) -> String {
        let view = panels::task(Span::Day, &config(), report);
        TaskPage {
            user: "admin".into(),
            csrf: "x".into(),
            is_admin: true,
            spans: span_links("/dashboard/tumor-triage", Span::Day),
            live_url: "/dashboard/tumor-triage/live?span=day".into(),
            view,
        }
        .render()
        .unwrap()
    }

    #[test]
    fn the_full_page_has_every_section_in_order() {
        let html = page(&full_report());
        let order = [
            "id=\"headline\"",
            "id=\"traffic\"",
            "id=\"outputs\"",
            "id=\"drift\"",
            "id=\"concept\"",
            "id=\"accuracy\"",
            "id=\"process\"",
            "id=\"alerts\"",
        ];
        let at: Vec<usize> = order.iter().map(|s| html.find(s).expect(s)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{order:?} at {at:?}");
        // The worst feature first, as the report sorts them, and escaped text.
        assert!(html.find("mean_radius").unwrap() < html.find("worst_symmetry").unwrap());
        assert!(
            html.contains("over 0.08 &#60;b&#62;"),
            "alert text is escaped"
        );
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn an_empty_report_says_what_is_missing() {
        let mut report = full_report();
        report.software = Software::default();
        report.output = Output::default();
        report.drift = DataDrift::default();
        report.concept = Concept::default();
        report.estimates = Estimates::default();
        report.alerts.clear();
        let html = page(&report);
        assert!(html.contains("No data in this range"));
        assert!(html.contains("not evaluated"), "{html}");
        assert!(html.contains("No blind audit in the range."));
        assert!(html.contains("(Page-Hinkley) has not started"));
        assert!(html.contains("Nothing was timed in the range."));
        report.drift.window_items = 500;
        report.drift.method = "histogram".into();
        let html = page(&report);
        assert!(html.contains("after 500 items"), "{html}");
        assert!(html.contains("no reference sample"), "{html}");
    }

    /// Writes the pages to look at (see the module's comment).
    #[test]
    #[ignore]
    fn write_pages_to_look_at() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("task.html"), standalone(&page(&full_report()))).unwrap();
        let mut empty = full_report();
        empty.software = Software::default();
        empty.output = Output::default();
        empty.drift = DataDrift::default();
        empty.concept = Concept::default();
        empty.estimates = Estimates::default();
        empty.alerts.clear();
        std::fs::write(dir.join("task-empty.html"), standalone(&page(&empty))).unwrap();
        let mut other = full_report();
        other.task = "fraud-screening".into();
        other.alerts.clear();
        other.drift.features.truncate(3);
        let overview = OverviewPage {
            user: "admin".into(),
            csrf: "x".into(),
            is_admin: true,
            spans: span_links("/dashboard", Span::Day),
            live_url: "/dashboard?span=day&live=1".into(),
            view: panels::overview(Span::Day, &[full_report(), other]),
        }
        .render()
        .unwrap();
        std::fs::write(dir.join("overview.html"), standalone(&overview)).unwrap();
    }
}
