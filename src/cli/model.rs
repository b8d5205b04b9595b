//! `verdict model`: the model registry in the database. A version is
//! imported once (card and weights, with a content hash); every instance
//! serves those bytes.

use std::path::PathBuf;

use anyhow::Context;

use verdict::config::Settings;
use verdict::ml::{ModelCard, VersionFiles};
use verdict::store::tasks::Imported;

#[derive(clap::Subcommand)]
pub enum ModelCommand {
    /// Import a version directory (`card.json` + `model.safetensors`):
    /// checked that the weights fit the card and the task's live version,
    /// then stored in the database. The same bytes again change nothing.
    Import {
        /// The version directory.
        dir: PathBuf,
        /// The task it is for (default: the one its card names).
        #[arg(long)]
        task: Option<String>,
    },
    /// A task's versions: live, candidate and previous marked, with their
    /// content hash and held-out accuracy.
    List {
        #[arg(long)]
        task: String,
    },
}

pub fn run(settings: &Settings, command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Import { dir, task } => {
            let files = VersionFiles::read(&dir)?;
            let (version, imported) = import(settings, &files, task.as_deref())
                .with_context(|| format!("{} not imported", dir.display()))?;
            let hash = files.content_sha256();
            match imported {
                Imported::Unchanged => println!("{version} was already imported (sha256 {hash})"),
                _ => println!("imported {version} (sha256 {hash}); set it as the candidate or make it live with `verdict deploy`"),
            }
            Ok(())
        }
        ModelCommand::List { task } => list(settings, &task),
    }
}

/// Imports `files` into `task` (or the task its card names).
pub fn import(
    settings: &Settings,
    files: &VersionFiles,
    task: Option<&str>,
) -> anyhow::Result<(String, Imported)> {
    let card: ModelCard = serde_json::from_str(&files.card_json)
        .map_err(|e| anyhow::anyhow!("card.json is not a valid model card: {e}"))?;
    let task = task.unwrap_or(&card.task);
    let config = settings
        .task(task)
        .ok_or_else(|| anyhow::anyhow!("no task named {task:?} in the configuration"))?;
    let mut conn = super::open_store(settings)?;
    Ok(verdict::tasks::import_version(
        &mut conn, config, files, "cli",
    )?)
}

fn list(settings: &Settings, task: &str) -> anyhow::Result<()> {
    super::check_task(settings, task)?;
    let mut conn = super::open_store(settings)?;
    let deployment = verdict::tasks::deployment(&mut conn, task)?;
    let versions = verdict::store::tasks::versions(&mut conn, task)?;
    if versions.is_empty() {
        println!("task {task} has no model versions: import one with `verdict model import DIR`");
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<14} {:<20} {:<26} imported by",
        "version", "role", "sha256", "registered (UTC)", "held-out accuracy"
    );
    for v in versions {
        let role = deployment
            .as_ref()
            .map(|d| {
                if d.live_version.as_deref() == Some(&v.version) {
                    "live".to_string()
                } else if d.candidate_version.as_deref() == Some(&v.version) {
                    format!(
                        "candidate ({})",
                        d.candidate_mode.map(|m| m.as_str()).unwrap_or("shadow")
                    )
                } else if d.previous_version.as_deref() == Some(&v.version) {
                    "previous".to_string()
                } else {
                    String::new()
                }
            })
            .unwrap_or_default();
        let accuracy = serde_json::from_str::<ModelCard>(&v.card)
            .map(|c| verdict::ml::card::accuracy_text(c.metrics.accuracy, c.training.test_rows))
            .unwrap_or_else(|_| "unreadable card".into());
        let hash = v
            .content_sha256
            .as_deref()
            .map(|h| h[..12.min(h.len())].to_string())
            .unwrap_or_else(|| "(no weights)".into());
        println!(
            "{:<24} {:<20} {:<14} {:<20} {:<26} {}",
            v.version,
            role,
            hash,
            v.registered_at.format("%Y-%m-%d %H:%M:%S"),
            accuracy,
            v.imported_by.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
