//! `verdict bench --switch N`: how long a promotion and a rollback take to
//! reach every instance. Two `verdict serve` instances on one database
//! score a steady stream of items; the bench sets a candidate (a renamed
//! copy of the live version, in shadow), promotes it and rolls it back N
//! times through the library calls `verdict deploy promote|rollback` make,
//! and times, from each commit, until every answer of each instance names
//! the new version (`prediction.model_version`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use verdict::config::{Settings, Synchronous};
use verdict::domain::CandidateMode;

use super::candidate::{self, Setup, TASK};
use super::client::Connection;
use super::server::start_server;
use super::BenchOptions;

/// One answer: when it arrived and the version that scored the item.
type Answer = (Instant, Option<String>);

/// A deployment change: when its transaction committed, and the versions
/// before and after.
struct Switch {
    what: &'static str,
    started: Instant,
    committed: Instant,
    from: String,
    to: String,
}

pub(super) fn run(opts: &BenchOptions, cycles: usize) -> anyhow::Result<()> {
    let rows = Arc::new(super::demo_inputs(opts)?);
    let dir = tempfile::tempdir()?;
    let url = opts
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("switch.db").display()));
    let synchronous = match opts.synchronous.as_str() {
        "full" => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    let settings = Arc::new(candidate::settings(&url, synchronous)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let first = start_server(&url, &opts.synchronous, opts.monitoring == "on").await?;
        let token = first
            .token
            .clone()
            .context("the server printed no API token: use an empty database")?;
        let second = start_server(&url, &opts.synchronous, opts.monitoring == "on").await?;
        let servers = [&first, &second];
        println!(
            "verdict bench --switch: {} cores, database {url}, 2 instances, {} items/s in all, deployment_poll_ms {}\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            opts.switch_rate,
            settings.server.deployment_poll_ms,
        );

        // A steady stream of single items on each instance.
        let stop = Arc::new(AtomicBool::new(false));
        let loops_per_instance = 2;
        let interval = Duration::from_secs_f64(
            (servers.len() * loops_per_instance) as f64 / f64::from(opts.switch_rate.max(1)),
        );
        let mut loads = Vec::new();
        for (instance, server) in servers.iter().enumerate() {
            let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
            for worker in 0..loops_per_instance {
                let (url, token, rows, stop, answers) = (
                    format!("{}/api/v1/tasks/{TASK}/items", server.base),
                    token.clone(),
                    rows.clone(),
                    stop.clone(),
                    answers.clone(),
                );
                tokio::spawn(async move {
                    let mut conn = Connection::open(&url).await?;
                    let mut next = Instant::now();
                    for seq in 0usize.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::time::sleep_until(next.into()).await;
                        next += interval;
                        let body = format!(
                            r#"{{"id":"switch-{instance}-{worker}-{seq}","input":{}}}"#,
                            rows[seq % rows.len()]
                        );
                        let (status, reply) = conn.post(&url, &token, &body).await?;
                        let version = (200..300)
                            .contains(&status)
                            .then(|| scored_by(&reply))
                            .flatten();
                        answers
                            .lock()
                            .expect("answers")
                            .push((Instant::now(), version));
                    }
                    anyhow::Ok(())
                });
            }
            loads.push(answers);
        }

        let pause = Duration::from_millis(3 * settings.server.deployment_poll_ms + 1000);
        let mut switches = Vec::new();
        for _ in 0..cycles {
            // A candidate in shadow, loaded on both instances before it is
            // promoted (as it would be after its days in shadow).
            let s = settings.clone();
            tokio::task::spawn_blocking(move || {
                candidate::set_up(
                    &s,
                    Setup {
                        mode: CandidateMode::Shadow,
                        percent: None,
                    },
                )
            })
            .await??;
            tokio::time::sleep(pause).await;
            for what in ["promote", "rollback"] {
                let s = settings.clone();
                let started = Instant::now();
                let (from, to) =
                    tokio::task::spawn_blocking(move || change(&s, what)).await??;
                switches.push(Switch {
                    what,
                    started,
                    committed: Instant::now(),
                    from,
                    to,
                });
                // Changes fall at random points of the instances' poll
                // cycles, so the times below sample all of it.
                let jitter = settings.server.deployment_poll_ms as f64 * rand::random::<f64>();
                tokio::time::sleep(pause + Duration::from_millis(jitter as u64)).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let answers: Vec<Vec<Answer>> = loads
            .iter()
            .map(|a| a.lock().expect("answers").clone())
            .collect();
        println!(
            "{:<10} {:<22} {:>10} {:>14} {:>14}",
            "change", "versions", "commit", "instance 1", "instance 2"
        );
        let mut times: Vec<(&str, Duration)> = Vec::new();
        for (i, s) in switches.iter().enumerate() {
            let until = switches.get(i + 1).map(|n| n.started);
            let mut cells = Vec::new();
            for answers in &answers {
                match switched_after(answers, s, until) {
                    Some(d) => {
                        times.push((s.what, d));
                        cells.push(format!("{:.0} ms", d.as_secs_f64() * 1000.0));
                    }
                    None => cells.push("not seen".into()),
                }
            }
            println!(
                "{:<10} {:<22} {:>7.1} ms {:>14} {:>14}",
                s.what,
                format!("{} → {}", s.from, s.to),
                (s.committed - s.started).as_secs_f64() * 1000.0,
                cells[0],
                cells[1]
            );
            if cells.iter().any(|c| c == "not seen") {
                bail!("an instance never answered with {} after the {}", s.to, s.what);
            }
        }
        let served: usize = answers.iter().map(Vec::len).sum();
        println!("\n{served} items scored");
        for what in ["promote", "rollback"] {
            let mut of: Vec<Duration> = times
                .iter()
                .filter(|(w, _)| *w == what)
                .map(|(_, d)| *d)
                .collect();
            of.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            if let (Some(first), Some(last)) = (of.first(), of.last()) {
                println!(
                    "{what}: every instance switched {:.0}–{:.0} ms after the commit (median {:.0} ms, {} instance-switches)",
                    ms(*first),
                    ms(*last),
                    ms(of[of.len() / 2]),
                    of.len()
                );
            }
        }
        Ok(())
    })
}

