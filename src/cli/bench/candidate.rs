//! `verdict bench --candidate shadow|canary:N`: runs the scoring scenarios
//! with a candidate beside the live version, as `verdict model import` and
//! `verdict deploy candidate` would set it up: a copy of the live version
//! under another name, imported into the registry and set as the candidate
//! while the server runs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;

use verdict::config::{Settings, Synchronous, TaskConfig};
use verdict::db::DbConnection;
use verdict::domain::CandidateMode;
use verdict::ml::VersionFiles;

use super::client::Connection;

/// The task the scoring scenarios drive.
pub(super) const TASK: &str = "tumor-triage";

/// How the candidate runs: `shadow`, or `canary:N` (N % of items).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Setup {
    pub(super) mode: CandidateMode,
    pub(super) percent: Option<u32>,
}

impl Setup {
    pub(super) fn parse(text: &str) -> anyhow::Result<Setup> {
        match text.split_once(':') {
            None if text == "shadow" => Ok(Setup {
                mode: CandidateMode::Shadow,
                percent: None,
            }),
            Some(("canary", p)) => match p.parse::<u32>() {
                Ok(p @ 1..=100) => Ok(Setup {
                    mode: CandidateMode::Canary,
                    percent: Some(p),
                }),
                _ => bail!("--candidate canary:N takes a percent from 1 to 100, not {p:?}"),
            },
            _ => bail!("--candidate is shadow or canary:N (N % of items), not {text:?}"),
        }
    }

    pub(super) fn describe(&self) -> String {
        match self.percent {
            Some(p) => format!("canary at {p} %"),
            None => "shadow".into(),
        }
    }
}

/// The demo configuration on `url`, as the server under test reads it.
pub(super) fn settings(url: &str, synchronous: Synchronous) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.database.url = url.to_string();
    settings.database.synchronous = synchronous;
    Ok(settings)
}

pub(super) fn task_config(settings: &Settings) -> anyhow::Result<&TaskConfig> {
    settings
        .task(TASK)
        .with_context(|| format!("the configuration has no task {TASK}"))
}

/// The live version's files from the registry, renamed `version` in the
/// card: the same weights, so the two versions score alike and the cost
/// measured is the second model's alone.
fn renamed_copy(
    conn: &mut DbConnection,
    live: &str,
    version: &str,
) -> anyhow::Result<VersionFiles> {
    let Some((card_json, Some(weights), _)) =
        verdict::store::tasks::stored_version(conn, TASK, live)?
    else {
        bail!("the live version {live} has no weights in the registry");
    };
    let mut card: serde_json::Value = serde_json::from_str(&card_json)?;
    card["version"] = serde_json::Value::from(version);
    Ok(VersionFiles {
        card_json: serde_json::to_string_pretty(&card)?,
        weights,
    })
}

/// Imports a renamed copy of the live version and sets it as the candidate
/// (`verdict model import` + `verdict deploy candidate`). Returns the live
/// version and the candidate's.
pub(super) fn set_up(settings: &Settings, setup: Setup) -> anyhow::Result<(String, String)> {
    let config = task_config(settings)?;
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    let live = verdict::tasks::current_live(&mut conn, TASK)?
        .with_context(|| format!("{TASK} has no live version"))?;
    let version = format!("{live}-bench");
    let files = renamed_copy(&mut conn, &live, &version)?;
    verdict::tasks::import_version(&mut conn, config, &files, "bench")?;
    verdict::lifecycle::set_candidate(
        &mut conn,
        config,
        &version,
        setup.mode,
        setup.percent,
        "bench",
        "verdict bench --candidate",
    )?;
    Ok((live, version))
}

/// Waits until the server scores with the candidate: a probe item's
/// second prediction is in `shadow_predictions` (every item has one
/// while a candidate runs, in shadow and in canary).
pub(super) async fn wait_until_running(
    settings: &Settings,
    base: &str,
    token: &str,
    input: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let url = format!("{base}/api/v1/tasks/{TASK}/items");
    let mut client = Connection::open(&url).await?;
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    for probe in 0.. {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the server did not start the candidate within 30 s");
        }
        let id = format!("probe-candidate-{probe}");
        let (status, reply) = client
            .post(&url, token, &format!(r#"{{"id":"{id}","input":{input}}}"#))
            .await?;
        if !(200..300).contains(&status) {
            bail!("probe item refused: {status} {reply}");
        }
        if shadow_count(&mut conn, &id)? > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// Shadow predictions stored for ids matching `pattern` (SQL `LIKE`).
pub(super) fn shadow_count(conn: &mut DbConnection, pattern: &str) -> QueryResult<i64> {
    use verdict::db::schema::shadow_predictions as shadow;
    shadow::table
        .filter(shadow::task.eq(TASK))
        .filter(shadow::item_id.like(pattern))
        .count()
        .get_result(conn)
}
