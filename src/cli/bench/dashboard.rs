//! `verdict bench --dashboard N`: fills a database with a week of the demo
//! task — N items spread over the last seven days (a daily rhythm; most
//! automated, some decided by reviewers, one in fifty a blind audit, one
//! in a hundred still waiting), the minute buckets the recorder would have
//! written, and the drift monitor's evaluations every 100 items — then
//! serves it with `verdict serve` and times the dashboard pages over HTTP
//! as a signed-in admin, each span (hour, day, week) several times.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::server::start_server;
use super::BenchOptions;
use crate::cli::simulate::web::Browser;
use verdict::config::DatabaseSettings;
use verdict::db::DbError;
use verdict::domain::{
    ItemStatus, QueueReason, ReviewState, Role, Timestamp, VerdictBasis, VerdictSource,
};
use verdict::monitoring::drift::monitor::EvaluationSummary;
use verdict::monitoring::recorder::{ItemSeen, Outcome, Recorder};
use verdict::store::items::{ItemRow, PredictionRow, VerdictRow};
use verdict::store::metrics::MetricRow;
use verdict::store::monitoring::EvaluationRow;
use verdict::store::queue::NewReview;

/// The demo task, so `verdict serve` without a configuration serves it.
const TASK: &str = "tumor-triage";
const VERSION: &str = "v1";
const ADMIN: &str = "bench-admin";
const PASSWORD: &str = "a bench passphrase of some length";
const WEEK_MINUTES: i64 = 7 * 24 * 60;
/// Timed requests per page (after one warm-up).
const ROUNDS: usize = 10;

/// Traffic weight of the minute `m` minutes into the week: busy in the
/// day, a quarter of it at night.
fn weight(m: i64) -> f64 {
    let hour = (m / 60) % 24;
    if (8..20).contains(&hour) {
        1.0
    } else {
        0.25
    }
}

/// The minute (from the start of the week) of each of `n` items, following
/// the daily rhythm, oldest first.
fn arrivals(n: usize) -> Vec<i64> {
    let total: f64 = (0..WEEK_MINUTES).map(weight).sum();
    let mut out = Vec::with_capacity(n);
    let mut carried = 0.0;
    for m in 0..WEEK_MINUTES {
        carried += weight(m) / total * n as f64;
        while carried >= 1.0 && out.len() < n {
            out.push(m);
            carried -= 1.0;
        }
    }
    while out.len() < n {
        out.push(WEEK_MINUTES - 1);
    }
    out
}

/// What happened to item `i`.
#[derive(Clone, Copy, PartialEq)]
enum Fate {
    Automated,
    Audited,
    Reviewed,
    Waiting,
}

fn fate(i: usize) -> Fate {
    match i % 100 {
        99 => Fate::Waiting,
        80..=98 => Fate::Reviewed,
        _ if i % 50 == 1 => Fate::Audited,
        _ => Fate::Automated,
    }
}

fn minute_time(start: Timestamp, minute: i64, i: usize) -> Timestamp {
    start + chrono::Duration::minutes(minute) + chrono::Duration::milliseconds((i % 60_000) as i64)
}

