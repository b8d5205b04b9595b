//! Tasks at run time: each task's configuration, policy and live model.
//! At start-up the configured tasks and the model versions on disk are
//! written to the database, and each task's deployment decides which version
//! is live, so that every instance agrees.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use diesel::prelude::*;

use crate::config::{Settings, TaskConfig};
use crate::db::{Db, DbConnection, DbError};
use crate::domain::CandidateMode;
use crate::ml::{self, LoadedModel, VersionFiles};
use crate::policy::Policy;
use crate::store::tasks as store;

pub struct TaskRuntime {
    pub config: TaskConfig,
    pub policy: Policy,
    serving: RwLock<Serving>,
    /// The loaded versions of the deployment (live, candidate, previous):
    /// a promotion or rollback switches without loading anything.
    warm: Mutex<HashMap<String, Arc<LoadedModel>>>,
}

/// What scores a task's items now: the live version and the candidate
/// beside it. Switched as a whole, so a request sees one deployment.
#[derive(Clone, Default)]
pub struct Serving {
    pub live: Option<Arc<LoadedModel>>,
    pub candidate: Option<Candidate>,
}

/// A candidate version and how it runs.
#[derive(Clone)]
pub struct Candidate {
    pub model: Arc<LoadedModel>,
    pub mode: CandidateMode,
    /// Canary: the share of items (1–100) it decides.
    pub percent: u32,
}

impl Candidate {
    /// Whether the candidate decides item `id`: in canary, when the id's
    /// stable hash falls in the first `percent` of 100 buckets (the same id
    /// always goes to the same version, on every instance).
    pub fn decides(&self, id: &str) -> bool {
        self.mode == CandidateMode::Canary && canary_bucket(id) < self.percent
    }
}

/// The bucket (0–99) of an item id: FNV-1a over its bytes, then the
/// splitmix64 finaliser so that ids differing in their last characters
/// spread evenly. Fixed here, not std's hasher, so it never changes
/// between releases or instances.
pub fn canary_bucket(id: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % 100) as u32
}

impl TaskRuntime {
    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// The live model version, if one is loaded.
    pub fn live(&self) -> Option<Arc<LoadedModel>> {
        self.serving.read().expect("serving lock").live.clone()
    }

    /// The live version and the candidate, as one.
    pub fn serving(&self) -> Serving {
        self.serving.read().expect("serving lock").clone()
    }

    pub fn set_live(&self, model: Option<Arc<LoadedModel>>) {
        self.serving.write().expect("serving lock").live = model;
    }

    fn set_serving(&self, serving: Serving) {
        *self.serving.write().expect("serving lock") = serving;
    }

    /// Ready when the task has the model its automation level needs.
    pub fn ready(&self) -> bool {
        !self.config.automation.runs_model() || self.live().is_some()
    }

    /// `version`, from the warm set or else loaded from the registry and
    /// checked against the task's thresholds.
    fn version(&self, conn: &mut DbConnection, version: &str) -> anyhow::Result<Arc<LoadedModel>> {
        if let Some(model) = self.warm.lock().expect("warm lock").get(version) {
            return Ok(model.clone());
        }
        let model = load_version(conn, self.name(), version)?;
        if model.card.task != self.name() {
            anyhow::bail!("its card names another task, {}", model.card.task);
        }
        if let Some(label) = self
            .config
            .label_thresholds
            .keys()
            .find(|l| !model.card.labels.contains(l))
        {
            anyhow::bail!("it lacks the label {label:?} the task's thresholds name");
        }
        let model = Arc::new(model);
        self.warm
            .lock()
            .expect("warm lock")
            .insert(version.to_string(), model.clone());
        Ok(model)
    }

