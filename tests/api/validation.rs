//! Bad input gets a clear 4xx naming the field and writes nothing.

use serde_json::{json, Value};

use crate::helpers::{row, spawn, Backend, TestApp, TASK};
use verdict::domain::AutomationLevel;

crate::on_both_backends!(
    each_bad_input_is_a_400_naming_the_field,
    a_bad_item_rejects_the_whole_batch,
    bad_requests_get_the_right_status,
    tokens_are_checked,
);

async fn expect_error(
    app: &TestApp,
    body: impl Into<reqwest::Body>,
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    let (got, reply) = app.post_raw(&app.items_url(), body).await;
    assert_eq!(got, status, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    assert!(reply["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    if let Some(field) = field {
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
}

fn with(mutate: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut input = row(0).as_object().unwrap().clone();
    mutate(&mut input);
    json!({"id": "bad", "input": input}).to_string()
}

async fn each_bad_input_is_a_400_naming_the_field(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let f = Some("input.mean_radius");
    expect_error(
        &app,
        with(|m| drop(m.remove("mean_radius"))),
        400,
        "missing_field",
        f,
    )
    .await;
    expect_error(
        &app,
        with(|m| drop(m.insert("colour".into(), json!(1)))),
        400,
        "unknown_field",
        Some("input.colour"),
    )
    .await;
    expect_error(
        &app,
        with(|m| drop(m.insert("mean_radius".into(), json!("17")))),
        400,
        "wrong_type",
        f,
    )
    .await;
    expect_error(
        &app,
        with(|m| drop(m.insert("mean_radius".into(), json!(null)))),
        400,
        "wrong_type",
        f,
    )
    .await;
    expect_error(
        &app,
        with(|m| drop(m.insert("mean_radius".into(), json!("Infinity")))),
        400,
        "not_finite",
        f,
    )
    .await;
    expect_error(
        &app,
        with(|m| drop(m.insert("mean_radius".into(), json!(-1.0)))),
        400,
        "out_of_range",
        f,
    )
    .await;
    // A bare NaN, as Python's json.dumps writes it.
    let nan = with(|_| ()).replacen("\"mean_radius\":17.99", "\"mean_radius\":NaN", 1);
    assert!(nan.contains("NaN"));
    expect_error(&app, nan, 400, "not_finite", f).await;
    expect_error(
        &app,
        r#"{"id": "bad", "input": [1, 2]}"#,
        400,
        "wrong_type",
        Some("input"),
    )
    .await;
    expect_error(
        &app,
        json!({"id": "has space", "input": row(0)}).to_string(),
        400,
        "invalid_id",
        Some("id"),
    )
    .await;
    expect_error(
        &app,
        json!({"id": 7, "input": row(0)}).to_string(),
        400,
        "wrong_type",
        Some("id"),
    )
    .await;
    expect_error(
        &app,
        json!({"input": row(0)}).to_string(),
        400,
        "missing_field",
        Some("id"),
    )
    .await;
    expect_error(
        &app,
        json!({"id": "a", "input": row(0), "x": 1}).to_string(),
        400,
        "unknown_field",
        Some("x"),
    )
    .await;
    expect_error(
        &app,
        "{\"id\": \"a\", \"input\": {",
        400,
        "malformed_json",
        None,
    )
    .await;
    expect_error(&app, "[]", 400, "wrong_type", None).await;
    assert_eq!(app.count("items"), 0, "no bad input left anything behind");
}

async fn a_bad_item_rejects_the_whole_batch(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let mut bad = row(2);
    bad.as_object_mut().unwrap().remove("worst_area");
    let batch = json!({"items": [
        {"id": "ok-1", "input": row(0)},
        {"id": "ok-2", "input": row(1)},
        {"id": "bad-3", "input": bad},
    ]});
    expect_error(
        &app,
        batch.to_string(),
        400,
        "missing_field",
        Some("items[2].input.worst_area"),
    )
    .await;
    assert_eq!(app.count("items"), 0);
    assert_eq!(app.count("predictions"), 0);

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"id": format!("i{i}"), "input": {}}))
        .collect();
    expect_error(
        &app,
        json!({"items": too_many}).to_string(),
        400,
        "batch_too_large",
        Some("items"),
    )
    .await;
    expect_error(
        &app,
        json!({"items": []}).to_string(),
        400,
        "empty_batch",
        Some("items"),
    )
    .await;
    // A full batch of 1,000 is accepted.
    let rows = crate::helpers::rows();
    let full: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("b{i}"), "input": rows[i % rows.len()]}))
        .collect();
    let (status, body) = app.post(&json!({"items": full})).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), 1000);
    assert_eq!(app.count("items"), 1000);
}

async fn bad_requests_get_the_right_status(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    // Oversized body: 413, whether the length is declared or streamed.
    let huge = format!(
        "{{\"id\": \"big\", \"input\": \"{}\"}}",
        "x".repeat(5 * 1024 * 1024)
    );
    expect_error(&app, huge.clone(), 413, "payload_too_large", None).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    expect_error(&app, streamed, 413, "payload_too_large", None).await;
    // Unknown task: 404.
    let (status, body) = app
        .post_raw(
            &format!("{}/api/v1/tasks/no-such-task/items", app.base),
            json!({"id": "a", "input": row(0)}).to_string(),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_task");
    let (status, body) = app.get("/api/v1/nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found", "JSON under /api");
    let page = reqwest::get(format!("{}/no-such-page", app.base))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 404);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("There is no page at this address."),
        "a page elsewhere"
    );
    assert_eq!(app.count("items"), 0);
}

async fn tokens_are_checked(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let body = json!({"id": "a", "input": row(0)}).to_string();
    let url = app.items_url();
    let no_token = app
        .client
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    let last = if app.token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &app.token[..app.token.len() - 1]);
    for token in ["nonsense", forged.as_str()] {
        let r = app
            .client
            .post(&url)
            .bearer_auth(token)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{token}");
        let reply: Value = r.json().await.unwrap();
        assert_eq!(reply["error"]["code"], "unauthorized");
    }
    assert_eq!(app.count("items"), 0);

    // A token made with the CLI's code works, and stops working once revoked.
    // (Written through the app's own writer: a second SQLite connection's
    // read-then-write can lose the race to the app's background writes.)
    let token = app
        .store
        .write(|conn| verdict::tokens::create(conn, "client-2", "test"))
        .await
        .unwrap();
    let r = app
        .client
        .get(format!("{}/api/v1/tasks", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let other = app
        .store
        .write(|conn| {
            let other = verdict::tokens::create(conn, "client-3", "test")?;
            verdict::tokens::revoke(conn, "client-3", "test")?;
            Ok::<_, verdict::tokens::TokenError>(other)
        })
        .await
        .unwrap();
    let r = app
        .client
        .get(format!("{}/api/v1/tasks", app.base))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Only a hash is stored.
    use diesel::prelude::*;
    let stored: Vec<String> = verdict::db::schema::api_tokens::table
        .select(verdict::db::schema::api_tokens::secret_sha256)
        .load(&mut app.db.connect())
        .unwrap();
    assert!(stored
        .iter()
        .all(|h| !token.contains(h.as_str()) && h.len() == 64));
    let _ = TASK;
}
