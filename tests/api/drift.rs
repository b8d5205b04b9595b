//! Drift caught through the public API: streams generated from the demo
//! data (rows resampled with a little jitter, seeded) are scored through
//! `POST /api/v1/tasks/{task}/items`, the drift monitor runs its passes, and
//! the alerts it raises are read back.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::helpers::{spawn_without_jobs, task, Backend, TestApp, TASK};
use verdict::domain::{AlertKind, AutomationLevel};
use verdict::monitoring::drift::DriftMonitor;

/// The demo rows and the per-feature standard deviation of the data.
struct Demo {
    names: Vec<String>,
    rows: Vec<Vec<f64>>,
    labels: Vec<usize>,
    sd: Vec<f64>,
}

fn demo() -> Demo {
    let root = crate::helpers::repo();
    let data = verdict::ml::train::read_dataset(
        &root.join("data/breast_cancer.csv"),
        Some(&root.join("data/breast_cancer.features.txt")),
        "label",
    )
    .unwrap();
    let n = data.x.len() as f64;
    let sd = (0..data.features.len())
        .map(|j| {
            let mean = data.x.iter().map(|r| r[j]).sum::<f64>() / n;
            (data.x.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        })
        .collect();
    Demo {
        names: data.features,
        rows: data.x,
        labels: data.y,
        sd,
    }
}

/// A seeded stream of demo rows with ±1% (of each feature's spread)
/// jitter; from item `onset` on, `feature` is shifted by `sigmas`.
struct Stream<'a> {
    demo: &'a Demo,
    rng: StdRng,
    seed: u64,
    next: usize,
    shift: Option<(usize, f64, usize)>,
}

impl<'a> Stream<'a> {
    fn new(demo: &'a Demo, seed: u64) -> Self {
        Stream {
            demo,
            rng: StdRng::seed_from_u64(seed),
            seed,
            next: 0,
            shift: None,
        }
    }

    fn shifted(mut self, feature: &str, sigmas: f64, onset: usize) -> Self {
        let j = self.demo.names.iter().position(|n| n == feature).unwrap();
        self.shift = Some((j, sigmas, onset));
        self
    }

    /// The next `n` items as a batch body.
    fn batch(&mut self, n: usize) -> Value {
        let items: Vec<Value> = (0..n)
            .map(|_| {
                let i = self.next;
                self.next += 1;
                let r = self.rng.random_range(0..self.demo.rows.len());
                let input: serde_json::Map<String, Value> = self.demo.rows[r]
                    .iter()
                    .enumerate()
                    .map(|(j, &v)| {
                        let jitter = self.rng.random_range(-0.01..0.01) * self.demo.sd[j];
                        let shift = match self.shift {
                            Some((k, s, onset)) if k == j && i >= onset => s * self.demo.sd[j],
                            _ => 0.0,
                        };
                        (
                            self.demo.names[j].clone(),
                            json!((v + jitter + shift).max(0.0)),
                        )
                    })
                    .collect();
                json!({"id": format!("s{}-{i}", self.seed), "input": input})
            })
            .collect();
        let _ = &self.demo.labels;
        json!({ "items": items })
    }
}

fn drift_monitor(app: &TestApp) -> DriftMonitor {
    DriftMonitor::new(
        app.state.db.clone(),
        app.state.tasks.clone(),
        app.state.settings.monitoring.clone(),
        verdict::alerts::AlertConfig::from_settings(&app.state.settings),
    )
}

/// Open alerts of `kind` in the test task, by subject.
async fn open_alerts(app: &TestApp, kind: AlertKind) -> Vec<String> {
    let (_, body) = app
        .get(&format!("/api/v1/alerts?task={TASK}&state=open"))
        .await;
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind.as_str())
        .map(|a| a["subject"].as_str().unwrap().to_string())
        .collect()
}

/// Every alert ever raised in the test task (open or resolved).
async fn all_alerts(app: &TestApp) -> Vec<(String, String)> {
    let (_, body) = app.get(&format!("/api/v1/alerts?task={TASK}")).await;
    body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap().to_string(),
                a["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn app() -> TestApp {
    spawn_without_jobs(
        Backend::Sqlite,
        task(AutomationLevel::Partial),
        None,
        |_| {},
    )
    .await
    .expect("a SQLite app")
}

/// Items after onset until the first data_drift alert on `feature`, with
/// the monitor passing after every `step` items; `None` within `limit`.
async fn items_to_detection(seed: u64, feature: &str, onset: usize, limit: usize) -> Option<usize> {
    let app = app().await;
    let demo = demo();
    let mut stream = Stream::new(&demo, seed).shifted(feature, 1.0, onset);
    let mut monitor = drift_monitor(&app);
    let step = 100;
    while stream.next < onset + limit {
        let (status, body) = app.post(&stream.batch(step)).await;
        assert_eq!(status, 200, "{body}");
        monitor.run_once().await.expect("a monitor pass");
        if stream.next > onset
            && open_alerts(&app, AlertKind::DataDrift)
                .await
                .iter()
                .any(|s| s == feature)
        {
            return Some(stream.next - onset);
        }
    }
    None
}

#[actix_web::test]
async fn a_one_sigma_shift_of_one_feature_is_alerted_within_500_items() {
    let mut delays = Vec::new();
    for seed in 0..20 {
        let delay = items_to_detection(seed, "mean_radius", 1000, 1000).await;
        delays.push(delay.unwrap_or(usize::MAX));
    }
    delays.sort_unstable();
    eprintln!("items from onset to the alert, 20 seeds: {delays:?}");
    let median = delays[delays.len() / 2];
    assert!(
        median <= 500,
        "median {median} items after onset: {delays:?}"
    );
    assert!(delays[delays.len() - 1] <= 1000, "worst: {delays:?}");
}

#[actix_web::test]
async fn undrifted_streams_raise_no_drift_alert() {
    for seed in 100..120 {
        let app = app().await;
        let demo = demo();
        let mut stream = Stream::new(&demo, seed);
        let mut monitor = drift_monitor(&app);
        let mut evaluations = 0;
        while stream.next < 20_000 {
            let (status, body) = app.post(&stream.batch(1000)).await;
            assert_eq!(status, 200, "{body}");
            evaluations += monitor.run_once().await.unwrap().evaluations;
        }
        // Every step of 100 items after the first full window was judged.
        assert!(evaluations >= 190, "seed {seed}: {evaluations} evaluations");
        // No drift of any kind, and no drop of automation or estimate.
        let raised = all_alerts(&app).await;
        assert!(raised.is_empty(), "seed {seed}: {raised:?}");
    }
}
