//! `verdict bench`: starts `verdict serve` as a child process on a fresh
//! database, drives the scoring API over loopback, kills the server with
//! SIGKILL and checks on restart that every acknowledged item survived.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use diesel::prelude::*;

use verdict::config::Synchronous;

mod candidate;
mod client;
mod dashboard;
mod export;
mod queue;
mod scenario;
mod server;
mod switch;

use queue::run_queue;
use scenario::{scenario, Load};
use server::start_server;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrency levels for single-item requests (0: none).
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub concurrency: Vec<usize>,
    /// Items per request in the batch scenario.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Also run single-item scenarios paced at this many requests per
    /// second in all (latency counted from each request's scheduled time, so
    /// a stall is not hidden by the requests it delayed).
    #[arg(long, value_delimiter = ',', default_value = "5000")]
    pub rate: Vec<u32>,
    /// List on stderr every request at least this slow (ms), with the time
    /// it was answered, after each scenario: to find what made the tail in
    /// the server's log (`VERDICT_BENCH_LOG=warn,verdict::db=debug`).
    #[arg(long)]
    pub slow_ms: Option<f64>,
    /// Concurrency of the paced scenarios.
    #[arg(long, default_value_t = 32)]
    pub rate_concurrency: usize,
    /// Concurrent requests in the batch scenario (0: no batch scenario).
    #[arg(long, default_value_t = 4)]
    pub batch_concurrency: usize,
    /// SQLite `synchronous`: normal (survives kill -9) or full (survives
    /// power loss too).
    #[arg(long, default_value = "normal")]
    pub synchronous: String,
    /// `on` (the default) or `off`: the server's metrics recorder and drift
    /// monitor (to measure what monitoring costs).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub monitoring: String,
    /// Benchmark this database instead of a fresh SQLite file (it must be
    /// empty of `bench-` items).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Data rows to send (CSV in scikit-learn's bundled format).
    #[arg(long, default_value = "data/breast_cancer.csv")]
    pub data: PathBuf,
    #[arg(long, default_value = "data/breast_cancer.features.txt")]
    pub feature_names: PathBuf,
    /// Measure the review queue instead: claim and label with this many
    /// items queued (in-process, against the database directly).
    #[arg(long)]
    pub queue: Option<usize>,
    /// Concurrent reviewers in the queue benchmark.
    #[arg(long, default_value_t = 8)]
    pub reviewers: usize,
    /// Claim-and-label rounds in the queue benchmark.
    #[arg(long, default_value_t = 4000)]
    pub rounds: usize,
    /// Queue benchmark: pace the reviewers at this many rounds per second in
    /// all (an open load, as people make it; latency counted from each
    /// round's scheduled time). Without it reviewers go back to back.
    #[arg(long)]
    pub pace: Option<f64>,
    /// Measure the label export instead: write this many labelled items,
    /// then time `verdict export` over them and report its peak memory.
    #[arg(long)]
    pub export: Option<usize>,
    /// Measure the dashboard instead: fill a database with a week of this
    /// many items of the demo task (with their minute buckets, reviews and
    /// drift evaluations), serve it, and time the dashboard pages over HTTP.
    #[arg(long)]
    pub dashboard: Option<usize>,
    /// Score with a candidate beside the live version: `shadow` (both score
    /// every item) or `canary:N` (the candidate decides N % of items). The
    /// bench imports a copy of the live version under another name and sets
    /// it as the candidate before the scenarios, as `verdict model import`
    /// and `verdict deploy candidate` would.
    #[arg(long)]
    pub candidate: Option<String>,
    /// Measure how long a promotion and a rollback take to reach every
    /// instance instead: two servers on one database, this many
    /// promote-then-rollback cycles while both score items.
    #[arg(long)]
    pub switch: Option<usize>,
    /// Items per second in all (single-item requests, both instances)
    /// while `--switch` changes the deployment.
    #[arg(long, default_value_t = 1000)]
    pub switch_rate: u32,
}

/// The rows of the benchmark's data file as API inputs (JSON objects).
fn demo_inputs(opts: &BenchOptions) -> anyhow::Result<Vec<String>> {
    let dataset = verdict::ml::train::read_dataset(&opts.data, Some(&opts.feature_names), "label")?;
    Ok(dataset
        .x
        .iter()
        .map(|row| {
            let map: serde_json::Map<String, serde_json::Value> = dataset
                .features
                .iter()
                .cloned()
                .zip(row.iter().map(|&v| serde_json::Value::from(v)))
                .collect();
            serde_json::Value::Object(map).to_string()
        })
        .collect())
}

