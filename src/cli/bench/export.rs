//! `verdict bench --export N`: fills a database with N labelled items, then
//! runs `verdict export` on it as a user would (a child process writing to
//! standard output) and reports rows per second and the child's peak
//! resident memory.

use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use diesel::prelude::*;

use super::BenchOptions;
use verdict::config::DatabaseSettings;
use verdict::db::schema::reviews;
use verdict::domain::{ItemStatus, QueueReason, ReviewState, VerdictBasis, VerdictSource};
use verdict::store::items::{ItemRow, PredictionRow, VerdictRow};

const TASK: &str = "bench-export";

/// Inserts `n` labelled items: inputs from the demo data, a prediction
/// each, one in four decided by a reviewer (with the review), one in fifty
/// a blind audit sample.
fn fill(db: &verdict::db::Db, inputs: &[String], n: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let at = verdict::domain::now();
    runtime.block_on(async {
        for start in (0..n).step_by(1000) {
            let end = (start + 1000).min(n);
            let mut items = Vec::with_capacity(end - start);
            let mut predictions = Vec::with_capacity(end - start);
            let mut verdicts = Vec::with_capacity(end - start);
            let mut reviews = Vec::new();
            for i in start..end {
                let id = format!("item-{i:08}");
                let human = i % 4 == 0;
                let audit = i % 50 == 1;
                let label = if i % 3 == 0 { "malignant" } else { "benign" };
                items.push(ItemRow {
                    task: TASK.into(),
                    id: id.clone(),
                    input: inputs[i % inputs.len()].clone(),
                    input_sha256: String::new(),
                    status: ItemStatus::Decided,
                    reason: human.then_some(QueueReason::LowConfidence),
                    review_state: if human || audit {
                        ReviewState::Done
                    } else {
                        ReviewState::None
                    },
                    blind: audit,
                    audit,
                    model_version: Some("v1".into()),
                    margin: Some(0.5),
                    sla_deadline: None,
                    created_at: at,
                    decided_at: Some(at),
                    out_of_range: None,
                });
                predictions.push(PredictionRow {
                    task: TASK.into(),
                    item_id: id.clone(),
                    model_version: "v1".into(),
                    label: Some(label.into()),
                    confidence: Some(if human { 0.7 } else { 0.99 }),
                    probabilities: Some(format!(
                        r#"{{"benign":{0},"malignant":{1}}}"#,
                        if label == "benign" { 0.99 } else { 0.01 },
                        if label == "benign" { 0.01 } else { 0.99 }
                    )),
                    error: None,
                    featurise_us: 3,
                    forward_us: 5,
                    policy_us: 1,
                    created_at: at,
                });
                verdicts.push(VerdictRow {
                    task: TASK.into(),
                    item_id: id.clone(),
                    label: label.into(),
                    source: if human {
                        VerdictSource::Human
                    } else {
                        VerdictSource::Model
                    },
                    confidence: (!human).then_some(0.99),
                    model_version: (!human).then(|| "v1".into()),
                    decided_by: human.then(|| "ana".into()),
                    created_at: at,
                    basis: Some(if human {
                        VerdictBasis::Single
                    } else {
                        VerdictBasis::Model
                    }),
                });
                if human || audit {
                    reviews.push((id, label));
                }
            }
            db.write(move |conn| {
                verdict::store::items::insert_rows(conn, &items, &predictions, &verdicts)?;
                for (id, label) in &reviews {
                    diesel::insert_into(reviews::table)
                        .values((
                            reviews::task.eq(TASK),
                            reviews::item_id.eq(id),
                            reviews::reviewer.eq("ana"),
                            reviews::label.eq(*label),
                            reviews::comment.eq(None::<String>),
                            reviews::seconds_spent.eq(4.0),
                            reviews::blind.eq(false),
                            reviews::created_at.eq(at),
                        ))
                        .execute(conn)?;
                }
                Ok::<_, verdict::http::error::AppError>(())
            })
            .await?;
        }
        Ok::<_, verdict::http::error::AppError>(())
    })?;
    Ok(())
}

/// Runs a child to completion and returns its peak resident set in bytes.
fn run_measured(command: &mut Command) -> anyhow::Result<u64> {
    let child = command.spawn().context("cannot start verdict export")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; both pointers are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if waited != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("verdict export failed (status {status})");
    }
    // Linux reports ru_maxrss in KiB.
    Ok(usage.ru_maxrss as u64 * 1024)
}

pub fn run(opts: &BenchOptions, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = opts
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("export.db").display()));
    let inputs = super::demo_inputs(opts)?;
    let settings = DatabaseSettings {
        url: url.clone(),
        ..DatabaseSettings::default()
    };
    let started = Instant::now();
    {
        let db = verdict::db::Db::open(&settings).map_err(anyhow::Error::msg)?;
        fill(&db, &inputs, n)?;
    }
    println!(
        "verdict bench --export: {n} labelled items written in {:.1} s on {url}\n",
        started.elapsed().as_secs_f64()
    );
    let config = dir.path().join("bench-export.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = {url:?}\n\n[models]\ndir = {:?}\n\n[[tasks]]\nname = \"{TASK}\"\nautomation = \"human_only\"\n",
            dir.path().join("models").display().to_string()
        ),
    )?;
    let exe = std::env::current_exe()?;
    for format in ["jsonl", "csv"] {
        for include in ["", "predictions,reviews"] {
            let mut command = Command::new(&exe);
            command
                .args(["--config"])
                .arg(&config)
                .args(["export", "--task", TASK, "--format", format, "--out", "-"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if !include.is_empty() {
                command.args(["--include", include]);
            }
            let timed = Instant::now();
            let peak = run_measured(&mut command)?;
            let secs = timed.elapsed().as_secs_f64();
            println!(
                "export {format:<5} {:<22} {n:>9} rows in {secs:>6.2} s   {:>9.0} rows/s   peak RSS {:>6.1} MB",
                if include.is_empty() { "" } else { "include=predictions,reviews" },
                n as f64 / secs,
                peak as f64 / 1e6
            );
        }
    }
    Ok(())
}
