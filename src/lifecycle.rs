//! A model version's way to live: set as the candidate beside the live
//! version (shadow, or canary for a share of items), compared with it on
//! the same items, promoted (blue-green: it becomes live in one
//! transaction, the old live stays warm as `previous`) or withdrawn — by a
//! person, or by [`CandidateGuard`] when it crosses a limit. Every change
//! is in the audit log with who and why.

use serde::Serialize;

use crate::advisor::clopper_pearson_upper;
use crate::alerts::{AlertConfig, Firing};
use crate::config::{CandidateRules, TaskConfig};
use crate::db::{Db, DbConnection, DbError};
use crate::domain::{now, AlertKind, CandidateMode, Severity};
use crate::store::candidates::{self as pairs, Pair, Side};
use crate::store::tasks as store;
use crate::tasks::{check_fits, load_version, Deployment};

/// Most items a comparison reads (the newest).
pub const WINDOW: i64 = 20_000;

/// The bounds the guard uses hold with probability 99 % (one-sided): it
/// looks again at every pass, and each look is a chance of a false alarm.
const GUARD_DELTA: f64 = 0.01;

/// The fewest items a rate is judged on at all.
const MIN_JUDGED: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("task {task:?} has no model version {version:?}")]
    UnknownVersion { task: String, version: String },
    #[error("task {0:?} has no live version: deploy one before a candidate")]
    NoLiveVersion(String),
    #[error("{version} is the live version of {task}; a candidate is another version")]
    CandidateIsLive { task: String, version: String },
    #[error("task {0:?} has no candidate")]
    NoCandidate(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the deployment of {0} changed while the promotion was judged; look again and retry")]
    Changed(String),
    #[error("promotion refused: {0}; send force with a why to promote anyway")]
    NotEnoughEvidence(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for LifecycleError {
    fn from(e: diesel::result::Error) -> Self {
        LifecycleError::Db(e.into())
    }
}

impl LifecycleError {
    pub fn code(&self) -> &'static str {
        match self {
            LifecycleError::UnknownVersion { .. } => "unknown_version",
            LifecycleError::NoLiveVersion(_) => "no_live_version",
            LifecycleError::CandidateIsLive { .. } => "candidate_is_live",
            LifecycleError::NoCandidate(_) => "no_candidate",
            LifecycleError::Invalid(_) => "invalid_model",
            LifecycleError::Changed(_) => "deployment_changed",
            LifecycleError::NotEnoughEvidence(_) => "not_enough_evidence",
            LifecycleError::Db(_) => "database",
        }
    }
}

/// Sets `version` as the task's candidate in `mode` (`percent` of items for
/// a canary, 1–100), checked to fit the live version. The comparisons start
/// now, unless the version was already the candidate (only its mode or
/// share changes). Audited as `candidate.set`.
pub fn set_candidate(
    conn: &mut DbConnection,
    config: &TaskConfig,
    version: &str,
    mode: CandidateMode,
    percent: Option<u32>,
    actor: &str,
    why: &str,
) -> Result<Deployment, LifecycleError> {
    let task = config.name.as_str();
    crate::db::write_transaction(conn, |conn| {
        let current = store::deployment(conn, task)?;
        let Some((current, live)) = current.and_then(|d| d.live_version.clone().map(|l| (d, l)))
        else {
            return Err(LifecycleError::NoLiveVersion(task.to_string()));
        };
        if !store::version_exists(conn, task, version)? {
            return Err(LifecycleError::UnknownVersion {
                task: task.to_string(),
                version: version.to_string(),
            });
        }
        if live == version {
            return Err(LifecycleError::CandidateIsLive {
                task: task.to_string(),
                version: version.to_string(),
            });
        }
        let model = load_version(conn, task, version)
            .map_err(|e| LifecycleError::Invalid(format!("{e:#}")))?;
        let live_model = load_version(conn, task, &live).ok();
        check_fits(config, &model, live_model.as_ref()).map_err(LifecycleError::Invalid)?;
        let percent = match mode {
            CandidateMode::Shadow => None,
            CandidateMode::Canary => match percent {
                Some(p @ 1..=100) => Some(p as i32),
                _ => {
                    return Err(LifecycleError::Invalid(
                        "a canary needs a percent from 1 to 100".into(),
                    ))
                }
            },
        };
        let since = match (&current.candidate_version, current.candidate_since) {
            (Some(v), Some(since)) if v == version => since,
            _ => now(),
        };
        store::set_candidate(conn, task, version, mode, percent, since, actor)?;
        crate::store::audit::record(
            conn,
            actor,
            "candidate.set",
            Some(task),
            Some(version),
            serde_json::json!({
                "candidate": version, "mode": mode.as_str(), "percent": percent,
                "replaced": current.candidate_version, "live": live, "why": why,
            }),
        )?;
        Ok(store::deployment(conn, task)?.expect("the deployment just written"))
    })
}

/// Withdraws the task's candidate (the live version alone scores again).
/// Returns the version withdrawn. Audited as `candidate.withdraw`.
pub fn withdraw(
    conn: &mut DbConnection,
    task: &str,
    actor: &str,
    why: &str,
) -> Result<String, LifecycleError> {
    crate::db::write_transaction(conn, |conn| {
        let Some(version) = store::deployment(conn, task)?.and_then(|d| d.candidate_version) else {
            return Err(LifecycleError::NoCandidate(task.to_string()));
        };
        store::clear_candidate(conn, task, &version, actor)?;
        crate::store::audit::record(
            conn,
            actor,
            "candidate.withdraw",
            Some(task),
            Some(&version),
            serde_json::json!({"candidate": version, "why": why}),
        )?;
        Ok(version)
    })
}

/// Promotes the candidate: it becomes live and the live version
/// `previous`, in one transaction (every instance switches within the
/// poll interval; the old live stays loaded, so a rollback is instant).
/// Refused while the candidate has scored fewer than `min_items` items or
/// has fewer than `min_audits` human verdicts to compare with, unless
/// `force`. Audited as `promote` with the evidence. Returns the version
/// now live.
pub fn promote(
    conn: &mut DbConnection,
    config: &TaskConfig,
    actor: &str,
    why: &str,
    force: bool,
) -> Result<String, LifecycleError> {
    let task = config.name.as_str();
    // The evidence is read before the write lock is taken (a comparison
    // reads up to WINDOW pairs; scoring must not wait for it), then the
    // switch checks that the deployment is still the one judged.
    let judged = store::deployment(conn, task)?;
    let Some(judged) = judged.filter(|d| d.candidate_version.is_some()) else {
        return Err(LifecycleError::NoCandidate(task.to_string()));
    };
    let comparison = compare(conn, config, &judged)?.expect("a deployment with a candidate");
    crate::db::write_transaction(conn, |conn| {
        let Some(d) = store::deployment(conn, task)? else {
            return Err(LifecycleError::NoCandidate(task.to_string()));
        };
        let (Some(candidate), Some(live)) = (d.candidate_version.clone(), d.live_version.clone())
        else {
            return Err(LifecycleError::NoCandidate(task.to_string()));
        };
        if d.candidate_version != judged.candidate_version
            || d.live_version != judged.live_version
            || d.candidate_since != judged.candidate_since
        {
            return Err(LifecycleError::Changed(task.to_string()));
        }
        let rules = &config.candidate;
        let evidence = &comparison.candidate;
        let short = evidence.scored < rules.min_items || evidence.human.compared < rules.min_audits;
        if short && !force {
            return Err(LifecycleError::NotEnoughEvidence(format!(
                "{candidate} has scored {} items (at least {} needed) with {} human verdicts to compare (at least {} needed)",
                evidence.scored, rules.min_items, evidence.human.compared, rules.min_audits
            )));
        }
        store::set_live(conn, task, &candidate, Some(&live), actor)?;
        store::clear_candidate(conn, task, &candidate, actor)?;
        crate::store::audit::record(
            conn,
            actor,
            "promote",
            Some(task),
            Some(&candidate),
            serde_json::json!({
                "live": candidate, "previous": live, "why": why, "forced": short && force,
                "scored": evidence.scored, "human_compared": evidence.human.compared,
                "human_agreement": evidence.human.rate(),
            }),
        )?;
        Ok(candidate)
    })
}

/// Agreement with human verdicts: `agree` of `compared`.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema, PartialEq)]
#[schema(as = VersionAgreement)]
pub struct Agreement {
    pub compared: u64,
    pub agree: u64,
}

impl Agreement {
    fn add(&mut self, agrees: bool) {
        self.compared += 1;
        self.agree += u64::from(agrees);
    }

    pub fn rate(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.agree as f64 / self.compared as f64)
    }

    /// The lower bound of the disagreement rate that holds with
    /// probability 1 − `delta` (Clopper–Pearson, one-sided).
    pub fn disagreement_lower(&self, delta: f64) -> f64 {
        if self.compared == 0 {
            return 0.0;
        }
        1.0 - clopper_pearson_upper(self.agree, self.compared, delta)
    }
}

