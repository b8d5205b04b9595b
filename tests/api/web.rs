//! The web UI's sign-in, sessions and CSRF, through real HTTP.

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::helpers::{spawn_with, task, Backend, TestApp};
use verdict::accounts;
use verdict::domain::AutomationLevel;
use verdict::domain::Role;

crate::on_both_backends!(
    concurrent_wrong_passwords_are_limited_and_every_instance_shares_the_lock,
    signing_in_starts_a_fresh_session_that_shows_the_queues,
    sign_out_needs_the_session_csrf_token_and_ends_the_session,
    review_page_labels_an_item_into_a_human_verdict,
);

pub struct Browser {
    pub http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser::at(&app.base)
    }

    /// A browser for the server at `base` (`http://127.0.0.1:port`).
    pub fn at(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: Vec::new(),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn remember(&mut self, response: &reqwest::Response) -> Vec<String> {
        let mut raw = Vec::new();
        for header in response.headers().get_all(SET_COOKIE) {
            let text = header.to_str().unwrap().to_string();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
            raw.push(text);
        }
        raw
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn get(&mut self, path: &str) -> (u16, String, Option<String>) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.remember(&r);
        let location = r
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), r.text().await.unwrap(), location)
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, String, Option<String>, Vec<String>) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        let raw = self.remember(&r);
        let location = r
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_string());
        (r.status().as_u16(), r.text().await.unwrap(), location, raw)
    }

    /// The CSRF token of the form on a page.
    pub fn csrf(html: &str) -> String {
        let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        html[at..at + 64].to_string()
    }

    pub async fn sign_in(
        &mut self,
        name: &str,
        password: &str,
    ) -> (u16, String, Option<String>, Vec<String>) {
        let (_, page, _) = self.get("/sign-in").await;
        let csrf = Browser::csrf(&page);
        self.post(
            "/sign-in",
            &[("name", name), ("password", password), ("csrf", &csrf)],
        )
        .await
    }
}

pub fn add_user(app: &TestApp, name: &str, role: Role, tasks: &[&str]) {
    let tasks: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
    accounts::add_user(
        &mut app.db.connect(),
        name,
        "a long passphrase",
        role,
        &tasks,
        "test",
    )
    .unwrap();
}

