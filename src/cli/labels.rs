//! `verdict export` and `verdict dataset`: the export of the API, from the
//! command line, with a progress bar on standard error.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};

use verdict::config::Settings;
use verdict::db::DbConnection;
use verdict::export::snapshot::{self, SnapshotRow};
use verdict::export::{Encoder, ExportError, Page, Request, Summary};
use verdict::ml::train::TrainOptions;
use verdict::store::{labels, snapshots};

use super::{check_task, open_store as connect};

/// The input fields in the live model's order, read from its card.
fn columns(conn: &mut DbConnection, task: &str) -> Option<Vec<String>> {
    let version = verdict::tasks::current_live(conn, task).ok()??;
    let (card, _, _) = verdict::store::tasks::stored_version(conn, task, &version).ok()??;
    let card: verdict::ml::ModelCard = serde_json::from_str(&card).ok()?;
    Some(card.features.into_iter().map(|f| f.name).collect())
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} rows  {per_sec}  eta {eta}")
            .expect("a valid template"),
    );
    bar
}

fn run_with_progress(
    settings: &Settings,
    task: &str,
    request: &Request,
    write: impl FnOnce(
        &mut Encoder,
        &mut dyn FnMut(Option<&str>, i64) -> Result<Page, ExportError>,
        &mut dyn FnMut(u64),
    ) -> anyhow::Result<u64>,
) -> anyhow::Result<u64> {
    check_task(settings, task)?;
    let mut conn = connect(settings)?;
    let total = labels::count(&mut conn, task, &request.filter)? as u64;
    let mut encoder = Encoder::new(request.format, &request.filter, columns(&mut conn, task));
    let bar = progress_bar(total);
    let started = std::time::Instant::now();
    let mut fetch = |after: Option<&str>, limit: i64| {
        Ok(labels::page(
            &mut conn,
            task,
            &request.filter,
            after,
            limit,
        )?)
    };
    let rows = write(&mut encoder, &mut fetch, &mut |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{rows} rows in {seconds:.1} s ({:.0} rows/s)",
        rows as f64 / seconds.max(1e-9)
    );
    Ok(rows)
}

/// Writes the export to `out` (`-`: standard output). A file appears only
/// when complete.
pub fn export(
    settings: &Settings,
    task: &str,
    request: &Request,
    out: &Path,
) -> anyhow::Result<Summary> {
    let rows = run_with_progress(settings, task, request, |encoder, fetch, progress| {
        if out == Path::new("-") {
            let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let summary = verdict::export::run(request, encoder, fetch, &mut stdout, progress)?;
            return Ok(summary.rows);
        }
        let partial = out.with_file_name(format!(
            ".{}.partial",
            out.file_name()
                .context("--out names a file")?
                .to_string_lossy()
        ));
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut writer = std::io::BufWriter::with_capacity(256 * 1024, file);
        let result = verdict::export::run(request, encoder, fetch, &mut writer, progress)
            .map_err(anyhow::Error::from)
            .and_then(|summary| {
                writer.flush()?;
                std::fs::rename(&partial, out)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                Ok(summary.rows)
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    })?;
    Ok(Summary { rows })
}

/// Writes and records a snapshot.
pub fn snapshot(
    settings: &Settings,
    task: &str,
    name: &str,
    request: &Request,
    created_by: &str,
) -> anyhow::Result<SnapshotRow> {
    snapshot::check_new(&mut connect(settings)?, task, name)?;
    let mut row = None;
    run_with_progress(settings, task, request, |encoder, fetch, progress| {
        let written = snapshot::write_file(
            &settings.datasets.dir,
            task,
            name,
            request,
            encoder,
            fetch,
            created_by,
            progress,
        )?;
        let rows = written.row_count as u64;
        row = Some(written);
        Ok(rows)
    })?;
    let row = row.expect("written");
    let mut conn = connect(settings)?;
    if let Err(e) = snapshot::record(&mut conn, &row) {
        let _ = std::fs::remove_file(&row.path);
        return Err(e.into());
    }
    Ok(row)
}

pub fn list(settings: &Settings, task: Option<&str>) -> anyhow::Result<Vec<SnapshotRow>> {
    let mut conn = connect(settings)?;
    Ok(snapshots::list(&mut conn, task)?)
}

/// `verdict train --data NAME`: a snapshot's name stands for its file. A
/// file that is a snapshot (by content hash) is recorded as one too. A
/// snapshot file that changed since it was taken is refused.
pub fn resolve_training_data(settings: &Settings, opts: &mut TrainOptions) -> anyhow::Result<()> {
    let Some(data) = opts.data.clone() else {
        bail!("--data names the training data");
    };
    let mut conn = match connect(settings) {
        Ok(conn) => conn,
        Err(e) if data.exists() => {
            tracing::warn!(error = %e, "no database: the model card will not name a snapshot");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let found = find_snapshot(&mut conn, &opts.task, &data)?;
    if let Some(row) = &found {
        opts.data = Some(row.path.clone().into());
    }
    opts.snapshot = found.map(|s| s.name);
    Ok(())
}

/// The snapshot `data` names or is: a snapshot's name stands for its file
/// (refused if the file changed since it was taken); a file that is a
/// snapshot of `task` by content hash is that snapshot; any other file is
/// none.
pub fn find_snapshot(
    conn: &mut DbConnection,
    task: &str,
    data: &Path,
) -> anyhow::Result<Option<SnapshotRow>> {
    let name = data.to_string_lossy().into_owned();
    if data.exists() {
        let sha = snapshot::sha256_file(data)
            .with_context(|| format!("cannot read {}", data.display()))?;
        return Ok(snapshots::by_sha256(conn, &sha)?.filter(|s| s.task == task));
    }
    let row = snapshots::find(conn, task, &name)?.with_context(|| {
        format!("{name:?} is neither a file nor a dataset snapshot of task {task:?}")
    })?;
    let sha = snapshot::sha256_file(Path::new(&row.path))
        .with_context(|| format!("cannot read snapshot file {}", row.path))?;
    if sha != row.sha256 {
        bail!(
            "snapshot {name:?} ({}) has changed since it was taken: its SHA-256 is {sha}, recorded {}",
            row.path,
            row.sha256
        );
    }
    Ok(Some(row))
}
