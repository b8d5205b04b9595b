//! The outbox: webhooks to clients, retries, dead messages and their retry
//! by an admin, and email that waits out a mail server outage and a restart.

use std::process::{Child, Command, Stdio};

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{row, spawn_configured, task, Backend, TestApp, TestDb, TASK};
use crate::servers::{eventually, free_port, Receiver, SmtpServer};
use crate::web::{add_user, Browser};
use verdict::db::schema::{outbox, outbox_attempts};
use verdict::db::Db;
use verdict::domain::AutomationLevel;
use verdict::domain::Role;
use verdict::review::{self, Label, Rules};

crate::on_both_backends!(
    a_human_verdict_is_posted_to_the_task_webhook_signed_with_its_secret,
    a_webhook_receiver_that_fails_three_times_gets_the_verdict_on_the_fourth_try,
    a_dead_message_is_listed_for_admins_and_a_retry_delivers_it,
    a_label_taken_back_withdraws_its_unsent_webhook,
    an_email_waits_out_a_mail_server_outage_and_arrives_once_across_restarts,
);

const SECRET: &str = "webhook secret for tests";

fn open(url: &str) -> Db {
    Db::open(&verdict::config::DatabaseSettings {
        url: url.to_string(),
        pool_size: 2,
        ..Default::default()
    })
    .unwrap()
}

/// A reviewer claims the item `id` (the only one queued) and labels it.
pub async fn decide(db_url: &str, id: &str, callback_url: Option<String>) {
    let db = open(db_url);
    let claim = db
        .write(|conn| review::claim_next(conn, TASK, "rita", review::DEFAULT_LEASE))
        .await
        .unwrap()
        .expect("an item to claim");
    assert_eq!(claim.item.id, id);
    let rules = Rules {
        labels: vec!["malignant".into(), "benign".into()],
        reviews_required: 1,
        callback_url,
    };
    let id = id.to_string();
    db.write(move |conn| {
        review::submit(
            conn,
            TASK,
            &rules,
            &id,
            "rita",
            &Label {
                label: "benign".into(),
                comment: None,
                seconds_spent: 1.0,
            },
        )
    })
    .await
    .unwrap();
}

async fn spawn_with_webhook(
    backend: Backend,
    receiver: &Receiver,
    max_attempts: u32,
) -> Option<TestApp> {
    let mut t = task(AutomationLevel::Assist);
    t.callback_url = Some(receiver.url.clone());
    t.callback_secret = Some(SECRET.into());
    spawn_configured(backend, t, None, |s| s.outbox.max_attempts = max_attempts).await
}

/// The stored message of each status for `kind`: (status, attempts).
fn messages(app: &TestApp, kind: &str) -> Vec<(i64, String, i32)> {
    outbox::table
        .filter(outbox::kind.eq(kind))
        .order(outbox::id)
        .select((outbox::id, outbox::status, outbox::attempts))
        .load(&mut app.db.connect())
        .unwrap()
}

async fn a_human_verdict_is_posted_to_the_task_webhook_signed_with_its_secret(backend: Backend) {
    let receiver = Receiver::start(0);
    let Some(app) = spawn_with_webhook(backend, &receiver, 10).await else {
        return;
    };
    let (status, body) = app.submit("w1", row(3)).await;
    assert!(status < 300, "{body}");
    decide(&app.db.url, "w1", Some(receiver.url.clone())).await;

    let got = receiver.wait_for(1).await;
    let request = &got[0];
    let signature = request.signature.as_deref().expect("a signature header");
    let now = chrono::Utc::now().timestamp();
    assert!(
        verdict::webhooks::verify(SECRET, signature, &request.body, now, 300),
        "the signature {signature} does not verify"
    );
    assert!(!verdict::webhooks::verify(
        "another secret",
        signature,
        &request.body,
        now,
        300
    ));
    // The same document the scoring API's GET returns.
    let (status, doc) = app.get(&format!("/api/v1/tasks/{TASK}/items/w1")).await;
    assert_eq!(status, 200);
    let posted: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(posted, doc);
    assert_eq!(posted["verdict"]["label"], "benign");
    assert_eq!(posted["verdict"]["source"], "human");
    eventually("the message is marked sent", || {
        (messages(&app, "webhook") == vec![(1, "sent".to_string(), 1)]).then_some(())
    })
    .await;
}

