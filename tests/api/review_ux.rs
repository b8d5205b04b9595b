//! The reviewer's and admin's first day (issue 12): skip, undo, refused and
//! repeated labels, unknown items, odd ids, missing pages, malformed forms
//! and the time a label took — through real HTTP as a browser sends it.

use diesel::prelude::*;

use crate::helpers::{row, spawn_with, task, Backend, TestApp, TASK};
use crate::web::{add_user, Browser};
use verdict::db::schema::{audit_log, items, reviews};
use verdict::domain::{AutomationLevel, Role};

const PASSWORD: &str = "a long passphrase";

/// An assist-mode app (every item queued) with `n` items `r-0`… and a
/// reviewer `rita` signed in.
async fn reviewing(n: usize) -> Option<(TestApp, Browser)> {
    let app = spawn_with(Backend::Sqlite, task(AutomationLevel::Assist), None).await?;
    add_user(&app, "rita", Role::Reviewer, &[TASK]);
    add_user(&app, "ana", Role::Reviewer, &[TASK]);
    add_user(&app, "boss", Role::Admin, &[]);
    for i in 0..n {
        let (status, body) = app.submit(&format!("r-{i}"), row(i)).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut browser = Browser::new(&app);
    browser.sign_in("rita", PASSWORD).await;
    Some((app, browser))
}

/// The id of the item a review page shows (from its label form).
fn shown(page: &str) -> Option<String> {
    let end = page.find("/label\"")?;
    let marker = format!("action=\"/review/{TASK}/");
    let start = page[..end].rfind(&marker)? + marker.len();
    Some(page[start..end].to_string())
}

async fn review_page(browser: &mut Browser) -> String {
    let (status, page, _) = browser.get(&format!("/review/{TASK}")).await;
    assert_eq!(status, 200, "{page}");
    page
}

async fn skip(browser: &mut Browser, page: &str) -> (u16, Option<String>) {
    let id = shown(page).expect("an item on the page");
    let csrf = Browser::csrf(page);
    let (status, _, location, _) = browser
        .post(&format!("/review/{TASK}/{id}/skip"), &[("csrf", &csrf)])
        .await;
    (status, location)
}

async fn label(
    browser: &mut Browser,
    page: &str,
    id: &str,
    label: &str,
    shown_at: &str,
) -> (u16, String, Option<String>) {
    let csrf = Browser::csrf(page);
    let (status, body, location, _) = browser
        .post(
            &format!("/review/{TASK}/{id}/label"),
            &[("csrf", &csrf), ("label", label), ("shown_at", shown_at)],
        )
        .await;
    (status, body, location)
}

/// Where a saved label leads: the queue, confirming what was saved.
fn saved(id: &str, label: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("saved", id)
        .append_pair("as", label)
        .finish();
    format!("/review/{TASK}?{query}")
}

fn audit_actions(app: &TestApp, action: &str) -> i64 {
    audit_log::table
        .filter(audit_log::action.eq(action))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap()
}

#[actix_web::test]
async fn a_skipped_item_goes_to_others_and_comes_back_only_when_nothing_else_waits() {
    let Some((app, mut rita)) = reviewing(3).await else {
        return;
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        let page = review_page(&mut rita).await;
        let id = shown(&page).expect("an item");
        assert!(!seen.contains(&id), "{id} came back after a skip: {seen:?}");
        seen.push(id);
        let (status, location) = skip(&mut rita, &page).await;
        assert_eq!(status, 303);
        assert_eq!(
            location.as_deref(),
            Some("/review/tumor-triage?notice=skipped")
        );
    }
    // Everything skipped: the queue hands the skipped ones out again
    // rather than saying it is empty.
    let page = review_page(&mut rita).await;
    assert_eq!(shown(&page).as_deref(), Some(seen[0].as_str()), "{page}");
    // Another reviewer is not held back by rita's skips.
    let mut ana = Browser::new(&app);
    ana.sign_in("ana", PASSWORD).await;
    let page = review_page(&mut ana).await;
    assert!(shown(&page).is_some(), "{page}");
}

#[actix_web::test]
async fn undo_with_nothing_to_undo_leaves_the_current_claim_alone() {
    let Some((app, mut rita)) = reviewing(2).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    let csrf = Browser::csrf(&page);
    let (status, _, location, _) = rita
        .post(&format!("/review/{TASK}/undo"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(location.ends_with("notice=nothing-to-undo"), "{location}");
    let (_, page, _) = rita.get(&location).await;
    assert_eq!(shown(&page), Some(id), "the same item stays on screen");
    assert!(page.contains("no label of yours"), "{page}");
    assert_eq!(audit_actions(&app, "review.skip"), 0);
}

#[actix_web::test]
async fn a_label_after_the_claim_lapsed_is_saved_when_nobody_else_took_the_item() {
    let Some((app, mut rita)) = reviewing(2).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    // The claim lapses (a long coffee) and the reaper clears it.
    let past = verdict::domain::now() - chrono::Duration::minutes(30);
    for owner in [Some("rita"), None] {
        diesel::update(items::table.filter(items::id.eq(&id)))
            .set((
                items::lease_owner.eq(owner),
                items::lease_expires_at.eq(owner.map(|_| past)),
            ))
            .execute(&mut app.db.connect())
            .unwrap();
        let (status, body, location) = label(&mut rita, &page, &id, "benign", "0").await;
        assert_eq!(status, 303, "{body}");
        assert_eq!(
            location.as_deref(),
            Some(saved(&id, "benign").as_str()),
            "saved, no refusal"
        );
        let (_, doc) = app.get(&format!("/api/v1/tasks/{TASK}/items/{id}")).await;
        assert_eq!(doc["verdict"]["label"], "benign", "{doc}");
        // Undo it for the second round (the claim cleared by the reaper).
        let csrf = Browser::csrf(&page);
        rita.post(&format!("/review/{TASK}/undo"), &[("csrf", &csrf)])
            .await;
    }
    // But an item someone else holds now is refused, and says why.
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    let later = verdict::domain::now() + chrono::Duration::minutes(5);
    diesel::update(items::table.filter(items::id.eq(&id)))
        .set((
            items::lease_owner.eq(Some("ana")),
            items::lease_expires_at.eq(Some(later)),
        ))
        .execute(&mut app.db.connect())
        .unwrap();
    let (_, _, location) = label(&mut rita, &page, &id, "benign", "0").await;
    assert_eq!(
        location.as_deref(),
        Some("/review/tumor-triage?notice=stale")
    );
}

#[actix_web::test]
async fn a_label_posted_twice_says_already_labelled() {
    let Some((app, mut rita)) = reviewing(2).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    let (_, _, first) = label(&mut rita, &page, &id, "benign", "0").await;
    assert_eq!(first, Some(saved(&id, "benign")));
    // The back button and the same form again, or a double key press.
    let (_, _, again) = label(&mut rita, &page, &id, "benign", "0").await;
    let again = again.unwrap();
    assert_eq!(again, "/review/tumor-triage?notice=already-labelled");
    let (_, next, _) = rita.get(&again).await;
    assert!(next.contains("already labelled"), "{next}");
    assert_eq!(app.count("reviews"), 1);
}

#[actix_web::test]
async fn a_label_for_an_unknown_item_is_a_404_page() {
    let Some((_app, mut rita)) = reviewing(1).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let (status, body, _) = label(&mut rita, &page, "does-not-exist", "benign", "0").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("<main"), "the styled page: {body}");
}

#[actix_web::test]
async fn ids_of_dots_are_refused_and_odd_ids_are_escaped_in_every_link() {
    let Some((app, mut rita)) = reviewing(0).await else {
        return;
    };
    for id in [".", "..", "..."] {
        let (status, body) = app.submit(id, row(0)).await;
        assert_eq!(status, 400, "{id}: {body}");
        assert_eq!(body["error"]["code"], "invalid_id", "{id}: {body}");
    }
    assert_eq!(app.count("items"), 0);
    // The most unusual id the API takes: its links work, percent-encoded.
    let odd = "a:b..c";
    let (status, body) = app.submit(odd, row(0)).await;
    assert_eq!(status, 201, "{body}");
    let page = review_page(&mut rita).await;
    let encoded = "a%3Ab..c";
    assert!(
        page.contains(&format!("/review/{TASK}/{encoded}/label")),
        "{page}"
    );
    let (status, body, location) = label(&mut rita, &page, encoded, "benign", "0").await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(location, Some(saved(odd, "benign")));
    let (_, doc) = app.get(&format!("/api/v1/tasks/{TASK}/items/{odd}")).await;
    assert_eq!(doc["verdict"]["label"], "benign", "{doc}");
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (_, list, _) = boss.get(&format!("/admin/items?task={TASK}")).await;
    assert!(
        list.contains(&format!("/admin/items/{TASK}/{encoded}")),
        "{list}"
    );
    let (status, item, _) = boss.get(&format!("/admin/items/{TASK}/{encoded}")).await;
    assert_eq!(status, 200, "{item}");
}

#[actix_web::test]
async fn missing_things_on_admin_pages_are_404_and_bad_filters_400() {
    let Some((app, _)) = reviewing(0).await else {
        return;
    };
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    for path in [
        format!("/admin/items/{TASK}/nope"),
        "/admin/items/nope/x".to_string(),
        "/admin/export/nope".to_string(),
    ] {
        let (status, page, _) = boss.get(&path).await;
        assert_eq!(status, 404, "{path}: {page}");
        assert!(!page.contains("Not allowed"), "{path}: {page}");
    }
    let (status, page, _) = boss.get("/admin/outbox?status=x").await;
    assert_eq!(status, 400, "{page}");
}

#[actix_web::test]
async fn malformed_form_posts_get_the_styled_error_page_in_plain_words() {
    let Some((app, mut rita)) = reviewing(1).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    // A form without its token (a hand-made post, an old page).
    let (status, body, _, _) = rita
        .post(
            &format!("/review/{TASK}/{id}/label"),
            &[("label", "benign")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    plain_page(&body);
    let (status, body, _, _) = rita.post("/sign-out", &[("nonsense", "1")]).await;
    assert_eq!(status, 400, "{body}");
    plain_page(&body);
    // A path that does not parse ("invalid digit found in string").
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (_, outbox, _) = boss.get("/admin/outbox").await;
    let csrf = Browser::csrf(&outbox);
    let (status, body, _, _) = boss
        .post("/admin/outbox/abc/retry", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 404, "{body}");
    plain_page(&body);
    let (status, body, _) = boss.get("/admin/items?task=tumor-triage&page=x%ZZ").await;
    assert!(status == 400 || status == 200, "{status}: {body}");
    plain_page(&body);
}

/// The styled page (the site's layout) with no framework text in it.
fn plain_page(body: &str) {
    assert!(body.contains("<main"), "styled: {body}");
    for raw in [
        "Parse error",
        "missing field",
        "invalid digit",
        "Query deserialize",
    ] {
        assert!(!body.contains(raw), "{raw}: {body}");
    }
}

#[actix_web::test]
async fn the_time_a_label_took_is_measured_on_the_server() {
    let Some((app, mut rita)) = reviewing(1).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let (status, body, _) = label(&mut rita, &page, &id, "benign", "-9223372036854775808").await;
    assert_eq!(status, 303, "{body}");
    let seconds: f64 = reviews::table
        .select(reviews::seconds_spent)
        .first(&mut app.db.connect())
        .unwrap();
    assert!((1.1..60.0).contains(&seconds), "{seconds} s");
}

#[actix_web::test]
async fn sign_in_returns_to_the_deep_link_that_asked_for_it() {
    let Some((app, _)) = reviewing(0).await else {
        return;
    };
    let mut boss = Browser::new(&app);
    let (status, _, location) = boss.get("/admin/reviewers?task=tumor-triage").await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert_eq!(
        location,
        "/sign-in?next=%2Fadmin%2Freviewers%3Ftask%3Dtumor-triage"
    );
    let (_, form, _) = boss.get(&location).await;
    assert!(
        form.contains(r#"name="next" value="/admin/reviewers?task=tumor-triage""#),
        "{form}"
    );
    let csrf = Browser::csrf(&form);
    let (status, _, to, _) = boss
        .post(
            "/sign-in",
            &[
                ("name", "boss"),
                ("password", PASSWORD),
                ("csrf", &csrf),
                ("next", "/admin/reviewers?task=tumor-triage"),
            ],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(to.as_deref(), Some("/admin/reviewers?task=tumor-triage"));
    // Another site is never a destination.
    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let mut b = Browser::new(&app);
        let (_, form, _) = b.get("/sign-in").await;
        let csrf = Browser::csrf(&form);
        let (_, _, to, _) = b
            .post(
                "/sign-in",
                &[
                    ("name", "boss"),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(to.as_deref(), Some("/"), "{evil}");
    }
}

#[actix_web::test]
async fn a_session_ended_mid_review_says_so_and_returns_to_the_queue() {
    let Some((app, mut rita)) = reviewing(2).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    let id = shown(&page).unwrap();
    // Signed out in another tab (or expired): the session is gone.
    diesel::delete(verdict::db::schema::sessions::table)
        .execute(&mut app.db.connect())
        .unwrap();
    // The label form posted from the review page.
    let csrf = Browser::csrf(&page);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/review/{TASK}/{id}/label", app.base))
        .header(reqwest::header::COOKIE, rita.cookie_header())
        .header(
            reqwest::header::REFERER,
            format!("{}/review/{TASK}", app.base),
        )
        .form(&[("csrf", csrf.as_str()), ("label", "benign")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(location, "/sign-in?next=%2Freview%2Ftumor-triage&ended=1");
    let (_, form, _) = rita.get(&location).await;
    assert!(form.contains("Your session ended"), "{form}");
    assert!(!form.contains("Sign out"), "no signed-in header: {form}");
    assert_eq!(app.count("reviews"), 0, "nothing saved without a session");
}

#[actix_web::test]
async fn the_review_page_shows_progress_the_saved_label_and_the_suggestion_on_its_button() {
    let Some((app, mut rita)) = reviewing(3).await else {
        return;
    };
    let page = review_page(&mut rita).await;
    assert!(page.contains("<strong>0</strong> labelled today"), "{page}");
    let id = shown(&page).unwrap();
    let (_, doc) = app.get(&format!("/api/v1/tasks/{TASK}/items/{id}")).await;
    let suggested = doc["prediction"]["label"].as_str().unwrap().to_string();
    // The buttons in the card's order, each with its probability; the
    // model's label marked.
    let buttons: Vec<&str> = page
        .split("<button type=\"submit\" name=\"label\"")
        .skip(1)
        .collect();
    assert_eq!(buttons.len(), 2);
    for (button, label) in buttons.iter().zip(["malignant", "benign"]) {
        assert!(button.contains(&format!("value=\"{label}\"")), "{button}");
        assert!(button.contains("class=\"prob\""), "{button}");
        assert_eq!(
            button.contains("class=\"suggested\""),
            label == suggested,
            "{button}"
        );
    }
    assert!(page.contains("received <time title=\""), "{page}");
    assert!(!page.contains(".000"), "no microseconds: {page}");
    // Labelled: the next page confirms it, with its undo, and counts it.
    let (_, _, location) = label(&mut rita, &page, &id, "benign", "0").await;
    let (_, next, _) = rita.get(&location.unwrap()).await;
    assert!(next.contains("Saved <strong>benign</strong> for"), "{next}");
    assert!(next.contains("<strong>1</strong> labelled today"), "{next}");
    // A reviewer's nav has the queues only; an admin's every section.
    assert!(!next.contains("href=\"/admin/outbox\""), "{next}");
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (_, item, _) = boss.get(&format!("/admin/items/{TASK}/{id}")).await;
    for section in [
        "/dashboard",
        "/admin/items",
        "/admin/reviewers",
        "/admin/models",
        "/admin/users",
        "/admin/alerts",
        "/admin/outbox",
    ] {
        assert!(
            item.contains(&format!("href=\"{section}\"")),
            "{section}: {item}"
        );
    }
    // The item's input in the model's feature order, with training ranges.
    let input = &item[item.find("<h2>Input</h2>").unwrap()..];
    let first = input.find("<td>mean_radius</td>").unwrap();
    let last = input.find("<td>worst_fractal_dimension</td>").unwrap();
    assert!(first < input.find("<td>area_error</td>").unwrap() && first < last);
    assert!(input.contains("Training range"));
    assert!(item.contains("← Items of tumor-triage"), "a way back");
}

#[actix_web::test]
async fn the_users_page_says_who_can_review_nothing_and_offers_no_self_disable() {
    let Some((app, _)) = reviewing(0).await else {
        return;
    };
    add_user(&app, "nobody", Role::Reviewer, &[]);
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (_, page, _) = boss.get("/admin/users").await;
    let row = |name: &str| {
        let at = page.find(&format!("<td>{name}</td>")).unwrap();
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(row("nobody").contains("can review nothing"), "{page}");
    assert!(row("rita").contains("tumor-triage"));
    assert!(!row("boss").contains("disable"), "{}", row("boss"));
    assert!(row("rita").contains("/admin/users/rita/disable"));
}

#[actix_web::test]
async fn guidelines_and_label_definitions_are_on_the_review_page_as_markdown() {
    let mut config = task(AutomationLevel::Assist);
    config.description = "Aspirates of a *breast mass*.".into();
    config.guidelines = "Look at the **worst** values.\n\n<script>alert(1)</script>".into();
    config.label_definitions = [(
        "malignant".to_string(),
        "Cancer: _large_ nuclei.".to_string(),
    )]
    .into_iter()
    .collect();
    let Some(app) = spawn_with(Backend::Sqlite, config, None).await else {
        return;
    };
    add_user(&app, "rita", Role::Reviewer, &[TASK]);
    app.submit("g-1", row(0)).await;
    let mut rita = Browser::new(&app);
    rita.sign_in("rita", PASSWORD).await;
    let (_, home, _) = rita.get("/").await;
    assert!(
        home.contains("Aspirates of a <em>breast mass</em>."),
        "{home}"
    );
    let page = review_page(&mut rita).await;
    assert!(
        page.contains("<summary>Guidelines for tumor-triage</summary>"),
        "{page}"
    );
    assert!(
        page.contains("Look at the <strong>worst</strong> values."),
        "{page}"
    );
    assert!(!page.contains("<script>alert"), "raw HTML is text: {page}");
    assert!(
        page.contains("<dt>malignant</dt><dd><p>Cancer: <em>large</em> nuclei.</p>"),
        "{page}"
    );
    assert!(
        page.contains(r#"title="Cancer: _large_ nuclei.""#),
        "on its button: {page}"
    );
}

#[actix_web::test]
async fn the_adjudication_page_says_so_and_shows_what_each_tied_reviewer_chose() {
    use verdict::review::{self, Label, Rules};
    let mut config = task(AutomationLevel::Assist);
    config.reviews_required = 2;
    let Some(app) = spawn_with(Backend::Sqlite, config, None).await else {
        return;
    };
    add_user(&app, "boss", Role::Admin, &[]);
    app.submit("tie-1", row(0)).await;
    let rules = Rules {
        labels: vec!["malignant".into(), "benign".into()],
        reviews_required: 2,
        callback_url: None,
    };
    for (who, label, comment) in [
        ("ana", "malignant", "irregular <b>nuclei</b>"),
        ("rita", "benign", "looks smooth"),
    ] {
        let rules = rules.clone();
        app.store
            .write(move |conn| {
                let claim = review::claim_next(conn, TASK, who, review::DEFAULT_LEASE)?.unwrap();
                review::submit(
                    conn,
                    TASK,
                    &rules,
                    &claim.item.id,
                    who,
                    &Label {
                        label: label.into(),
                        comment: Some(comment.into()),
                        seconds_spent: None,
                    },
                )
            })
            .await
            .unwrap();
    }
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (status, page, _) = boss
        .get(&format!("/review/{TASK}?queue=adjudication"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Adjudication: the reviewers tied"), "{page}");
    assert!(
        page.contains("<strong>ana</strong> chose <strong>malignant</strong>: “irregular &#60;b&#62;nuclei&#60;/b&#62;”")
            || page.contains("<strong>ana</strong> chose <strong>malignant</strong>: “irregular &lt;b&gt;nuclei&lt;/b&gt;”"),
        "{page}"
    );
    assert!(page.contains("<strong>rita</strong> chose <strong>benign</strong>: “looks smooth”"));
    // The ordinary queue is not an adjudication.
    let (_, page, _) = boss.get(&format!("/review/{TASK}")).await;
    assert!(!page.contains("Adjudication:"), "{page}");
}

#[actix_web::test]
async fn the_alerts_page_warns_when_nobody_is_emailed() {
    let Some((app, _)) = reviewing(0).await else {
        return;
    };
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (_, page, _) = boss.get("/admin/alerts").await;
    assert!(page.contains("No [smtp] server is configured"), "{page}");

    // With a mail server and someone to write to, no warning.
    let Some(mailed) = crate::helpers::spawn_without_jobs(
        Backend::Sqlite,
        task(AutomationLevel::Assist),
        None,
        |s| {
            s.smtp = Some(verdict::config::SmtpSettings {
                host: "127.0.0.1".into(),
                port: 2525,
                security: verdict::config::SmtpSecurity::Plain,
                username: None,
                password: None,
                timeout_secs: 5,
                ca_file: None,
            });
            s.mail.recipients = vec!["oncall@example.org".into()];
        },
    )
    .await
    else {
        return;
    };
    add_user(&mailed, "boss", Role::Admin, &[]);
    let mut boss = Browser::new(&mailed);
    boss.sign_in("boss", PASSWORD).await;
    let (status, page, _) = boss.get("/admin/alerts").await;
    assert_eq!(status, 200);
    assert!(!page.contains("nobody is emailed"), "{page}");
}

#[actix_web::test]
async fn the_items_browser_opens_an_id_and_says_what_it_cannot_use() {
    let Some((app, _)) = reviewing(2).await else {
        return;
    };
    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (status, _, to) = boss.get(&format!("/admin/items?task={TASK}&id=r-1")).await;
    assert_eq!(
        (status, to.as_deref()),
        (303, Some("/admin/items/tumor-triage/r-1"))
    );
    let (status, page, _) = boss.get(&format!("/admin/items?task={TASK}&id=r-9")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("No item <span class=\"mono\">r-9</span> in tumor-triage."),
        "{page}"
    );
    let (status, page, _) = boss.get("/admin/items?task=nope").await;
    assert_eq!(status, 404, "{page}");
    let (status, page, _) = boss
        .get(&format!("/admin/items?task={TASK}&from=31/12/2026"))
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("YYYY-MM-DD"), "{page}");
    // Times read relative, the full time on hover.
    let (_, page, _) = boss.get(&format!("/admin/items?task={TASK}")).await;
    assert!(
        page.contains("<time title=\"") && page.contains(" UTC\">"),
        "{page}"
    );
}

#[actix_web::test]
async fn an_admin_gives_a_reviewer_their_tasks_from_the_users_page() {
    let Some((app, mut rita)) = reviewing(1).await else {
        return;
    };
    add_user(&app, "nobody", Role::Reviewer, &[]);
    let mut nobody = Browser::new(&app);
    nobody.sign_in("nobody", PASSWORD).await;
    assert_eq!(nobody.get(&format!("/review/{TASK}")).await.0, 403);

    let mut boss = Browser::new(&app);
    boss.sign_in("boss", PASSWORD).await;
    let (_, page, _) = boss.get("/admin/users").await;
    assert!(
        page.contains("action=\"/admin/users/nobody/tasks\""),
        "{page}"
    );
    let csrf = Browser::csrf(&page);
    // Only admins, only with the session's token, only known tasks.
    let (_, rita_page, _) = rita.get("/").await;
    let theirs = Browser::csrf(&rita_page);
    let (status, _, _, _) = rita
        .post(
            "/admin/users/nobody/tasks",
            &[("csrf", &theirs), ("task", TASK)],
        )
        .await;
    assert_eq!(status, 403);
    let forged = "0".repeat(64);
    let (status, _, _, _) = boss
        .post(
            "/admin/users/nobody/tasks",
            &[("csrf", &forged), ("task", TASK)],
        )
        .await;
    assert_eq!(status, 403);
    let (status, body, _, _) = boss
        .post(
            "/admin/users/nobody/tasks",
            &[("csrf", &csrf), ("task", "nope")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _, _) = boss
        .post(
            "/admin/users/ghost/tasks",
            &[("csrf", &csrf), ("task", TASK)],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        nobody.get(&format!("/review/{TASK}")).await.0,
        403,
        "nothing changed"
    );

    let (status, _, to, _) = boss
        .post(
            "/admin/users/nobody/tasks",
            &[("csrf", &csrf), ("task", TASK)],
        )
        .await;
    assert_eq!((status, to.as_deref()), (303, Some("/admin/users")));
    assert_eq!(nobody.get(&format!("/review/{TASK}")).await.0, 200);
    assert_eq!(audit_actions(&app, "user.tasks"), 1);
    let (_, page, _) = boss.get("/admin/users").await;
    let at = page.find("<td>nobody</td>").unwrap();
    let row = &page[at..at + page[at..].find("</tr>").unwrap()];
    assert!(!row.contains("can review nothing"), "{row}");
    assert!(row.contains("value=\"tumor-triage\" checked"), "{row}");
    // And taken away again: no task box ticked.
    boss.post("/admin/users/nobody/tasks", &[("csrf", &csrf)])
        .await;
    assert_eq!(nobody.get(&format!("/review/{TASK}")).await.0, 403);
}