/// Promotes the candidate or rolls back; returns the versions live before
/// and after.
fn change(settings: &Settings, what: &str) -> anyhow::Result<(String, String)> {
    let config = candidate::task_config(settings)?;
    let mut conn = verdict::db::establish(&settings.database).map_err(anyhow::Error::msg)?;
    let from = verdict::tasks::current_live(&mut conn, TASK)?.context("no live version")?;
    let to = match what {
        "promote" => {
            verdict::lifecycle::promote(&mut conn, config, "bench", "verdict bench --switch", true)?
        }
        _ => verdict::tasks::rollback(&mut conn, TASK, "bench", "verdict bench --switch")?
            .context("no previous version")?,
    };
    Ok((from, to))
}

/// How long after `s` committed the instance's answers all named the new
/// version: the first answer naming it after the last that named another
/// (looking only at answers before the next change, `until`).
fn switched_after(answers: &[Answer], s: &Switch, until: Option<Instant>) -> Option<Duration> {
    let window: Vec<&Answer> = answers
        .iter()
        .filter(|(at, _)| *at >= s.started && until.is_none_or(|u| *at < u))
        .collect();
    let last_old = window
        .iter()
        .rposition(|(_, v)| v.as_deref() != Some(s.to.as_str()))
        .map_or(0, |i| i + 1);
    let (at, _) = window.get(last_old)?;
    Some(at.saturating_duration_since(s.committed))
}

/// The version that scored an item, from the API's answer.
fn scored_by(reply: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(reply).ok()?;
    doc["prediction"]["model_version"]
        .as_str()
        .map(str::to_string)
}
