//! An item acknowledged with 2xx survives `kill -9` of the server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{row, Backend, TestDb};

#[actix_web::test]
async fn acknowledged_items_survive_kill_9() {
    let db = TestDb::new(Backend::Sqlite).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args(["serve", "--port", &port.to_string()])
        .current_dir(crate::helpers::repo())
        .env("VERDICT_DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start verdict serve");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first-start token is printed on stdout.
    use std::io::{BufRead, BufReader};
    let stdout = child.stdout.take().unwrap();
    let token = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.trim().starts_with("vdt_").then(|| l.trim().to_string()))
        .expect("the token is printed");

    let mut acknowledged = Vec::new();
    let mut pending = Vec::new();
    for i in 0..200 {
        let body = json!({"id": format!("k{i}"), "input": row(i)});
        let request = client
            .post(format!("{base}/api/v1/tasks/tumor-triage/items"))
            .bearer_auth(&token)
            .json(&body)
            .send();
        pending.push((format!("k{i}"), tokio::spawn(request)));
    }
    // Kill while answers are still arriving.
    for (n, (id, handle)) in pending.into_iter().enumerate() {
        if n == 150 {
            child.kill().unwrap(); // SIGKILL
        }
        if let Ok(Ok(r)) = handle.await {
            if r.status().is_success() {
                acknowledged.push(id);
            }
        }
    }
    child.wait().unwrap();
    assert!(!acknowledged.is_empty());
    use diesel::prelude::*;
    use verdict::db::schema::items;
    let stored: Vec<String> = items::table
        .select(items::id)
        .load(&mut db.connect())
        .unwrap();
    for id in &acknowledged {
        assert!(stored.contains(id), "acknowledged item {id} was lost");
    }
}