/// Items, predictions, verdicts and reviews, in transactions of 2,000.
fn fill_items(
    db: &verdict::db::Db,
    runtime: &tokio::runtime::Runtime,
    inputs: &[String],
    minutes: &[i64],
    start: Timestamp,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(11);
    for first in (0..minutes.len()).step_by(2000) {
        let last = (first + 2000).min(minutes.len());
        let mut items = Vec::with_capacity(last - first);
        let mut predictions = Vec::with_capacity(last - first);
        let mut verdicts = Vec::with_capacity(last - first);
        let mut reviewed = Vec::new();
        for i in first..last {
            let at = minute_time(start, minutes[i], i);
            let id = format!("dash-{i:08}");
            let fate = fate(i);
            let label = if rng.random_bool(0.37) {
                "malignant"
            } else {
                "benign"
            };
            let confidence = match fate {
                Fate::Automated | Fate::Audited => rng.random_range(0.95..1.0),
                _ => rng.random_range(0.5..0.95),
            };
            let human = matches!(fate, Fate::Reviewed | Fate::Audited);
            items.push(ItemRow {
                task: TASK.into(),
                id: id.clone(),
                input: inputs[i % inputs.len()].clone(),
                input_sha256: format!("{:064x}", i % inputs.len()),
                status: if fate == Fate::Waiting {
                    ItemStatus::Queued
                } else {
                    ItemStatus::Decided
                },
                reason: matches!(fate, Fate::Reviewed | Fate::Waiting)
                    .then_some(QueueReason::LowConfidence),
                review_state: match fate {
                    Fate::Automated => ReviewState::None,
                    Fate::Waiting => ReviewState::Pending,
                    _ => ReviewState::Done,
                },
                blind: fate == Fate::Audited,
                audit: fate == Fate::Audited,
                model_version: Some(VERSION.into()),
                margin: Some(confidence - 0.95),
                sla_deadline: (fate == Fate::Waiting).then(|| at + chrono::Duration::hours(4)),
                created_at: at,
                decided_at: (fate != Fate::Waiting).then_some(at),
                out_of_range: None,
            });
            predictions.push(PredictionRow {
                task: TASK.into(),
                item_id: id.clone(),
                model_version: VERSION.into(),
                label: Some(label.into()),
                confidence: Some(confidence),
                probabilities: None,
                error: None,
                featurise_us: 3,
                forward_us: 5,
                policy_us: 1,
                created_at: at,
            });
            if fate == Fate::Waiting {
                continue;
            }
            // Reviewers agree with the model nineteen times in twenty.
            let verdict = if human && rng.random_bool(0.05) {
                if label == "benign" {
                    "malignant"
                } else {
                    "benign"
                }
            } else {
                label
            };
            let by_human = fate == Fate::Reviewed;
            verdicts.push(VerdictRow {
                task: TASK.into(),
                item_id: id.clone(),
                label: verdict.into(),
                source: if by_human {
                    VerdictSource::Human
                } else {
                    VerdictSource::Model
                },
                confidence: (!by_human).then_some(confidence),
                model_version: (!by_human).then(|| VERSION.into()),
                decided_by: by_human.then(|| "ana".into()),
                created_at: at,
                basis: Some(if by_human {
                    VerdictBasis::Single
                } else {
                    VerdictBasis::Model
                }),
            });
            if human {
                reviewed.push((id, verdict, fate == Fate::Audited, at));
            }
        }
        runtime.block_on(db.write(move |conn| {
            verdict::store::items::insert_rows(conn, &items, &predictions, &verdicts)?;
            for (id, label, blind, at) in &reviewed {
                verdict::store::queue::record_review(
                    conn,
                    &NewReview {
                        task: TASK,
                        item_id: id,
                        reviewer: "ana",
                        label,
                        comment: None,
                        seconds_spent: 4.0,
                        blind: *blind,
                        created_at: *at + chrono::Duration::minutes(3),
                    },
                )?;
            }
            Ok::<_, verdict::http::error::AppError>(())
        }))?;
    }
    Ok(())
}

/// The minute buckets the recorder would have written: the same
/// recorder, fed each minute's items, its rows moved to that minute.
fn fill_metrics(
    db: &verdict::db::Db,
    runtime: &tokio::runtime::Runtime,
    minutes: &[i64],
    start_minute: i64,
) -> anyhow::Result<usize> {
    let recorder = Recorder::new(true);
    let mut rng = StdRng::seed_from_u64(12);
    let mut rows: Vec<MetricRow> = Vec::new();
    let mut written = 0;
    let mut i = 0;
    for m in 0..WEEK_MINUTES {
        let first = i;
        while i < minutes.len() && minutes[i] == m {
            i += 1;
        }
        // The minute's items in requests of up to 20.
        for chunk in (first..i).collect::<Vec<_>>().chunks(20) {
            let seen: Vec<ItemSeen> = chunk
                .iter()
                .map(|&k| {
                    let fate = fate(k);
                    let automated = matches!(fate, Fate::Automated | Fate::Audited);
                    ItemSeen {
                        outcome: if automated {
                            Outcome::Automated
                        } else {
                            Outcome::Queued
                        },
                        audited: fate == Fate::Audited,
                        out_of_distribution: false,
                        label: Some(if k % 3 == 0 { "malignant" } else { "benign" }),
                        confidence: Some(if automated {
                            rng.random_range(0.95..1.0)
                        } else {
                            rng.random_range(0.5..0.95)
                        }),
                    }
                })
                .collect();
            let store = rng.random_range(0.0005..0.004);
            let stages = [
                rng.random_range(2e-6..6e-6),
                rng.random_range(3e-6..2e-5),
                rng.random_range(5e-7..2e-6),
                store,
                store + rng.random_range(1e-4..5e-4),
            ];
            recorder.scored(TASK, Some(VERSION), &seen, &stages);
        }
        rows.extend(recorder.take().into_iter().map(|mut r| {
            r.minute = start_minute + m;
            r
        }));
        if rows.len() >= 5000 || m == WEEK_MINUTES - 1 {
            written += rows.len();
            let batch = std::mem::take(&mut rows);
            runtime.block_on(db.write(move |conn| -> Result<(), DbError> {
                Ok(verdict::store::metrics::add(conn, &batch)?)
            }))?;
        }
    }
    Ok(written)
}