async fn signing_in_starts_a_fresh_session_that_shows_the_queues(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::Assist), None).await else {
        return;
    };
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    for i in 0..3 {
        app.submit(&format!("q{i}"), crate::helpers::row(i)).await;
    }
    let mut browser = Browser::new(&app);
    let (status, _, location) = browser.get("/").await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/sign-in")),
        "signed-out visitors go to sign in"
    );

    // A session id planted before sign-in is never adopted.
    browser
        .cookies
        .push(("verdict_session".into(), "f".repeat(64)));
    let (status, page, _, _) = browser.sign_in("rita", "wrong password!").await;
    assert_eq!(status, 401);
    assert!(page.contains("Wrong name or password."));
    let (status, _, location, raw) = browser.sign_in("rita", "a long passphrase").await;
    assert_eq!((status, location.as_deref()), (303, Some("/")));
    let session = raw
        .iter()
        .find(|c| c.starts_with("verdict_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let id = browser.cookie("verdict_session").unwrap();
    assert_ne!(id, "f".repeat(64));
    assert_eq!(id.len(), 64);

    let (status, home, _) = browser.get("/").await;
    assert_eq!(status, 200);
    assert!(
        home.contains("rita") && home.contains("tumor-triage"),
        "{home}"
    );
    assert!(home.contains(r#"<td class="num queued">3</td>"#), "{home}");
    // The id is stored hashed only.
    use diesel::prelude::*;
    let stored: Vec<String> = verdict::db::schema::sessions::table
        .select(verdict::db::schema::sessions::id_sha256)
        .load(&mut app.db.connect())
        .unwrap();
    assert!(!stored.contains(&id));

    // A reviewer without the task does not see it.
    add_user(&app, "otto", Role::Reviewer, &[]);
    let mut other = Browser::new(&app);
    other.sign_in("otto", "a long passphrase").await;
    let (_, home, _) = other.get("/").await;
    assert!(
        !home.contains("tumor-triage") && home.contains("no tasks"),
        "{home}"
    );
}

async fn sign_out_needs_the_session_csrf_token_and_ends_the_session(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::Partial), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    let mut browser = Browser::new(&app);
    browser.sign_in("ana", "a long passphrase").await;
    let (_, home, _) = browser.get("/").await;
    let csrf = Browser::csrf(&home);

    let (status, _, _, _) = browser
        .post("/sign-out", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(status, 403, "a forged form is refused");
    assert_eq!(browser.get("/").await.0, 200, "and the session lives on");

    let kept = browser.cookie("verdict_session").unwrap();
    let (status, _, location, _) = browser.post("/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/sign-in")));
    // Replaying the old cookie gets nothing: the session is gone server-side.
    browser.cookies.push(("verdict_session".into(), kept));
    assert_eq!(browser.get("/").await.0, 303);
}

#[actix_web::test]
async fn sign_in_without_its_csrf_token_is_refused() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Partial), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    let mut browser = Browser::new(&app);
    let (status, _, _, raw) = browser
        .post(
            "/sign-in",
            &[
                ("name", "ana"),
                ("password", "a long passphrase"),
                ("csrf", &"a".repeat(64)),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert!(raw.iter().all(|c| !c.starts_with("verdict_session=")));
}

#[actix_web::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Partial), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    let mut browser = Browser::new(&app);
    for _ in 0..verdict::config::RateLimitSettings::default().sign_in_per_account {
        assert_eq!(browser.sign_in("ana", "not the password").await.0, 401);
    }
    let (status, page, _, raw) = browser.sign_in("ana", "a long passphrase").await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Try again in"));
    assert!(raw.iter().all(|c| !c.starts_with("verdict_session=")));
    // Another account is not affected.
    add_user(&app, "bo", Role::Reviewer, &[]);
    assert_eq!(browser.sign_in("bo", "a long passphrase").await.0, 303);
}

#[actix_web::test]
async fn a_disabled_user_cannot_sign_in_and_loses_open_sessions() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Partial), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    let mut browser = Browser::new(&app);
    browser.sign_in("ana", "a long passphrase").await;
    assert_eq!(browser.get("/").await.0, 200);
    accounts::set_disabled(&mut app.db.connect(), "ana", true, "test").unwrap();
    assert_eq!(browser.get("/").await.0, 303);
    assert_eq!(
        Browser::new(&app)
            .sign_in("ana", "a long passphrase")
            .await
            .0,
        401
    );
}

fn input_with(field: &str, value: f64) -> serde_json::Value {
    let mut input = crate::helpers::row(5);
    input[field] = serde_json::json!(value);
    input
}

