//! `verdict bench`: starts `verdict serve` as a child process on a fresh
//! database, drives the scoring API over loopback, kills the server with
//! SIGKILL and checks on restart that every acknowledged item survived.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use diesel::prelude::*;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::{DatabaseSettings, Synchronous};

mod export;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Seconds each scenario runs.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrency levels for single-item requests.
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
    /// Concurrency of the paced scenarios.
    #[arg(long, default_value_t = 32)]
    pub rate_concurrency: usize,
    /// Concurrent requests in the batch scenario.
    #[arg(long, default_value_t = 4)]
    pub batch_concurrency: usize,
    /// SQLite `synchronous`: normal (survives kill -9) or full (survives
    /// power loss too).
    #[arg(long, default_value = "normal")]
    pub synchronous: String,
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
}

struct Server {
    child: Child,
    base: String,
    token: Option<String>,
}

impl Drop for Server {
    /// A bench that stops early must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_server(url: &str, synchronous: &str) -> anyhow::Result<Server> {
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .env("VERDICT_DATABASE_URL", url)
        .env("VERDICT_DB_SYNCHRONOUS", synchronous)
        .env("RUST_LOG", "warn")
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start verdict serve")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(tokio::process::ChildStdout::from_std(stdout)?).lines();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut token = None;
    loop {
        if Instant::now() > deadline {
            bail!("the server did not become ready in 60 s");
        }
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(50), lines.next_line()).await
        {
            if let Some(t) = line.trim().strip_prefix("vdt_") {
                token = Some(format!("vdt_{t}"));
            }
            continue;
        }
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
    }
    // The token may still sit in the pipe when readiness answers first.
    while token.is_none() {
        match tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if let Some(t) = line.trim().strip_prefix("vdt_") {
                    token = Some(format!("vdt_{t}"));
                }
            }
            _ => break,
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, base, token })
}

/// A lean HTTP/1.1 keep-alive client: the load generator shares this
/// machine's two cores with the server, so it must cost as little as
/// possible (reqwest cost about as much CPU as the server it measured).
struct Connection {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(url: &str) -> std::io::Result<Connection> {
        let authority = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("127.0.0.1:8080");
        let stream = tokio::net::TcpStream::connect(authority).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream: tokio::io::BufReader::new(stream),
            buffer: Vec::with_capacity(64 * 1024),
        })
    }

    /// Sends one POST and reads the answer: status and body.
    async fn post(&mut self, url: &str, token: &str, body: &str) -> std::io::Result<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = url
            .strip_prefix("http://")
            .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("/");
        self.buffer.clear();
        self.buffer.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.buffer.extend_from_slice(body.as_bytes());
        self.stream.get_mut().write_all(&self.buffer).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut status = 0u16;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(bad("connection closed"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if status == 0 {
                status = header
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("no status"))?;
            } else if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value
                        .trim()
                        .parse()
                        .map_err(|_| bad("bad content-length"))?;
                }
            }
        }
        let mut reply = vec![0u8; length];
        self.stream.read_exact(&mut reply).await?;
        Ok((status, String::from_utf8_lossy(&reply).into_owned()))
    }
}

struct Report {
    name: String,
    requests: usize,
    items: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    errors: usize,
}

impl Report {
    fn print(&mut self) {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| {
            if self.latencies_us.is_empty() {
                return 0.0;
            }
            let i = ((self.latencies_us.len() as f64 * p).ceil() as usize)
                .clamp(1, self.latencies_us.len())
                - 1;
            self.latencies_us[i] as f64 / 1000.0
        };
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{:<28} {:>9.0} req/s {:>9.0} items/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   errors {}",
            self.name,
            self.requests as f64 / secs,
            self.items as f64 / secs,
            pct(0.50),
            pct(0.99),
            pct(1.0),
            self.errors
        );
    }
}

/// Sends requests from `concurrency` loops for `seconds`; every item id is
/// new. Returns the report and the acknowledged ids.
/// The shape of one scenario's load.
#[derive(Clone, Copy)]
struct Load {
    /// Concurrent request loops.
    concurrency: usize,
    /// Items per request (1: the single-item form).
    per_request: usize,
    seconds: u64,
    /// Requests per second in all, paced; `None`: as fast as answers come.
    rate: Option<u32>,
}

