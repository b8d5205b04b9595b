//! The outbox's background jobs as they run in `verdict serve`: email that
//! waits out a mail server outage and restarts, and two instances on one
//! database that post each webhook once.

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{row, spawn_configured, Backend, TestDb, TASK};
use crate::outbox::{decide, open, webhook_task};
use crate::servers::{eventually, Receiver, Serve, SmtpServer};
use verdict::db::schema::outbox;
use verdict::review::{self, Label, Rules};

crate::on_both_backends!(an_email_waits_out_a_mail_server_outage_and_arrives_once_across_restarts,);

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
    let (first, token) = Serve::start(Some(&config), &db, true).await;
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
    let (second, _) = Serve::start(Some(&config), &db, false).await;
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
    let (_third, _) = Serve::start(Some(&config), &db, false).await;
    // The server is a child process: the test writes through a store of
    // its own, as another instance would.
    decide(&open(&db.url), "r1", None).await;
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
    // Both instances run their own outbox worker.
    let Some(app) =
        spawn_configured(Backend::Postgres, webhook_task(&receiver), None, |_| {}).await
    else {
        return;
    };
    // A second instance on the same database.
    let second = verdict::startup::Application::build(crate::helpers::test_settings(
        &app.db.url,
        webhook_task(&receiver),
        None,
    ))
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
                seconds_spent: Some(1.0),
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
