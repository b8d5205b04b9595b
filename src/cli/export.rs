//! `verdict export`: a task's labels as JSONL or CSV, with a progress bar.

use std::path::PathBuf;

use verdict::config::Settings;

/// Which labels to export and how (shared with `verdict dataset snapshot`).
#[derive(clap::Args)]
pub struct ExportFilter {
    #[arg(long)]
    pub task: String,
    /// jsonl or csv.
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Verdicts given at or after this time (RFC 3339 or a date).
    #[arg(long)]
    since: Option<String>,
    /// Verdicts given before this time (RFC 3339 or a date).
    #[arg(long)]
    until: Option<String>,
    /// human, model or all.
    #[arg(long)]
    source: Option<String>,
    /// audit, uncertain or all.
    #[arg(long)]
    kind: Option<String>,
    /// Extra detail per row: predictions, reviews (comma-separated).
    #[arg(long)]
    include: Option<String>,
}

impl ExportFilter {
    /// The export request these options describe, checked as the API checks
    /// its query.
    pub fn request(&self, after: Option<String>) -> anyhow::Result<verdict::export::Request> {
        let params = verdict::export::Params {
            format: Some(self.format.clone()),
            since: self.since.clone(),
            until: self.until.clone(),
            source: self.source.clone(),
            kind: self.kind.clone(),
            include: self.include.clone(),
            after,
        };
        Ok(params.parse(verdict::export::Format::Jsonl)?)
    }
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: ExportFilter,
    /// Resume after this item id.
    #[arg(long)]
    after: Option<String>,
    /// The file to write; `-` for standard output.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(settings: &Settings, args: ExportArgs) -> anyhow::Result<()> {
    let request = args.filter.request(args.after)?;
    super::labels::export(settings, &args.filter.task, &request, &args.out)?;
    Ok(())
}
