//! The automation levels, idempotency and batches, on both backends.

use serde_json::{json, Value};

use crate::helpers::{row, rows, spawn, spawn_with, task, Backend, TASK};
use verdict::domain::AutomationLevel;

crate::on_both_backends!(
    partial_decides_exactly_the_items_that_clear_the_threshold,
    human_only_queues_every_item_without_running_the_model,
    shadow_records_the_prediction_but_queues_every_item,
    assist_queues_every_item_with_the_suggestion,
    full_decides_every_item_inside_the_training_range,
    audit_rate_queues_model_decided_items_blind,
    per_label_threshold_keeps_that_label_for_humans,
    missing_model_fails_safe_to_the_queue,
    nan_output_fails_safe_to_the_queue,
    same_id_same_input_returns_the_stored_result_and_creates_nothing,
    same_id_other_input_is_a_conflict_and_changes_nothing,
    batch_is_one_transaction_that_a_conflict_rejects_whole,
    acknowledged_item_is_in_the_database_and_get_returns_it,
    task_list_shows_level_live_version_and_queue_depth,
);

async fn submit_all(app: &crate::helpers::TestApp, prefix: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    for (chunk_no, chunk) in rows().chunks(200).enumerate() {
        let items: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, input)| json!({"id": format!("{prefix}-{chunk_no}-{i}"), "input": input}))
            .collect();
        let (status, body) = app.post(&json!({ "items": items })).await;
        assert_eq!(status, 200, "{body}");
        docs.extend(body["items"].as_array().unwrap().iter().cloned());
    }
    docs
}

async fn partial_decides_exactly_the_items_that_clear_the_threshold(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let docs = submit_all(&app, "p").await;
    assert_eq!(docs.len(), 569);
    let mut decided = 0;
    for doc in &docs {
        let confidence = doc["prediction"]["confidence"]
            .as_f64()
            .expect("a prediction");
        if doc.get("out_of_range").is_some() {
            // Beyond the training range: a human decides, however sure.
            assert_eq!(doc["status"], "queued", "{doc}");
            assert_eq!(doc["reason"], "out_of_distribution");
        } else if confidence >= 0.95 {
            decided += 1;
            assert_eq!(doc["status"], "decided", "{doc}");
            assert_eq!(doc["verdict"]["source"], "model");
            assert_eq!(doc["verdict"]["label"], doc["prediction"]["label"]);
            assert_eq!(doc["verdict"]["model_version"], "v1");
        } else {
            assert_eq!(doc["status"], "queued", "{doc}");
            assert_eq!(doc["reason"], "low_confidence");
            assert!(doc["verdict"].is_null());
        }
    }
    assert!(decided > 400 && decided < 569, "decided {decided} of 569");
    assert_eq!(app.count("verdicts"), decided);
    assert_eq!(app.count("predictions"), 569);
}

async fn human_only_queues_every_item_without_running_the_model(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::HumanOnly).await else {
        return;
    };
    let (status, doc) = app.submit("h-1", row(0)).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["reason"], "human_only");
    assert!(doc["prediction"].is_null() && doc["verdict"].is_null());
    assert_eq!(app.count("predictions"), 0);
}

async fn shadow_records_the_prediction_but_queues_every_item(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Shadow).await else {
        return;
    };
    let (status, doc) = app.submit("s-1", row(0)).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["reason"], "shadow");
    assert!(doc["verdict"].is_null());
    assert_eq!(doc["prediction"]["label"], "malignant");
    assert_eq!(app.count("predictions"), 1);
    assert_eq!(app.count("verdicts"), 0);
}

async fn assist_queues_every_item_with_the_suggestion(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Assist).await else {
        return;
    };
    let (_, doc) = app.submit("a-1", row(0)).await;
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["reason"], "assist");
    assert!(doc["prediction"]["confidence"].as_f64().unwrap() > 0.9);
    assert_eq!(app.count("verdicts"), 0);
}

