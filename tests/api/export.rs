//! Label export and dataset snapshots: the same rows in both formats,
//! filters that pick the right rows, resumable paging that neither loses
//! nor repeats a row while labels arrive, and an export → train → serve
//! round trip.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::{repo, spawn_with, task, Backend, TestApp, TASK};
use verdict::db::Db;
use verdict::domain::AutomationLevel;
use verdict::review::{self, Label, Rules};

crate::on_both_backends!(
    csv_and_jsonl_hold_the_same_rows_and_filters_pick_them,
    resuming_with_after_neither_loses_nor_repeats_rows_while_labels_arrive,
    a_snapshot_is_immutable_and_trains_a_model_that_serves,
);

/// The demo data: inputs and their true labels.
pub(crate) fn labelled_rows() -> Vec<(Value, String)> {
    let data = verdict::ml::train::read_dataset(
        &repo().join("data/breast_cancer.csv"),
        Some(&repo().join("data/breast_cancer.features.txt")),
        "label",
    )
    .unwrap();
    data.x
        .iter()
        .zip(&data.y)
        .map(|(x, &y)| {
            let input: serde_json::Map<String, Value> = data
                .features
                .iter()
                .cloned()
                .zip(x.iter().map(|&v| json!(v)))
                .collect();
            (Value::Object(input), data.labels[y].clone())
        })
        .collect()
}

/// The running app's own store (never a second writer on the same file).
fn open(app: &TestApp) -> Db {
    app.store.clone()
}

