//! Tasks at run time: each task's configuration, policy and live model.
//! At start-up the configured tasks and the model versions on disk are
//! written to the database, and each task's deployment decides which version
//! is live, so that every instance agrees.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use diesel::prelude::*;

use crate::config::{Settings, TaskConfig};
use crate::db::{Db, DbConnection, DbError};
use crate::ml::{self, LoadedModel};
use crate::policy::Policy;
use crate::store::tasks as store;

pub struct TaskRuntime {
    pub config: TaskConfig,
    pub policy: Policy,
    live: RwLock<Option<Arc<LoadedModel>>>,
}

impl TaskRuntime {
    pub fn name(&self) -> &str {
        self.config.name.as_str()
    }

    /// The live model version, if one is loaded.
    pub fn live(&self) -> Option<Arc<LoadedModel>> {
        self.live.read().expect("live model lock").clone()
    }

    pub fn set_live(&self, model: Option<Arc<LoadedModel>>) {
        *self.live.write().expect("live model lock") = model;
    }

    /// Ready when the task has the model its automation level needs.
    pub fn ready(&self) -> bool {
        !self.config.automation.runs_model() || self.live().is_some()
    }
}

/// Every configured task, by name.
pub struct Registry {
    tasks: HashMap<String, Arc<TaskRuntime>>,
    order: Vec<String>,
    models_dir: std::path::PathBuf,
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
        Ok(Registry {
            tasks,
            order,
            models_dir: settings.models.dir.clone(),
        })
    }

    /// Follows deployment changes made by any instance or the CLI: a task
    /// whose live version in the database differs from the loaded one loads
    /// the new version. On failure the loaded version stays live.
    /// Returns the tasks that switched, with their new version.
    pub fn follow_deployments(
        &self,
        conn: &mut DbConnection,
    ) -> QueryResult<Vec<(String, String)>> {
        let mut switched = Vec::new();
        let rows = store::live_versions(conn)?;
        for (task, version) in rows {
            let (Some(runtime), Some(version)) = (self.tasks.get(&task), version) else {
                continue;
            };
            if runtime.live().is_some_and(|m| m.version() == version) {
                continue;
            }
            let dir = self.models_dir.join(&task).join(&version);
            match LoadedModel::load(&dir) {
                Ok(model) if model.card.task != task => {
                    tracing::error!(
                        task,
                        version,
                        "the deployed model card names another task; not loaded"
                    )
                }
                Ok(model) => match runtime
                    .config
                    .label_thresholds
                    .keys()
                    .find(|l| !model.card.labels.contains(l))
                {
                    Some(label) => tracing::error!(
                        task,
                        version,
                        label,
                        "the deployed model lacks a label the task's thresholds name; not loaded"
                    ),
                    None => {
                        tracing::info!(
                            task,
                            version,
                            "deployment changed: new live model version loaded"
                        );
                        runtime.set_live(Some(Arc::new(model)));
                        switched.push((task.clone(), version.clone()));
                    }
                },
                Err(e) => {
                    tracing::error!(task, version, error = %e, "cannot load the deployed model version")
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

    // Versions on disk.
    let mut loaded: HashMap<String, Arc<LoadedModel>> = HashMap::new();
    let mut newest: Option<String> = None;
    for dir in ml::versions_on_disk(models_dir, name) {
        match LoadedModel::load(&dir) {
            Ok(model) if model.card.task == name => {
                newest = Some(model.version().to_string());
                loaded.insert(model.version().to_string(), Arc::new(model));
            }
            Ok(model) => tracing::error!(
                dir = %dir.display(),
                card_task = %model.card.task,
                "model card names another task; skipped"
            ),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot load model version")
            }
        }
    }

    conn.transaction::<_, anyhow::Error, _>(|conn| {
        store::upsert_task(conn, name, config.automation, &config_json)?;
        for model in loaded.values() {
            store::register_version(
                conn,
                name,
                model.version(),
                &serde_json::to_string(&model.card)?,
                &model.card.training.data_sha256,
            )?;
        }
        Ok(())
    })?;

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
        Some(version) => {
            match loaded.get(version) {
                Some(model) => Some(model.clone()),
                None => {
                    tracing::error!(task = name, version, "the live model version is not in the models directory; items will be queued");
                    None
                }
            }
        }
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
    tracing::info!(task = name, live = ?live_version, versions = loaded.len(), "task loaded");
    Ok(TaskRuntime {
        policy: Policy {
            level: config.automation,
            threshold: config.threshold,
            label_thresholds: config.label_thresholds.clone(),
            audit_rate: config.audit_rate,
            out_of_range: config.out_of_range,
        },
        config: config.clone(),
        live: RwLock::new(live),
    })
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
    conn.transaction(|conn| {
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
    conn.transaction(|conn| {
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