async fn review_page_labels_an_item_into_a_human_verdict(backend: Backend) {
    let Some(app) = spawn_with(backend, task(AutomationLevel::Assist), None).await else {
        return;
    };
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    // Far outside the training range: the page must flag it.
    app.submit("odd-1", input_with("mean_radius", 40.0)).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("rita", "a long passphrase").await;

    let (status, page, _) = browser.get("/review/tumor-triage").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("odd-1"));
    assert!(
        page.contains("Model suggests"),
        "assist shows the suggestion"
    );
    assert!(page.contains("mean_radius") && page.contains("worst_fractal_dimension"));
    assert!(
        page.contains(r#"<span class="flag""#),
        "the out-of-range value is flagged"
    );
    assert!(
        page.len() < 50_000,
        "the page stays light: {} bytes",
        page.len()
    );
    // A reload resumes the same claim.
    let (_, again, _) = browser.get("/review/tumor-triage").await;
    assert!(again.contains("odd-1"));

    let csrf = Browser::csrf(&page);
    let forged = browser
        .post(
            "/review/tumor-triage/odd-1/label",
            &[
                ("csrf", &"0".repeat(64)),
                ("label", "benign"),
                ("shown_at", "0"),
            ],
        )
        .await;
    assert_eq!(forged.0, 403);
    let (_, doc) = app.get("/api/v1/tasks/tumor-triage/items/odd-1").await;
    assert_eq!(doc["status"], "queued", "a forged form changes nothing");

    let shown_at = (chrono::Utc::now().timestamp_millis() - 4000).to_string();
    let (status, _, location, _) = browser
        .post(
            "/review/tumor-triage/odd-1/label",
            &[
                ("csrf", &csrf),
                ("label", "malignant"),
                ("comment", "huge nuclei"),
                ("shown_at", &shown_at),
            ],
        )
        .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/review/tumor-triage?saved=odd-1&as=malignant"))
    );
    let (_, doc) = app.get("/api/v1/tasks/tumor-triage/items/odd-1").await;
    assert_eq!(doc["verdict"]["source"], "human");
    assert_eq!(doc["verdict"]["label"], "malignant");
    use diesel::prelude::*;
    use verdict::db::schema::reviews;
    let (comment, seconds): (Option<String>, f64) = reviews::table
        .select((reviews::comment, reviews::seconds_spent))
        .first(&mut app.db.connect())
        .unwrap();
    assert_eq!(comment.as_deref(), Some("huge nuclei"));
    // Measured on the server from the claim (the form's old `shown_at`,
    // four seconds back, is ignored): well under those four seconds.
    assert!(
        (0.0..3.0).contains(&seconds),
        "time spent is the server's: {seconds}"
    );

    // Labelling it again is refused with a notice; the queue is now empty.
    let (_, _, location, _) = browser
        .post(
            "/review/tumor-triage/odd-1/label",
            &[
                ("csrf", &csrf),
                ("label", "benign"),
                ("shown_at", &shown_at),
            ],
        )
        .await;
    assert_eq!(
        location.as_deref(),
        Some("/review/tumor-triage?notice=already-labelled")
    );
    let (_, page, _) = browser
        .get("/review/tumor-triage?notice=already-labelled")
        .await;
    assert!(
        page.contains("queue is empty") && page.contains("already labelled"),
        "{page}"
    );
    // So is a skip of it, saying the same; an unknown item is not found.
    let (_, _, location, _) = browser
        .post("/review/tumor-triage/odd-1/skip", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        location.as_deref(),
        Some("/review/tumor-triage?notice=already-labelled")
    );
    let (status, _, _, _) = browser
        .post("/review/tumor-triage/no-such-item/skip", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn blind_items_hide_the_model_and_others_tasks_are_closed() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Shadow), None).await else {
        return;
    };
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    add_user(&app, "otto", Role::Reviewer, &[]);
    app.submit("s-1", crate::helpers::row(0)).await;
    let mut rita = Browser::new(&app);
    rita.sign_in("rita", "a long passphrase").await;
    let (status, page, _) = rita.get("/review/tumor-triage").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("s-1") && !page.contains("Model suggests"),
        "shadow items are blind"
    );
    let mut otto = Browser::new(&app);
    otto.sign_in("otto", "a long passphrase").await;
    assert_eq!(
        otto.get("/review/tumor-triage").await.0,
        403,
        "no permission for the task"
    );
    let csrf = Browser::csrf(&otto.get("/").await.1);
    let (status, _, _, _) = otto
        .post(
            "/review/tumor-triage/s-1/label",
            &[("csrf", &csrf), ("label", "benign"), ("shown_at", "0")],
        )
        .await;
    assert_eq!(
        status, 403,
        "roles are enforced on the server, not just hidden"
    );
}

