//! Submitting items to the scoring API at a steady rate: one item per
//! request, or `--batch` items per request when the rate is high. Each
//! request is sent at its scheduled time (an open load, as clients make
//! it), at most `--concurrency` at once; 429 and 503 are retried with
//! backoff, every other refusal is counted.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::data::Scenario;
use super::reviewers::{backoff, transport};
use super::{inc, Counters, Stop};

/// Attempts of one request before a 429, 503 or lost connection counts as
/// an error.
const ATTEMPTS: u32 = 8;

#[derive(Deserialize)]
struct Doc {
    status: String,
    #[serde(default)]
    audit: bool,
}

#[derive(Deserialize)]
struct Batch {
    items: Vec<Doc>,
}

/// The `error.code` of an API error body, if it has one.
fn error_code(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    value["error"]["code"].as_str().map(String::from)
}

/// A `Retry-After` in seconds, capped at 30 s.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(30)))
}

pub struct Submitter {
    pub http: reqwest::Client,
    /// `…/api/v1/tasks/{task}/items`
    pub url: String,
    pub token: String,
    pub scenario: Arc<Scenario>,
    /// Item ids are `{prefix}{n}`.
    pub prefix: String,
    pub counters: Arc<Counters>,
    pub bar: ProgressBar,
}

impl Submitter {
    /// The body of one request: the single-item form for one item, the
    /// batch form for more.
    pub fn body(&self, numbers: Range<u64>) -> String {
        let mut docs: Vec<Value> = numbers
            .map(|n| {
                let item = self.scenario.item(n);
                json!({"id": format!("{}{n}", self.prefix), "input": item.input})
            })
            .collect();
        if docs.len() == 1 {
            docs.pop().expect("one item").to_string()
        } else {
            json!({ "items": docs }).to_string()
        }
    }

    /// Sends items `0..items`, `batch` per request, `rate` items a second,
    /// until done or cancelled; returns how long it took.
    pub async fn run(
        self: Arc<Self>,
        items: u64,
        rate: f64,
        batch: u64,
        concurrency: usize,
        stop: Stop,
    ) -> Duration {
        let permits = Arc::new(Semaphore::new(concurrency));
        let start = Instant::now();
        let mut requests = tokio::task::JoinSet::new();
        for first in (0..items).step_by(batch as usize) {
            let due = start + Duration::from_secs_f64(first as f64 / rate);
            if !stop.sleep_until(due).await {
                break;
            }
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = stop.cancelled_wait() => break,
            };
            let this = self.clone();
            let stop = stop.clone();
            let numbers = first..(first + batch).min(items);
            requests.spawn(async move {
                this.send(numbers, &stop).await;
                drop(permit);
            });
            while requests.try_join_next().is_some() {}
        }
        while requests.join_next().await.is_some() {}
        start.elapsed()
    }

    /// One request with its retries; counts what came of it.
    async fn send(&self, numbers: Range<u64>, stop: &Stop) {
        let count = numbers.end - numbers.start;
        let body = self.body(numbers);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(&self.url)
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let wait = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let wait = retry_after(&response);
                    let text = response.text().await.unwrap_or_default();
                    match status {
                        200 | 201 => {
                            self.accepted(&text, count, started.elapsed());
                            return;
                        }
                        429 | 503 if attempt < ATTEMPTS => wait.unwrap_or_else(|| backoff(attempt)),
                        _ if stop.cancelled() => return,
                        _ => {
                            let code = error_code(&text).unwrap_or_default();
                            self.failed(format!("items: {status} {code}").trim_end(), count);
                            return;
                        }
                    }
                }
                Err(_) if stop.cancelled() => return,
                Err(_) if attempt < ATTEMPTS => backoff(attempt),
                Err(e) => {
                    self.failed(&format!("items: {}", transport(&e)), count);
                    return;
                }
            };
            inc(&self.counters.retries);
            if !stop.sleep_until(Instant::now() + wait).await {
                // Cancelled while waiting to retry: neither sent nor failed.
                return;
            }
        }
    }

    fn accepted(&self, body: &str, count: u64, latency: Duration) {
        let docs = if count == 1 {
            serde_json::from_str::<Doc>(body).map(|d| vec![d])
        } else {
            serde_json::from_str::<Batch>(body).map(|b| b.items)
        };
        let Ok(docs) = docs else {
            self.failed("items: an answer that is not an item document", count);
            return;
        };
        let c = &self.counters;
        for doc in &docs {
            inc(&c.sent);
            match doc.status.as_str() {
                "queued" => inc(&c.queued),
                _ => inc(&c.decided),
            }
            if doc.audit {
                inc(&c.audited);
            }
        }
        c.latencies_us
            .lock()
            .expect("latencies lock")
            .push(latency.as_micros() as u64);
        self.bar.inc(count);
    }

    fn failed(&self, kind: &str, count: u64) {
        self.counters.failed.fetch_add(count, Ordering::Relaxed);
        self.counters.error(kind.to_string());
        self.bar.inc(count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_codes_are_read_from_the_body() {
        let body = r#"{"error": {"code": "out_of_range", "message": "…", "field": "input.a"}}"#;
        assert_eq!(error_code(body).as_deref(), Some("out_of_range"));
        assert_eq!(error_code("<html>"), None);
    }

    #[test]
    fn one_item_goes_alone_and_more_as_a_batch() {
        let rows = (0..30).map(|i| vec![i as f64, 1.0]).collect();
        let data = super::super::data::DemoData::new(
            vec!["a".into(), "b".into()],
            vec!["x".into(), "y".into()],
            rows,
            (0..30).map(|i| i % 2).collect(),
        );
        let submitter = Submitter {
            http: reqwest::Client::new(),
            url: String::new(),
            token: String::new(),
            scenario: Arc::new(Scenario::new(data, 1, 0.01, &[], None).unwrap()),
            prefix: "sim-r-".into(),
            counters: Default::default(),
            bar: ProgressBar::hidden(),
        };
        let one: Value = serde_json::from_str(&submitter.body(4..5)).unwrap();
        assert_eq!(one["id"], "sim-r-4");
        assert_eq!(one["input"].as_object().unwrap().len(), 2);
        let batch: Value = serde_json::from_str(&submitter.body(10..13)).unwrap();
        let ids: Vec<&str> = batch["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["sim-r-10", "sim-r-11", "sim-r-12"]);
    }
}