async fn a_webhook_receiver_that_fails_three_times_gets_the_verdict_on_the_fourth_try(
    backend: Backend,
) {
    let receiver = Receiver::start(3);
    let Some(app) = spawn_with_webhook(backend, &receiver, 10).await else {
        return;
    };
    app.submit("w2", row(5)).await;
    decide(&app.db.url, "w2", Some(receiver.url.clone())).await;

    let got = receiver.wait_for(4).await;
    // Each try carries the same body and delivery id, signed afresh.
    assert!(got.iter().all(|r| r.body == got[0].body));
    assert!(got.iter().all(|r| r.delivery == got[0].delivery));
    let now = chrono::Utc::now().timestamp();
    for r in &got {
        assert!(verdict::webhooks::verify(
            SECRET,
            r.signature.as_deref().unwrap(),
            &r.body,
            now,
            300
        ));
    }
    let id = eventually(
        "the message is sent after four attempts",
        || match messages(&app, "webhook").as_slice() {
            [(id, status, 4)] if status == "sent" => Some(*id),
            _ => None,
        },
    )
    .await;
    let attempts: Vec<(bool, Option<String>)> = outbox_attempts::table
        .filter(outbox_attempts::message_id.eq(id))
        .order(outbox_attempts::id)
        .select((outbox_attempts::ok, outbox_attempts::error))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.0).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    assert!(
        attempts[0].1.as_deref().unwrap().contains("500"),
        "{attempts:?}"
    );
    assert_eq!(receiver.requests().len(), 4, "no request after the success");
}

