//! The review queue: atomic claims, leases, labels that become verdicts.

use std::sync::Arc;

use chrono::Duration;
use serde_json::{json, Value};

use crate::helpers::{rows, spawn, Backend, TestApp, TASK};
use verdict::db::Db;
use verdict::domain::AutomationLevel;
use verdict::domain::{QueueKind, VerdictBasis};
use verdict::review::{self, Label, Outcome, Rules};

crate::on_both_backends!(
    claimers_never_share_an_item_and_every_item_is_labelled_once,
    an_expired_lease_frees_the_item_and_its_late_label_is_refused,
    a_human_label_becomes_the_verdict_the_api_returns,
    two_reviewers_who_agree_decide_and_a_tie_goes_to_an_admin,
    each_queue_order_hands_out_items_in_its_order,
    the_reaper_clears_leases_only_after_the_grace_and_late_labels_say_why,
);

fn rules(reviews_required: u32) -> Rules {
    Rules {
        labels: vec!["malignant".into(), "benign".into()],
        reviews_required,
        callback_url: None,
    }
}

fn label(l: &str) -> Label {
    Label {
        label: l.into(),
        comment: None,
        seconds_spent: Some(2.5),
    }
}

async fn queue_items(app: &TestApp, n: usize) {
    let data = rows();
    let all: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("q{i:05}"), "input": data[i % data.len()]}))
        .collect();
    for chunk in all.chunks(1000) {
        let (status, body) = app.post(&json!({ "items": chunk })).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// The running app's own store (never a second writer on the same file).
fn open(app: &TestApp) -> Db {
    app.store.clone()
}

async fn claimers_never_share_an_item_and_every_item_is_labelled_once(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::HumanOnly).await else {
        return;
    };
    queue_items(&app, 2000).await;
    let db = Arc::new(open(&app));
    let mut workers = Vec::new();
    for r in 0..32 {
        let db = db.clone();
        workers.push(tokio::spawn(async move {
            let reviewer = format!("reviewer-{r}");
            let mut done = 0;
            loop {
                let who = reviewer.clone();
                let claim = db
                    .write(move |conn| review::claim_next(conn, TASK, &who, review::DEFAULT_LEASE))
                    .await
                    .unwrap();
                let Some(claim) = claim else { break };
                let (who, id) = (reviewer.clone(), claim.item.id.clone());
                db.write(move |conn| {
                    review::submit(conn, TASK, &rules(1), &id, &who, &label("benign"))
                })
                .await
                .unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    assert_eq!(total, 2000, "every item labelled, none twice");
    assert_eq!(app.count("reviews"), 2000);
    assert_eq!(app.count("verdicts"), 2000);
    let depth = db.read(|conn| review::depth(conn, TASK)).await.unwrap();
    assert_eq!(depth, review::Depth::default(), "nothing left waiting");
}

async fn an_expired_lease_frees_the_item_and_its_late_label_is_refused(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::HumanOnly).await else {
        return;
    };
    queue_items(&app, 2).await;
    let db = open(&app);
    let first = db
        .write(|conn| review::claim_next(conn, TASK, "ana", Duration::milliseconds(200)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.item.id, "q00000", "earliest deadline first");
    let second = db
        .write(|conn| review::claim_next(conn, TASK, "bo", review::DEFAULT_LEASE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.item.id, "q00001",
        "a held item is not handed out twice"
    );
    let depth = db.read(|conn| review::depth(conn, TASK)).await.unwrap();
    assert_eq!((depth.queued, depth.in_review), (2, 2));
    assert!(db
        .write(|conn| review::claim_next(conn, TASK, "cy", review::DEFAULT_LEASE))
        .await
        .unwrap()
        .is_none());

    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let again = db
        .write(|conn| review::claim_next(conn, TASK, "cy", review::DEFAULT_LEASE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.item.id, "q00000", "the expired lease put it back");
    let late = db
        .write(|conn| review::submit(conn, TASK, &rules(1), "q00000", "ana", &label("benign")))
        .await
        .unwrap_err();
    assert_eq!(late.code(), "stale_lease");
    // Someone else's item and unknown labels are refused too.
    let theirs = db
        .write(|conn| review::submit(conn, TASK, &rules(1), "q00001", "cy", &label("benign")))
        .await
        .unwrap_err();
    assert_eq!(theirs.code(), "stale_lease");
    let unknown = db
        .write(|conn| review::submit(conn, TASK, &rules(1), "q00000", "cy", &label("maybe")))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), "unknown_label");
    // Skip gives it back at once.
    db.write(|conn| review::skip(conn, TASK, "q00000", "cy"))
        .await
        .unwrap();
    let taken = db
        .write(|conn| review::claim_next(conn, TASK, "dee", review::DEFAULT_LEASE))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.item.id, "q00000");
    assert_eq!(app.count("reviews"), 0);
}

async fn a_human_label_becomes_the_verdict_the_api_returns(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Assist).await else {
        return;
    };
    queue_items(&app, 1).await;
    let db = open(&app);
    let claim = db
        .write(|conn| review::claim_next(conn, TASK, "ana", review::DEFAULT_LEASE))
        .await
        .unwrap()
        .unwrap();
    let id = claim.item.id.clone();
    db.write(move |conn| review::submit(conn, TASK, &rules(1), &id, "ana", &label("malignant")))
        .await
        .unwrap();
    let (status, doc) = app.get(&format!("/api/v1/tasks/{TASK}/items/q00000")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["status"], "decided");
    assert_eq!(doc["verdict"]["source"], "human");
    assert_eq!(doc["verdict"]["label"], "malignant");
    assert!(
        doc["prediction"]["label"].is_string(),
        "the model's suggestion stays on record"
    );
}

async fn two_reviewers_who_agree_decide_and_a_tie_goes_to_an_admin(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::HumanOnly).await else {
        return;
    };
    queue_items(&app, 2).await;
    let db = open(&app);
    let claim = |who: &'static str, kind: QueueKind| {
        let db = db.clone();
        async move {
            db.write(move |conn| {
                review::claim_from(
                    conn,
                    kind,
                    Default::default(),
                    TASK,
                    who,
                    review::DEFAULT_LEASE,
                )
            })
            .await
            .unwrap()
            .map(|c| c.item.id)
        }
    };
    let submit = |who: &'static str, id: String, l: &'static str| {
        let db = db.clone();
        async move {
            db.write(move |conn| review::submit(conn, TASK, &rules(2), &id, who, &label(l)))
                .await
                .unwrap()
        }
    };
    // Item 0: ana and bo agree.
    let first = claim("ana", QueueKind::Review).await.unwrap();
    assert_eq!(
        submit("ana", first.clone(), "benign").await,
        Outcome::NeedsMore
    );
    let (_, doc) = app
        .get(&format!("/api/v1/tasks/{TASK}/items/{first}"))
        .await;
    assert_eq!(doc["status"], "queued", "one label of two decides nothing");
    // ana is never handed an item she labelled; bo gets it.
    let ana_next = claim("ana", QueueKind::Review).await.unwrap();
    assert_ne!(ana_next, first);
    let bo = claim("bo", QueueKind::Review).await.unwrap();
    assert_eq!(bo, first);
    assert_eq!(
        submit("bo", bo, "benign").await,
        Outcome::Decided {
            label: "benign".into(),
            basis: VerdictBasis::Consensus
        }
    );
    let (_, doc) = app
        .get(&format!("/api/v1/tasks/{TASK}/items/{first}"))
        .await;
    assert_eq!(
        (
            doc["verdict"]["source"].as_str(),
            doc["verdict"]["label"].as_str()
        ),
        (Some("human"), Some("benign"))
    );

    // Item 1: ana and cy disagree, a tie for an admin.
    assert_eq!(
        submit("ana", ana_next.clone(), "malignant").await,
        Outcome::NeedsMore
    );
    let cy = claim("cy", QueueKind::Review).await.unwrap();
    assert_eq!(submit("cy", cy, "benign").await, Outcome::Tied);
    let depth = db.read(|conn| review::depth(conn, TASK)).await.unwrap();
    assert_eq!((depth.queued, depth.adjudication), (0, 1));
    assert!(claim("dee", QueueKind::Review).await.is_none());
    assert!(
        claim("ana", QueueKind::Adjudication).await.is_none(),
        "a reviewer of the item does not judge it"
    );
    let tied = claim("admin", QueueKind::Adjudication).await.unwrap();
    assert_eq!(tied, ana_next);
    assert_eq!(
        submit("admin", tied, "malignant").await,
        Outcome::Decided {
            label: "malignant".into(),
            basis: VerdictBasis::Adjudication
        }
    );
    let (_, doc) = app
        .get(&format!("/api/v1/tasks/{TASK}/items/{ana_next}"))
        .await;
    assert_eq!(doc["verdict"]["label"], "malignant");
    assert_eq!(app.count("reviews"), 5);
}

async fn each_queue_order_hands_out_items_in_its_order(backend: Backend) {
    use verdict::domain::QueueOrder;
    use verdict::domain::{ItemStatus, QueueReason, ReviewState};
    use verdict::store::items::ItemRow;
    let Some(app) = spawn(backend, AutomationLevel::HumanOnly).await else {
        return;
    };
    let db = open(&app);
    let t0 = verdict::domain::now();
    // id, arrived (s), deadline (s), margin
    let spec = [
        ("early-sure", 0, 100, 0.9),
        ("late-unsure", 1, 200, 0.1),
        ("first-in", -5, 300, 0.5),
    ];
    let rows: Vec<ItemRow> = spec
        .iter()
        .map(|&(id, arrived, deadline, margin)| ItemRow {
            task: TASK.into(),
            id: id.into(),
            input: "{}".into(),
            input_sha256: String::new(),
            status: ItemStatus::Queued,
            reason: Some(QueueReason::LowConfidence),
            review_state: ReviewState::Pending,
            blind: false,
            audit: false,
            model_version: None,
            margin: Some(margin),
            sla_deadline: Some(t0 + Duration::seconds(deadline)),
            created_at: t0 + Duration::seconds(arrived),
            decided_at: None,
            out_of_range: None,
        })
        .collect();
    db.write(move |conn| {
        Ok::<_, verdict::db::DbError>(verdict::store::items::insert_rows(conn, &rows, &[], &[])?)
    })
    .await
    .unwrap();
    for (order, first) in [
        (QueueOrder::DeadlineThenUncertainty, "early-sure"),
        (QueueOrder::UncertaintyThenDeadline, "late-unsure"),
        (QueueOrder::OldestFirst, "first-in"),
    ] {
        let who = format!("{order:?}");
        let claim = db
            .write(move |conn| {
                review::claim_from(
                    conn,
                    QueueKind::Review,
                    order,
                    TASK,
                    &who,
                    Duration::milliseconds(1),
                )
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claim.item.id, first, "{order:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn the_reaper_clears_leases_only_after_the_grace_and_late_labels_say_why(backend: Backend) {
    use verdict::review::{LeaseReaper, ReviewError};
    let Some(app) = spawn(backend, AutomationLevel::HumanOnly).await else {
        return;
    };
    queue_items(&app, 3).await;
    let db = open(&app);
    for who in ["ana", "bo", "cy"] {
        db.write(move |conn| review::claim_next(conn, TASK, who, review::DEFAULT_LEASE))
            .await
            .unwrap()
            .unwrap();
    }
    // ana's lease ended 20 minutes ago, bo's a minute ago; cy's is live.
    let at = verdict::domain::now();
    db.write(move |conn| {
        verdict::store::queue::renew(conn, TASK, "q00000", at - Duration::minutes(20))?;
        verdict::store::queue::renew(conn, TASK, "q00001", at - Duration::minutes(1))?;
        Ok::<_, verdict::db::DbError>(())
    })
    .await
    .unwrap();
    let reaper = LeaseReaper {
        db: db.clone(),
        every: std::time::Duration::from_secs(60),
    };
    assert_eq!(reaper.run_once().await.unwrap(), 1, "only ana's lease");
    assert_eq!(reaper.run_once().await.unwrap(), 0, "nothing left to clear");
    let owners: Vec<(String, Option<String>)> = {
        use diesel::prelude::*;
        use verdict::db::schema::items;
        items::table
            .select((items::id, items::lease_owner))
            .order(items::id)
            .load(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(
        owners,
        vec![
            ("q00000".to_string(), None),
            ("q00001".to_string(), Some("bo".to_string())),
            ("q00002".to_string(), Some("cy".to_string())),
        ]
    );

    let late = |id: &'static str, who: &'static str| {
        let db = db.clone();
        async move {
            db.write(move |conn| review::submit(conn, TASK, &rules(1), id, who, &label("benign")))
                .await
        }
    };
    let code = |r: Result<Outcome, ReviewError>| r.unwrap_err().code();
    // A late label for an item nobody else took is saved (the claim is
    // taken again): after the reaper cleared it, and within the grace.
    assert!(late("q00000", "ana").await.is_ok(), "cleared, still free");
    assert!(late("q00001", "bo").await.is_ok(), "lapsed, still free");
    // One someone else holds is refused, and says why.
    assert_eq!(code(late("q00002", "bo").await), "stale_lease");
    assert_eq!(code(late("nope", "cy").await), "unknown_item");
    assert!(late("q00002", "cy").await.is_ok());
    assert_eq!(code(late("q00002", "cy").await), "already_labelled");
    assert_eq!(app.count("reviews"), 3);
}
