//! The outbox: webhooks to clients, retries, dead messages and their retry
//! by an admin. Each test runs the worker's passes itself (`run_once`); the
//! background jobs themselves are tested in `outbox_instances`.

use diesel::prelude::*;
use serde_json::Value;

use crate::helpers::{row, spawn_without_jobs, task, Backend, TestApp, TASK};
use crate::servers::Receiver;
use crate::web::{add_user, Browser};
use verdict::config::{Settings, TaskConfig};
use verdict::db::schema::{outbox, outbox_attempts};
use verdict::db::Db;
use verdict::domain::AutomationLevel;
use verdict::domain::Role;
use verdict::outbox::Pass;
use verdict::review::{self, Label, Rules};

crate::on_both_backends!(
    a_human_verdict_is_posted_to_the_task_webhook_signed_with_its_secret,
    a_webhook_receiver_that_fails_three_times_gets_the_verdict_on_the_fourth_try,
    a_dead_message_is_listed_for_admins_and_a_retry_delivers_it,
    a_label_taken_back_withdraws_its_unsent_webhook,
);

const SECRET: &str = "webhook secret for tests";

pub fn open(url: &str) -> Db {
    Db::open(&verdict::config::DatabaseSettings {
        url: url.to_string(),
        pool_size: 2,
        ..Default::default()
    })
    .unwrap()
}

/// A reviewer claims the item `id` (the only one queued) and labels it,
/// through `db`: the running app's own store when the app runs in this
/// process.
pub async fn decide(db: &Db, id: &str, callback_url: Option<String>) {
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
                seconds_spent: Some(1.0),
            },
        )
    })
    .await
    .unwrap();
}

/// A task whose verdicts are posted to `receiver`, signed.
pub fn webhook_task(receiver: &Receiver) -> TaskConfig {
    let mut t = task(AutomationLevel::Assist);
    t.callback_url = Some(receiver.url.clone());
    t.callback_secret = Some(SECRET.into());
    t
}

/// The app with [`webhook_task`], without its background jobs: the test
/// runs the outbox worker's passes.
async fn spawn_with_webhook(
    backend: Backend,
    receiver: &Receiver,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_without_jobs(backend, webhook_task(receiver), None, configure).await
}

/// Retries after 1 ms: a test waits out the backoff, not a worker.
fn quick_retries(s: &mut Settings) {
    s.outbox.backoff_base_ms = 1;
    s.outbox.backoff_max_ms = 1;
}

/// One pass of the app's outbox worker, once any 1 ms backoff is over.
async fn outbox_pass(app: &TestApp) -> Pass {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    app.outbox_worker()
        .run_once()
        .await
        .expect("an outbox pass")
}

/// A pass that claimed one message: sent, failed (to retry) or dead.
fn one(sent: usize, failed: usize, dead: usize) -> Pass {
    Pass {
        claimed: 1,
        sent,
        failed,
        dead,
        postponed: 0,
    }
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
    let Some(app) = spawn_with_webhook(backend, &receiver, |_| {}).await else {
        return;
    };
    let (status, body) = app.submit("w1", row(3)).await;
    assert!(status < 300, "{body}");
    decide(&app.store, "w1", Some(receiver.url.clone())).await;

    assert_eq!(outbox_pass(&app).await, one(1, 0, 0));
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
    assert_eq!(messages(&app, "webhook"), [(1, "sent".to_string(), 1)]);
}

async fn a_webhook_receiver_that_fails_three_times_gets_the_verdict_on_the_fourth_try(
    backend: Backend,
) {
    let receiver = Receiver::start(3);
    let Some(app) = spawn_with_webhook(backend, &receiver, quick_retries).await else {
        return;
    };
    app.submit("w2", row(5)).await;
    decide(&app.store, "w2", Some(receiver.url.clone())).await;

    for _ in 0..3 {
        assert_eq!(outbox_pass(&app).await, one(0, 1, 0));
    }
    assert_eq!(outbox_pass(&app).await, one(1, 0, 0));
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
    let id = match messages(&app, "webhook").as_slice() {
        [(id, status, 4)] if status == "sent" => *id,
        other => panic!("not sent after four attempts: {other:?}"),
    };
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
    assert_eq!(outbox_pass(&app).await, Pass::default());
    assert_eq!(receiver.requests().len(), 4, "no request after the success");
}

async fn a_dead_message_is_listed_for_admins_and_a_retry_delivers_it(backend: Backend) {
    let receiver = Receiver::start(usize::MAX);
    let Some(app) = spawn_with_webhook(backend, &receiver, |s| {
        quick_retries(s);
        s.outbox.max_attempts = 2;
    })
    .await
    else {
        return;
    };
    app.submit("w3", row(7)).await;
    decide(&app.store, "w3", Some(receiver.url.clone())).await;
    assert_eq!(outbox_pass(&app).await, one(0, 1, 0));
    assert_eq!(outbox_pass(&app).await, one(0, 0, 1));
    assert_eq!(messages(&app, "webhook"), [(1, "dead".to_string(), 2)]);
    assert_eq!(outbox_pass(&app).await, Pass::default());

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
    assert_eq!(app.monitor_pass().await, (1, 0));
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
    assert_eq!(outbox_pass(&app).await, one(1, 0, 0));
    assert_eq!(messages(&app, "webhook"), [(1, "sent".to_string(), 1)]);
    assert_eq!(app.monitor_pass().await, (0, 1));
    page_showing(&mut ana, "/admin/alerts", "Nothing is firing").await;
    let (_, page, _) = ana.get("/admin/outbox?status=sent").await;
    assert!(page.contains(&receiver.url), "{page}");
}

async fn a_label_taken_back_withdraws_its_unsent_webhook(backend: Backend) {
    let receiver = Receiver::start(usize::MAX);
    // After its first failure the webhook waits a minute for its next try.
    let Some(app) = spawn_with_webhook(backend, &receiver, |s| {
        s.outbox.backoff_base_ms = 60_000;
        s.outbox.backoff_max_ms = 60_000;
    })
    .await
    else {
        return;
    };
    app.submit("u1", row(2)).await;
    decide(&app.store, "u1", Some(receiver.url.clone())).await;
    assert_eq!(outbox_pass(&app).await, one(0, 1, 0));
    receiver.wait_for(1).await;
    assert_eq!(messages(&app, "webhook"), [(1, "pending".to_string(), 1)]);
    let undone = app
        .store
        .write(|conn| review::undo_last(conn, TASK, "rita", review::DEFAULT_LEASE))
        .await
        .unwrap();
    assert_eq!(undone, "u1");
    assert!(messages(&app, "webhook").is_empty());
}

/// Gets a page that must show `text`; returns it.
async fn page_showing(browser: &mut Browser, path: &str, text: &str) -> String {
    let (status, page, _) = browser.get(path).await;
    assert_eq!(status, 200);
    assert!(page.contains(text), "{path} does not show {text:?}: {page}");
    page
}
