//! `verdict simulate`: traffic for a running service. Replays the demo data
//! (resampled with jitter, with optional drift) to the scoring API at a set
//! rate, while simulated reviewers answer the review queue through the web
//! UI as people do; prints a summary (`--json` for machines).
//!
//! - `data`: the demo rows, jitter, `--shift` and `--flip`;
//! - `submit`: the paced client of the scoring API;
//! - `reviewers`: the simulated reviewers and their accounts;
//! - `web`: the small browser they use (cookies, forms, HTML);
//! - `report`: the summary.

pub mod data;
pub mod report;
pub mod reviewers;
pub mod submit;
pub mod web;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use tokio::sync::Notify;

use data::{DemoData, Flip, Scenario, Shift};
use report::Summary;
use reviewers::{Admin, Reviewer};
use web::Browser;

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// The service's address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API token (`verdict token create --name NAME`).
    #[arg(long, env = "VERDICT_TOKEN", hide_env_values = true)]
    pub token: String,
    #[arg(long, default_value = "tumor-triage")]
    pub task: String,
    /// Items to send.
    #[arg(long, default_value_t = 1000)]
    pub items: u64,
    /// Items per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Items per request (the API's batch form when more than 1); for
    /// high rates.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Seeds the resampling and the reviewers' mistakes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Jitter of each feature, as a share of its standard deviation in
    /// the demo data (uniform, ±).
    #[arg(long, default_value_t = 0.01)]
    pub jitter: f64,
    /// Drift: from item ITEM on, add SIGMAS standard deviations to FEATURE
    /// (repeatable), e.g. mean_radius=1@1500.
    #[arg(long = "shift", value_name = "FEATURE=SIGMAS@ITEM")]
    pub shifts: Vec<Shift>,
    /// Concept drift: from item ITEM on, the true label of a fixed SHARE of
    /// the demo rows (the same rows in every run) is the other label, e.g.
    /// 0.3@2000.
    #[arg(long, value_name = "SHARE@ITEM")]
    pub flip: Option<Flip>,
    /// Simulated reviewers, named sim-reviewer-1 … sim-reviewer-K.
    #[arg(long, default_value_t = 2)]
    pub reviewers: usize,
    /// Probability that a reviewer gives a wrong label.
    #[arg(long, default_value_t = 0.0)]
    pub reviewer_error: f64,
    /// The reviewers' password (at least 10 characters when accounts are
    /// created).
    #[arg(long, env = "VERDICT_SIM_REVIEWER_PASSWORD", hide_env_values = true)]
    pub reviewer_password: Option<String>,
    /// An admin account (USER:PASSWORD) that creates missing reviewer
    /// accounts through the Users page; without it the accounts must exist.
    #[arg(long, env = "VERDICT_SIM_ADMIN", hide_env_values = true)]
    pub admin: Option<Admin>,
    /// Mean seconds a reviewer spends on an item.
    #[arg(long, default_value_t = 0.0)]
    pub review_seconds: f64,
    /// Keep reviewing after the last item is sent until the queue is empty
    /// (the default).
    #[arg(long, overrides_with = "no_drain")]
    pub drain: bool,
    /// Stop the reviewers when the last item is sent.
    #[arg(long, overrides_with = "drain")]
    pub no_drain: bool,
    /// Longest drain, in seconds.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout: u64,
    /// The run's name in item ids (`sim-<run>-<n>`); random by default.
    #[arg(long)]
    pub run: Option<String>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    pub json: bool,
    /// The demo data (CSV in scikit-learn's bundled format).
    #[arg(long, default_value = "data/breast_cancer.csv")]
    pub data: PathBuf,
    #[arg(long, default_value = "data/breast_cancer.features.txt")]
    pub feature_names: PathBuf,
}

/// What happened so far, shared by the submitter and the reviewers.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub decided: AtomicU64,
    pub queued: AtomicU64,
    pub audited: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    pub labels: AtomicU64,
    pub labels_wrong: AtomicU64,
    pub labels_refused: AtomicU64,
    pub foreign_skipped: AtomicU64,
    pub latencies_us: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    /// Counts an error of `kind` (a short description, no ids).
    pub fn error(&self, kind: String) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind)
            .or_default() += 1;
    }

    fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("errors lock").clone()
    }
}

/// Tells every part of a run when submission ended and when to stop.
#[derive(Clone, Default)]
pub struct Stop(Arc<StopState>);

#[derive(Default)]
struct StopState {
    cancelled: AtomicBool,
    submitted_at: OnceLock<Instant>,
    notify: Notify,
}

