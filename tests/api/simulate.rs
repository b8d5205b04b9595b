//! `verdict simulate` as a user runs it: the built binary against a running
//! app, its reviewers creating their accounts through the admin page and
//! labelling through the web UI.

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;
use serde_json::Value;

use crate::helpers::{repo, spawn_with, task, Backend, TASK};
use crate::web::add_user;
use verdict::db::schema::{items, reviews};
use verdict::domain::{AutomationLevel, Role};

crate::on_both_backends!(simulate_sends_every_item_and_its_reviewers_label_every_queued_one);

const ITEMS: usize = 300;

/// `verdict simulate` against `url` for the test task, reviewers who make
/// no mistakes created by the admin `sim-admin` (password "a long
/// passphrase"), draining the queue; `args` add the run's size. Returns the
/// JSON summary, once the command succeeded.
pub async fn run_simulate(url: &str, token: &str, args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(repo())
        .env_remove("VERDICT_CONFIG")
        .args(["simulate", "--url", url, "--token", token, "--task", TASK])
        .args(args)
        .args(["--reviewer-error", "0"])
        .args(["--reviewer-password", "sim reviewer password"])
        .args(["--admin", "sim-admin:a long passphrase"])
        .args(["--drain-timeout", "120", "--json"])
        .output()
        .await
        .expect("run verdict simulate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("JSON on stdout ({e}): {stderr}"))
}

async fn simulate_sends_every_item_and_its_reviewers_label_every_queued_one(backend: Backend) {
    // Partial automation with a high threshold and audits: some items
    // queue as uncertain, some decided ones are audited blind.
    let config = verdict::config::TaskConfig {
        threshold: Some(0.99),
        audit_rate: 0.1,
        ..task(AutomationLevel::Partial)
    };
    let Some(app) = spawn_with(backend, config, None).await else {
        return;
    };
    add_user(&app, "sim-admin", Role::Admin, &[]);

    let summary = run_simulate(
        &app.base,
        &app.token,
        &[
            "--items",
            &ITEMS.to_string(),
            "--rate",
            "150",
            "--reviewers",
            "2",
        ],
    )
    .await;
    assert_eq!(summary["items"]["sent"], ITEMS, "{summary:#}");
    assert_eq!(summary["items"]["failed"], 0, "{summary:#}");
    assert_eq!(summary["errors"]["total"], 0, "{summary:#}");
    assert_eq!(summary["drained"], true, "{summary:#}");
    assert_eq!(summary["queue_left"], 0, "{summary:#}");
    assert_eq!(summary["labels"]["wrong"], 0);
    let prefix = summary["id_prefix"].as_str().unwrap().to_string();

    let mut conn = app.db.connect();
    let stored: Vec<(String, String, Option<String>, bool)> = items::table
        .filter(items::task.eq(TASK))
        .select((items::id, items::input, items::reason, items::audit))
        .load(&mut conn)
        .unwrap();
    let labels: Vec<(String, String, String)> = reviews::table
        .filter(reviews::task.eq(TASK))
        .select((reviews::item_id, reviews::reviewer, reviews::label))
        .load(&mut conn)
        .unwrap();

    // Every item sent exists, under the ids the run names.
    let ids: BTreeSet<&str> = stored.iter().map(|(id, ..)| id.as_str()).collect();
    let expected: BTreeSet<String> = (0..ITEMS).map(|n| format!("{prefix}{n}")).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect());

    // Every item that went to a human got exactly one label; the summary
    // counts what the store holds.
    let queued = stored.iter().filter(|(_, _, reason, _)| reason.is_some());
    let audited = stored.iter().filter(|(.., audit)| *audit);
    assert_eq!(summary["items"]["queued"], queued.clone().count());
    assert_eq!(summary["items"]["audited"], audited.clone().count());
    assert!(queued.clone().count() > 0 && audited.clone().count() > 0);
    let mut per_item: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, reviewer, label) in &labels {
        assert!(reviewer.starts_with("sim-reviewer-"), "{reviewer}");
        per_item.entry(id).or_default().push(label);
    }
    for (id, ..) in queued.chain(audited) {
        assert_eq!(per_item.get(id.as_str()).map(Vec::len), Some(1), "{id}");
    }
    assert_eq!(summary["labels"]["given"], labels.len());

    // Without reviewer errors every label is the true label of the data
    // row the item was drawn from (the nearest row: the jitter is ±1 % of
    // a standard deviation).
    let data = verdict::ml::train::read_dataset(
        &repo().join("data/breast_cancer.csv"),
        Some(&repo().join("data/breast_cancer.features.txt")),
        "label",
    )
    .unwrap();
    let std: Vec<f64> = (0..data.features.len())
        .map(|j| {
            let n = data.x.len() as f64;
            let mean = data.x.iter().map(|r| r[j]).sum::<f64>() / n;
            (data.x.iter().map(|r| (r[j] - mean).powi(2)).sum::<f64>() / n).sqrt()
        })
        .collect();
    let inputs: HashMap<&str, &str> = stored
        .iter()
        .map(|(id, input, ..)| (id.as_str(), input.as_str()))
        .collect();
    for (id, _, label) in &labels {
        let input: Value = serde_json::from_str(inputs[id.as_str()]).unwrap();
        let values: Vec<f64> = data
            .features
            .iter()
            .map(|f| input[f].as_f64().unwrap())
            .collect();
        let distance = |row: &Vec<f64>| -> f64 {
            row.iter()
                .zip(&values)
                .zip(&std)
                .map(|((a, b), s)| ((a - b) / s).powi(2))
                .sum()
        };
        let nearest = (0..data.x.len())
            .min_by(|&a, &b| distance(&data.x[a]).total_cmp(&distance(&data.x[b])))
            .unwrap();
        assert_eq!(label, &data.labels[data.y[nearest]], "{id}");
    }
}