async fn a_dead_message_is_listed_for_admins_and_a_retry_delivers_it(backend: Backend) {
    let receiver = Receiver::start(usize::MAX);
    let Some(app) = spawn_with_webhook(backend, &receiver, 2).await else {
        return;
    };
    app.submit("w3", row(7)).await;
    decide(&app.db.url, "w3", Some(receiver.url.clone())).await;
    eventually("the message is dead after two attempts", || {
        (messages(&app, "webhook") == vec![(1, "dead".to_string(), 2)]).then_some(())
    })
    .await;

    add_user(&app, "ana", Role::Admin, &[]);
    add_user(&app, "rita", Role::Reviewer, &[TASK]);
    let mut rita = Browser::new(&app);
    rita.sign_in("rita", "a long passphrase").await;
    assert_eq!(rita.get("/admin/outbox?status=dead").await.0, 403);
    assert_eq!(rita.get("/admin/alerts").await.0, 403);

    let mut ana = Browser::new(&app);
    ana.sign_in("ana", "a long passphrase").await;
    let (status, page, _) = ana.get("/admin/outbox?status=dead").await;
    assert_eq!(status, 200);
    assert!(page.contains(&receiver.url), "{page}");
    assert!(page.contains("webhook answered 500"), "{page}");
    assert!(page.contains("/admin/outbox/1/retry"), "{page}");
    // The outbox's own alert: a dead message.
    let page = page_showing(&mut ana, "/admin/alerts", "1 outbox message is dead").await;
    assert!(page.contains("critical"), "{page}");

    // A retry needs the session's CSRF token.
    let (status, _, _, _) = ana
        .post("/admin/outbox/1/retry", &[("csrf", "forged")])
        .await;
    assert_eq!(status, 403);
    assert_eq!(messages(&app, "webhook")[0].1, "dead");
    receiver.fail_next(0);
    let csrf = Browser::csrf(&page);
    let (status, _, location, _) = ana.post("/admin/outbox/1/retry", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/admin/outbox?status=dead"));
    eventually("the retried message is sent", || {
        (messages(&app, "webhook") == vec![(1, "sent".to_string(), 1)]).then_some(())
    })
    .await;
    page_showing(&mut ana, "/admin/alerts", "Nothing is firing").await;
    let (_, page, _) = ana.get("/admin/outbox?status=sent").await;
    assert!(page.contains(&receiver.url), "{page}");
}

async fn a_label_taken_back_withdraws_its_unsent_webhook(backend: Backend) {
    let receiver = Receiver::start(usize::MAX);
    let mut t = task(AutomationLevel::Assist);
    t.callback_url = Some(receiver.url.clone());
    t.callback_secret = Some(SECRET.into());
    // After its first failure the webhook waits a minute for its next try.
    let Some(app) = spawn_configured(backend, t, None, |s| {
        s.outbox.backoff_base_ms = 60_000;
        s.outbox.backoff_max_ms = 60_000;
    })
    .await
    else {
        return;
    };
    app.submit("u1", row(2)).await;
    decide(&app.db.url, "u1", Some(receiver.url.clone())).await;
    receiver.wait_for(1).await;
    eventually("the first attempt is recorded", || {
        (messages(&app, "webhook") == vec![(1, "pending".to_string(), 1)]).then_some(())
    })
    .await;
    let undone = open(&app.db.url)
        .write(|conn| review::undo_last(conn, TASK, "rita", review::DEFAULT_LEASE))
        .await
        .unwrap();
    assert_eq!(undone, "u1");
    assert!(messages(&app, "webhook").is_empty());
}

/// Polls a page until it shows `text`; returns it.
async fn page_showing(browser: &mut Browser, path: &str, text: &str) -> String {
    let deadline = std::time::Instant::now() + crate::servers::PATIENCE;
    loop {
        let (status, page, _) = browser.get(path).await;
        assert_eq!(status, 200);
        if page.contains(text) {
            return page;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never showed {text:?}: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `verdict serve` as a child process, killed (SIGKILL) when dropped.
struct Serve {
    child: Child,
    base: String,
}

impl Serve {
    async fn start(config: &std::path::Path, db: &TestDb, first: bool) -> (Serve, Option<String>) {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--port", &port.to_string()])
            .arg("--config")
            .arg(config)
            .current_dir(crate::helpers::repo())
            .env("VERDICT_DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start verdict serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + crate::servers::PATIENCE;
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "verdict did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // A first start prints the API token; later ones print none (the
        // reader then ends with the process).
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader};
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| l.trim().starts_with("vdt_").then(|| l.trim().to_string()))
        });
        let token = first.then(|| reader.join().unwrap().expect("the token is printed"));
        (Serve { child, base }, token)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn an_email_waits_out_a_mail_server_outage_and_arrives_once_across_restarts(
    backend: Backend,
) {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("verdict.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
workers = 1

[smtp]
host = "127.0.0.1"
port = {port}
security = "plain"
timeout_secs = 1

[mail]
from = "verdict <verdict@example.com>"
base_url = "http://verdict.example"
recipients = ["oncall@example.com"]

[outbox]
poll_ms = 50
backoff_base_ms = 50
backoff_max_ms = 200
max_attempts = 100000
lease_secs = 2
webhook_timeout_secs = 1

[alerts]
interval_ms = 50
backlog_items = 0
oldest_item_minutes = 1000000
error_rate = 1.0
dead_messages = 1000000

[[tasks]]
name = "{TASK}"
automation = "human_only"
"#,
            port = smtp.port
        ),
    )
    .unwrap();

    // The mail server is down: the backlog alert's email waits and retries.
    let (first, token) = Serve::start(&config, &db, true).await;
    let token = token.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/tasks/{TASK}/items", first.base))
        .bearer_auth(&token)
        .json(&json!({"id": "r1", "input": row(1)}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let emails_pending = |min_attempts: i32| {
        let rows: Vec<(String, i32)> = outbox::table
            .filter(outbox::kind.eq("email"))
            .select((outbox::status, outbox::attempts))
            .load(&mut db.connect())
            .unwrap();
        (rows.len() == 1 && rows[0].0 == "pending" && rows[0].1 >= min_attempts).then_some(())
    };
    eventually("the email fails twice while the server is down", || {
        emails_pending(2)
    })
    .await;
    drop(first);

    // The mail server comes back, then verdict restarts: it sends the email.
    smtp.start().await;
    let (second, _) = Serve::start(&config, &db, false).await;
    let emails = smtp.wait_for(1).await;
    assert_eq!(emails[0].to, "oncall@example.com");
    assert!(
        emails[0].subject.contains("FIRING")
            && emails[0].subject.contains("1 item waits for a human"),
        "{:?}",
        emails[0].subject
    );
    assert!(emails[0]
        .text
        .contains("http://verdict.example/admin/alerts"));
    eventually("the email is marked sent", || {
        let sent: i64 = outbox::table
            .filter(outbox::status.eq("sent"))
            .count()
            .get_result(&mut db.connect())
            .unwrap();
        (sent == 1).then_some(())
    })
    .await;

    // Another restart, then the alert resolves: the resolution arrives, the
    // first email is not sent again.
    drop(second);
    let (_third, _) = Serve::start(&config, &db, false).await;
    decide(&db.url, "r1", None).await;
    let emails = smtp.wait_for(2).await;
    assert!(
        emails[1].subject.contains("resolved"),
        "{:?}",
        emails[1].subject
    );
    let firing = emails
        .iter()
        .filter(|e| e.subject.contains("FIRING"))
        .count();
    assert_eq!(firing, 1, "{emails:?}");
    assert_eq!(emails.len(), 2, "{emails:?}");
}

#[actix_web::test]
async fn two_instances_on_one_postgres_database_post_each_verdict_once() {
    let receiver = Receiver::start(0);
    let Some(app) = spawn_with_webhook(Backend::Postgres, &receiver, 10).await else {
        return;
    };
    // A second instance on the same database.
    let mut t = task(AutomationLevel::Assist);
    t.callback_url = Some(receiver.url.clone());
    t.callback_secret = Some(SECRET.into());
    let second =
        verdict::startup::Application::build(crate::helpers::test_settings(&app.db.url, t, None))
            .await
            .unwrap();
    actix_web::rt::spawn(second.run_until_stopped());

    let n = 30;
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("m{i:02}"), "input": row(i)}))
        .collect();
    let (status, body) = app.post(&json!({ "items": items })).await;
    assert_eq!(status, 200, "{body}");
    let db = open(&app.db.url);
    let rules = Rules {
        labels: vec!["malignant".into(), "benign".into()],
        reviews_required: 1,
        callback_url: Some(receiver.url.clone()),
    };
    for _ in 0..n {
        let rules = rules.clone();
        db.write(move |conn| {
            let claim = review::claim_next(conn, TASK, "rita", review::DEFAULT_LEASE)?
                .expect("an item to claim");
            let label = Label {
                label: "malignant".into(),
                comment: None,
                seconds_spent: 1.0,
            };
            review::submit(conn, TASK, &rules, &claim.item.id, "rita", &label)
        })
        .await
        .unwrap();
    }
    receiver.wait_for(n).await;
    eventually("every message is marked sent", || {
        let sent: i64 = outbox::table
            .filter(outbox::status.eq("sent"))
            .count()
            .get_result(&mut app.db.connect())
            .unwrap();
        (sent == n as i64).then_some(())
    })
    .await;
    let got = receiver.requests();
    let mut deliveries: Vec<String> = got.iter().map(|r| r.delivery.clone().unwrap()).collect();
    deliveries.sort();
    deliveries.dedup();
    assert_eq!((got.len(), deliveries.len()), (n, n));
}