async fn scenario(
    name: &str,
    base: &str,
    token: &str,
    rows: Arc<Vec<String>>,
    load: Load,
) -> (Report, Vec<String>) {
    let Load {
        concurrency,
        per_request,
        seconds,
        rate,
    } = load;
    let url = format!("{base}/api/v1/tasks/tumor-triage/items");
    let started = Instant::now();
    let stop = started + Duration::from_secs(seconds);
    let mut handles = Vec::new();
    for worker in 0..concurrency {
        let (url, rows, token, tag) = (
            url.clone(),
            rows.clone(),
            token.to_string(),
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        );
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acked = Vec::new();
            let mut errors = 0;
            let mut seq = 0usize;
            let mut conn = match Connection::open(&url).await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("cannot connect: {e}");
                    return (latencies, acked, 1);
                }
            };
            // With a rate, each loop sends on a fixed schedule.
            let interval =
                rate.map(|r| Duration::from_secs_f64(concurrency as f64 / f64::from(r.max(1))));
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(worker as f64 / concurrency as f64)
                });
            while Instant::now() < stop {
                if interval.is_some() {
                    tokio::time::sleep_until(next.into()).await;
                }
                let ids: Vec<String> = (0..per_request)
                    .map(|k| format!("bench-{tag}-{worker}-{seq}-{k}"))
                    .collect();
                let body = if per_request == 1 {
                    format!(
                        r#"{{"id":"{}","input":{}}}"#,
                        ids[0],
                        rows[seq % rows.len()]
                    )
                } else {
                    let items: Vec<String> = ids
                        .iter()
                        .enumerate()
                        .map(|(k, id)| {
                            format!(
                                r#"{{"id":"{id}","input":{}}}"#,
                                rows[(seq + k) % rows.len()]
                            )
                        })
                        .collect();
                    format!(r#"{{"items":[{}]}}"#, items.join(","))
                };
                seq += 1;
                let sent = if interval.is_some() {
                    next
                } else {
                    Instant::now()
                };
                if let Some(interval) = interval {
                    next += interval;
                }
                match conn.post(&url, &token, &body).await {
                    Ok((status, _)) if (200..300).contains(&status) => {
                        latencies.push(sent.elapsed().as_micros() as u64);
                        acked.extend(ids);
                    }
                    Ok((status, reply)) => {
                        if errors == 0 {
                            eprintln!("first error: {status} {reply}");
                        }
                        errors += 1;
                    }
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("first error: {e}");
                        }
                        errors += 1;
                        match Connection::open(&url).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, acked, errors)
        }));
    }
    let mut report = Report {
        name: name.to_string(),
        requests: 0,
        items: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        errors: 0,
    };
    let mut acked = Vec::new();
    for h in handles {
        let (latencies, ids, errors) = h.await.expect("load loop");
        report.requests += latencies.len();
        report.latencies_us.extend(latencies);
        report.errors += errors;
        acked.extend(ids);
    }
    report.items = acked.len();
    report.elapsed = started.elapsed();
    (report, acked)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// The review queue under load: `queued` items waiting, `reviewers`
