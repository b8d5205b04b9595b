//! Issue 13: the model registry, a candidate in shadow and canary beside
//! the live version, promotion with its guard rails, rollback, and the
//! automatic withdrawal of a bad candidate with an alert that emails.

use std::path::Path;

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{repo, row, rows, spawn_with, task, Backend, TestApp, TASK};
use verdict::db::schema::{items, predictions, shadow_predictions, verdicts};
use verdict::domain::{AutomationLevel, VerdictSource};

/// Writes a variant of the demo model as `dir/<version>`: the same
/// weights, or with the two outputs swapped (`flipped`: it says benign
/// where the demo says malignant).
pub fn variant(dir: &Path, version: &str, flipped: bool) -> std::path::PathBuf {
    let source = repo().join("models").join(TASK).join("v1");
    let target = dir.join(version);
    std::fs::create_dir_all(&target).unwrap();
    let mut card: Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("card.json")).unwrap()).unwrap();
    card["version"] = json!(version);
    std::fs::write(target.join("card.json"), card.to_string()).unwrap();
    let weights = source.join("model.safetensors");
    if flipped {
        let device = candle_core::Device::Cpu;
        let mut tensors = candle_core::safetensors::load(&weights, &device).unwrap();
        for name in ["output.weight", "output.bias"] {
            let t = tensors[name].clone();
            let swapped = candle_core::Tensor::cat(
                &[t.narrow(0, 1, 1).unwrap(), t.narrow(0, 0, 1).unwrap()],
                0,
            )
            .unwrap();
            tensors.insert(name.to_string(), swapped);
        }
        candle_core::safetensors::save(&tensors, target.join("model.safetensors")).unwrap();
    } else {
        std::fs::copy(weights, target.join("model.safetensors")).unwrap();
    }
    target
}

/// Imports a version directory through the app's own writer.
pub async fn import(app: &TestApp, dir: &Path) {
    let files = verdict::ml::VersionFiles::read(dir).unwrap();
    let config = app.state.settings.task(TASK).unwrap().clone();
    app.store
        .write(move |conn| {
            verdict::tasks::import_version(conn, &config, &files, "test")
                .map_err(|e| verdict::db::DbError::Closed(e.to_string()))
        })
        .await
        .expect("imported");
}

/// The running app follows the deployment now (as its follower does
/// within a second).
pub async fn follow(app: &TestApp) {
    verdict::tasks::DeploymentFollower::new(
        app.store.clone(),
        app.state.tasks.clone(),
        std::time::Duration::from_secs(1),
    )
    .run_once()
    .await
    .unwrap();
}