/// Submits rows `range` of the demo data as items `e00000…`.
pub(crate) async fn submit(app: &TestApp, range: std::ops::Range<usize>) {
    let data = labelled_rows();
    let items: Vec<Value> = range
        .map(|i| json!({"id": format!("e{i:05}"), "input": data[i].0}))
        .collect();
    for chunk in items.chunks(500) {
        let (status, body) = app.post(&json!({ "items": chunk })).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Claims and labels (with the true label) up to `n` queued items as
/// `reviewer`; returns the ids labelled.
pub(crate) async fn label_queued(db: &Db, reviewer: &str, n: usize) -> Vec<String> {
    let truth = labelled_rows();
    let mut done = Vec::new();
    while done.len() < n {
        let who = reviewer.to_string();
        let Some(claim) = db
            .write(move |conn| review::claim_next(conn, TASK, &who, review::DEFAULT_LEASE))
            .await
            .unwrap()
        else {
            break;
        };
        let id = claim.item.id.clone();
        let index: usize = id[1..].parse().unwrap();
        let label = Label {
            label: truth[index].1.clone(),
            comment: Some("checked".into()),
            seconds_spent: Some(3.0),
        };
        let (who, item) = (reviewer.to_string(), id.clone());
        db.write(move |conn| {
            let rules = Rules {
                labels: vec!["malignant".into(), "benign".into()],
                reviews_required: 1,
                callback_url: None,
            };
            review::submit(conn, TASK, &rules, &item, &who, &label)
        })
        .await
        .unwrap();
        done.push(id);
    }
    done
}

impl TestApp {
    async fn export(&self, query: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let r = self
            .client
            .get(format!("{}/api/v1/tasks/{TASK}/labels?{query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.text().await.unwrap(), headers)
    }

    async fn jsonl(&self, query: &str) -> Vec<Value> {
        let (status, body, headers) = self.export(&format!("format=jsonl&{query}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["content-type"], "application/x-ndjson");
        body.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    async fn csv(&self, query: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
        let (status, body, headers) = self.export(&format!("format=csv&{query}")).await;
        assert_eq!(status, 200, "{body}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let mut reader = csv::Reader::from_reader(body.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows = reader
            .records()
            .map(|r| {
                header
                    .iter()
                    .cloned()
                    .zip(r.unwrap().iter().map(String::from))
                    .collect()
            })
            .collect();
        (header, rows)
    }
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn csv_and_jsonl_hold_the_same_rows_and_filters_pick_them(backend: Backend) {
    let mut config = task(AutomationLevel::Partial);
    config.threshold = Some(0.99);
    config.audit_rate = 0.3;
    let Some(app) = spawn_with(backend, config, None).await else {
        return;
    };
    submit(&app, 0..200).await;
    let db = open(&app);
    label_queued(&db, "ana", 1000).await;

    let all = app.jsonl("").await;
    let all_ids = ids(&all);
    assert_eq!(all.len(), 200, "every item has a verdict");
    let mut sorted = all_ids.clone();
    sorted.sort();
    assert_eq!(all_ids, sorted, "rows come in id order");

    // The same rows, in the same order, with the same values, in CSV.
    let (header, csv_rows) = app.csv("").await;
    assert_eq!(&header[..3], ["id", "created_at", "input.mean_radius"]);
    assert_eq!(
        header[2 + 30],
        "label",
        "30 input columns, in the model's order"
    );
    assert!(header.contains(&"human_label".to_string()));
    assert_eq!(
        csv_rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        all_ids
    );
    let truth = labelled_rows();
    for (j, c) in all.iter().zip(&csv_rows) {
        assert_eq!(j["label"], c["label"].as_str());
        assert_eq!(j["source"], c["source"].as_str());
        assert_eq!(j["audit"].as_bool().unwrap().to_string(), c["audit"]);
        let index: usize = c["id"][1..].parse().unwrap();
        let radius: f64 = c["input.mean_radius"].parse().unwrap();
        assert_eq!(radius, truth[index].0["mean_radius"].as_f64().unwrap());
        assert_eq!(j["input"]["mean_radius"].as_f64().unwrap(), radius);
        if j["source"] == "human" {
            assert_eq!(j["label"], truth[index].1.as_str(), "the reviewer's label");
            assert_eq!(j["reviewers"], json!(["ana"]));
            assert_eq!(j["decided_by"], "ana");
            assert_eq!(j["basis"], "single");
            assert_eq!(c["reviewers"], "ana");
            assert_eq!(j["review_seconds"], 3.0);
        } else {
            assert_eq!(j["basis"], "model");
            assert!(j["model_confidence"].as_f64().unwrap() >= 0.99);
            assert_eq!(j["model_label"], j["label"]);
        }
    }

    // Filters pick exactly the rows the database says they should.
    let human = app.jsonl("source=human").await;
    let model = app.jsonl("source=model").await;
    let audit = app.jsonl("kind=audit").await;
    let uncertain = app.jsonl("kind=uncertain").await;
    assert!(!human.is_empty() && !model.is_empty() && !audit.is_empty());
    assert_eq!(human.len() + model.len(), 200);
    assert!(human.iter().all(|r| r["source"] == "human"));
    assert!(model.iter().all(|r| r["source"] == "model"));
    assert_eq!(
        ids(&uncertain),
        ids(&human),
        "here every human verdict was uncertain"
    );
    assert!(audit
        .iter()
        .all(|r| r["audit"] == true && r["source"] == "model"));
    for r in &audit {
        let index: usize = r["id"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(r["human_label"], truth[index].1.as_str(), "the blind label");
        assert_eq!(r["review_count"], 1);
    }
    let audited_in_db = {
        use diesel::prelude::*;
        use verdict::db::schema::items;
        let mut conn = app.db.connect();
        items::table
            .filter(items::audit.eq(true))
            .count()
            .get_result::<i64>(&mut conn)
            .unwrap()
    };
    assert_eq!(audit.len() as i64, audited_in_db);
    // The count behind the CLI's progress bar agrees with every filter.
    let mut conn = app.db.connect();
    for (query, rows) in [
        ("", all.len()),
        ("source=human", human.len()),
        ("source=model", model.len()),
        ("kind=audit", audit.len()),
        ("kind=uncertain", uncertain.len()),
    ] {
        let pairs = query
            .split_once('=')
            .map(|(k, v)| vec![(k.to_string(), v.to_string())])
            .unwrap_or_default();
        let request = verdict::export::Params::from_pairs(pairs)
            .unwrap()
            .parse(verdict::export::Format::Jsonl)
            .unwrap();
        let counted = verdict::store::labels::count(&mut conn, TASK, &request.filter).unwrap();
        assert_eq!(counted as usize, rows, "{query}");
    }
    let future = app.jsonl("since=2999-01-01").await;
    assert!(future.is_empty());
    let past = app.jsonl("until=2000-01-01T00:00:00Z").await;
    assert!(past.is_empty());
    assert_eq!(
        app.jsonl("since=2000-01-01&until=2999-01-01").await.len(),
        200
    );

    // Detail on request.
    let detailed = app.jsonl("source=human&include=predictions,reviews").await;
    let first = &detailed[0];
    assert_eq!(first["reviews"][0]["reviewer"], "ana");
    assert_eq!(first["reviews"][0]["comment"], "checked");
    assert_eq!(first["predictions"][0]["model_version"], "v1");
    assert!(first["predictions"][0]["probabilities"]["malignant"].is_number());
    assert!(all[0].get("reviews").is_none(), "not unless asked for");
    let (header, _) = app.csv("include=reviews,predictions").await;
    assert_eq!(&header[header.len() - 2..], ["reviews", "predictions"]);

    // Bad requests say what is wrong; nothing streams.
    for (query, field) in [
        ("format=xml", "format"),
        ("source=robot", "source"),
        ("kind=odd", "kind"),
        ("since=yesterday", "since"),
        ("include=everything", "include"),
        ("after=a%20b", "after"),
        ("colour=blue", "colour"),
    ] {
        let (status, body, _) = app.export(query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let r = app
        .client
        .get(format!("{}/api/v1/tasks/{TASK}/labels", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = app.get("/api/v1/tasks/no-such-task/labels").await;
    assert_eq!(status, 404);
}

async fn resuming_with_after_neither_loses_nor_repeats_rows_while_labels_arrive(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::HumanOnly), None).await else {
        return;
    };
    submit(&app, 0..400).await;
    let db = open(&app);
    let before: BTreeSet<String> = label_queued(&db, "ana", 200).await.into_iter().collect();

    // Read the stream part way, then drop the connection.
    let mut seen: Vec<String> = Vec::new();
    let mut response = app
        .client
        .get(format!(
            "{}/api/v1/tasks/{TASK}/labels?format=jsonl",
            app.base
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let mut pending = String::new();
    while seen.len() < 60 {
        let chunk = response.chunk().await.unwrap().expect("more rows");
        pending.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            let row: Value = serde_json::from_str(&line).unwrap();
            seen.push(row["id"].as_str().unwrap().to_string());
        }
    }
    drop(response);
    let cursor = seen.last().unwrap().clone();

    // More labels arrive, then the export resumes after the cursor.
    let during: BTreeSet<String> = label_queued(&db, "bo", 100).await.into_iter().collect();
    let rest = app.jsonl(&format!("after={cursor}")).await;
    seen.extend(ids(&rest));

    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    assert!(before.is_subset(&unique), "no row lost");
    let after_cursor: BTreeSet<String> =
        during.iter().filter(|id| **id > cursor).cloned().collect();
    assert!(!after_cursor.is_empty());
    assert!(
        after_cursor.is_subset(&unique),
        "labels given meanwhile after the cursor are included"
    );
    assert_eq!(unique.len(), before.len() + after_cursor.len());
    assert!(ids(&rest).iter().all(|id| *id > cursor));
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn a_snapshot_is_immutable_and_trains_a_model_that_serves(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::HumanOnly), None).await else {
        return;
    };
    submit(&app, 0..569).await;
    let db = open(&app);
    assert_eq!(label_queued(&db, "ana", 1000).await.len(), 569);

    let url = format!("{}/api/v1/tasks/{TASK}/datasets", app.base);
    let (status, created) = app
        .post_raw(
            &url,
            json!({"name": "reviewed-1", "format": "csv", "source": "human"}).to_string(),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["rows"], 569);
    assert_eq!(created["filters"]["source"], "human");
    let sha = created["sha256"].as_str().unwrap().to_string();

    // Never overwritten; names are checked.
    let (status, again) = app
        .post_raw(
            &url,
            json!({"name": "reviewed-1", "format": "jsonl"}).to_string(),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "already_exists");
    let (status, bad) = app
        .post_raw(&url, json!({"name": "../escape"}).to_string())
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = app
        .post_raw(&url, json!({"name": "x", "format": "parquet"}).to_string())
        .await;
    assert_eq!(status, 400, "{bad}");

    // The file is the export, byte for byte, and its hash is the record's.
    let file = app
        .client
        .get(format!("{url}/reviewed-1/file"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let bytes = file.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), sha);
    let (_, live_export, _) = app.export("format=csv&source=human").await;
    assert_eq!(live_export.as_bytes(), &bytes[..]);
    let (status, listed) = app.get(&format!("/api/v1/tasks/{TASK}/datasets")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["datasets"][0]["name"], "reviewed-1");

    // Train from the snapshot by name, as a user would.
    let datasets_dir = app.db.dir().join("datasets");
    let models = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .current_dir(repo())
        .env_remove("VERDICT_CONFIG")
        .env("VERDICT_DATABASE_URL", &app.db.url)
        .env("VERDICT_DATASETS_DIR", &datasets_dir)
        .env("VERDICT_MODELS_DIR", models.path())
        .args([
            "train",
            "--task",
            TASK,
            "--data",
            "reviewed-1",
            "--version",
            "from-labels",
            "--max-epochs",
            "80",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let card =
        verdict::ml::ModelCard::read(&models.path().join(TASK).join("from-labels/card.json"))
            .unwrap();
    assert_eq!(
        card.training.data_sha256, sha,
        "the card cites the snapshot"
    );
    assert_eq!(card.training.snapshot.as_deref(), Some("reviewed-1"));
    assert_eq!(card.features.len(), 30);
    assert_eq!(card.training.rows, 569);
    assert!(card.metrics.accuracy > 0.9, "{}", card.metrics.accuracy);

    // The new version serves: a service on it scores items.
    let mut config = task(AutomationLevel::Full);
    config.model_version = Some("from-labels".into());
    // Every item gets the model's verdict, inside the training range or not.
    config.out_of_range = verdict::domain::OutOfRange::Flag;
    let Some(served) = spawn_with(backend, config, Some(models.path())).await else {
        return;
    };
    let truth = labelled_rows();
    let mut right = 0;
    for (i, (input, label)) in truth.iter().enumerate().take(50) {
        let (status, doc) = served.submit(&format!("n{i}"), input.clone()).await;
        assert_eq!(status, 201, "{doc}");
        assert_eq!(doc["verdict"]["model_version"], "from-labels");
        right += usize::from(doc["verdict"]["label"] == label.as_str());
    }
    assert!(right >= 45, "{right} of 50 right");
}
