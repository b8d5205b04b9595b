//! One load scenario against the scoring API (closed loop or paced), and
//! its report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::Connection;

pub(super) struct Report {
    pub(super) name: String,
    pub(super) requests: usize,
    pub(super) items: usize,
    pub(super) elapsed: Duration,
    pub(super) latencies_us: Vec<u64>,
    pub(super) errors: usize,
}

impl Report {
    pub(super) fn print(&mut self) {
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
pub(super) struct Load {
    /// Concurrent request loops.
    pub(super) concurrency: usize,
    /// Items per request (1: the single-item form).
    pub(super) per_request: usize,
    pub(super) seconds: u64,
    /// Requests per second in all, paced; `None`: as fast as answers come.
    pub(super) rate: Option<u32>,
    /// Requests at least this slow (µs) are listed on stderr afterwards
    /// with the time they were answered, to set beside the server's log.
    pub(super) slow_us: Option<u64>,
}

pub(super) async fn scenario(
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
        slow_us,
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
            let mut slow = Vec::new();
            let mut conn = match Connection::open(&url).await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("cannot connect: {e}");
                    return (latencies, acked, 1, Vec::new());
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
                // The workers' requests together walk the data set row by
                // row (worker w sends rows w, w + c, w + 2c, …), so the
                // stream the server sees has the data set's distribution:
                // had each worker started at row 0, a window of 500 items
                // would hold 16 rows 32 times over, and the drift monitor
                // would rightly fire on every pass.
                let first = (seq * concurrency + worker) * per_request;
                let body = if per_request == 1 {
                    format!(
                        r#"{{"id":"{}","input":{}}}"#,
                        ids[0],
                        rows[first % rows.len()]
                    )
                } else {
                    let items: Vec<String> = ids
                        .iter()
                        .enumerate()
                        .map(|(k, id)| {
                            format!(
                                r#"{{"id":"{id}","input":{}}}"#,
                                rows[(first + k) % rows.len()]
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
                        let latency = sent.elapsed().as_micros() as u64;
                        if slow_us.is_some_and(|limit| latency >= limit) {
                            slow.push((chrono::Utc::now(), latency));
                        }
                        latencies.push(latency);
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
            (latencies, acked, errors, slow)
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
    let mut slow = Vec::new();
    for h in handles {
        let (latencies, ids, errors, slowest) = h.await.expect("load loop");
        report.requests += latencies.len();
        report.latencies_us.extend(latencies);
        report.errors += errors;
        acked.extend(ids);
        slow.extend(slowest);
    }
    slow.sort_unstable();
    for (answered, latency) in slow {
        eprintln!(
            "{name}: slow request answered at {} after {:.2} ms",
            answered.format("%H:%M:%S%.3f"),
            latency as f64 / 1000.0
        );
    }
    report.items = acked.len();
    report.elapsed = started.elapsed();
    (report, acked)
}

pub(super) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}