    /// Makes the loaded deployment match `row`; returns whether the live
    /// version changed. A version that cannot be loaded is logged and the
    /// loaded one stays.
    fn follow(&self, conn: &mut DbConnection, row: &Deployment) -> bool {
        let task = self.name();
        let now = self.serving();
        let mut next = now.clone();
        if let Some(version) = &row.live_version {
            if now.live.as_ref().map(|m| m.version()) != Some(version.as_str()) {
                match self.version(conn, version) {
                    Ok(model) => next.live = Some(model),
                    Err(e) => {
                        tracing::error!(task, version, error = %e, "cannot load the deployed model version; the loaded one stays live")
                    }
                }
            }
        }
        next.candidate = match (&row.candidate_version, row.candidate_mode) {
            (Some(version), Some(mode)) => match self.version(conn, version) {
                Ok(model) => Some(Candidate {
                    model,
                    mode,
                    percent: row.canary_percent.unwrap_or(0).clamp(0, 100) as u32,
                }),
                Err(e) => {
                    tracing::error!(task, version, error = %e, "cannot load the candidate model version; it does not run");
                    None
                }
            },
            _ => None,
        };
        let keep: Vec<&str> = [
            &row.live_version,
            &row.candidate_version,
            &row.previous_version,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        self.warm
            .lock()
            .expect("warm lock")
            .retain(|v, _| keep.contains(&v.as_str()));
        let switched = now.live.as_ref().map(|m| m.version().to_string())
            != next.live.as_ref().map(|m| m.version().to_string());
        let candidate_changed = now
            .candidate
            .as_ref()
            .map(|c| (c.model.version().to_string(), c.mode, c.percent))
            != next
                .candidate
                .as_ref()
                .map(|c| (c.model.version().to_string(), c.mode, c.percent));
        if switched || candidate_changed {
            tracing::info!(
                task,
                live = ?next.live.as_ref().map(|m| m.version()),
                candidate = ?next.candidate.as_ref().map(|c| c.model.version()),
                mode = ?next.candidate.as_ref().map(|c| c.mode.as_str()),
                "deployment changed"
            );
            self.set_serving(next);
        }
        switched
    }
}

/// Every configured task, by name.
pub struct Registry {
    tasks: HashMap<String, Arc<TaskRuntime>>,
    order: Vec<String>,
}

impl Registry {
    pub fn get(&self, name: &str) -> Option<&Arc<TaskRuntime>> {
        self.tasks.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<TaskRuntime>> {
        self.order.iter().map(|n| &self.tasks[n])
    }

    /// Loads the tasks: registers them and their model versions in the
    /// database, creates a deployment where none exists, and loads each live
    /// version. A version that cannot be loaded leaves the task without a
    /// model: its items go to the queue (fail safe) and `/readyz` says so.
    pub fn load(settings: &Settings, conn: &mut DbConnection) -> anyhow::Result<Registry> {
        let mut tasks = HashMap::new();
        let mut order = Vec::new();
        for (i, config) in settings.tasks.iter().enumerate() {
            let runtime = load_task(i, config, &settings.models.dir, conn)?;
            order.push(config.name.as_str().to_string());
            tasks.insert(config.name.as_str().to_string(), Arc::new(runtime));
        }
        Ok(Registry { tasks, order })
    }

    /// Follows deployment changes made by any instance or the CLI: each
    /// task's live version and candidate as the database says. On failure
    /// the loaded version stays live. Returns the tasks whose live version
    /// switched, with their new version.
    pub fn follow_deployments(
        &self,
        conn: &mut DbConnection,
    ) -> QueryResult<Vec<(String, String)>> {
        let mut switched = Vec::new();
        for (task, row) in store::deployments(conn)? {
            let Some(runtime) = self.tasks.get(&task) else {
                continue;
            };
            if runtime.follow(conn, &row) {
                if let Some(version) = row.live_version {
                    switched.push((task, version));
                }
            }
        }
        Ok(switched)
    }
}

fn load_task(
    index: usize,
    config: &TaskConfig,
    models_dir: &Path,
    conn: &mut DbConnection,
) -> anyhow::Result<TaskRuntime> {
    let name = config.name.as_str();
    let config_json = serde_json::json!({
        "threshold": config.threshold,
        "label_thresholds": config.label_thresholds,
        "audit_rate": config.audit_rate,
        "sla_minutes": config.sla_minutes,
        "reviews_required": config.reviews_required,
        "description": config.description,
    })
    .to_string();

    crate::db::write_transaction(conn, |conn| {
        store::upsert_task(conn, name, config.automation, &config_json)
    })?;

    // Versions in the models directory are imported on first sight (the
    // demo model on the first start); the registry serves them from then on.
    let mut newest: Option<String> = None;
    for dir in ml::versions_on_disk(models_dir, name) {
        let imported = VersionFiles::read(&dir)
            .map_err(ImportError::from_load)
            .and_then(|files| import_version(conn, config, &files, "verdict"));
        match imported {
            Ok((version, _)) => newest = Some(version),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "model version not imported")
            }
        }
    }

