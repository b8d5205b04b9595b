//! `verdict score`: batch scoring of a CSV or JSONL file through the same
//! policy and store as the API, a chunk per transaction, with a progress
//! bar; one result line per item in `--out`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use verdict::batch::{self, BatchError, FileReader, Format, Run};
use verdict::config::Settings;
use verdict::db::Db;
use verdict::monitoring::{MetricsFlusher, Recorder};
use verdict::tasks::Registry;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// The task whose live model and policy score the items.
    #[arg(long)]
    task: String,
    /// The items: CSV (a header row with the id column and every feature
    /// of the model) or JSONL (one `{"id": …, "input": {…}}` per line).
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// Where each item's result goes, one JSON document per line in input
    /// order (what the API returns for it); `-` for standard output.
    #[arg(long, value_name = "RESULTS.jsonl")]
    out: PathBuf,
    /// csv or jsonl (default: from the input's extension).
    #[arg(long)]
    format: Option<String>,
    /// The CSV column that holds each item's id (its idempotency key: a
    /// re-run finds the items already stored and resumes).
    #[arg(long, default_value = "id")]
    id_column: String,
    /// Items per chunk: each chunk is stored in one transaction, and a bad
    /// row refuses its whole chunk.
    #[arg(long, default_value_t = batch::DEFAULT_CHUNK_ROWS)]
    chunk: usize,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(settings: &Settings, args: ScoreArgs) -> anyhow::Result<()> {
    super::check_task(settings, &args.task)?;
    let format = match &args.format {
        Some(f) => Format::parse(f)
            .with_context(|| format!("--format: expected csv or jsonl, got {f:?}"))?,
        None => Format::of_path(&args.input).with_context(|| {
            format!(
                "cannot tell the format of {} from its extension: give --format csv or jsonl",
                args.input.display()
            )
        })?,
    };
    let rows = count_rows(&args.input, format)?;
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let reader = FileReader::open(file, format, &args.id_column)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", args.input.display(), e.line, e.message))?;
    let mut out: Box<dyn Write + Send> = if args.out.as_os_str() == "-" {
        Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        ))
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    };

    // A few large commits: a page cache that holds a chunk's pages.
    let mut database = settings.database.clone();
    database.writer_cache_mb = database
        .writer_cache_mb
        .max(verdict::config::BATCH_WRITER_CACHE_MB);
    let db = Db::open(&database).map_err(anyhow::Error::msg)?;
    let mut conn = db.get()?;
    let registry = Registry::load(settings, &mut conn)?;
    drop(conn);
    let task = registry
        .get(&args.task)
        .cloned()
        .with_context(|| format!("no task named {:?}", args.task))?;
    if !task.ready() {
        anyhow::bail!(
            "task {:?} has no live model version to score with (verdict deploy)",
            args.task
        );
    }
    let recorder = Arc::new(Recorder::new(settings.monitoring.enabled));
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(rows)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{wide_bar} {human_pos}/{human_len} items scored  {per_sec}  {elapsed} (eta {eta})",
        )
        .expect("a valid template"),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut run = Run::new(db.clone(), recorder.clone(), task, reader, args.chunk);
    // The results are written by a thread of their own, so the next chunk
    // is stored while the one before is serialised.
    let (chunks, received) = std::sync::mpsc::sync_channel::<batch::Scored>(2);
    let output = std::thread::Builder::new()
        .name("verdict-results".into())
        .spawn(move || -> std::io::Result<()> {
            let mut buf = Vec::with_capacity(1 << 22);
            for scored in received {
                buf.clear();
                scored.jsonl(&mut buf);
                out.write_all(&buf)?;
            }
            out.flush()
        })?;
    let outcome = runtime.block_on(async {
        loop {
            match run.next().await {
                Ok(Some(scored)) => {
                    if chunks.send(scored).is_err() {
                        // The thread stopped on a write error, joined below.
                        return None;
                    }
                    bar.set_position(run.tally.scored);
                }
                Ok(None) => return None,
                Err(e) => return Some(e),
            }
        }
    });
    drop(chunks);
    output
        .join()
        .map_err(|_| anyhow::anyhow!("the results thread panicked"))?
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    bar.finish_and_clear();
    let flusher = MetricsFlusher::new(
        db,
        recorder,
        std::time::Duration::from_secs(1),
        settings.monitoring.retention_days,
    );
    if let Err(e) = runtime.block_on(flusher.flush()) {
        tracing::error!(error = %e, "the metrics of the run were not stored");
    }

    let t = run.tally;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} items scored in {secs:.1} s ({:.0} items/s): {} new, {} decided by the model, {} queued for review",
        t.scored,
        t.scored as f64 / secs.max(1e-9),
        t.created,
        t.automated,
        t.queued,
    );
    match outcome {
        None => Ok(()),
        Some(BatchError::Row(e)) => {
            let field = if e.field.is_empty() {
                String::new()
            } else {
                format!(" ({})", e.field)
            };
            anyhow::bail!(
                "{}:{}: {}{field} [{}]; its chunk of up to {} rows was not written ({} rows refused), the {} items before it were; fix the row and run again to resume",
                args.input.display(),
                e.line,
                e.message,
                e.code,
                args.chunk,
                t.refused,
                t.scored
            )
        }
        Some(e) => Err(e.into()),
    }
}

/// The rows of a file for the progress bar: its lines (less the header,
/// and blank lines of JSONL); a CSV with quoted line breaks counts high.
fn count_rows(path: &std::path::Path, format: Format) -> anyhow::Result<u64> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let (mut rows, mut last) = (0u64, b'\n');
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        for &b in buf {
            if b == b'\n' && last != b'\n' {
                rows += 1;
            }
            last = b;
        }
        let n = buf.len();
        reader.consume(n);
    }
    if last != b'\n' {
        rows += 1;
    }
    Ok(match format {
        Format::Csv => rows.saturating_sub(1),
        Format::Jsonl => rows,
    })
}