async fn put(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app
        .client
        .put(format!("{}/api/v1/tasks/{TASK}/deployment", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, action: &str, body: Value) -> (u16, Value) {
    app.post_raw(
        &format!("{}/api/v1/tasks/{TASK}/deployment/{action}", app.base),
        body.to_string(),
    )
    .await
}

/// The true labels of the demo rows.
fn truth() -> Vec<String> {
    let data = verdict::ml::train::read_dataset(
        &repo().join("data/breast_cancer.csv"),
        Some(&repo().join("data/breast_cancer.features.txt")),
        "label",
    )
    .unwrap();
    data.y.iter().map(|&y| data.labels[y].clone()).collect()
}

/// Submits `n` items `prefix-i` (demo rows in turn) in batches of 100.
async fn submit_many(app: &TestApp, prefix: &str, n: usize) {
    let rows = rows();
    for start in (0..n).step_by(100) {
        let batch: Vec<Value> = (start..(start + 100).min(n))
            .map(|i| json!({"id": format!("{prefix}-{i}"), "input": rows[i % rows.len()]}))
            .collect();
        let (status, body) = app.post(&json!({ "items": batch })).await;
        assert!(status == 200 || status == 201, "{status}: {body}");
    }
}

/// Human verdicts (the true label) for the items `prefix-i`, `i` in `range`
/// that have no verdict yet.
async fn label(app: &TestApp, prefix: &str, range: std::ops::Range<usize>) {
    let truth = truth();
    let prefix = prefix.to_string();
    app.store
        .write(move |conn| {
            for i in range {
                let id = format!("{prefix}-{i}");
                let decided: bool = diesel::select(diesel::dsl::exists(
                    verdicts::table.filter(verdicts::item_id.eq(&id)),
                ))
                .get_result(conn)?;
                if decided {
                    continue;
                }
                diesel::insert_into(verdicts::table)
                    .values((
                        verdicts::task.eq(TASK),
                        verdicts::item_id.eq(&id),
                        verdicts::label.eq(&truth[i % truth.len()]),
                        verdicts::source.eq(VerdictSource::Human),
                        verdicts::decided_by.eq("rita"),
                        verdicts::created_at.eq(verdict::domain::now()),
                    ))
                    .execute(conn)?;
            }
            Ok::<_, verdict::db::DbError>(())
        })
        .await
        .unwrap();
}

async fn shadow_and_promotion(backend: Backend) {
    let models = tempfile::tempdir().unwrap();
    // The flipped candidate is promoted by force below: the running
    // server's guard must not withdraw it first (its disagreement with the
    // humans is past any limit; the guard has a test of its own).
    let mut config = task(AutomationLevel::Partial);
    config.candidate.max_disagreement = 1.0;
    let Some(app) = spawn_with(backend, config, None).await else {
        return;
    };
    // Before any candidate: refusals.
    let (status, body) = put(
        &app,
        json!({"candidate": "v9", "mode": "shadow", "why": "try"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_version")),
        "{body}"
    );
    let (status, body) = put(
        &app,
        json!({"candidate": "v1", "mode": "shadow", "why": "try"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("candidate_is_live")),
        "{body}"
    );
    let (status, body) = post(&app, "promote", json!({"why": "go"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("no_candidate")),
        "{body}"
    );

    // A flipped version in shadow: it scores every item, changes nothing.
    import(&app, &variant(models.path(), "v2-flipped", true)).await;
    for (bad, field) in [
        (json!({"candidate": "v2-flipped", "mode": "shadow"}), ""),
        (
            json!({"candidate": "v2-flipped", "mode": "shadow", "why": " "}),
            "why",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "blue", "why": "x"}),
            "mode",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "shadow", "percent": 5, "why": "x"}),
            "percent",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "canary", "why": "x"}),
            "percent",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "canary", "percent": 0, "why": "x"}),
            "percent",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "canary", "percent": 5.5, "why": "x"}),
            "percent",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "canary", "percent": "5", "why": "x"}),
            "percent",
        ),
        (
            json!({"candidate": "v2-flipped", "mode": "shadow", "why": "x", "extra": 1}),
            "",
        ),
    ] {
        let (status, body) = put(&app, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        if !field.is_empty() {
            assert_eq!(body["error"]["field"], field, "{bad}: {body}");
        }
    }
    submit_many(&app, "before", 200).await;
    let (status, d) = put(
        &app,
        json!({"candidate": "v2-flipped", "mode": "shadow", "why": "see how it does"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["candidate"].as_str(), d["mode"].as_str()),
        (Some("v2-flipped"), Some("shadow")),
        "{d}"
    );
    follow(&app).await;
    submit_many(&app, "shadow", 300).await;

    // Every verdict and acting prediction is the live version's, and the
    // same as before the candidate (the same inputs as `before`).
    let mut conn = app.db.connect();
    let verdict_of =
        |conn: &mut verdict::db::DbConnection, id: &str| -> Option<(String, Option<String>)> {
            verdicts::table
                .filter(verdicts::item_id.eq(id))
                .select((verdicts::label, verdicts::model_version))
                .first(conn)
                .optional()
                .unwrap()
        };
    for i in 0..200 {
        assert_eq!(
            verdict_of(&mut conn, &format!("shadow-{i}")),
            verdict_of(&mut conn, &format!("before-{i}")),
            "item {i}: the shadow changed a verdict"
        );
    }
    let acting: Vec<String> = predictions::table
        .filter(predictions::item_id.like("shadow-%"))
        .select(predictions::model_version)
        .load(&mut conn)
        .unwrap();
    assert_eq!(acting.len(), 300);
    assert!(acting.iter().all(|v| v == "v1"), "only live acts in shadow");
    let beside: i64 = shadow_predictions::table
        .filter(shadow_predictions::item_id.like("shadow-%"))
        .filter(shadow_predictions::model_version.eq("v2-flipped"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(beside, 300, "the candidate scored every item");
    // A reviewer never sees the candidate: the item document names live.
    let (_, doc) = app
        .get(&format!("/api/v1/tasks/{TASK}/items/shadow-0"))
        .await;
    assert!(!doc.to_string().contains("v2-flipped"), "{doc}");

    // The comparison, on the same items: the flipped version disagrees
    // with live almost always, and with the humans.
    label(&app, "shadow", 0..300).await;
    let (status, d) = app.get(&format!("/api/v1/tasks/{TASK}/deployment")).await;
    assert_eq!(status, 200);
    let c = &d["comparison"];
    assert_eq!(c["items"], 300, "{c}");
    assert_eq!(c["live"]["version"], "v1");
    assert_eq!(c["candidate"]["scored"], 300);
    assert_eq!(c["candidate"]["acted"], 0);
    let rate = |a: &Value| a["agree"].as_f64().unwrap() / a["compared"].as_f64().unwrap();
    assert!(rate(&c["versions"]) < 0.1, "{c}");
    assert!(rate(&c["live"]["human"]) > 0.8, "{c}");
    assert!(rate(&c["candidate"]["human"]) < 0.2, "{c}");

    // The advisor answers for the candidate too, from the blind labels on
    // the items it scored beside live.
    {
        use verdict::db::schema::reviews;
        let truth = truth();
        app.store
            .write(move |conn| {
                for (i, label) in truth.iter().enumerate().take(40) {
                    diesel::insert_into(reviews::table)
                        .values((
                            reviews::task.eq(TASK),
                            reviews::item_id.eq(format!("shadow-{i}")),
                            reviews::reviewer.eq("rita"),
                            reviews::label.eq(label),
                            reviews::seconds_spent.eq(3.0),
                            reviews::blind.eq(true),
                            reviews::created_at.eq(verdict::domain::now()),
                        ))
                        .execute(conn)?;
                }
                Ok::<_, verdict::db::DbError>(())
            })
            .await
            .unwrap();
    }
    for (version, wrong) in [("v1", false), ("v2-flipped", true)] {
        let (status, advice) = app
            .get(&format!(
                "/api/v1/tasks/{TASK}/advisor?target_error=0.1&version={version}"
            ))
            .await;
        assert_eq!(status, 200, "{advice}");
        assert_eq!(advice["labelled"], 40, "{version}: {advice}");
        assert!(
            advice["scored"].as_u64().unwrap() >= 300,
            "{version}: {advice}"
        );
        assert_eq!(
            advice["recommended"].is_null(),
            wrong,
            "{version}: {advice}"
        );
    }

    // Promotion: refused on too little evidence, then forced with a why.
    let (status, body) = post(&app, "promote", json!({"why": "looks fine"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_enough_evidence")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300 items"),
        "{body}"
    );
    let (status, d) = post(
        &app,
        "promote",
        json!({"why": "forced in a test", "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (
            d["live"].as_str(),
            d["previous"].as_str(),
            d["candidate"].as_str()
        ),
        (Some("v2-flipped"), Some("v1"), None),
        "{d}"
    );
    follow(&app).await;
    let (_, doc) = app.submit("after-promotion", row(0)).await;
    assert_eq!(doc["prediction"]["model_version"], "v2-flipped", "{doc}");
    let (status, d) = post(&app, "rollback", json!({"why": "it is the flipped one"})).await;
    assert_eq!(status, 200, "{d}");
    follow(&app).await;
    let (_, doc) = app.submit("after-rollback", row(0)).await;
    assert_eq!(doc["prediction"]["model_version"], "v1", "{doc}");

    // Withdraw: a candidate again, then withdrawn; audited with the why.
    let (status, _) = put(
        &app,
        json!({"candidate": "v2-flipped", "mode": "canary", "percent": 10, "why": "again"}),
    )
    .await;
    assert_eq!(status, 200);
    let r = app
        .client
        .delete(format!(
            "{}/api/v1/tasks/{TASK}/deployment/candidate",
            app.base
        ))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(r#"{"why": "enough"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["candidate"], Value::Null, "{d}");
    use verdict::db::schema::audit_log;
    let actions: Vec<String> = audit_log::table
        .filter(audit_log::task.eq(TASK))
        .order(audit_log::id)
        .select(audit_log::action)
        .load(&mut conn)
        .unwrap();
    assert_eq!(
        actions,
        [
            "deploy",
            "candidate.set",
            "promote",
            "rollback",
            "candidate.set",
            "candidate.withdraw"
        ],
        "every change audited"
    );
}

async fn canary_share(backend: Backend) {
    let models = tempfile::tempdir().unwrap();
    let Some(app) = spawn_with(backend, task(AutomationLevel::Full), None).await else {
        return;
    };
    import(&app, &variant(models.path(), "v2", false)).await;
    let (status, d) = put(
        &app,
        json!({"candidate": "v2", "mode": "canary", "percent": 5, "why": "canary"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    follow(&app).await;
    let n = 10_000;
    submit_many(&app, "c", n).await;
    let mut conn = app.db.connect();
    let acted: Vec<(String, Option<String>)> = items::table
        .filter(items::task.eq(TASK))
        .filter(items::id.like("c-%"))
        .select((items::id, items::model_version))
        .load(&mut conn)
        .unwrap();
    assert_eq!(acted.len(), n);
    let canary = acted
        .iter()
        .filter(|(_, v)| v.as_deref() == Some("v2"))
        .count();
    let share = canary as f64 / n as f64 * 100.0;
    assert!((share - 5.0).abs() <= 1.5, "canary share {share} %");
    for (id, version) in &acted {
        let expected = if verdict::tasks::canary_bucket(id) < 5 {
            "v2"
        } else {
            "v1"
        };
        assert_eq!(
            version.as_deref(),
            Some(expected),
            "{id}: the same id always goes to the same version"
        );
    }
    // Every item also has the other version's prediction beside it.
    let beside: i64 = shadow_predictions::table
        .filter(shadow_predictions::item_id.like("c-%"))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(beside, n as i64);
    // The verdict names the version that made it.
    let mismatched: i64 = verdicts::table
        .inner_join(
            items::table.on(items::task
                .eq(verdicts::task)
                .and(items::id.eq(verdicts::item_id))),
        )
        .filter(verdicts::model_version.ne(items::model_version))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(mismatched, 0);
}

async fn bad_canary_rolled_back(backend: Backend) {
    let models = tempfile::tempdir().unwrap();
    let Some(mut smtp) = crate::servers::SmtpServer::new() else {
        return;
    };
    smtp.start().await;
    let Some(app) = crate::helpers::spawn_without_jobs(
        backend,
        task(AutomationLevel::Shadow),
        None,
        crate::alerts::mail_settings(&smtp),
    )
    .await
    else {
        return;
    };
    import(&app, &variant(models.path(), "v2-flipped", true)).await;
    let (status, _) = put(
        &app,
        json!({"candidate": "v2-flipped", "mode": "canary", "percent": 50, "why": "canary"}),
    )
    .await;
    assert_eq!(status, 200);
    follow(&app).await;
    submit_many(&app, "k", 200).await;
    let guard = verdict::lifecycle::CandidateGuard {
        db: app.store.clone(),
        tasks: app.state.settings.tasks.clone(),
        alerts: verdict::alerts::AlertConfig::from_settings(&app.state.settings),
        every: std::time::Duration::from_secs(1),
    };
    // Four human verdicts, all against it: not yet evidence.
    label(&app, "k", 0..4).await;
    assert!(
        guard.run_once().await.unwrap().is_empty(),
        "four verdicts prove nothing"
    );
    label(&app, "k", 4..60).await;
    let withdrawn = guard.run_once().await.unwrap();
    assert_eq!(withdrawn.len(), 1, "{withdrawn:?}");
    assert_eq!(withdrawn[0].version, "v2-flipped");
    assert!(
        withdrawn[0].why.contains("human verdicts"),
        "{}",
        withdrawn[0].why
    );
    let (_, d) = app.get(&format!("/api/v1/tasks/{TASK}/deployment")).await;
    assert_eq!(
        (d["live"].as_str(), d["candidate"].as_str()),
        (Some("v1"), None),
        "{d}"
    );
    // A critical alert, with its email in the outbox.
    let (_, alerts) = app.get("/api/v1/alerts").await;
    let alert = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "candidate_withdrawn")
        .unwrap_or_else(|| panic!("{alerts}"))
        .clone();
    assert_eq!(alert["severity"], "critical");
    assert!(
        alert["summary"].as_str().unwrap().contains("v2-flipped"),
        "{alert}"
    );
    // Its email reaches the on-call address.
    app.outbox_worker().run_once().await.unwrap();
    let emails = smtp.wait_for(1).await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(
        emails[0].subject.contains("candidate"),
        "{}",
        emails[0].subject
    );
    assert!(
        emails[0].text.contains("v2-flipped") && emails[0].text.contains("withdrawn automatically"),
        "{}",
        emails[0].text
    );
    // The next pass withdraws nothing more.
    assert!(guard.run_once().await.unwrap().is_empty());
    follow(&app).await;
    submit_many(&app, "after", 100).await;
    let candidate_acts: i64 = predictions::table
        .filter(predictions::item_id.like("after-%"))
        .filter(predictions::model_version.eq("v2-flipped"))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(candidate_acts, 0, "the live version alone serves again");
}

/// Promotions and rollbacks while four clients keep scoring: every item
/// acknowledged is stored once, with one acting prediction that names the
/// version that made it, the same version as its verdict, and the other
/// version's beside it only while a candidate ran.
async fn switching_under_load(backend: Backend) {
    let models = tempfile::tempdir().unwrap();
    let Some(app) = spawn_with(backend, task(AutomationLevel::Full), None).await else {
        return;
    };
    import(&app, &variant(models.path(), "v2", false)).await;
    let app = std::sync::Arc::new(app);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (app, stop) = (app.clone(), stop.clone());
        clients.push(actix_web::rt::spawn(async move {
            let rows = rows();
            let mut acknowledged = Vec::new();
            let mut n = 0;
            // Bounded, so that a stalled switch cannot grow the tables
            // without end.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 4000 {
                let batch: Vec<Value> = (0..20)
                    .map(|i| json!({"id": format!("load-{c}-{}", n + i), "input": rows[(n + i) % rows.len()]}))
                    .collect();
                let (status, body) = app.post(&json!({ "items": batch })).await;
                assert!(status == 200 || status == 201, "{status}: {body}");
                acknowledged.extend((0..20).map(|i| format!("load-{c}-{}", n + i)));
                n += 20;
            }
            acknowledged
        }));
    }
    let pause = || actix_web::rt::time::sleep(std::time::Duration::from_millis(150));
    for round in 0..3 {
        let (status, d) = put(&app, json!({"candidate": if round % 2 == 0 { "v2" } else { "v1" }, "mode": "canary", "percent": 50, "why": "load"})).await;
        assert_eq!(status, 200, "{d}");
        follow(&app).await;
        pause().await;
        let (status, d) = post(&app, "promote", json!({"why": "under load", "force": true})).await;
        assert_eq!(status, 200, "{d}");
        follow(&app).await;
        pause().await;
        let (status, d) = post(&app, "rollback", json!({"why": "and back"})).await;
        assert_eq!(status, 200, "{d}");
        follow(&app).await;
        pause().await;
        let (status, d) = post(&app, "rollback", json!({"why": "and forward again"})).await;
        assert_eq!(status, 200, "{d}");
        follow(&app).await;
        pause().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    assert!(
        acknowledged.len() > 200,
        "the clients scored {}",
        acknowledged.len()
    );

    let mut conn = app.db.connect();
    let stored: std::collections::HashMap<String, Option<String>> = items::table
        .filter(items::id.like("load-%"))
        .select((items::id, items::model_version))
        .load::<(String, Option<String>)>(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    for id in &acknowledged {
        assert!(stored.contains_key(id), "{id} was acknowledged and lost");
    }
    assert_eq!(stored.len(), acknowledged.len());
    let acting: Vec<(String, String)> = predictions::table
        .filter(predictions::item_id.like("load-%"))
        .select((predictions::item_id, predictions::model_version))
        .load(&mut conn)
        .unwrap();
    assert_eq!(acting.len(), stored.len(), "one acting prediction per item");
    let mut seen = std::collections::HashSet::new();
    for (id, version) in &acting {
        assert_eq!(stored[id].as_deref(), Some(version.as_str()), "{id}");
        seen.insert(version.clone());
    }
    assert_eq!(seen.len(), 2, "both versions acted: {seen:?}");
    let mismatched: i64 = verdicts::table
        .inner_join(
            items::table.on(items::task
                .eq(verdicts::task)
                .and(items::id.eq(verdicts::item_id))),
        )
        .filter(items::id.like("load-%"))
        .filter(verdicts::model_version.ne(items::model_version))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(
        mismatched, 0,
        "every verdict names the version that made it"
    );
    let beside: Vec<(String, String)> = shadow_predictions::table
        .filter(shadow_predictions::item_id.like("load-%"))
        .select((
            shadow_predictions::item_id,
            shadow_predictions::model_version,
        ))
        .load(&mut conn)
        .unwrap();
    for (id, version) in &beside {
        assert_ne!(
            stored[id].as_deref(),
            Some(version.as_str()),
            "{id}: beside itself"
        );
    }
}

crate::on_both_backends!(
    shadow_and_promotion,
    canary_share,
    bad_canary_rolled_back,
    switching_under_load
);