async fn full_decides_every_item_inside_the_training_range(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Full).await else {
        return;
    };
    let docs = submit_all(&app, "f").await;
    let (outside, inside): (Vec<&Value>, Vec<&Value>) =
        docs.iter().partition(|d| d.get("out_of_range").is_some());
    assert!(inside
        .iter()
        .all(|d| d["status"] == "decided" && d["verdict"]["source"] == "model"));
    // The rows the model never saw the like of (beyond the training range
    // by more than the margin) wait for a human.
    assert!(outside
        .iter()
        .all(|d| d["status"] == "queued" && d["reason"] == "out_of_distribution"));
    assert!(outside.len() < 20, "{} of 569 outside", outside.len());
    assert_eq!(app.count("verdicts"), inside.len() as i64);
}

async fn audit_rate_queues_model_decided_items_blind(backend: Backend) {
    let mut config = task(AutomationLevel::Full);
    config.audit_rate = 1.0;
    let Some(app) = spawn_with(backend, config, None).await else {
        return;
    };
    let (_, doc) = app.submit("audit-1", row(1)).await;
    assert_eq!(
        doc["status"], "decided",
        "the client gets the model's verdict"
    );
    assert_eq!(doc["audit"], true);
    use diesel::prelude::*;
    use verdict::db::schema::items;
    let (review_state, blind): (String, bool) = items::table
        .select((items::review_state, items::blind))
        .filter(items::id.eq("audit-1"))
        .first(&mut app.db.connect())
        .unwrap();
    assert_eq!((review_state.as_str(), blind), ("pending", true));
    let (_, tasks) = app.get("/api/v1/tasks").await;
    assert_eq!(tasks["tasks"][0]["queue_depth"], 1);

    // A rate of 0 audits nothing.
    let Some(app) = spawn(backend, AutomationLevel::Full).await else {
        return;
    };
    let (_, doc) = app.submit("audit-2", row(1)).await;
    assert_eq!(doc["audit"], false);
}

async fn per_label_threshold_keeps_that_label_for_humans(backend: Backend) {
    let mut config = task(AutomationLevel::Partial);
    config.threshold = Some(0.5);
    config.label_thresholds.insert("malignant".into(), 1.0);
    let Some(app) = spawn_with(backend, config, None).await else {
        return;
    };
    let docs = submit_all(&app, "l").await;
    for doc in docs {
        let malignant = doc["prediction"]["label"] == "malignant";
        let confidence = doc["prediction"]["confidence"].as_f64().unwrap();
        let expected = if (malignant && confidence < 1.0) || doc.get("out_of_range").is_some() {
            "queued"
        } else {
            "decided"
        };
        assert_eq!(doc["status"], expected, "{doc}");
    }
}

async fn missing_model_fails_safe_to_the_queue(backend: Backend) {
    let empty = tempfile::tempdir().unwrap();
    let Some(app) = spawn_with(backend, task(AutomationLevel::Full), Some(empty.path())).await
    else {
        return;
    };
    let (status, doc) = app.submit("m-1", json!({"anything": 1.0})).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["reason"], "model_error");
    let r = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "not ready without the model");
}

async fn nan_output_fails_safe_to_the_queue(backend: Backend) {
    // A copy of the demo model whose hidden layers have no bias and
    // weights scaled past what f32 holds once multiplied through: the
    // training mean (all zeros once normalised) still scores, so the import
    // takes it, but a real row overflows to a non-finite output.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join(TASK).join("v1");
    std::fs::create_dir_all(&version).unwrap();
    let source = crate::helpers::repo().join("models").join(TASK).join("v1");
    std::fs::copy(source.join("card.json"), version.join("card.json")).unwrap();
    let device = candle_core::Device::Cpu;
    let mut tensors =
        candle_core::safetensors::load(source.join("model.safetensors"), &device).unwrap();
    for layer in ["hidden0", "hidden1"] {
        let weight = tensors[&format!("{layer}.weight")].clone();
        let bias = tensors[&format!("{layer}.bias")].zeros_like().unwrap();
        tensors.insert(format!("{layer}.weight"), (weight * 1e37).unwrap());
        tensors.insert(format!("{layer}.bias"), bias);
    }
    candle_core::safetensors::save(&tensors, version.join("model.safetensors")).unwrap();

    let Some(app) = spawn_with(backend, task(AutomationLevel::Full), Some(dir.path())).await else {
        return;
    };
    let (status, doc) = app.submit("nan-1", row(0)).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["status"], "queued");
    assert_eq!(doc["reason"], "model_error");
    assert!(doc["verdict"].is_null() && doc["prediction"].is_null());
    assert_eq!(
        app.count("predictions"),
        1,
        "the failed prediction is recorded"
    );
    assert_eq!(app.count("verdicts"), 0);
}

