//! `verdict dataset`: named, immutable exports that model cards cite.

use clap::Subcommand;

use super::export::ExportFilter;
use verdict::config::Settings;

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Freeze an export under a name (never overwritten).
    Snapshot {
        #[command(flatten)]
        filter: ExportFilter,
        #[arg(long)]
        name: String,
    },
    /// List snapshots.
    List {
        #[arg(long)]
        task: Option<String>,
    },
}

pub fn run(settings: &Settings, command: DatasetCommand) -> anyhow::Result<()> {
    match command {
        DatasetCommand::Snapshot { filter, name } => {
            let request = filter.request(None)?;
            let row = super::labels::snapshot(settings, &filter.task, &name, &request, "cli")?;
            println!(
                "snapshot {:?} of {}: {} rows, sha256 {}\n  {}",
                row.name, row.task, row.row_count, row.sha256, row.path
            );
            println!(
                "train from it with: verdict train --task {} --data {}",
                row.task, row.name
            );
        }
        DatasetCommand::List { task } => {
            for row in super::labels::list(settings, task.as_deref())? {
                println!(
                    "{:<16} {:<24} {:>9} rows  {}  {}  {}",
                    row.task,
                    row.name,
                    row.row_count,
                    row.format,
                    &row.sha256[..12],
                    verdict::domain::rfc3339(&row.created_at)
                );
            }
        }
    }
    Ok(())
}
