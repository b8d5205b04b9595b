//! The drift monitor: a job that follows each task's items in arrival
//! order, keeps the last `window_items` of them, evaluates the window every
//! `step_items` new items (so detection is counted in items, whatever the
//! traffic's pace), feeds human verdicts to the concept-drift detectors,
//! and raises or resolves the drift alerts. Every instance runs it (it
//! only reads); the one holding the alert lock writes its state and the
//! alerts.
//!
//! A pass follows at most [`CATCH_UP`] new items one by one and evaluates
//! at most [`EVALUATIONS_PER_PASS`] windows, evenly spaced over the steps
//! it crossed; further behind (heavy traffic, or a start), it counts the
//! items in between and evaluates only the newest window. Monitoring so
//! costs about the same CPU at any traffic and never competes with scoring
//! for more than a few milliseconds a pass.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::concept::ConceptState;
use super::evaluate::{evaluate, Evaluation, Levels, WindowItem};
use super::reference::{Reference, ReferenceSettings};
use crate::alerts::{self, AlertConfig, AlertError, Finding, Firing};
use crate::config::MonitoringSettings;
use crate::db::{Db, DbConnection, DbError};
use crate::domain::{now, rfc3339, AlertKind, AutomationLevel, ItemStatus, Severity, Timestamp};
use crate::ml::LoadedModel;
use crate::monitoring::report::{Agreement, DataDrift, OutputWindow};
use crate::monitoring::stats::PageHinkleyParams;
use crate::store::monitoring::{self as store, Cursor, EvaluationRow, ReviewCursor, ScoredItem};
use crate::tasks::{Registry, TaskRuntime};

/// Most windows one pass evaluates per task.
pub const EVALUATIONS_PER_PASS: usize = 50;

/// Verdicts read per query.
const PAGE: i64 = 5000;

/// Most new items a pass follows one by one; further behind, it jumps to
/// the newest window.
pub const CATCH_UP: usize = 5_000;

/// What the monitor last found for a task: stored, so the dashboard of any
/// instance shows it and a restart starts from it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonitorState {
    pub drift: DataDrift,
    pub output: Option<OutputWindow>,
    pub cbpe: Option<f64>,
    pub atc: Option<f64>,
    pub reference_accuracy: Option<f64>,
    pub blind: Agreement,
    pub assisted: Agreement,
}

/// What one evaluation leaves in the history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EvaluationSummary {
    pub cbpe: Option<f64>,
    pub atc: Option<f64>,
    pub worst: Option<f64>,
    pub drifted: Vec<String>,
    pub automation_rate: f64,
    pub output_drifted: bool,
}

/// The monitor's memory of one task.
struct TaskMonitor {
    reference: Option<Arc<Reference>>,
    window: VecDeque<WindowItem>,
    cursor: Option<Cursor>,
    items_seen: u64,
    /// Items since the last step boundary.
    since_step: usize,
    latest: Option<(Evaluation, Timestamp)>,
    /// Consecutive evaluations each (rule, subject) held.
    streaks: HashMap<(AlertKind, String), u32>,
    concept: Option<ConceptState>,
    concept_cursor: Option<ReviewCursor>,
    started: bool,
}

