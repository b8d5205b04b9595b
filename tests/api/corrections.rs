//! An unsure reviewer flags an item for an admin; an admin overrules a
//! verdict or reopens an item; an admin resets a password (issue 12) —
//! through real HTTP as a browser sends it.

use diesel::prelude::*;

use crate::accounts::user_cli;
use crate::helpers::{row, spawn_without_jobs, task, Backend, TestApp, TestDb, TASK};
use crate::web::{add_user, Browser};
use verdict::db::schema::{audit_log, items, outbox, reviews, verdicts};
use verdict::domain::{AutomationLevel, Role};

const PASSWORD: &str = "a long passphrase";
/// Where the task's webhooks go (never delivered here: no outbox worker).
const HOOK: &str = "http://127.0.0.1:9/verdicts";

/// An assist-mode app (every item queued) with a webhook, `n` items `c-0`…,
/// reviewers `rita` and `ana` and the admin `boss`; rita and boss signed in.
async fn app(backend: Backend, n: usize) -> Option<(TestApp, Browser, Browser)> {
    let mut t = task(AutomationLevel::Assist);
    t.callback_url = Some(HOOK.into());
    let app = spawn_without_jobs(backend, t, None, |_| {}).await?;
    add_user(&app, "rita", Role::Reviewer, &[TASK]);
    add_user(&app, "ana", Role::Reviewer, &[TASK]);
    add_user(&app, "boss", Role::Admin, &[]);
    for i in 0..n {
        let (status, body) = app.submit(&format!("c-{i}"), row(i)).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut rita = Browser::new(&app);
    rita.sign_in("rita", PASSWORD).await;
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    Some((app, rita, boss))
}

/// The id of the item a review page shows (from its label form).
fn shown(page: &str) -> Option<String> {
    let end = page.find("/label\"")?;
    let marker = format!("action=\"/review/{TASK}/");
    let start = page[..end].rfind(&marker)? + marker.len();
    Some(page[start..end].to_string())
}

async fn page(browser: &mut Browser, path: &str) -> String {
    let (status, page, _) = browser.get(path).await;
    assert_eq!(status, 200, "{path}: {page}");
    page
}

fn review_state(app: &TestApp, id: &str) -> (String, String, Option<String>) {
    items::table
        .find((TASK, id))
        .select((items::status, items::review_state, items::reason))
        .first(&mut app.db.connect())
        .unwrap()
}

/// The item's verdict: label, basis, decided by.
fn verdict(app: &TestApp, id: &str) -> Option<(String, Option<String>, Option<String>)> {
    verdicts::table
        .find((TASK, id))
        .select((verdicts::label, verdicts::basis, verdicts::decided_by))
        .first(&mut app.db.connect())
        .optional()
        .unwrap()
}

fn audit_detail(app: &TestApp, action: &str) -> Vec<String> {
    audit_log::table
        .filter(audit_log::action.eq(action))
        .order(audit_log::id)
        .select(audit_log::detail)
        .load(&mut app.db.connect())
        .unwrap()
}

/// The bodies of the item's webhooks still waiting in the outbox.
fn pending_webhooks(app: &TestApp, id: &str) -> Vec<serde_json::Value> {
    outbox::table
        .filter(outbox::kind.eq("webhook"))
        .filter(outbox::subject.eq(format!("verdict for {TASK}/{id}")))
        .filter(outbox::status.eq("pending"))
        .select(outbox::body)
        .load::<String>(&mut app.db.connect())
        .unwrap()
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

/// rita labels the item she is shown; returns its id and the label.
async fn rita_labels(rita: &mut Browser) -> (String, String) {
    let page = page(rita, &format!("/review/{TASK}")).await;
    let id = shown(&page).expect("an item to label");
    let csrf = Browser::csrf(&page);
    let (status, body, _, _) = rita
        .post(
            &format!("/review/{TASK}/{id}/label"),
            &[("csrf", &csrf), ("label", "benign")],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    (id, "benign".into())
}

async fn flags_and_adjudication(backend: Backend) {
    let Some((app, mut rita, mut boss)) = app(backend, 2).await else {
        return;
    };
    let review = page(&mut rita, &format!("/review/{TASK}")).await;
    assert!(review.contains("Flag for an admin"), "{review}");
    let id = shown(&review).unwrap();
    let csrf = Browser::csrf(&review);
    let flag = format!("/review/{TASK}/{id}/flag");

    // A forged form and an empty note change nothing.
    let (status, _, _, _) = rita.post(&flag, &[("csrf", "x"), ("note", "hm")]).await;
    assert_eq!(status, 403);
    let (status, body, _, _) = rita.post(&flag, &[("csrf", &csrf), ("note", "  ")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Say why"), "{body}");
    assert_eq!(review_state(&app, &id).1, "pending");

    let note = "The texture looks <b>odd</b> for benign";
    let (status, _, location, _) = rita.post(&flag, &[("csrf", &csrf), ("note", note)]).await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.ends_with("notice=flagged"), "{location}");
    assert_eq!(review_state(&app, &id).1, "adjudication");
    assert_eq!(audit_detail(&app, "review.flag").len(), 1);
    // rita goes on with another item; the flagged one is not hers now.
    let next = page(&mut rita, &location).await;
    assert!(next.contains("went to an admin"), "{next}");
    assert_ne!(shown(&next), Some(id.clone()));

    // The admin sees the flag in the adjudication queue, with the note
    // (escaped), and decides the item.
    let home = page(&mut boss, "/").await;
    assert!(home.contains("adjudicate 1"), "{home}");
    let adjudicate = page(&mut boss, &format!("/review/{TASK}?queue=adjudication")).await;
    assert_eq!(shown(&adjudicate), Some(id.clone()));
    assert!(adjudicate.contains("flagged for an admin"), "{adjudicate}");
    assert!(
        adjudicate.contains("The texture looks &#60;b&#62;odd&#60;/b&#62; for benign"),
        "{adjudicate}"
    );
    assert!(
        !adjudicate.contains("Unsure? Flag"),
        "an admin does not flag"
    );
    let (status, _, _, _) = boss
        .post(
            &format!("/review/{TASK}/{id}/label"),
            &[
                ("csrf", &Browser::csrf(&adjudicate)),
                ("label", "malignant"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        verdict(&app, &id),
        Some((
            "malignant".into(),
            Some("adjudication".into()),
            Some("boss".into())
        ))
    );
    // The flag stays on the item page.
    let item = page(&mut boss, &format!("/admin/items/{TASK}/{id}")).await;
    assert!(item.contains("was unsure"), "{item}");
}

#[actix_web::test]
async fn a_flagged_item_goes_to_the_admins_with_its_note_sqlite() {
    flags_and_adjudication(Backend::Sqlite).await;
}

#[actix_web::test]
async fn a_flagged_item_goes_to_the_admins_with_its_note_postgres() {
    flags_and_adjudication(Backend::Postgres).await;
}

async fn overrule_and_reopen(backend: Backend) {
    let Some((app, mut rita, mut boss)) = app(backend, 2).await else {
        return;
    };
    let (id, _) = rita_labels(&mut rita).await;
    assert_eq!(pending_webhooks(&app, &id).len(), 1);
    let item_path = format!("/admin/items/{TASK}/{id}");
    let item = page(&mut boss, &item_path).await;
    assert!(item.contains("Overrule"), "{item}");
    let csrf = Browser::csrf(&item);
    let overrule = format!("{item_path}/overrule");

    // Refused, each changing nothing: a reviewer, a forged form, no
    // reason, a label the task does not have, the label it is already,
    // an item that does not exist.
    let rita_csrf = Browser::csrf(&page(&mut rita, &format!("/review/{TASK}")).await);
    let nope = format!("/admin/items/{TASK}/nope/overrule");
    let tries: [(bool, &str, &str, &str, &str, u16); 6] = [
        (true, &overrule, &rita_csrf, "malignant", "wrong", 403),
        (false, &overrule, "forged", "malignant", "wrong", 403),
        (false, &overrule, &csrf, "malignant", " ", 400),
        (false, &overrule, &csrf, "cat", "wrong", 403),
        (false, &overrule, &csrf, "benign", "same", 400),
        (false, &nope, &csrf, "malignant", "wrong", 404),
    ];
    for (as_rita, path, token, label, reason, expected) in tries {
        let browser = if as_rita { &mut rita } else { &mut boss };
        let form = [("csrf", token), ("label", label), ("reason", reason)];
        let (status, body, _, _) = browser.post(path, &form).await;
        assert_eq!(status, expected, "{label} {reason}: {body}");
    }
    assert_eq!(verdict(&app, &id).unwrap().1.as_deref(), Some("single"));

    let (status, _, location, _) = boss
        .post(
            &overrule,
            &[
                ("csrf", &csrf),
                ("label", "malignant"),
                ("reason", "biopsy came back malignant"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(&*format!("{item_path}?done=overruled"))
    );
    assert_eq!(
        verdict(&app, &id),
        Some((
            "malignant".into(),
            Some("correction".into()),
            Some("boss".into())
        ))
    );
    // The unsent webhook of the old verdict is withdrawn; the new one waits.
    let hooks = pending_webhooks(&app, &id);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["verdict"]["label"], "malignant", "{}", hooks[0]);
    let audit = audit_detail(&app, "verdict.overrule");
    assert_eq!(audit.len(), 1);
    let detail: serde_json::Value = serde_json::from_str(&audit[0]).unwrap();
    assert_eq!(detail["before"]["label"], "benign");
    assert_eq!(detail["before"]["decided_by"], "rita");
    assert_eq!(detail["reason"], "biopsy came back malignant");
    let item = page(&mut boss, &format!("{item_path}?done=overruled")).await;
    assert!(item.contains("The verdict is overruled"), "{item}");

    // Reopened: verdict and labels go (kept in the audit log), the item
    // waits again and rita may label it afresh.
    let reopen = format!("{item_path}/reopen");
    let (status, _, _, _) = boss.post(&reopen, &[("csrf", &csrf), ("reason", "")]).await;
    assert_eq!(status, 400);
    let (status, _, location, _) = boss
        .post(&reopen, &[("csrf", &csrf), ("reason", "second opinion")])
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(&*format!("{item_path}?done=reopened"))
    );
    assert_eq!(
        review_state(&app, &id),
        ("queued".into(), "pending".into(), Some("reopened".into()))
    );
    assert_eq!(verdict(&app, &id), None);
    let reviews_left: i64 = reviews::table
        .filter(reviews::item_id.eq(&id))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(reviews_left, 0);
    assert!(pending_webhooks(&app, &id).is_empty());
    let audit = audit_detail(&app, "item.reopen");
    let detail: serde_json::Value = serde_json::from_str(&audit[0]).unwrap();
    assert_eq!(detail["before"]["label"], "malignant");
    assert_eq!(detail["reviews"][0]["reviewer"], "rita");
    assert_eq!(detail["reason"], "second opinion");
    // A waiting item cannot be reopened again.
    let (status, body, _, _) = boss
        .post(&reopen, &[("csrf", &csrf), ("reason", "again")])
        .await;
    assert_eq!(status, 400, "{body}");

    // Anyone may take it now (the other item is rita's claim): ana's label
    // decides it.
    let mut ana = Browser::new(&app);
    ana.sign_in("ana", PASSWORD).await;
    let review = page(&mut ana, &format!("/review/{TASK}")).await;
    assert_eq!(shown(&review), Some(id.clone()));
    let (status, _, _, _) = ana
        .post(
            &format!("/review/{TASK}/{id}/label"),
            &[("csrf", &Browser::csrf(&review)), ("label", "malignant")],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        verdict(&app, &id),
        Some((
            "malignant".into(),
            Some("single".into()),
            Some("ana".into())
        ))
    );
}

#[actix_web::test]
async fn an_admin_overrules_or_reopens_a_verdict_with_a_reason_sqlite() {
    overrule_and_reopen(Backend::Sqlite).await;
}

#[actix_web::test]
async fn an_admin_overrules_or_reopens_a_verdict_with_a_reason_postgres() {
    overrule_and_reopen(Backend::Postgres).await;
}

#[actix_web::test]
async fn an_admin_overrules_a_model_verdict() {
    let Some(app) =
        spawn_without_jobs(Backend::Sqlite, task(AutomationLevel::Full), None, |_| {}).await
    else {
        return;
    };
    add_user(&app, "boss", Role::Admin, &[]);
    let (status, body) = app.submit("m-1", row(0)).await;
    assert_eq!(status, 201, "{body}");
    let model_label = body["verdict"]["label"].as_str().unwrap().to_string();
    let other = if model_label == "benign" {
        "malignant"
    } else {
        "benign"
    };
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let item = page(&mut boss, &format!("/admin/items/{TASK}/m-1")).await;
    let (status, _, _, _) = boss
        .post(
            &format!("/admin/items/{TASK}/m-1/overrule"),
            &[
                ("csrf", &Browser::csrf(&item)),
                ("label", other),
                ("reason", "the model missed it"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    let (status, doc) = app.get(&format!("/api/v1/tasks/{TASK}/items/m-1")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["verdict"]["label"], other, "{doc}");
    assert_eq!(doc["verdict"]["source"], "human", "{doc}");
    let detail: serde_json::Value =
        serde_json::from_str(&audit_detail(&app, "verdict.overrule")[0]).unwrap();
    assert_eq!(detail["before"]["source"], "model");
}

#[actix_web::test]
async fn an_admin_resets_a_password_shown_once_and_the_old_sessions_end() {
    let Some((app, mut rita, mut boss)) = app(Backend::Sqlite, 1).await else {
        return;
    };
    let users = page(&mut boss, "/admin/users").await;
    let csrf = Browser::csrf(&users);
    // A reviewer may not; a forged form and an unknown user are refused.
    let rita_csrf = Browser::csrf(&page(&mut rita, "/").await);
    let (status, _, _, _) = rita
        .post("/admin/users/ana/password", &[("csrf", &rita_csrf)])
        .await;
    assert_eq!(status, 403);
    let (status, _, _, _) = boss
        .post("/admin/users/rita/password", &[("csrf", "forged")])
        .await;
    assert_eq!(status, 403);
    let (status, _, _, _) = boss
        .post("/admin/users/nobody/password", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 404);

    let r = boss
        .http
        .post(format!("{}/admin/users/rita/password", app.base))
        .header(reqwest::header::COOKIE, boss.cookie_header())
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    let at = body.find("class=\"big mono password\">").expect(&body) + 26;
    let password = body[at..at + 23].to_string();
    assert_eq!(password.len(), 23, "{password}");
    assert_eq!(password.matches('-').count(), 3, "{password}");

    // rita's session ended; the old password no longer works, the new one
    // does; the audit log names the reset, never the password.
    let (status, _, location) = rita.get(&format!("/review/{TASK}")).await;
    assert_eq!(status, 303);
    assert!(location.unwrap().starts_with("/sign-in"));
    let (status, _, _, _) = Browser::new(&app).sign_in("rita", PASSWORD).await;
    assert_eq!(status, 401);
    let (status, _, location, _) = Browser::new(&app).sign_in("rita", &password).await;
    assert_eq!(status, 303, "{location:?}");
    let audit = audit_detail(&app, "user.password");
    assert_eq!(audit.len(), 1);
    assert!(!audit[0].contains(&password));
    // Shown once: the Users page does not show it again.
    let users = page(&mut boss, "/admin/users").await;
    assert!(!users.contains(&password));
}

#[test]
fn user_password_sets_a_password_from_stdin() {
    let db = TestDb::new(Backend::Sqlite).unwrap();
    let add = user_cli(
        &db.url,
        &["add", "rita", "--task", TASK],
        "first passphrase\n",
    );
    assert!(add.status.success(), "{add:?}");
    let short = user_cli(&db.url, &["password", "rita"], "short\n");
    assert!(!short.status.success());
    let set = user_cli(&db.url, &["password", "rita"], "second passphrase\n");
    assert!(set.status.success(), "{set:?}");
    let missing = user_cli(&db.url, &["password", "nobody"], "second passphrase\n");
    assert!(!missing.status.success());
    let mut conn = db.connect();
    assert!(
        verdict::accounts::authenticate(&mut conn, "rita", "second passphrase")
            .unwrap()
            .is_some()
    );
    assert!(
        verdict::accounts::authenticate(&mut conn, "rita", "first passphrase")
            .unwrap()
            .is_none()
    );
}

#[actix_web::test]
async fn a_user_changes_their_own_password_and_other_sessions_end() {
    let Some((app, mut rita, _boss)) = app(Backend::Sqlite, 1).await else {
        return;
    };
    let mut elsewhere = Browser::new(&app);
    elsewhere.sign_in("rita", PASSWORD).await;
    let account = page(&mut rita, "/account").await;
    assert!(account.contains("Change your password"), "{account}");
    let csrf = Browser::csrf(&account);
    let change = |current: &'static str, new: &'static str, again: &'static str| {
        [("current", current), ("new", new), ("again", again)]
    };
    for (form, expected) in [
        (
            change(PASSWORD, "new passphrase 1", "new passphrase 2"),
            400,
        ),
        (change(PASSWORD, "short", "short"), 400),
        (
            change("wrong password", "new passphrase 1", "new passphrase 1"),
            401,
        ),
    ] {
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend(form);
        let (status, body, _, _) = rita.post("/account/password", &fields).await;
        assert_eq!(status, expected, "{body}");
    }
    let (status, _, _, _) = rita
        .post(
            "/account/password",
            &[
                ("csrf", "forged"),
                ("current", PASSWORD),
                ("new", "new passphrase 1"),
                ("again", "new passphrase 1"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, location, _) = rita
        .post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", PASSWORD),
                ("new", "new passphrase 1"),
                ("again", "new passphrase 1"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/account?changed=1"));
    // This browser stays signed in; the other session ended.
    let account = page(&mut rita, "/account?changed=1").await;
    assert!(account.contains("Your password is changed"), "{account}");
    let (status, _, _) = elsewhere.get("/account").await;
    assert_eq!(status, 303);
    let (status, _, _, _) = Browser::new(&app).sign_in("rita", PASSWORD).await;
    assert_eq!(status, 401);
    let (status, _, _, _) = Browser::new(&app).sign_in("rita", "new passphrase 1").await;
    assert_eq!(status, 303);
}