/// The drift monitor's history: an evaluation every 100 items.
fn fill_evaluations(
    db: &verdict::db::Db,
    runtime: &tokio::runtime::Runtime,
    minutes: &[i64],
    start: Timestamp,
) -> anyhow::Result<usize> {
    let mut rng = StdRng::seed_from_u64(13);
    let rows: Vec<EvaluationRow> = (100..=minutes.len())
        .step_by(100)
        .map(|seen| {
            let summary = EvaluationSummary {
                cbpe: Some(rng.random_range(0.95..0.97)),
                atc: Some(rng.random_range(0.94..0.97)),
                worst: Some(rng.random_range(0.03..0.09)),
                drifted: Vec::new(),
                automation_rate: rng.random_range(0.78..0.82),
                output_drifted: false,
            };
            EvaluationRow {
                task: TASK.into(),
                evaluated_at: minute_time(start, minutes[seen - 1], seen - 1),
                items_seen: seen as i64,
                model_version: VERSION.into(),
                summary: serde_json::to_string(&summary).expect("a summary serialises"),
            }
        })
        .collect();
    let count = rows.len();
    for chunk in rows.chunks(5000) {
        let chunk = chunk.to_vec();
        runtime.block_on(db.write(move |conn| -> Result<(), DbError> {
            Ok(verdict::store::monitoring::add_evaluations(conn, &chunk)?)
        }))?;
    }
    Ok(count)
}

pub fn run(opts: &BenchOptions, n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = opts
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("dashboard.db").display()));
    let inputs = super::demo_inputs(opts)?;
    let settings = DatabaseSettings {
        url: url.clone(),
        ..DatabaseSettings::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The week ends now: "last hour" and "last day" fall in it.
    let end = verdict::domain::now();
    let start = end - chrono::Duration::minutes(WEEK_MINUTES);
    let start_minute = start.and_utc().timestamp().div_euclid(60);
    let minutes = arrivals(n);
    let filled = Instant::now();
    {
        let db = verdict::db::Db::open(&settings).map_err(anyhow::Error::msg)?;
        fill_items(&db, &runtime, &inputs, &minutes, start)?;
        let buckets = fill_metrics(&db, &runtime, &minutes, start_minute)?;
        let evaluations = fill_evaluations(&db, &runtime, &minutes, start)?;
        let hash = verdict::accounts::hash_password(PASSWORD).map_err(anyhow::Error::msg)?;
        runtime.block_on(db.write(move |conn| -> Result<(), DbError> {
            Ok(verdict::store::accounts::insert(
                conn,
                ADMIN,
                &hash,
                Role::Admin,
                &[],
            )?)
        }))?;
        println!(
            "verdict bench --dashboard: {n} items of {TASK} over 7 days, {buckets} minute buckets, {evaluations} drift evaluations, written in {:.1} s on {url}\n",
            filled.elapsed().as_secs_f64()
        );
    }
    runtime.block_on(async {
        let server = start_server(&url, &opts.synchronous, true).await?;
        let mut browser = Browser::new(&server.base)?;
        browser.sign_in(ADMIN, PASSWORD).await?;
        // The monitor's first pass (reference, newest window) before timing.
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "{:<42} {:>9} {:>9} {:>9} {:>9}",
            "page (GET, signed in as admin)", "median", "p90", "max", "bytes"
        );
        for span in ["hour", "day", "week"] {
            for path in [
                format!("/dashboard/{TASK}?span={span}"),
                format!("/dashboard/{TASK}/live?span={span}"),
                format!("/dashboard?span={span}"),
            ] {
                let mut times = Vec::with_capacity(ROUNDS);
                let mut bytes = 0;
                for round in 0..=ROUNDS {
                    let timed = Instant::now();
                    let page = browser.get(&path).await.context("a dashboard request")?;
                    let took = timed.elapsed();
                    if page.status != 200 {
                        bail!("GET {path} answered {}", page.status);
                    }
                    bytes = page.body.len();
                    if round > 0 {
                        times.push(took.as_secs_f64() * 1e3);
                    }
                }
                times.sort_by(f64::total_cmp);
                println!(
                    "{path:<42} {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>9}",
                    times[times.len() / 2],
                    times[times.len() * 9 / 10],
                    times[times.len() - 1],
                    bytes
                );
            }
        }
        Ok(())
    })
}