impl TaskMonitor {
    fn new() -> Self {
        TaskMonitor {
            reference: None,
            window: VecDeque::new(),
            cursor: None,
            items_seen: 0,
            since_step: 0,
            latest: None,
            streaks: HashMap::new(),
            concept: None,
            concept_cursor: None,
            started: false,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MonitorPass {
    pub items: usize,
    pub evaluations: usize,
    pub reviews: usize,
    pub alerts: alerts::Pass,
}

/// The job (STYLE.md, Background jobs).
pub struct DriftMonitor {
    db: Db,
    tasks: Arc<Registry>,
    settings: MonitoringSettings,
    alerts: AlertConfig,
    monitors: HashMap<String, TaskMonitor>,
}

impl DriftMonitor {
    pub fn new(
        db: Db,
        tasks: Arc<Registry>,
        settings: MonitoringSettings,
        alerts: AlertConfig,
    ) -> Self {
        DriftMonitor {
            db,
            tasks,
            settings,
            alerts,
            monitors: HashMap::new(),
        }
    }

    /// One pass over every task.
    #[tracing::instrument(name = "drift_monitor", skip_all)]
    pub async fn run_once(&mut self) -> Result<MonitorPass, AlertError> {
        let mut pass = MonitorPass::default();
        let tasks: Vec<Arc<TaskRuntime>> = self.tasks.all().cloned().collect();
        for task in tasks {
            let Some(model) = task.live() else {
                continue;
            };
            let name = task.name().to_string();
            let monitor = self.monitors.remove(&name).unwrap_or_else(TaskMonitor::new);
            let settings = self.settings.clone();
            let rules = self.alerts.rules.clone();
            let task_for_read = task.clone();
            let (monitor, found, state, rows) = self
                .db
                .read(move |conn| follow(conn, monitor, &task_for_read, &model, &settings, &rules))
                .await?;
            pass.items += found.items;
            pass.evaluations += rows.len();
            pass.reviews += found.reviews;
            self.monitors.insert(name.clone(), monitor);
            let config = self.alerts.clone();
            let applied = self
                .db
                .write(move |conn| -> Result<alerts::Pass, AlertError> {
                    let applied = alerts::apply(conn, &config, &found.findings)?;
                    if let (true, Some(state)) = (applied.applied, &state) {
                        let text = serde_json::to_string(state).expect("state serialises");
                        store::save_state(conn, &name, now(), &text)?;
                        store::add_evaluations(conn, &rows)?;
                    }
                    Ok(applied)
                })
                .await?;
            pass.alerts.applied |= applied.applied;
            pass.alerts.raised += applied.raised;
            pass.alerts.resolved += applied.resolved;
        }
        Ok(pass)
    }

    /// Runs a pass every `monitoring.interval_ms`, for ever.
    pub async fn run_until_stopped(mut self) {
        let mut every = tokio::time::interval(Duration::from_millis(self.settings.interval_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.run_once().await {
                Ok(pass) if pass.alerts.raised + pass.alerts.resolved > 0 => tracing::info!(
                    raised = pass.alerts.raised,
                    resolved = pass.alerts.resolved,
                    "drift monitor pass changed alerts"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, code = e.code(), "drift monitor pass failed"),
            }
        }
    }
}

/// What reading found, for the write that follows.
struct Found {
    items: usize,
    reviews: usize,
    findings: Vec<Finding>,
}

/// An item as the window keeps it; `None` when its input is not a JSON
/// object (nothing to compare).
fn window_item(item: &ScoredItem, reference: &Reference) -> Option<WindowItem> {
    let input: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&item.input).ok()?;
    let values = reference
        .features
        .iter()
        .map(|f| {
            input
                .get(&f.name)
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN)
        })
        .collect();
    let label = item
        .label
        .as_ref()
        .and_then(|l| reference.labels.iter().position(|x| x == l));
    Some(WindowItem {
        values,
        label,
        confidence: item.confidence.filter(|c| c.is_finite()),
        failed: item.model_version.is_some() && item.label.is_none(),
        automated: item.status == ItemStatus::Decided && item.reason.is_none(),
        input_sha256: item.input_sha256.clone(),
    })
}

fn concept_params(rules: &crate::config::AlertSettings) -> PageHinkleyParams {
    PageHinkleyParams {
        threshold: rules.concept_drift.threshold,
        min_instances: rules.concept_drift.min_sample,
        ..PageHinkleyParams::default()
    }
}

/// Reads what is new for `task`, evaluates, and returns the monitor, the
/// findings, the state to store and the evaluations to record. Runs on a
/// blocking thread with a reading connection.
fn follow(
    conn: &mut DbConnection,
    mut m: TaskMonitor,
    task: &TaskRuntime,
    model: &LoadedModel,
    settings: &MonitoringSettings,
    rules: &crate::config::AlertSettings,
) -> Result<(TaskMonitor, Found, Option<MonitorState>, Vec<EvaluationRow>), DbError> {
    let version = model.version();
    let threshold = match task.config.automation {
        AutomationLevel::Partial => task.config.threshold,
        AutomationLevel::Full => Some(0.0),
        _ => None,
    };
    let full = settings
        .window_items
        .min(rules.data_drift.min_sample.max(1) as usize);
    if m.reference.is_none() && !store::has_items(conn, task.name(), full as i64)? {
        // Nothing to judge yet: the calibration waits for a full window.
        let found = Found {
            items: 0,
            reviews: 0,
            findings: Vec::new(),
        };
        return Ok((m, found, None, Vec::new()));
    }
    if m.reference.as_ref().is_none_or(|r| r.version != version) {
        m.reference = Some(Arc::new(Reference::build(
            &model.card,
            ReferenceSettings {
                window: settings.window_items,
                draws: settings.calibration_draws,
                psi_bins: settings.psi_bins,
                margin: task.config.out_of_range_margin,
                threshold,
            },
        )));
        // A new version is judged afresh: its window is re-read below, its
        // streams start empty.
        m.started = false;
        m.window.clear();
        m.latest = None;
        m.streaks.clear();
        m.concept = Some(ConceptState::new(version, concept_params(rules)));
        m.concept_cursor = None;
    }
    let reference = m.reference.clone().expect("built above");
    let levels = Levels {
        family_alpha: settings.family_alpha,
        sds: rules.data_drift.threshold,
        threshold,
    };
    let mut rows = Vec::new();
    let mut items = 0;

    let pending = if m.started {
        store::count_after(conn, task.name(), m.cursor.as_ref(), CATCH_UP as i64 + 1)? as usize
    } else {
        usize::MAX
    };
    if pending > CATCH_UP {
        // Starting, or further behind than a pass follows item by item:
        // jump to the newest window (the items in between are counted, not
        // read), so a pass costs the same at any traffic.
        let mut latest = store::latest_items(conn, task.name(), settings.window_items as i64)?;
        latest.reverse();
        if let Some(last) = latest.last() {
            let upto = (last.created_at, last.id.clone());
            let skipped = store::count_between(conn, task.name(), m.cursor.as_ref(), &upto)?;
            items = skipped as usize;
            m.items_seen += skipped as u64;
            m.cursor = Some(upto);
            m.window.clear();
            m.window
                .extend(latest.iter().filter_map(|i| window_item(i, &reference)));
            m.since_step = 0;
            if m.window.len() >= full {
                rows.push(record(
                    &mut m,
                    &reference,
                    &levels,
                    rules,
                    task.name(),
                    last.created_at,
                ));
            }
        }
        m.started = true;
    } else if pending > 0 {
        let new = store::items_after(conn, task.name(), m.cursor.as_ref(), CATCH_UP as i64)?;
        if let Some(last) = new.last() {
            m.cursor = Some((last.created_at, last.id.clone()));
        }
        items = new.len();
        let boundaries = (m.since_step + new.len()) / settings.step_items;
        let stride = boundaries.div_ceil(EVALUATIONS_PER_PASS).max(1);
        let mut boundary = 0;
        for item in &new {
            if let Some(w) = window_item(item, &reference) {
                if m.window.len() == settings.window_items {
                    m.window.pop_front();
                }
                m.window.push_back(w);
            }
            m.items_seen += 1;
            m.since_step += 1;
            if m.since_step == settings.step_items {
                m.since_step = 0;
                boundary += 1;
                if m.window.len() >= full && (boundary % stride == 0 || boundary == boundaries) {
                    rows.push(record(
                        &mut m,
                        &reference,
                        &levels,
                        rules,
                        task.name(),
                        item.created_at,
                    ));
                }
            }
        }
    }

    // Human verdicts of this version's predictions.
    let mut reviews = 0;
    let concept = m
        .concept
        .get_or_insert_with(|| ConceptState::new(version, concept_params(rules)));
    loop {
        let page = store::reviewed_after(conn, task.name(), m.concept_cursor.as_ref(), PAGE)?;
        let done = (page.len() as i64) < PAGE;
        if let Some(last) = page.last() {
            m.concept_cursor = Some((last.decided_at, last.item_id.clone(), last.reviewer.clone()));
        }
        reviews += page.len();
        for r in &page {
            concept.observe(r);
        }
        if done {
            break;
        }
    }

    let findings = findings(&m, &reference, rules, task.name());
    let state = state_of(&m, &reference, &levels, rules);
    Ok((
        m,
        Found {
            items,
            reviews,
            findings,
        },
        Some(state),
        rows,
    ))
}

/// Evaluates the window now, updates the rules' streaks, and returns the
/// history row.
fn record(
    m: &mut TaskMonitor,
    reference: &Reference,
    levels: &Levels,
    rules: &crate::config::AlertSettings,
    task: &str,
    at: Timestamp,
) -> EvaluationRow {
    let e = evaluate(&m.window, reference, levels);
    let mut bump = |kind: AlertKind, subject: &str, holds: bool| {
        let streak = m.streaks.entry((kind, subject.to_string())).or_default();
        *streak = if holds { *streak + 1 } else { 0 };
    };
    for f in &e.features {
        bump(AlertKind::DataDrift, &f.feature, f.test.drifted);
    }
    bump(
        AlertKind::OutputDrift,
        "",
        e.output.drifted || e.output.repeated_share > rules.max_repeated_share,
    );
    bump(
        AlertKind::AutomationDrop,
        "",
        reference
            .automation_rate
            .is_some_and(|r| r - e.output.automation_rate > rules.automation_drop.threshold),
    );
    bump(
        AlertKind::EstimatedAccuracyDrop,
        "",
        e.cbpe
            .is_some_and(|c| reference.accuracy - c > rules.estimated_accuracy_drop.threshold),
    );
    let summary = EvaluationSummary {
        cbpe: e.cbpe,
        atc: e.atc,
        worst: e.worst(),
        drifted: e.drifted().map(|f| f.feature.clone()).collect(),
        automation_rate: e.output.automation_rate,
        output_drifted: e.output.drifted,
    };
    let row = EvaluationRow {
        task: task.to_string(),
        evaluated_at: at,
        items_seen: m.items_seen as i64,
        model_version: reference.version.clone(),
        summary: serde_json::to_string(&summary).expect("summary serialises"),
    };
    m.latest = Some((e, at));
    row
}

fn fires(m: &TaskMonitor, kind: AlertKind, subject: &str, rule: &crate::config::Rule) -> bool {
    rule.enabled
        && m.streaks
            .get(&(kind, subject.to_string()))
            .is_some_and(|&s| s >= rule.for_evaluations)
}

fn finding(kind: AlertKind, task: &str, firing: Vec<Firing>) -> Finding {
    Finding {
        kind,
        task: task.to_string(),
        firing,
        still: Default::default(),
    }
}

fn firing(
    kind: AlertKind,
    task: &str,
    subject: &str,
    severity: Severity,
    summary: String,
    numbers: serde_json::Value,
) -> Firing {
    Firing {
        kind,
        task: task.to_string(),
        subject: subject.to_string(),
        severity,
        summary,
        numbers,
    }
}

/// The drift rules' findings: only for what has been evaluated (an alert
/// open before a restart stays open until the first window says otherwise).
fn findings(
    m: &TaskMonitor,
    reference: &Reference,
    rules: &crate::config::AlertSettings,
    task: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((e, _)) = &m.latest {
        let data = e
            .features
            .iter()
            .filter(|f| fires(m, AlertKind::DataDrift, &f.feature, &rules.data_drift))
            .map(|f| {
                firing(
                    AlertKind::DataDrift,
                    task,
                    &f.feature,
                    Severity::Warning,
                    format!(
                        "{task}: input {} drifted (KS {:.3} > {:.3}, p = {:.2e})",
                        f.feature,
                        f.test.statistic,
                        f.test.threshold.unwrap_or(0.0),
                        f.test.pvalue
                    ),
                    serde_json::json!({
                        "ks": f.test.statistic, "threshold": f.test.threshold, "pvalue": f.test.pvalue,
                        "alpha": f.test.alpha, "psi": f.psi, "psi_threshold": f.psi_threshold,
                        "out_of_range_share": f.out_of_range_share, "window_items": m.window.len(),
                        "model_version": reference.version,
                    }),
                )
            })
            .collect();
        out.push(finding(AlertKind::DataDrift, task, data));

        let o = &e.output;
        let output = fires(m, AlertKind::OutputDrift, "", &rules.output_drift).then(|| {
            let what = if o.label_mix.drifted {
                "the label mix moved"
            } else if o.confidence.drifted {
                "the confidence distribution moved"
            } else {
                "inputs repeat"
            };
            firing(
                AlertKind::OutputDrift,
                task,
                "",
                Severity::Warning,
                format!("{task}: output drift, {what}"),
                serde_json::json!({
                    "label_mix_chi2": o.label_mix.statistic, "label_mix_pvalue": o.label_mix.pvalue,
                    "confidence_ks": o.confidence.statistic, "confidence_pvalue": o.confidence.pvalue,
                    "mean_confidence": o.mean_confidence, "repeated_share": o.repeated_share,
                    "window_items": o.items,
                }),
            )
        });
        out.push(finding(
            AlertKind::OutputDrift,
            task,
            output.into_iter().collect(),
        ));

        let automation = fires(m, AlertKind::AutomationDrop, "", &rules.automation_drop).then(|| {
            firing(
                AlertKind::AutomationDrop,
                task,
                "",
                Severity::Warning,
                format!(
                    "{task}: {:.0}% of recent items automated, {:.0}% expected",
                    100.0 * o.automation_rate,
                    100.0 * reference.automation_rate.unwrap_or(0.0)
                ),
                serde_json::json!({"automation_rate": o.automation_rate, "reference": reference.automation_rate}),
            )
        });
        out.push(finding(
            AlertKind::AutomationDrop,
            task,
            automation.into_iter().collect(),
        ));

        let estimate = fires(m, AlertKind::EstimatedAccuracyDrop, "", &rules.estimated_accuracy_drop).then(|| {
            firing(
                AlertKind::EstimatedAccuracyDrop,
                task,
                "",
                Severity::Warning,
                format!(
                    "{task}: estimated accuracy {:.3}, held-out {:.3}",
                    e.cbpe.unwrap_or(0.0),
                    reference.accuracy
                ),
                serde_json::json!({"cbpe": e.cbpe, "atc": e.atc, "reference_accuracy": reference.accuracy}),
            )
        });
        out.push(finding(
            AlertKind::EstimatedAccuracyDrop,
            task,
            estimate.into_iter().collect(),
        ));
    }
    if let Some(c) = &m.concept {
        let blind = c.blind.agreement(rules.concept_hold);
        // Fired, and either recent or the recent accuracy still clearly
        // below the held-out one.
        let below = blind
            .interval
            .is_some_and(|(_, hi)| hi < reference.accuracy);
        let holds = rules.concept_drift.enabled
            && c.blind.observations() >= rules.concept_drift.min_sample
            && (blind.drift || (blind.detected_at.is_some() && below));
        let concept = holds.then(|| {
            firing(
                AlertKind::ConceptDrift,
                task,
                "blind_audits",
                Severity::Critical,
                format!(
                    "{task}: the model disagrees with blind audits more often (recent accuracy {:.3}, held-out {:.3})",
                    blind.accuracy.unwrap_or(0.0),
                    reference.accuracy
                ),
                serde_json::json!({
                    "accuracy": blind.accuracy, "interval": blind.interval, "reviewed": blind.reviewed,
                    "page_hinkley": blind.page_hinkley, "threshold": blind.page_hinkley_threshold,
                    "detected_at": blind.detected_at, "reference_accuracy": reference.accuracy,
                }),
            )
        });
        out.push(finding(
            AlertKind::ConceptDrift,
            task,
            concept.into_iter().collect(),
        ));
    }
    out
}

fn state_of(
    m: &TaskMonitor,
    reference: &Reference,
    levels: &Levels,
    rules: &crate::config::AlertSettings,
) -> MonitorState {
    let (drift, output, cbpe, atc) = match &m.latest {
        Some((e, at)) => {
            let mut drift = e.data_drift(reference, levels);
            drift.evaluated_at = Some(rfc3339(at));
            drift.items_seen = m.items_seen;
            (drift, Some(e.output.clone()), e.cbpe, e.atc)
        }
        None => (
            DataDrift {
                model_version: Some(reference.version.clone()),
                window_items: reference.window,
                items_seen: m.items_seen,
                method: reference.method.as_str().to_string(),
                alpha: levels.family_alpha / reference.features.len().max(1) as f64,
                ..DataDrift::default()
            },
            None,
            None,
            None,
        ),
    };
    MonitorState {
        drift,
        output,
        cbpe,
        atc,
        reference_accuracy: Some(reference.accuracy),
        blind: m
            .concept
            .as_ref()
            .map(|c| c.blind.agreement(rules.concept_hold))
            .unwrap_or_default(),
        assisted: m
            .concept
            .as_ref()
            .map(|c| c.assisted.agreement(rules.concept_hold))
            .unwrap_or_default(),
    }
}