pub fn run(opts: BenchOptions) -> anyhow::Result<()> {
    if let Some(n) = opts.export {
        return export::run(&opts, n);
    }
    if let Some(n) = opts.dashboard {
        return dashboard::run(&opts, n);
    }
    if let Some(cycles) = opts.switch {
        return switch::run(&opts, cycles);
    }
    if let Some(queued) = opts.queue {
        let dir = tempfile::tempdir()?;
        let url = opts
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("queue.db").display()));
        let synchronous = if opts.synchronous == "full" {
            Synchronous::Full
        } else {
            Synchronous::Normal
        };
        return run_queue(&opts, queued, &url, synchronous);
    }
    let rows: Arc<Vec<String>> = Arc::new(demo_inputs(&opts)?);
    let dir = tempfile::tempdir()?;
    let url = opts
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let synchronous = match opts.synchronous.as_str() {
        "normal" => Synchronous::Normal,
        "full" => Synchronous::Full,
        other => bail!("--synchronous is normal or full, not {other:?}"),
    };
    let setup = opts
        .candidate
        .as_deref()
        .map(candidate::Setup::parse)
        .transpose()?;
    let settings = candidate::settings(&url, synchronous)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut server = start_server(&url, &opts.synchronous, opts.monitoring == "on").await?;
        let token = server
            .token
            .clone()
            .context("the server printed no API token: use an empty database")?;
        println!(
            "verdict bench: {} cores, database {url} (synchronous = {}), {} s per scenario, client and server on this machine",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            opts.synchronous,
            opts.seconds
        );
        match setup {
            Some(setup) => {
                let (live, version) = candidate::set_up(&settings, setup)?;
                let waited =
                    candidate::wait_until_running(&settings, &server.base, &token, &rows[0])
                        .await?;
                println!(
                    "candidate {version} beside live {live}, {} (running after {} ms)\n",
                    setup.describe(),
                    waited.as_millis()
                );
            }
            None => println!("the live version alone (no candidate)\n"),
        }
        let slow_us = opts.slow_ms.map(|ms| (ms * 1000.0) as u64);
        let mut acked = Vec::new();
        for &c in opts.concurrency.iter().filter(|&&c| c > 0) {
            let (mut report, ids) =
                scenario(&format!("single c={c}"), &server.base, &token, rows.clone(), Load {
                    concurrency: c,
                    per_request: 1,
                    seconds: opts.seconds,
                    rate: None,
                    slow_us,
                })
                .await;
            report.print();
            acked.extend(ids);
        }
        for &rate in &opts.rate {
            let c = opts.rate_concurrency;
            let (mut report, ids) = scenario(
                &format!("single c={c} at {rate}/s"),
                &server.base,
                &token,
                rows.clone(),
                Load {
                    concurrency: c,
                    per_request: 1,
                    seconds: opts.seconds,
                    rate: Some(rate),
                    slow_us,
                },
            )
            .await;
            report.print();
            let served = report.requests as f64 / report.elapsed.as_secs_f64().max(1e-9);
            if served < 0.97 * f64::from(rate) {
                eprintln!(
                    "note: {rate}/s offered, {served:.0}/s served: past what the server \
                     serves on this machine, so these latencies measure the backlog \
                     (compare the closed loop at c=32)"
                );
            }
            acked.extend(ids);
        }
        if opts.batch_concurrency > 0 {
        let (mut report, ids) = scenario(
            &format!("batch {} c={}", opts.batch_size, opts.batch_concurrency),
            &server.base,
            &token,
            rows.clone(),
            Load {
                concurrency: opts.batch_concurrency,
                per_request: opts.batch_size,
                seconds: opts.seconds,
                rate: None,
                slow_us,
            },
        )
        .await;
        report.print();
        acked.extend(ids);
        }

        // kill -9, then count what survived.
        server.child.kill()?;
        server.child.wait()?;
        let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
        use verdict::db::schema::items;
        let stored: std::collections::HashSet<String> = items::table
            .filter(items::id.like("bench-%"))
            .select(items::id)
            .load::<String>(&mut conn)?
            .into_iter()
            .collect();
        let lost = acked.iter().filter(|id| !stored.contains(*id)).count();
        println!(
            "\nafter kill -9: {} items acknowledged, {} stored, {lost} lost",
            acked.len(),
            stored.len()
        );
        if lost > 0 {
            bail!("{lost} acknowledged items were lost");
        }
        if setup.is_some() {
            // Every item a candidate ran beside has its second prediction,
            // committed with it.
            let shadow = candidate::shadow_count(&mut conn, "bench-%")?;
            println!(
                "shadow predictions: {shadow} for {} stored items",
                stored.len()
            );
            if shadow as usize != stored.len() {
                bail!("{} stored items lack their shadow prediction", stored.len() as i64 - shadow);
            }
        }
        Ok(())
    })
}