/// One version on the items both scored.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, PartialEq)]
pub struct VersionStats {
    pub version: String,
    /// Items it scored in the window.
    pub scored: u64,
    /// Of which, items it decided (canary) rather than scored beside.
    pub acted: u64,
    /// Forward passes that failed or gave no finite output.
    pub errors: u64,
    /// Against every human verdict (the queue's hard cases included).
    pub human: Agreement,
    /// Against the blind audits and blind samples only (unbiased).
    pub blind: Agreement,
    /// Items whose confidence reaches the task's threshold for the label
    /// predicted: what it would automate.
    pub automation_rate: Option<f64>,
    /// Share of scored items per confidence tenth (0–0.1, …, 0.9–1).
    pub confidence: Vec<f64>,
    /// Forward pass per item, microseconds.
    pub forward_p50_us: Option<i64>,
    pub forward_p99_us: Option<i64>,
}

/// Live and candidate side by side on the same items.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, PartialEq)]
pub struct Comparison {
    pub since: String,
    /// Items both scored (the newest [`WINDOW`] at most).
    pub items: u64,
    pub live: VersionStats,
    pub candidate: VersionStats,
    /// Items where both gave a label, and where the labels were the same.
    pub versions: Agreement,
    pub mode: CandidateMode,
    pub percent: Option<i32>,
}