#[actix_web::test]
async fn undo_takes_back_the_last_label_and_shows_the_item_again() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Assist), None).await else {
        return;
    };
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    app.submit("u-1", crate::helpers::row(0)).await;
    app.submit("u-2", crate::helpers::row(1)).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("rita", "a long passphrase").await;
    let (_, page, _) = browser.get("/review/tumor-triage").await;
    assert!(page.contains("u-1"));
    let csrf = Browser::csrf(&page);
    browser
        .post(
            "/review/tumor-triage/u-1/label",
            &[("csrf", &csrf), ("label", "benign"), ("shown_at", "0")],
        )
        .await;
    let (_, home, _) = browser.get("/").await;
    assert!(home.contains(r#"<td class="num mine">1</td>"#), "{home}");
    assert!(home.contains(r#"<td class="num queued">1</td>"#), "{home}");

    // u-2 is on screen now; undo brings u-1 back and returns u-2 to the queue.
    let (_, page, _) = browser.get("/review/tumor-triage").await;
    assert!(page.contains("u-2"));
    let (_, _, location, _) = browser
        .post("/review/tumor-triage/undo", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        location.as_deref(),
        Some("/review/tumor-triage?notice=undone")
    );
    let (_, page, _) = browser.get("/review/tumor-triage?notice=undone").await;
    assert!(
        page.contains("u-1") && page.contains("taken back"),
        "{page}"
    );
    let (_, doc) = app.get("/api/v1/tasks/tumor-triage/items/u-1").await;
    assert_eq!(doc["status"], "queued");
    assert!(doc["verdict"].is_null());
    assert_eq!(app.count("reviews"), 0);

    // Nothing more to take back.
    browser
        .post(
            "/review/tumor-triage/u-1/label",
            &[("csrf", &csrf), ("label", "malignant"), ("shown_at", "0")],
        )
        .await;
    browser
        .post("/review/tumor-triage/undo", &[("csrf", &csrf)])
        .await;
    let (_, location_page, _) = browser.get("/review/tumor-triage").await;
    assert!(location_page.contains("u-1"));
    let (_, _, location, _) = browser
        .post("/review/tumor-triage/undo", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        location.as_deref(),
        Some("/review/tumor-triage?notice=nothing-to-undo")
    );
}

#[actix_web::test]
async fn only_admins_manage_users_and_a_new_user_can_sign_in() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Partial), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);

    let mut rita = Browser::new(&app);
    rita.sign_in("rita", "a long passphrase").await;
    assert_eq!(
        rita.get("/admin/users").await.0,
        403,
        "reviewers cannot open admin pages"
    );
    let csrf = Browser::csrf(&rita.get("/").await.1);
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "mallory"),
        ("role", "admin"),
        ("password", "a long passphrase"),
        ("tasks", ""),
    ];
    assert_eq!(
        rita.post("/admin/users", &form).await.0,
        403,
        "nor post to them"
    );
    assert_eq!(
        rita.post("/admin/users/ana/disable", &[("csrf", &csrf)])
            .await
            .0,
        403
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("mallory", "a long passphrase")
            .await
            .0,
        401
    );

    let mut ana = Browser::new(&app);
    ana.sign_in("ana", "a long passphrase").await;
    let (status, page, _) = ana.get("/admin/users").await;
    assert_eq!(status, 200);
    assert!(page.contains("rita") && page.contains("tumor-triage"));
    let csrf = Browser::csrf(&page);
    let short = [
        ("csrf", csrf.as_str()),
        ("name", "newbie"),
        ("role", "reviewer"),
        ("password", "short"),
        ("tasks", "tumor-triage"),
    ];
    let (status, page, _, _) = ana.post("/admin/users", &short).await;
    assert_eq!(status, 400);
    assert!(page.contains("too short"), "{page}");
    let unknown = [
        ("csrf", csrf.as_str()),
        ("name", "newbie"),
        ("role", "reviewer"),
        ("password", "a long passphrase"),
        ("tasks", "nope"),
    ];
    assert_eq!(ana.post("/admin/users", &unknown).await.0, 400);
    let good = [
        ("csrf", csrf.as_str()),
        ("name", "newbie"),
        ("role", "reviewer"),
        ("password", "a long passphrase"),
        ("tasks", "tumor-triage"),
    ];
    let (status, _, location, _) = ana.post("/admin/users", &good).await;
    assert_eq!((status, location.as_deref()), (303, Some("/admin/users")));
    let mut newbie = Browser::new(&app);
    assert_eq!(newbie.sign_in("newbie", "a long passphrase").await.0, 303);
    assert_eq!(
        newbie.get("/review/tumor-triage").await.0,
        200,
        "the new reviewer may work the task"
    );

    let (_, _, location, _) = ana
        .post("/admin/users/newbie/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(location.as_deref(), Some("/admin/users"));
    assert_eq!(
        newbie.get("/").await.0,
        303,
        "a disabled user is signed out"
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("newbie", "a long passphrase")
            .await
            .0,
        401
    );
    let (status, page, _, _) = ana
        .post("/admin/users/ana/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("cannot disable yourself"));
}

#[actix_web::test]
async fn admins_browse_items_with_filters_and_paging_and_open_one() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Partial), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    let data = crate::helpers::rows();
    let items: Vec<serde_json::Value> = (0..120)
        .map(|i| serde_json::json!({"id": format!("b{i:03}"), "input": data[i]}))
        .collect();
    let (_, body) = app.post(&serde_json::json!({ "items": items })).await;
    let queued = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "queued")
        .count();
    let decided = 120 - queued;

    let mut rita = Browser::new(&app);
    rita.sign_in("rita", "a long passphrase").await;
    assert_eq!(rita.get("/admin/items").await.0, 403);
    assert_eq!(rita.get("/admin/items/tumor-triage/b000").await.0, 403);

    let mut ana = Browser::new(&app);
    ana.sign_in("ana", "a long passphrase").await;
    // Page through everything: 120 rows in pages of 50, none twice.
    let mut seen = std::collections::BTreeSet::new();
    let mut url = "/admin/items?task=tumor-triage".to_string();
    loop {
        let (status, page, _) = ana.get(&url).await;
        assert_eq!(status, 200);
        let ids: Vec<String> = page
            .match_indices("href=\"/admin/items/tumor-triage/")
            .map(|(at, m)| page[at + m.len()..at + m.len() + 4].to_string())
            .collect();
        assert!(ids.len() <= 50);
        for id in ids {
            assert!(
                seen.insert(id.clone()),
                "a row repeated across pages: {id} at {url}"
            );
        }
        let Some(at) = page.find("class=\"next\" href=\"") else {
            break;
        };
        let rest = &page[at + 19..];
        // The href is HTML: its & come escaped.
        url = rest[..rest.find('"').unwrap()]
            .replace("&amp;", "&")
            .replace("&#38;", "&");
    }
    assert_eq!(seen.len(), 120);

    let count = |page: &str| page.matches("class=\"mono clip\" title=").count();
    let (_, page, _) = ana
        .get("/admin/items?task=tumor-triage&status=queued")
        .await;
    assert_eq!(count(&page), queued.min(50));
    let (_, page, _) = ana.get("/admin/items?task=tumor-triage&source=model").await;
    assert_eq!(count(&page), decided.min(50));
    let (_, page, _) = ana.get("/admin/items?task=tumor-triage&source=human").await;
    assert_eq!(count(&page), 0);
    let (_, page, _) = ana
        .get("/admin/items?task=tumor-triage&from=2000-01-01&to=2000-01-02")
        .await;
    assert_eq!(count(&page), 0);

    // A reviewed item: the browser finds it by reviewer, its page shows the review.
    let (_, review, _) = rita.get("/review/tumor-triage").await;
    let marker = "<span class=\"mono\">";
    let at = review.find(marker).unwrap() + marker.len();
    let id = review[at..at + 4].to_string();
    let csrf = Browser::csrf(&review);
    rita.post(
        &format!("/review/tumor-triage/{id}/label"),
        &[
            ("csrf", &csrf),
            ("label", "benign"),
            ("comment", "clear case"),
            ("shown_at", "0"),
        ],
    )
    .await;
    assert_eq!(app.count("reviews"), 1, "rita labelled {id}");
    let (_, page, _) = ana
        .get("/admin/items?task=tumor-triage&reviewer=rita")
        .await;
    assert_eq!(count(&page), 1, "{page}");
    assert!(page.contains(&id));
    let (status, page, _) = ana.get(&format!("/admin/items/tumor-triage/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("clear case") && page.contains("rita") && page.contains("v1"),
        "{page}"
    );
    assert!(page.contains("human") && page.contains("single"));
    assert!(
        page.contains("review.label"),
        "the label is in the item's audit log"
    );
}

