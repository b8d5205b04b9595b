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

#[actix_web::test]
async fn a_monitor_far_behind_judges_the_newest_window_and_counts_what_it_skipped() {
    let app = app().await;
    let demo = demo();
    let catch_up = verdict::monitoring::drift::CATCH_UP;
    let onset = 600;
    let mut stream = Stream::new(&demo, 7).shifted("mean_radius", 1.0, onset);
    let mut monitor = drift_monitor(&app);
    while stream.next < onset {
        let (status, body) = app.post(&stream.batch(100)).await;
        assert_eq!(status, 200, "{body}");
    }
    let first = monitor.run_once().await.unwrap();
    assert_eq!(first.evaluations, 1, "the start judges the newest window");
    // More new items than a pass follows one by one: a burst.
    while stream.next < onset + catch_up + 500 {
        let (status, body) = app.post(&stream.batch(500)).await;
        assert_eq!(status, 200, "{body}");
    }
    let pass = monitor.run_once().await.unwrap();
    assert_eq!(pass.items, catch_up + 500, "every new item is counted");
    assert_eq!(pass.evaluations, 1, "only the newest window is judged");
    let (_, report) = app
        .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
        .await;
    assert_eq!(
        report["drift"]["items_seen"], stream.next as u64,
        "{report}"
    );
    let open = open_alerts(&app, AlertKind::DataDrift).await;
    assert!(open.contains(&"mean_radius".to_string()), "{open:?}");
    // Caught up, it follows every step again.
    let (status, body) = app.post(&stream.batch(300)).await;
    assert_eq!(status, 200, "{body}");
    let pass = monitor.run_once().await.unwrap();
    assert_eq!((pass.items, pass.evaluations), (300, 3));
}

/// Whether base row `r` belongs to the sub-population whose label flips:
/// a fixed 30% of the demo rows, by a stable hash of the row index.
fn in_flipped_share(r: usize) -> bool {
    (r as u64).wrapping_mul(2_654_435_761) % 100 < 30
}

/// Labels every queued item through the review page as `truth` says;
/// returns how many blind audits were labelled.
async fn review_all(
    browser: &mut crate::web::Browser,
    truth: &std::collections::HashMap<String, (String, bool)>,
) -> usize {
    let mut audits = 0;
    loop {
        let (status, page, _) = browser.get(&format!("/review/{TASK}")).await;
        assert_eq!(status, 200, "{page}");
        // The label form's action names the item; the empty page has none.
        let Some(end) = page.find("/label\"") else {
            return audits;
        };
        let marker = format!("action=\"/review/{TASK}/");
        let start = page[..end].rfind(&marker).expect("a label form") + marker.len();
        let id = &page[start..end];
        let (label, audit) = truth.get(id).expect("an item of the stream");
        let csrf = crate::web::Browser::csrf(&page);
        let shown_at = (chrono::Utc::now().timestamp_millis() - 2000).to_string();
        let (status, body, _, _) = browser
            .post(
                &format!("/review/{TASK}/{id}/label"),
                &[("csrf", &csrf), ("label", label), ("shown_at", &shown_at)],
            )
            .await;
        assert_eq!(status, 303, "{body}");
        audits += usize::from(*audit);
    }
}

#[actix_web::test]
async fn a_label_flip_in_a_third_of_cases_is_caught_from_blind_audits() {
    let mut caught = Vec::new();
    for seed in 0..10 {
        caught.push(blind_audits_to_concept_alert(seed).await);
    }
    caught.sort_unstable();
    eprintln!("blind audits from the flip to the alert, 10 seeds: {caught:?}");
    assert!(caught[caught.len() - 1] <= 300, "{caught:?}");
}