    let live_version = match current_live(conn, name)? {
        Some(version) => Some(version),
        None => {
            let initial = config.model_version.clone().or(newest);
            if let Some(version) = &initial {
                deploy(
                    conn,
                    name,
                    version,
                    "verdict",
                    "initial deployment at first start",
                )?;
            }
            initial
        }
    };
    let live = match &live_version {
        Some(version) => match load_version(conn, name, version) {
            Ok(model) => Some(Arc::new(model)),
            Err(e) => {
                tracing::error!(task = name, version, error = %e, "the live model version cannot be loaded; items will be queued");
                None
            }
        },
        None => None,
    };
    if let Some(model) = &live {
        for label in config.label_thresholds.keys() {
            if !model.card.labels.contains(label) {
                anyhow::bail!(
                    "invalid configuration: tasks[{index}].label_thresholds.{label}: the model of task {name} has no label {label:?} (labels: {:?})",
                    model.card.labels
                );
            }
        }
    }
    tracing::info!(task = name, live = ?live_version, "task loaded");
    let warm = live
        .iter()
        .map(|m| (m.version().to_string(), m.clone()))
        .collect();
    let runtime = TaskRuntime {
        policy: Policy {
            level: config.automation,
            threshold: config.threshold,
            label_thresholds: config.label_thresholds.clone(),
            audit_rate: config.audit_rate,
            out_of_range: config.out_of_range,
        },
        config: config.clone(),
        serving: RwLock::new(Serving {
            live,
            candidate: None,
        }),
        warm: Mutex::new(warm),
    };
    // The candidate, if the deployment has one.
    if let Some(row) = store::deployment(conn, name)? {
        runtime.follow(conn, &row);
    }
    Ok(runtime)
}

/// Follows deployment changes made by any instance or the CLI: a plain job
/// (STYLE.md, Background jobs) that startup runs every `every`.
pub struct DeploymentFollower {
    db: Db,
    tasks: Arc<Registry>,
    every: Duration,
}

impl DeploymentFollower {
    pub fn new(db: Db, tasks: Arc<Registry>, every: Duration) -> Self {
        DeploymentFollower { db, tasks, every }
    }

    /// One look at the deployments; returns the tasks that switched to a
    /// new live version.
    #[tracing::instrument(name = "deployment_follower", skip_all)]
    pub async fn run_once(&self) -> Result<Vec<(String, String)>, DbError> {
        let tasks = self.tasks.clone();
        self.db
            .read(move |conn| Ok(tasks.follow_deployments(conn)?))
            .await
    }

    /// Loops [`DeploymentFollower::run_once`] every `every`.
    pub async fn run_until_stopped(self) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "cannot read deployments");
            }
        }
    }
}

/// The live version of a task's deployment.
pub fn current_live(conn: &mut DbConnection, task: &str) -> QueryResult<Option<String>> {
    store::current_live(conn, task)
}

/// Makes `version` live; the old live version becomes `previous`. Written to
/// the audit log with who and why.
pub use crate::store::tasks::DeploymentRow as Deployment;

/// The task's deployment: live, previous, candidate.
pub fn deployment(conn: &mut DbConnection, task: &str) -> QueryResult<Option<Deployment>> {
    store::deployment(conn, task)
}

/// Makes the previous version live again (the live one becomes
/// previous, so a second rollback undoes the first), with its audit entry.
/// Returns the version now live; `None` when there is no previous version.
/// Every instance loads it within `[server] deployment_poll_ms`.
pub fn rollback(
    conn: &mut DbConnection,
    task: &str,
    actor: &str,
    why: &str,
) -> QueryResult<Option<String>> {
    crate::db::write_transaction(conn, |conn| {
        let Some(current) = store::deployment(conn, task)? else {
            return Ok(None);
        };
        let (Some(live), Some(previous)) = (current.live_version, current.previous_version) else {
            return Ok(None);
        };
        store::set_live(conn, task, &previous, Some(&live), actor)?;
        crate::store::audit::record(
            conn,
            actor,
            "rollback",
            Some(task),
            Some(&previous),
            serde_json::json!({"live": previous, "previous": live, "why": why}),
        )?;
        Ok(Some(previous))
    })
}

pub fn deploy(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
    actor: &str,
    why: &str,
) -> QueryResult<()> {
    crate::db::write_transaction(conn, |conn| {
        let previous = store::current_live(conn, task)?;
        store::set_live(conn, task, version, previous.as_deref(), actor)?;
        crate::store::audit::record(
            conn,
            actor,
            "deploy",
            Some(task),
            Some(version),
            serde_json::json!({"live": version, "previous": previous, "why": why}),
        )
    })
}