/// The task's live version and candidate compared on the items both
/// scored since the candidate was set; `None` without a candidate.
pub fn compare(
    conn: &mut DbConnection,
    config: &TaskConfig,
    d: &Deployment,
) -> Result<Option<Comparison>, LifecycleError> {
    let (Some(live), Some(candidate), Some(mode), Some(since)) = (
        &d.live_version,
        &d.candidate_version,
        d.candidate_mode,
        d.candidate_since,
    ) else {
        return Ok(None);
    };
    let rows = pairs::pairs(conn, config.name.as_str(), live, candidate, since, WINDOW)?;
    Ok(Some(Comparison {
        since: crate::domain::rfc3339(&since),
        items: rows.len() as u64,
        live: stats(config, live, &rows),
        candidate: stats(config, candidate, &rows),
        versions: rows.iter().fold(Agreement::default(), |mut a, p| {
            if let (Some(x), Some(y)) = (&p.acting.label, &p.beside.label) {
                a.add(x == y);
            }
            a
        }),
        mode,
        percent: d.canary_percent,
    }))
}

fn stats(config: &TaskConfig, version: &str, rows: &[Pair]) -> VersionStats {
    let mut s = VersionStats {
        version: version.to_string(),
        confidence: vec![0.0; 10],
        ..VersionStats::default()
    };
    let mut forward = Vec::with_capacity(rows.len());
    let mut automated = 0u64;
    let mut confident = 0u64;
    for pair in rows {
        let (side, acted): (&Side, bool) = if pair.acting.version == version {
            (&pair.acting, true)
        } else if pair.beside.version == version {
            (&pair.beside, false)
        } else {
            continue;
        };
        s.scored += 1;
        s.acted += u64::from(acted);
        forward.push(side.forward_us);
        let (Some(label), Some(confidence)) = (&side.label, side.confidence) else {
            s.errors += 1;
            continue;
        };
        confident += 1;
        s.confidence[((confidence * 10.0).floor() as usize).min(9)] += 1.0;
        let threshold = config
            .label_thresholds
            .get(label)
            .copied()
            .or(config.threshold);
        if threshold.is_some_and(|t| confidence >= t) {
            automated += 1;
        }
        // What people said: the verdict they reached, or for an audit
        // (whose verdict stays the model's) its blind reviewers' majority.
        let human = pair
            .human
            .clone()
            .or_else(|| crate::review::majority(&pair.reviews));
        if let Some(human) = &human {
            s.human.add(human == label);
            if pair.blind {
                s.blind.add(human == label);
            }
        }
    }
    if confident > 0 {
        for share in &mut s.confidence {
            *share /= confident as f64;
        }
        s.automation_rate = Some(automated as f64 / confident as f64);
    }
    forward.sort_unstable();
    let quantile = |q: f64| {
        (!forward.is_empty()).then(|| forward[((forward.len() - 1) as f64 * q).round() as usize])
    };
    s.forward_p50_us = quantile(0.5);
    s.forward_p99_us = quantile(0.99);
    s
}