/// Blind audits labelled after the flip until the concept-drift alert;
/// checks on the way that nothing fires before the flip and that the
/// label-free estimates agree with the audits on undrifted traffic.
async fn blind_audits_to_concept_alert(seed: u64) -> usize {
    let mut config = task(AutomationLevel::Partial);
    // Every automated item is also audited blind.
    config.audit_rate = 1.0;
    let app = spawn_without_jobs(Backend::Sqlite, config, None, |_| {})
        .await
        .unwrap();
    crate::web::add_user(&app, "rita", verdict::domain::Role::Reviewer, &[TASK]);
    let mut browser = crate::web::Browser::new(&app);
    browser.sign_in("rita", "a long passphrase").await;
    let demo = demo();
    let labels = ["malignant", "benign"];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut monitor = drift_monitor(&app);
    let mut truth = std::collections::HashMap::new();
    let flip_at = 600;
    let mut audits_after_flip = 0;
    let mut caught = None;
    for batch in 0..40 {
        let items: Vec<Value> = (0..50)
            .map(|k| {
                let i = batch * 50 + k;
                let r = rng.random_range(0..demo.rows.len());
                let mut label = demo.labels[r];
                if i >= flip_at && in_flipped_share(r) {
                    label = 1 - label;
                }
                let input: serde_json::Map<String, Value> = demo
                    .names
                    .iter()
                    .zip(&demo.rows[r])
                    .map(|(n, &v)| (n.clone(), json!(v)))
                    .collect();
                let id = format!("c-{i}");
                truth.insert(id.clone(), (labels[label].to_string(), false));
                json!({"id": id, "input": input})
            })
            .collect();
        let (status, body) = app.post(&json!({ "items": items })).await;
        assert_eq!(status, 200, "{body}");
        for doc in body["items"].as_array().unwrap() {
            let id = doc["id"].as_str().unwrap();
            truth.get_mut(id).unwrap().1 = doc["audit"] == true;
        }
        let audits = review_all(&mut browser, &truth).await;
        monitor.run_once().await.unwrap();
        let open = open_alerts(&app, AlertKind::ConceptDrift).await;
        if (batch + 1) * 50 <= flip_at {
            assert!(
                open.is_empty(),
                "no concept drift before the flip: {open:?}"
            );
            if (batch + 1) * 50 == flip_at {
                // Undrifted traffic: the estimates agree with the audits.
                let (_, report) = app
                    .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
                    .await;
                let e = &report["estimates"];
                let realised = e["realised"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("blind audits measured: {report:#}"));
                for estimate in ["cbpe", "atc"] {
                    let value = e[estimate]
                        .as_f64()
                        .unwrap_or_else(|| panic!("{estimate}: {e}"));
                    assert!(
                        (value - realised).abs() <= 0.02,
                        "{estimate} {value} vs realised {realised}: {e}"
                    );
                }
            }
        } else {
            audits_after_flip += audits;
            if !open.is_empty() {
                caught = Some(audits_after_flip);
                break;
            }
        }
    }
    caught.unwrap_or_else(|| panic!("seed {seed}: the flip is not caught"))
}

#[actix_web::test]
async fn on_postgresql_the_monitor_reports_every_feature_and_catches_a_shift() {
    let Some(app) = spawn_without_jobs(
        Backend::Postgres,
        task(AutomationLevel::Partial),
        None,
        |_| {},
    )
    .await
    else {
        return;
    };
    let demo = demo();
    let mut stream = Stream::new(&demo, 5).shifted("mean_radius", 1.0, 600);
    let mut monitor = drift_monitor(&app);
    while stream.next < 1200 {
        let (status, body) = app.post(&stream.batch(100)).await;
        assert_eq!(status, 200, "{body}");
        monitor.run_once().await.expect("a monitor pass");
        if stream.next == 600 {
            let (_, report) = app
                .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
                .await;
            let drift = &report["drift"];
            assert!(drift["evaluated_at"].is_string(), "{drift}");
            assert_eq!(drift["method"], "sample");
            assert_eq!(drift["features"].as_array().unwrap().len(), 30);
            assert!(open_alerts(&app, AlertKind::DataDrift).await.is_empty());
        }
    }
    let open = open_alerts(&app, AlertKind::DataDrift).await;
    assert!(open.contains(&"mean_radius".to_string()), "{open:?}");
    let (_, metrics) = app.metrics().await;
    assert!(
        metrics.contains(r#"verdict_drift_score{task="tumor-triage",feature="mean_radius"}"#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"verdict_alerts_firing{kind="data_drift"} 0"#),
        "{metrics}"
    );
}