/// Why a model version was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The files are corrupt, or do not fit each other or the task.
    #[error("{0}")]
    Invalid(String),
    #[error("version {version} of task {task} is already registered with other content; versions never change: import it under a new version name")]
    Conflict { task: String, version: String },
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

impl ImportError {
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Invalid(_) => "invalid_model",
            ImportError::Conflict { .. } => "version_exists",
            ImportError::Db(_) => "database",
        }
    }

    fn from_load(e: anyhow::Error) -> ImportError {
        ImportError::Invalid(format!("{e:#}"))
    }
}

/// Whether `model` can serve `config`'s task beside `live`: its card names
/// the task and it reads
/// the same features and gives the same labels as the live version (so
/// the two score the same inputs and their verdicts compare).
pub fn check_fits(
    config: &TaskConfig,
    model: &LoadedModel,
    live: Option<&LoadedModel>,
) -> Result<(), String> {
    let name = config.name.as_str();
    let card = &model.card;
    if card.task != name {
        return Err(format!(
            "the card is for task {:?}, not {name:?}",
            card.task
        ));
    }
    let Some(live) = live else { return Ok(()) };
    let names = |m: &LoadedModel| {
        let mut v: Vec<String> = m.card.features.iter().map(|f| f.name.clone()).collect();
        v.sort();
        v
    };
    let (new, old) = (names(model), names(live));
    if new != old {
        let extra: Vec<&String> = new.iter().filter(|f| !old.contains(f)).collect();
        let missing: Vec<&String> = old.iter().filter(|f| !new.contains(f)).collect();
        return Err(format!(
            "the feature list differs from the live version {}'s: reads {extra:?} it does not, lacks {missing:?}",
            live.version()
        ));
    }
    let mut new_labels = card.labels.clone();
    let mut old_labels = live.card.labels.clone();
    new_labels.sort();
    old_labels.sort();
    if new_labels != old_labels {
        return Err(format!(
            "the labels {:?} differ from the live version {}'s {:?}",
            card.labels,
            live.version(),
            live.card.labels
        ));
    }
    Ok(())
}

/// Imports a version's files into the registry once checked: the card
/// parses and is consistent, the weights fit it and run, and it fits the
/// task and the live version ([`check_fits`]). Returns the version and
/// what the import did; the same bytes again change nothing.
pub fn import_version(
    conn: &mut DbConnection,
    config: &TaskConfig,
    files: &VersionFiles,
    actor: &str,
) -> Result<(String, store::Imported), ImportError> {
    let model = files.load().map_err(ImportError::from_load)?;
    let task = config.name.as_str();
    let live = current_live(conn, task)?
        .filter(|v| *v != model.card.version)
        .and_then(|v| load_version(conn, task, &v).ok());
    check_fits(config, &model, live.as_ref()).map_err(ImportError::Invalid)?;
    let version = model.card.version.clone();
    let hash = files.content_sha256();
    let imported = crate::db::write_transaction(conn, |conn| {
        store::import_version(
            conn,
            &store::VersionRecord {
                task,
                version: &version,
                card_json: &files.card_json,
                data_sha256: &model.card.training.data_sha256,
                weights: &files.weights,
                content_sha256: &hash,
                imported_by: actor,
            },
        )
    })?;
    if imported == store::Imported::Conflict {
        return Err(ImportError::Conflict {
            task: task.to_string(),
            version,
        });
    }
    Ok((version, imported))
}

/// A registered version, loaded from the bytes the registry holds (their
/// content hash checked again).
pub fn load_version(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
) -> anyhow::Result<LoadedModel> {
    let Some((card_json, weights, hash)) = store::stored_version(conn, task, version)? else {
        anyhow::bail!("task {task} has no version {version:?}");
    };
    let (Some(weights), Some(hash)) = (weights, hash) else {
        anyhow::bail!(
            "version {version} of {task} was registered before the registry kept weights: import its directory with `verdict model import`"
        );
    };
    let files = VersionFiles { card_json, weights };
    if files.content_sha256() != hash {
        anyhow::bail!(
            "version {version} of {task}: the stored bytes do not match their content hash {hash}"
        );
    }
    files.load()
}