/// Why a candidate must go, if it must: the first limit it crosses. A
/// rate crosses its limit when its lower bound (99 %, Clopper–Pearson)
/// does, judged on at least ten items: three wrong of three is not yet
/// evidence, thirty of sixty is.
pub fn breach(rules: &CandidateRules, s: &VersionStats) -> Option<String> {
    let errors = Agreement {
        compared: s.scored,
        agree: s.scored - s.errors,
    };
    let lower = errors.disagreement_lower(GUARD_DELTA);
    if errors.compared >= MIN_JUDGED && lower > rules.max_error_rate {
        return Some(format!(
            "{} of {} forward passes failed (at least {:.1} % with 99 % confidence; the limit is {:.1} %)",
            s.errors,
            s.scored,
            lower * 100.0,
            rules.max_error_rate * 100.0
        ));
    }
    let lower = s.human.disagreement_lower(GUARD_DELTA);
    if s.human.compared >= MIN_JUDGED && lower > rules.max_disagreement {
        return Some(format!(
            "it disagreed with {} of {} human verdicts (at least {:.1} % with 99 % confidence; the limit is {:.1} %)",
            s.human.compared - s.human.agree,
            s.human.compared,
            lower * 100.0,
            rules.max_disagreement * 100.0
        ));
    }
    if s.scored >= rules.min_latency_items {
        if let Some(p99) = s.forward_p99_us {
            if p99 as f64 / 1000.0 > rules.max_p99_ms {
                return Some(format!(
                    "its forward pass p99 is {:.1} ms over {} items (the limit is {} ms)",
                    p99 as f64 / 1000.0,
                    s.scored,
                    rules.max_p99_ms
                ));
            }
        }
    }
    None
}

/// A candidate the guard withdrew.
#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawn {
    pub task: String,
    pub version: String,
    pub why: String,
}

/// Watches every task's candidate and withdraws one that crosses a limit
/// of its task's `[tasks.candidate]` rules ([`breach`]), with an audit
/// entry and a critical alert that emails. A plain job: `run_once` does a
/// pass; every instance may run it (the withdrawal is conditional on the
/// candidate still being the one measured, so it happens once).
pub struct CandidateGuard {
    pub db: Db,
    pub tasks: Vec<TaskConfig>,
    pub alerts: AlertConfig,
    pub every: std::time::Duration,
}

impl CandidateGuard {
    #[tracing::instrument(name = "candidate_guard", skip_all)]
    pub async fn run_once(&self) -> Result<Vec<Withdrawn>, LifecycleError> {
        let tasks = self.tasks.clone();
        let found = self
            .db
            .read(move |conn| {
                let mut found = Vec::new();
                for config in &tasks {
                    let Some(d) = store::deployment(conn, config.name.as_str())? else {
                        continue;
                    };
                    if let Some(c) = compare(conn, config, &d)? {
                        if let Some(why) = breach(&config.candidate, &c.candidate) {
                            found.push((config.name.as_str().to_string(), c, why));
                        }
                    }
                }
                Ok::<_, LifecycleError>(found)
            })
            .await?;
        let mut withdrawn = Vec::new();
        for (task, comparison, why) in found {
            let alerts = self.alerts.clone();
            let done = self
                .db
                .write(move |conn| withdraw_breaching(conn, &alerts, &task, &comparison, &why))
                .await?;
            withdrawn.extend(done);
        }
        Ok(withdrawn)
    }

    pub async fn run_until_stopped(self) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.run_once().await {
                Ok(done) => {
                    for w in done {
                        tracing::error!(task = %w.task, version = %w.version, why = %w.why, "candidate withdrawn automatically");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, code = e.code(), "candidate guard pass failed")
                }
            }
        }
    }
}

fn withdraw_breaching(
    conn: &mut DbConnection,
    alerts: &AlertConfig,
    task: &str,
    c: &Comparison,
    why: &str,
) -> Result<Option<Withdrawn>, LifecycleError> {
    let version = &c.candidate.version;
    if !store::clear_candidate(conn, task, version, "verdict")? {
        return Ok(None);
    }
    let mode = match c.percent {
        Some(p) => format!("{} at {p} %", c.mode.as_str()),
        None => c.mode.as_str().to_string(),
    };
    let numbers = serde_json::json!({
        "candidate": version, "live": c.live.version, "mode": mode,
        "items compared": c.items, "candidate errors": c.candidate.errors,
        "candidate human agreement": c.candidate.human.rate(),
        "live human agreement": c.live.human.rate(),
        "human verdicts compared": c.candidate.human.compared,
        "candidate forward p99 (us)": c.candidate.forward_p99_us,
    });
    crate::store::audit::record(
        conn,
        "verdict",
        "candidate.withdraw",
        Some(task),
        Some(version),
        serde_json::json!({"candidate": version, "why": format!("automatic: {why}"), "figures": numbers}),
    )?;
    crate::alerts::raise(
        conn,
        alerts,
        &Firing {
            kind: AlertKind::CandidateWithdrawn,
            task: task.to_string(),
            subject: version.clone(),
            severity: Severity::Critical,
            summary: format!(
                "candidate {version} ({mode}) withdrawn automatically: {why}; {} alone serves again",
                c.live.version
            ),
            numbers,
        },
    )?;
    Ok(Some(Withdrawn {
        task: task.to_string(),
        version: version.clone(),
        why: why.to_string(),
    }))
}