/// concurrent claim → label loops; times each call as the web handlers make
/// it (through the writer, on SQLite).
fn run_queue(
    opts: &BenchOptions,
    queued: usize,
    url: &str,
    synchronous: Synchronous,
) -> anyhow::Result<()> {
    use crate::domain::{ItemStatus, QueueReason, ReviewState};
    use crate::review::{self, Label, Rules};
    use crate::store::items::ItemRow;
    let settings = DatabaseSettings {
        url: url.to_string(),
        synchronous,
        pool_size: (opts.reviewers as u32).max(2),
        ..DatabaseSettings::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = crate::db::Db::open(&settings).map_err(anyhow::Error::msg)?;
        let task = "bench-queue";
        let started = Instant::now();
        let at = crate::domain::now();
        for chunk in (0..queued).collect::<Vec<_>>().chunks(1000) {
            let rows: Vec<ItemRow> = chunk
                .iter()
                .map(|&i| ItemRow {
                    task: task.into(),
                    id: format!("item-{i:08}"),
                    input: "{}".into(),
                    input_sha256: String::new(),
                    status: ItemStatus::Queued,
                    reason: Some(QueueReason::LowConfidence),
                    review_state: ReviewState::Pending,
                    blind: false,
                    audit: false,
                    model_version: None,
                    margin: Some((i % 1000) as f64 / 1000.0),
                    sla_deadline: Some(at + chrono::Duration::seconds((i % 3600) as i64)),
                    created_at: at,
                    decided_at: None,
                })
                .collect();
            db.write(move |conn| Ok::<_, crate::db::DbError>(crate::store::items::insert_all(conn, &rows, &[], &[])?)).await?;
        }
        println!(
            "verdict bench --queue: {queued} items queued in {:.1} s on {url}; {} reviewers, {} claim + label rounds\n",
            started.elapsed().as_secs_f64(),
            opts.reviewers,
            opts.rounds
        );
        let db = Arc::new(db);
        let per_reviewer = opts.rounds / opts.reviewers.max(1);
        // Paced: each reviewer starts a round every `interval`, staggered.
        let interval = opts
            .pace
            .filter(|p| *p > 0.0)
            .map(|p| Duration::from_secs_f64(opts.reviewers.max(1) as f64 / p));
        if let Some(p) = opts.pace {
            println!("paced at {p:.0} rounds per second in all\n");
        }
        let start = Instant::now();
        let mut loops = Vec::new();
        for r in 0..opts.reviewers {
            let db = db.clone();
            let mut next = start
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(r as f64 / opts.reviewers.max(1) as f64)
                });
            loops.push(tokio::spawn(async move {
                let who = format!("reviewer-{r}");
                let rules = Rules {
                    labels: vec!["yes".into(), "no".into()],
                    reviews_required: 1,
                    callback_url: None,
                };
                let (mut claims, mut labels) = (Vec::new(), Vec::new());
                for _ in 0..per_reviewer {
                    let (w, t) = (who.clone(), task);
                    let sent = match interval {
                        Some(interval) => {
                            tokio::time::sleep_until(next.into()).await;
                            let scheduled = next;
                            next += interval;
                            scheduled
                        }
                        None => Instant::now(),
                    };
                    let claim = db
                        .write(move |conn| review::claim_next(conn, t, &w, review::DEFAULT_LEASE))
                        .await?;
                    claims.push(sent.elapsed().as_micros() as u64);
                    let Some(claim) = claim else { break };
                    let (w, rules, id) = (who.clone(), rules.clone(), claim.item.id);
                    let sent = Instant::now();
                    db.write(move |conn| {
                        let label = Label {
                            label: "yes".into(),
                            comment: None,
                            seconds_spent: 3.0,
                        };
                        review::submit(conn, t, &rules, &id, &w, &label)
                    })
                    .await?;
                    labels.push(sent.elapsed().as_micros() as u64);
                }
                Ok::<_, crate::review::ReviewError>((claims, labels))
            }));
        }
        let (mut claims, mut labels) = (Vec::new(), Vec::new());
        let timed = Instant::now();
        for l in loops {
            let (c, s) = l.await??;
            claims.extend(c);
            labels.extend(s);
        }
        let secs = timed.elapsed().as_secs_f64();
        claims.sort_unstable();
        labels.sort_unstable();
        for (name, times) in [("claim next", &claims), ("submit label", &labels)] {
            println!(
                "{name:<14} {:>7} calls   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms",
                times.len(),
                percentile(times, 0.5),
                percentile(times, 0.99),
                percentile(times, 1.0)
            );
        }
        println!("\n{:.0} items labelled per second", labels.len() as f64 / secs);
        Ok(())
    })
}

/// The rows of the benchmark's data file as API inputs (JSON objects).
fn demo_inputs(opts: &BenchOptions) -> anyhow::Result<Vec<String>> {
    let dataset = crate::ml::train::read_dataset(&opts.data, Some(&opts.feature_names), "label")?;
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut server = start_server(&url, &opts.synchronous).await?;
        let token = server
            .token
            .clone()
            .context("the server printed no API token: use an empty database")?;
        println!(
            "verdict bench: {} cores, database {url} (synchronous = {}), {} s per scenario, client and server on this machine\n",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            opts.synchronous,
            opts.seconds
        );
        let mut acked = Vec::new();
        for &c in &opts.concurrency {
            let (mut report, ids) =
                scenario(&format!("single c={c}"), &server.base, &token, rows.clone(), Load {
                    concurrency: c,
                    per_request: 1,
                    seconds: opts.seconds,
                    rate: None,
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
                },
            )
            .await;
            report.print();
            acked.extend(ids);
        }
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
            },
        )
        .await;
        report.print();
        acked.extend(ids);

        // kill -9, then count what survived.
        server.child.kill()?;
        server.child.wait()?;
        let settings = DatabaseSettings {
            url: url.clone(),
            synchronous,
            ..DatabaseSettings::default()
        };
        let mut conn = crate::db::establish(&settings).map_err(anyhow::Error::msg)?;
        use crate::db::schema::items;
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
        Ok(())
    })
}
