//! The `tasks`, `model_versions` and `deployments` tables: which tasks and
//! model versions exist, and which version of each task is live.

use diesel::prelude::*;

use crate::db::schema::{deployments, model_versions, tasks};
use crate::db::DbConnection;
use crate::domain::{now, AutomationLevel, CandidateMode, Timestamp};

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

/// A model version as the registry holds it.
pub struct VersionRecord<'a> {
    pub task: &'a str,
    pub version: &'a str,
    pub card_json: &'a str,
    pub data_sha256: &'a str,
    pub weights: &'a [u8],
    pub content_sha256: &'a str,
    pub imported_by: &'a str,
}

/// What importing a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// A new version.
    Added,
    /// Known by name before the registry kept weights: they are kept now.
    Completed,
    /// The same bytes were already imported.
    Unchanged,
    /// The version exists with other content (versions never change).
    Conflict,
}

/// Imports a version: added once, never changed afterwards.
pub fn import_version(conn: &mut DbConnection, v: &VersionRecord) -> QueryResult<Imported> {
    let known: Option<Option<String>> = model_versions::table
        .select(model_versions::content_sha256)
        .find((v.task, v.version))
        .get_result(conn)
        .optional()?;
    match known {
        Some(Some(hash)) if hash == v.content_sha256 => Ok(Imported::Unchanged),
        Some(Some(_)) => Ok(Imported::Conflict),
        Some(None) => {
            diesel::update(model_versions::table.find((v.task, v.version)))
                .set((
                    model_versions::card.eq(v.card_json),
                    model_versions::data_sha256.eq(v.data_sha256),
                    model_versions::weights.eq(v.weights),
                    model_versions::content_sha256.eq(v.content_sha256),
                    model_versions::imported_by.eq(v.imported_by),
                ))
                .execute(conn)?;
            Ok(Imported::Completed)
        }
        None => {
            diesel::insert_into(model_versions::table)
                .values((
                    model_versions::task.eq(v.task),
                    model_versions::version.eq(v.version),
                    model_versions::card.eq(v.card_json),
                    model_versions::data_sha256.eq(v.data_sha256),
                    model_versions::registered_at.eq(now()),
                    model_versions::weights.eq(v.weights),
                    model_versions::content_sha256.eq(v.content_sha256),
                    model_versions::imported_by.eq(v.imported_by),
                ))
                .execute(conn)?;
            Ok(Imported::Added)
        }
    }
}

/// A version's card text, weights and content hash (`None` for the
/// weights and hash of a version registered before the registry kept them).
pub type StoredVersion = (String, Option<Vec<u8>>, Option<String>);

pub fn stored_version(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
) -> QueryResult<Option<StoredVersion>> {
    model_versions::table
        .find((task, version))
        .select((
            model_versions::card,
            model_versions::weights,
            model_versions::content_sha256,
        ))
        .get_result(conn)
        .optional()
}

/// A registered version, without its weights.
#[derive(Debug, Clone, Queryable)]
pub struct VersionListing {
    pub version: String,
    pub card: String,
    pub registered_at: Timestamp,
    pub content_sha256: Option<String>,
    pub imported_by: Option<String>,
}

/// The task's versions, oldest first.
pub fn versions(conn: &mut DbConnection, task: &str) -> QueryResult<Vec<VersionListing>> {
    model_versions::table
        .filter(model_versions::task.eq(task))
        .order((model_versions::registered_at, model_versions::version))
        .select((
            model_versions::version,
            model_versions::card,
            model_versions::registered_at,
            model_versions::content_sha256,
            model_versions::imported_by,
        ))
        .load(conn)
}

/// The live version of a task's deployment.
/// A task's deployment as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deployments)]
pub struct DeploymentRow {
    pub live_version: Option<String>,
    pub candidate_version: Option<String>,
    pub candidate_mode: Option<CandidateMode>,
    pub canary_percent: Option<i32>,
    pub previous_version: Option<String>,
    pub updated_at: Timestamp,
    pub updated_by: String,
    pub candidate_since: Option<Timestamp>,
}

/// The task's deployment, if it has one.
pub fn deployment(conn: &mut DbConnection, task: &str) -> QueryResult<Option<DeploymentRow>> {
    deployments::table
        .find(task)
        .select(DeploymentRow::as_select())
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

/// Every task's deployment: what each instance follows.
pub fn deployments(conn: &mut DbConnection) -> QueryResult<Vec<(String, DeploymentRow)>> {
    deployments::table
        .select((deployments::task, DeploymentRow::as_select()))
        .load(conn)
}

/// Sets the task's candidate and how it runs; `since` starts its
/// comparisons (kept when only the mode changes).
pub fn set_candidate(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
    mode: CandidateMode,
    percent: Option<i32>,
    since: Timestamp,
    actor: &str,
) -> QueryResult<usize> {
    diesel::update(deployments::table.find(task))
        .set((
            deployments::candidate_version.eq(version),
            deployments::candidate_mode.eq(mode),
            deployments::canary_percent.eq(percent),
            deployments::candidate_since.eq(since),
            deployments::updated_at.eq(now()),
            deployments::updated_by.eq(actor),
        ))
        .execute(conn)
}

/// Clears the candidate if it is still `version`; returns whether it was.
pub fn clear_candidate(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
    actor: &str,
) -> QueryResult<bool> {
    let cleared = diesel::update(
        deployments::table
            .find(task)
            .filter(deployments::candidate_version.eq(version)),
    )
    .set((
        deployments::candidate_version.eq(None::<String>),
        deployments::candidate_mode.eq(None::<CandidateMode>),
        deployments::canary_percent.eq(None::<i32>),
        deployments::candidate_since.eq(None::<Timestamp>),
        deployments::updated_at.eq(now()),
        deployments::updated_by.eq(actor),
    ))
    .execute(conn)?;
    Ok(cleared == 1)
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