async fn same_id_same_input_returns_the_stored_result_and_creates_nothing(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let (first_status, first) = app.submit("case-1", row(3)).await;
    assert_eq!(first_status, 201);
    // Same numbers, other key order: the same input.
    let mut reordered: Vec<(String, Value)> =
        row(3).as_object().unwrap().clone().into_iter().collect();
    reordered.reverse();
    let reordered = Value::Object(reordered.into_iter().collect());
    let (again_status, again) = app.submit("case-1", reordered).await;
    assert_eq!(again_status, 200);
    assert_eq!(again, first);
    assert_eq!(app.count("items"), 1);
    assert_eq!(app.count("predictions"), 1);
}

async fn same_id_other_input_is_a_conflict_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let (_, first) = app.submit("case-1", row(3)).await;
    let (status, body) = app.submit("case-1", row(4)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "idempotency_conflict");
    assert_eq!(body["error"]["field"], "id");
    let (_, stored) = app.get(&format!("/api/v1/tasks/{TASK}/items/case-1")).await;
    assert_eq!(stored, first);
}

async fn batch_is_one_transaction_that_a_conflict_rejects_whole(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    app.submit("known", row(0)).await;
    let batch = json!({"items": [
        {"id": "new-1", "input": row(1)},
        {"id": "new-2", "input": row(2)},
        {"id": "known", "input": row(9)},
    ]});
    let (status, body) = app.post(&batch).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["field"], "items[2].id");
    assert_eq!(app.count("items"), 1, "nothing of the batch was written");

    // The same id twice in a batch with two inputs is refused too.
    let twice = json!({"items": [{"id": "x", "input": row(1)}, {"id": "x", "input": row(2)}]});
    assert_eq!(app.post(&twice).await.0, 409);
    // With one input, it is one item.
    let twice = json!({"items": [{"id": "y", "input": row(1)}, {"id": "y", "input": row(1)}]});
    let (status, body) = app.post(&twice).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0], body["items"][1]);
    assert_eq!(app.count("items"), 2);
}

async fn acknowledged_item_is_in_the_database_and_get_returns_it(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let (status, doc) = app.submit("durable-1", row(7)).await;
    assert_eq!(status, 201);
    use diesel::prelude::*;
    use verdict::db::schema::items;
    let (input, status_col): (String, String) = items::table
        .select((items::input, items::status))
        .filter(items::task.eq(TASK))
        .filter(items::id.eq("durable-1"))
        .first(&mut app.db.connect())
        .expect("the acknowledged item is stored");
    assert_eq!(status_col, doc["status"].as_str().unwrap());
    let stored: Value = serde_json::from_str(&input).unwrap();
    assert_eq!(stored["mean_radius"], row(7)["mean_radius"]);
    let (get_status, fetched) = app
        .get(&format!("/api/v1/tasks/{TASK}/items/durable-1"))
        .await;
    assert_eq!(get_status, 200);
    assert_eq!(fetched, doc);
    let (missing, body) = app.get(&format!("/api/v1/tasks/{TASK}/items/nope")).await;
    assert_eq!(missing, 404);
    assert_eq!(body["error"]["code"], "item_not_found");
}