impl Stop {
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    fn mark_submitted(&self) {
        let _ = self.0.submitted_at.set(Instant::now());
    }

    pub fn submitted(&self) -> bool {
        self.0.submitted_at.get().is_some()
    }

    pub fn submitted_at(&self) -> Option<Instant> {
        self.0.submitted_at.get().copied()
    }

    /// Sleeps until `at`; `false` (at once) when the run is cancelled.
    pub async fn sleep_until(&self, at: Instant) -> bool {
        let notified = self.0.notify.notified();
        if self.cancelled() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => true,
            _ = notified => false,
        }
    }

    pub async fn sleep(&self, d: Duration) {
        self.sleep_until(Instant::now() + d).await;
    }

    /// Returns when the run is cancelled.
    pub async fn cancelled_wait(&self) {
        let notified = self.0.notify.notified();
        if !self.cancelled() {
            notified.await;
        }
    }
}

/// `verdict simulate`: runs, then prints the summary.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(simulate(args.clone()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

#[derive(Deserialize)]
struct TaskList {
    tasks: Vec<TaskInfo>,
}

#[derive(Deserialize)]
struct TaskInfo {
    name: String,
    labels: Vec<String>,
    queue_depth: i64,
}

/// The task as the API describes it; refuses a wrong token or task.
async fn task_info(http: &reqwest::Client, args: &SimulateArgs) -> anyhow::Result<TaskInfo> {
    let url = format!("{}/api/v1/tasks", args.url.trim_end_matches('/'));
    let response = http
        .get(&url)
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    match response.status().as_u16() {
        200 => {}
        401 => bail!("the service refused the API token (401): create one with `verdict token create --name NAME`"),
        status => bail!("GET {url} answered {status}"),
    }
    let list: TaskList = response.json().await.context("GET /api/v1/tasks")?;
    list.tasks
        .into_iter()
        .find(|t| t.name == args.task)
        .with_context(|| format!("the service has no task named {:?}", args.task))
}

fn check(args: &SimulateArgs) -> anyhow::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be above 0");
    }
    if !(1..=1000).contains(&args.batch) {
        bail!("--batch is 1 to 1000 items per request");
    }
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.reviewer_error) {
        bail!("--reviewer-error is a probability, between 0 and 1");
    }
    if !(args.review_seconds.is_finite() && args.review_seconds >= 0.0) {
        bail!("--review-seconds must be 0 or more");
    }
    if let Some(run) = &args.run {
        let plain = !run.is_empty()
            && run.len() <= 64
            && run
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !plain {
            bail!("--run is 1-64 letters, digits, '-', '_' or '.'");
        }
    }
    if args.reviewers > 0 && args.reviewer_password.is_none() {
        bail!("--reviewers needs --reviewer-password (or VERDICT_SIM_REVIEWER_PASSWORD); --reviewers 0 sends items only");
    }
    Ok(())
}

fn progress_bar(items: u64) -> ProgressBar {
    let bar = ProgressBar::new(items);
    bar.set_style(
        ProgressStyle::with_template("{wide_bar} {human_pos}/{human_len} sent{msg}  {elapsed}")
            .expect("a valid template"),
    );
    bar
}

/// After the count of items sent: labels given, items of the run still
/// waiting for one, errors if any.
fn progress_message(c: &Counters, stop: &Stop) -> String {
    let labelled = get(&c.labels);
    let waiting = (get(&c.queued) + get(&c.audited)).saturating_sub(labelled);
    let errors: u64 = c.errors().values().sum();
    format!(
        "{} · {labelled} labelled · {waiting} waiting{}",
        if stop.submitted() { " · draining" } else { "" },
        if errors > 0 {
            format!(" · {errors} errors")
        } else {
            String::new()
        }
    )
}

