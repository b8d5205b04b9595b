//! The `tasks`, `model_versions` and `deployments` tables: which tasks and
//! model versions exist, and which version of each task is live.

use diesel::prelude::*;

use crate::db::schema::{deployments, model_versions, tasks};
use crate::db::DbConnection;
use crate::domain::{now, AutomationLevel, Timestamp};

/// Records a configured task (or updates its level and configuration).
pub fn upsert_task(
    conn: &mut DbConnection,
    name: &str,
    automation: AutomationLevel,
    config_json: &str,
) -> QueryResult<()> {
    let at = now();
    let existing: Option<String> = tasks::table
        .select(tasks::name)
        .find(name)
        .get_result(conn)
        .optional()?;
    if existing.is_some() {
        diesel::update(tasks::table.find(name))
            .set((
                tasks::automation.eq(automation),
                tasks::config.eq(config_json),
                tasks::updated_at.eq(at),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(tasks::table)
            .values((
                tasks::name.eq(name),
                tasks::automation.eq(automation),
                tasks::config.eq(config_json),
                tasks::created_at.eq(at),
                tasks::updated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Records a model version of a task once (a known version is left as is).
pub fn register_version(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
    card_json: &str,
    data_sha256: &str,
) -> QueryResult<()> {
    let known: Option<String> = model_versions::table
        .select(model_versions::version)
        .find((task, version))
        .get_result(conn)
        .optional()?;
    if known.is_none() {
        diesel::insert_into(model_versions::table)
            .values((
                model_versions::task.eq(task),
                model_versions::version.eq(version),
                model_versions::card.eq(card_json),
                model_versions::data_sha256.eq(data_sha256),
                model_versions::registered_at.eq(now()),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The live version of a task's deployment.
/// A task's deployment as stored.
#[derive(Debug, Clone, Queryable)]
pub struct DeploymentRow {
    pub live_version: Option<String>,
    pub candidate_version: Option<String>,
    pub candidate_mode: Option<String>,
    pub canary_percent: Option<i32>,
    pub previous_version: Option<String>,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// The task's deployment, if it has one.
pub fn deployment(conn: &mut DbConnection, task: &str) -> QueryResult<Option<DeploymentRow>> {
    deployments::table
        .find(task)
        .select((
            deployments::live_version,
            deployments::candidate_version,
            deployments::candidate_mode,
            deployments::canary_percent,
            deployments::previous_version,
            deployments::updated_at,
            deployments::updated_by,
        ))
        .get_result(conn)
        .optional()
}

/// Whether `version` of `task` is registered.
pub fn version_exists(conn: &mut DbConnection, task: &str, version: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        model_versions::table.find((task, version)),
    ))
    .get_result(conn)
}

pub fn current_live(conn: &mut DbConnection, task: &str) -> QueryResult<Option<String>> {
    Ok(deployments::table
        .select(deployments::live_version)
        .find(task)
        .get_result::<Option<String>>(conn)
        .optional()?
        .flatten())
}

/// Every task's live version.
pub fn live_versions(conn: &mut DbConnection) -> QueryResult<Vec<(String, Option<String>)>> {
    deployments::table
        .select((deployments::task, deployments::live_version))
        .load(conn)
}

/// Makes `version` live and `previous` the previous one (creating the
/// task's deployment on its first use).
pub fn set_live(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
    previous: Option<&str>,
    actor: &str,
) -> QueryResult<()> {
    let at = now();
    let exists = deployments::table
        .select(deployments::task)
        .find(task)
        .get_result::<String>(conn)
        .optional()?
        .is_some();
    if exists {
        diesel::update(deployments::table.find(task))
            .set((
                deployments::live_version.eq(version),
                deployments::previous_version.eq(previous),
                deployments::updated_at.eq(at),
                deployments::updated_by.eq(actor),
            ))
            .execute(conn)?;
    } else {
        diesel::insert_into(deployments::table)
            .values((
                deployments::task.eq(task),
                deployments::live_version.eq(version),
                deployments::updated_at.eq(at),
                deployments::updated_by.eq(actor),
            ))
            .execute(conn)?;
    }
    Ok(())
}
