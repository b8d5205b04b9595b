//! `/api/openapi.json`: an OpenAPI 3 document, served without a token,
//! listing exactly the routes the app serves (every path and method of
//! `verdict::http::api::ROUTES`, which `routes` registers, and no other),
//! each of them answered by a handler, with the errors every API operation
//! can meet. schemathesis (`scripts/schemathesis`) checks the responses
//! against it on a running release server.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::{spawn, Backend, TASK};
use verdict::domain::AutomationLevel;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

async fn document(app: &crate::helpers::TestApp) -> Value {
    let response = app
        .client
        .get(format!("{}/api/openapi.json", app.base))
        .send()
        .await
        .expect("GET /api/openapi.json");
    assert_eq!(response.status(), 200, "served without a token");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    serde_json::from_str(&response.text().await.unwrap()).expect("valid JSON")
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (path.clone(), m.to_string()))
        })
        .collect()
}

#[actix_web::test]
async fn the_document_lists_exactly_the_served_routes() {
    let app = spawn(Backend::Sqlite, AutomationLevel::Partial)
        .await
        .unwrap();
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let served: BTreeSet<(String, String)> = verdict::http::api::ROUTES
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(|m| (path.to_string(), m.to_string())))
        .collect();
    let documented = operations(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in the document: {undocumented:?}; in the document but not served: {not_served:?}"
    );
}

/// Each documented operation reaches its handler, not the 404 of a path no
/// route takes nor a 405: under a task that does not exist every handler
/// answers `unknown_task`, the others 200.
#[actix_web::test]
async fn every_documented_operation_is_answered_by_its_handler() {
    let app = spawn(Backend::Sqlite, AutomationLevel::Partial)
        .await
        .unwrap();
    let doc = document(&app).await;
    for (path, method) in operations(&doc) {
        let url = format!(
            "{}{}",
            app.base,
            path.replace("{task}", "no-such-task")
                .replace("{id}", "x")
                .replace("{name}", "x")
        );
        let response = app
            .client
            .request(method.to_uppercase().parse().unwrap(), &url)
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if path.contains("{task}") {
            assert_eq!(
                (status, &body["error"]["code"]),
                (404, &Value::from("unknown_task")),
                "{method} {path}"
            );
        } else {
            assert_eq!(status, 200, "{method} {path}: {body}");
        }
        let documented = &doc["paths"][&path][&method]["responses"];
        assert!(
            documented.get(status.to_string()).is_some(),
            "{method} {path} answered {status}, not in the document"
        );
    }
}

/// Every API operation says what a rate limit, a missing token and an
/// unavailable database look like, all with the one error schema.
#[actix_web::test]
async fn api_operations_document_their_common_errors() {
    let app = spawn(Backend::Sqlite, AutomationLevel::Partial)
        .await
        .unwrap();
    let doc = document(&app).await;
    let responses = &doc["components"]["responses"];
    assert!(responses["RateLimited"]["headers"]
        .get("Retry-After")
        .is_some());
    assert!(responses["MethodNotAllowed"]["headers"]
        .get("Allow")
        .is_some());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, method) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        assert!(op["responses"].get("405").is_some(), "{method} {path}");
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for status in ["401", "429", "503"] {
            assert!(
                op["responses"].get(status).is_some(),
                "{method} {path} lacks {status}"
            );
        }
        assert_eq!(op["security"][0]["bearer"], Value::Array(vec![]));
        if path.contains("{task}") {
            assert_eq!(
                op["parameters"][0]["schema"]["enum"],
                serde_json::json!([TASK]),
                "{method} {path}: the task is one this server has"
            );
        }
    }
}