async fn task_list_shows_level_live_version_and_queue_depth(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Assist).await else {
        return;
    };
    for i in 0..3 {
        app.submit(&format!("q-{i}"), row(i)).await;
    }
    let (status, body) = app.get("/api/v1/tasks").await;
    assert_eq!(status, 200);
    let t = &body["tasks"][0];
    assert_eq!(t["name"], TASK);
    assert_eq!(t["automation"], "assist");
    assert_eq!(t["live_model_version"], "v1");
    assert_eq!(t["queue_depth"], 3);
}

#[actix_web::test]
async fn a_deployment_goes_live_on_the_running_server_and_a_rollback_brings_the_previous_back() {
    // A models directory with v1 and a copy of it named v2.
    let dir = tempfile::tempdir().unwrap();
    let source = crate::helpers::repo().join("models").join(TASK).join("v1");
    for version in ["v1", "v2"] {
        let target = dir.path().join(TASK).join(version);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::copy(
            source.join("model.safetensors"),
            target.join("model.safetensors"),
        )
        .unwrap();
        let mut card: Value =
            serde_json::from_str(&std::fs::read_to_string(source.join("card.json")).unwrap())
                .unwrap();
        card["version"] = json!(version);
        std::fs::write(target.join("card.json"), card.to_string()).unwrap();
    }
    let mut config = task(AutomationLevel::Full);
    config.model_version = Some("v1".into());
    let Some(app) = spawn_with(Backend::Sqlite, config, Some(dir.path())).await else {
        return;
    };
    let (_, doc) = app.submit("before", row(0)).await;
    assert_eq!(doc["verdict"]["model_version"], "v1");
    let rollback = format!("{}/api/v1/tasks/{TASK}/deployment/rollback", app.base);
    let (status, body) = app.post_raw(&rollback, r#"{"why": "too early"}"#).await;
    assert_eq!(status, 409, "nothing to roll back to: {body}");
    assert_eq!(body["error"]["code"], "no_previous_version");

    verdict::tasks::deploy(&mut app.db.connect(), TASK, "v2", "test", "a newer model").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, tasks) = app.get("/api/v1/tasks").await;
        if tasks["tasks"][0]["live_model_version"] == "v2" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "v2 never went live");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, doc) = app.submit("after", row(0)).await;
    assert_eq!(doc["verdict"]["model_version"], "v2");
    use diesel::prelude::*;
    use verdict::db::schema::audit_log;
    let deployed: Vec<Option<String>> = audit_log::table
        .filter(audit_log::action.eq("deploy"))
        .order(audit_log::id)
        .select(audit_log::subject)
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(
        deployed,
        [Some("v1".to_string()), Some("v2".to_string())],
        "both deployments are audited"
    );

    // The API shows the deployment; a rollback makes v1 live again on the
    // running server (and a second one would undo it).
    let (status, d) = app.get(&format!("/api/v1/tasks/{TASK}/deployment")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (d["live"].as_str(), d["previous"].as_str()),
        (Some("v2"), Some("v1")),
        "{d}"
    );
    for bad in [
        r#"{}"#,
        r#"{"why": "  "}"#,
        r#"{"why": "x", "force": true}"#,
        "nope",
    ] {
        let (status, body) = app.post_raw(&rollback, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, d) = app.post_raw(&rollback, r#"{"why": "v2 misbehaves"}"#).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["live"].as_str(), d["previous"].as_str()),
        (Some("v1"), Some("v2")),
        "{d}"
    );
    assert!(
        d["updated_by"].as_str().unwrap().starts_with("token:"),
        "{d}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, tasks) = app.get("/api/v1/tasks").await;
        if tasks["tasks"][0]["live_model_version"] == "v1" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rollback never took"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (_, doc) = app.submit("rolled-back", row(0)).await;
    assert_eq!(doc["verdict"]["model_version"], "v1");
    let rolled: Vec<String> = audit_log::table
        .filter(audit_log::action.eq("rollback"))
        .select(audit_log::detail)
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(rolled.len(), 1);
    assert!(rolled[0].contains("v2 misbehaves"), "{rolled:?}");
    let (status, _) = app.get("/api/v1/tasks/nope/deployment").await;
    assert_eq!(status, 404);
}