#[actix_web::test]
async fn reviewer_statistics_show_agreement_with_the_consensus() {
    use verdict::domain::QueueKind;
    use verdict::review::{self, Label, Rules};
    let mut config = task(AutomationLevel::HumanOnly);
    config.reviews_required = 2;
    let Some(app) = spawn_with(Backend::Sqlite, config, None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    app.submit("a", crate::helpers::row(0)).await;
    app.submit("b", crate::helpers::row(1)).await;
    let db = app.store.clone();
    let rules = Rules {
        labels: vec!["malignant".into(), "benign".into()],
        reviews_required: 2,
        callback_url: None,
    };
    let label = |who: &'static str, kind: QueueKind, want: &'static str, l: &'static str| {
        let (db, rules) = (db.clone(), rules.clone());
        async move {
            db.write(move |conn| {
                let claim = review::claim_from(
                    conn,
                    kind,
                    Default::default(),
                    "tumor-triage",
                    who,
                    review::DEFAULT_LEASE,
                )?
                .unwrap();
                assert_eq!(claim.item.id, want);
                let label = Label {
                    label: l.into(),
                    comment: None,
                    seconds_spent: Some(10.0),
                };
                review::submit(conn, "tumor-triage", &rules, &claim.item.id, who, &label)
            })
            .await
            .unwrap()
        }
    };
    label("r1", QueueKind::Review, "a", "benign").await;
    label("r1", QueueKind::Review, "b", "benign").await;
    label("r2", QueueKind::Review, "a", "benign").await;
    label("r2", QueueKind::Review, "b", "malignant").await;
    label("ana", QueueKind::Adjudication, "b", "malignant").await;

    let mut rita = Browser::new(&app);
    rita.sign_in("rita", "a long passphrase").await;
    assert_eq!(rita.get("/admin/reviewers").await.0, 403);
    let mut ana = Browser::new(&app);
    ana.sign_in("ana", "a long passphrase").await;
    let (status, page, _) = ana.get("/admin/reviewers?task=tumor-triage").await;
    assert_eq!(status, 200);
    // Half the pairs of labels on the same item agree (n pairs shown).
    assert!(
        page.contains(r#"<strong class="agreement">50 % (n 4, 95 % CI 15–85 %)</strong>"#),
        "{page}"
    );
    let row = |who: &str| {
        let at = page.find(&format!("<tr><td>{who}</td>")).unwrap();
        page[at..at + page[at..].find("</tr>").unwrap()].to_string()
    };
    assert!(
        row("r1").contains("<td class=\"num\">50 % (n 2, 95 % CI 9–91 %)</td>"),
        "{}",
        row("r1")
    );
    assert!(
        row("r2").contains("<td class=\"num\">100 % (n "),
        "{}",
        row("r2")
    );
    assert!(
        row("r1").contains("<td class=\"num\">360</td>"),
        "10 s per item is 360 an hour"
    );
}

#[actix_web::test]
async fn admins_download_labels_and_take_snapshots_that_the_models_page_lists() {
    let Some(app) = spawn_with(Backend::Sqlite, task(AutomationLevel::Full), None).await else {
        return;
    };
    add_user(&app, "ana", Role::Admin, &[]);
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    for i in 0..30 {
        let (status, body) = app
            .submit(&format!("w{i:03}"), crate::helpers::row(i))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // Reviewers get neither the labels nor the page.
    let mut rita = Browser::new(&app);
    rita.sign_in("rita", "a long passphrase").await;
    assert!(!rita.get("/").await.1.contains("/admin/export/"));
    assert_eq!(
        rita.get("/admin/export/tumor-triage?format=csv").await.0,
        403
    );
    assert_eq!(rita.get("/admin/models").await.0, 403);
    let csrf = Browser::csrf(&rita.get("/").await.1);
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "stolen"),
        ("format", "csv"),
        ("source", "all"),
        ("kind", "all"),
    ];
    assert_eq!(
        rita.post("/admin/datasets/tumor-triage", &form).await.0,
        403
    );

    // The start page's button downloads the CSV.
    let mut ana = Browser::new(&app);
    ana.sign_in("ana", "a long passphrase").await;
    let home = ana.get("/").await.1;
    let href = "/admin/export/tumor-triage?format=csv";
    assert!(home.contains(href), "{home}");
    let (status, csv, _) = ana.get(href).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,created_at,input.mean_radius,"));
    assert_eq!(lines.len(), 31, "a header and 30 rows");
    let (status, page, _) = ana.get("/admin/export/tumor-triage?format=xml").await;
    assert_eq!(status, 400);
    assert!(page.contains("format is jsonl or csv"), "{page}");

    // A snapshot from the page: CSRF checked, listed, never overwritten.
    let (_, models, _) = ana.get("/admin/models").await;
    assert!(models.contains("v1") && models.contains("No snapshots yet"));
    let forged = [
        ("csrf", "0".repeat(64)),
        ("name", "nov".to_string()),
        ("format", "jsonl".to_string()),
        ("source", "all".to_string()),
        ("kind", "all".to_string()),
    ];
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        ana.post("/admin/datasets/tumor-triage", &forged).await.0,
        403
    );
    let csrf = Browser::csrf(&models);
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "nov"),
        ("format", "jsonl"),
        ("source", "all"),
        ("kind", "all"),
    ];
    let (status, _, location, _) = ana.post("/admin/datasets/tumor-triage", &form).await;
    assert_eq!((status, location.as_deref()), (303, Some("/admin/models")));
    let (_, models, _) = ana.get("/admin/models").await;
    assert!(
        models.contains("href=\"/admin/datasets/tumor-triage/nov\""),
        "{models}"
    );
    let (status, page, _, _) = ana.post("/admin/datasets/tumor-triage", &form).await;
    assert_eq!(status, 400);
    assert!(page.contains("never overwritten"), "{page}");
    let (status, jsonl, _) = ana.get("/admin/datasets/tumor-triage/nov").await;
    assert_eq!(status, 200);
    assert_eq!(jsonl.lines().count(), 30);
}