/// One run: sign the reviewers in (creating their accounts with `--admin`),
/// send the items while they review, drain the queue, and sum up.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<Summary> {
    check(&args)?;
    let started = Instant::now();
    let base = args.url.trim_end_matches('/').to_string();
    let data = DemoData::read(&args.data, &args.feature_names)?;
    let scenario = Arc::new(Scenario::new(
        data,
        args.seed,
        args.jitter,
        &args.shifts,
        args.flip.as_ref(),
    )?);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let task = task_info(&http, &args).await?;
    if let Some(missing) = scenario
        .data
        .labels
        .iter()
        .find(|l| !task.labels.contains(l))
    {
        bail!(
            "the data's label {missing:?} is not one of the task's labels ({}): reviewers could not give it",
            task.labels.join(", ")
        );
    }
    if task.queue_depth > 0 && args.reviewers > 0 {
        eprintln!(
            "note: {} items of {} already wait for a human. The simulated reviewers answer only \
             items of this run and skip the others, which come first in the queue: they may get \
             no further than them.",
            task.queue_depth, args.task
        );
    }

    // Reviewers sign in before anything is sent: a run without them
    // would only fill the queue.
    let names = reviewers::names(args.reviewers);
    let password = args.reviewer_password.clone().unwrap_or_default();
    if let (Some(admin), false) = (&args.admin, names.is_empty()) {
        for line in reviewers::ensure_accounts(&base, admin, &names, &password, &args.task).await? {
            eprintln!("{line}");
        }
    }
    let run = args
        .run
        .clone()
        .unwrap_or_else(|| format!("{:08x}", rand::random::<u32>()));
    let prefix = format!("sim-{run}-");
    let counters = Arc::new(Counters::default());
    let stop = Stop::default();
    let mut team = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let mut browser = Browser::new(&base)?;
        browser.sign_in(name, &password).await.with_context(|| {
            format!(
                "the simulated reviewers need accounts that may work {task:?}: pass --admin USER:PASSWORD \
                 to create them, or add each with `verdict user add {name} --role reviewer --task {task}`",
                task = args.task
            )
        })?;
        team.push(Reviewer {
            index,
            name: name.clone(),
            password: password.clone(),
            browser,
            task: args.task.clone(),
            prefix: prefix.clone(),
            items: args.items,
            scenario: scenario.clone(),
            error_rate: args.reviewer_error,
            think: args.review_seconds,
            counters: counters.clone(),
        });
    }

    // Ctrl-C stops the run and still prints what was done; a second one
    // exits at once.
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let bar = progress_bar(args.items);
    let ticker = {
        let (bar, counters, stop) = (bar.clone(), counters.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                bar.set_message(progress_message(&counters, &stop));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let drain = (!args.no_drain).then(|| Duration::from_secs(args.drain_timeout));
    let working: Vec<_> = team
        .into_iter()
        .map(|reviewer| tokio::spawn(reviewer.run(stop.clone(), drain)))
        .collect();
    let submitter = Arc::new(submit::Submitter {
        http: http.clone(),
        url: format!("{base}/api/v1/tasks/{}/items", args.task),
        token: args.token.clone(),
        scenario: scenario.clone(),
        prefix: prefix.clone(),
        counters: counters.clone(),
        bar: bar.clone(),
    });
    let submitting = submitter
        .run(
            args.items,
            args.rate,
            args.batch,
            args.concurrency,
            stop.clone(),
        )
        .await;
    stop.mark_submitted();
    let drain_started = Instant::now();
    for reviewer in working {
        let _ = reviewer.await;
    }
    let draining = drain_started.elapsed();
    ticker.abort();
    bar.set_message(progress_message(&counters, &stop));
    bar.finish();

    let queue_left = task_info(&http, &args).await.ok().map(|t| t.queue_depth);
    let c = &counters;
    let errors = c.errors();
    let latencies = std::mem::take(&mut *c.latencies_us.lock().expect("latencies lock"));
    Ok(Summary {
        run,
        task: args.task.clone(),
        id_prefix: prefix,
        items: report::Items {
            planned: args.items,
            sent: get(&c.sent),
            decided: get(&c.decided),
            queued: get(&c.queued),
            audited: get(&c.audited),
            failed: get(&c.failed),
        },
        labels: report::Labels {
            given: get(&c.labels),
            wrong: get(&c.labels_wrong),
            refused: get(&c.labels_refused),
            foreign_skipped: get(&c.foreign_skipped),
            reviewers: args.reviewers,
        },
        errors: report::Errors {
            total: errors.values().sum(),
            retries: get(&c.retries),
            by_kind: errors,
        },
        rate: report::Rate {
            target: args.rate,
            achieved: (get(&c.sent) as f64 / submitting.as_secs_f64().max(1e-9) * 10.0).round()
                / 10.0,
        },
        latency_ms: report::Latency::of(latencies),
        seconds: report::Seconds {
            submitting: round1(submitting.as_secs_f64()),
            draining: round1(draining.as_secs_f64()),
            total: round1(started.elapsed().as_secs_f64()),
        },
        queue_left,
        drained: drain.is_some() && !stop.cancelled() && queue_left == Some(0),
        cancelled: stop.cancelled(),
    })
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}