/// 200 wrong passwords for one account sent at once: only the limit's
/// worth are checked, the rest are refused before argon2; a second
/// instance on the same database (or a restart) keeps the lock-out, even
/// for the right password.
async fn concurrent_wrong_passwords_are_limited_and_every_instance_shares_the_lock(
    backend: Backend,
) {
    use crate::helpers::{test_settings, TestDb};
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let settings = test_settings(&db.url, task(AutomationLevel::Partial), None);
    let first = verdict::startup::Application::build_without_jobs(settings.clone())
        .await
        .unwrap();
    let second = verdict::startup::Application::build_without_jobs(settings)
        .await
        .unwrap();
    let bases = [first.port(), second.port()].map(|p| format!("http://127.0.0.1:{p}"));
    actix_web::rt::spawn(first.run_until_stopped());
    actix_web::rt::spawn(second.run_until_stopped());
    accounts::add_user(
        &mut db.connect(),
        "ana",
        "a long passphrase",
        Role::Admin,
        &[],
        "test",
    )
    .unwrap();

    // One sign-in form (its cookie and token), posted 200 times at once.
    let mut browser = Browser::at(&bases[0]);
    let (_, form, _) = browser.get("/sign-in").await;
    let csrf = Browser::csrf(&form);
    let cookie = browser.cookie_header();
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let posts = (0..200).map(|_| {
        let (client, cookie, csrf) = (client.clone(), cookie.clone(), csrf.clone());
        let url = format!("{}/sign-in", bases[0]);
        async move {
            client
                .post(url)
                .header(COOKIE, cookie)
                .form(&[
                    ("name", "ana"),
                    ("password", "wrong guess"),
                    ("csrf", &csrf),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    let unauthorized = statuses.iter().filter(|&&s| s == 401).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!(
        (unauthorized, limited),
        (
            verdict::config::RateLimitSettings::default().sign_in_per_account as usize,
            200 - verdict::config::RateLimitSettings::default().sign_in_per_account as usize
        ),
        "{statuses:?}"
    );

    // The other instance knows: the right password is refused too.
    let mut other = Browser::at(&bases[1]);
    let (status, page, _, raw) = other.sign_in("ana", "a long passphrase").await;
    assert_eq!(status, 429, "{page}");
    assert!(page.contains("Try again in 15 minutes"), "{page}");
    assert!(raw.iter().all(|c| !c.starts_with("verdict_session=")));
}
