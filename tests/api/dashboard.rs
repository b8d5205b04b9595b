//! The monitoring dashboard's pages (`/dashboard`, `/dashboard/{task}` and
//! their live fragments), through real HTTP: admins only, the numbers of
//! what was actually scored, and pages that read well with no data at all.

use serde_json::json;

use crate::helpers::{rows, spawn, Backend, TestApp, TASK};
use crate::web::{add_user, Browser};
use verdict::domain::{AutomationLevel, Role};
use verdict::monitoring::MetricsFlusher;

crate::on_both_backends!(an_admin_sees_the_items_actually_scored_on_both_pages,);

/// Writes what the app's recorder counted to the metrics store, as the
/// flusher does every interval.
async fn flush(app: &TestApp) {
    MetricsFlusher::new(
        app.state.db.clone(),
        app.state.recorder.clone(),
        std::time::Duration::from_secs(1),
        30,
    )
    .flush()
    .await
    .expect("flush");
}

/// Scores `n` items in one batch.
async fn score(app: &TestApp, n: usize) {
    let items: Vec<_> = rows()
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, input)| json!({"id": format!("d-{i}"), "input": input}))
        .collect();
    let (status, body) = app.post(&json!({ "items": items })).await;
    assert_eq!(status, 200, "{body}");
}

async fn admin(app: &TestApp) -> Browser {
    add_user(app, "ana", Role::Admin, &[]);
    let mut browser = Browser::new(app);
    let (status, _, _, _) = browser.sign_in("ana", "a long passphrase").await;
    assert_eq!(status, 303);
    browser
}

const SECTIONS: [&str; 8] = [
    "id=\"headline\"",
    "id=\"traffic\"",
    "id=\"outputs\"",
    "id=\"drift\"",
    "id=\"concept\"",
    "id=\"accuracy\"",
    "id=\"process\"",
    "id=\"alerts\"",
];

async fn an_admin_sees_the_items_actually_scored_on_both_pages(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    score(&app, 40).await;
    flush(&app).await;
    let (_, report) = app
        .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
        .await;
    let software = &report["software"];
    assert_eq!(software["items"], 40, "{report}");
    let automated = software["automated"].as_u64().unwrap();
    let queued = software["queued"].as_u64().unwrap();

    let mut browser = admin(&app).await;
    let (status, overview, _) = browser.get("/dashboard").await;
    assert_eq!(status, 200, "{overview}");
    assert!(
        overview.contains(&format!(
            r#"<a href="/dashboard/{TASK}?span=hour">{TASK}</a>"#
        )),
        "{overview}"
    );
    assert!(overview.contains("<dt>Items</dt><dd>40</dd>"), "{overview}");
    assert!(overview.contains(r#"class="spark""#), "a sparkline");
    assert!(overview.contains(r#"<a href="/dashboard">Dashboard</a>"#));
    assert!(
        overview.contains(r#"data-live="/dashboard?span=hour&#38;live=1""#),
        "{overview}"
    );
    assert!(overview.contains(r#"<script src="/static/dashboard.js" defer>"#));

    let (status, page, _) = browser.get(&format!("/dashboard/{TASK}")).await;
    assert_eq!(status, 200, "{page}");
    let at: Vec<usize> = SECTIONS
        .iter()
        .map(|s| page.find(s).unwrap_or_else(|| panic!("{s} in {page}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "sections in order");
    assert!(page.contains("40 items in the last hour"), "{page}");
    assert!(page.contains(&format!("{automated} decided by the model")));
    assert!(page.contains(&format!("{queued} sent to reviewers")));
    assert!(
        page.contains("items per minute"),
        "the traffic chart's axis"
    );
    assert!(
        page.contains(&format!("automated {automated}")),
        "the traffic chart's summary counts the items: {page}"
    );
    assert!(page.contains(r#"role="img""#));
    assert!(page.contains(r#"aria-current="page">hour</a>"#));
    // The range switcher gives the same page over a day and a week.
    for span in ["day", "week"] {
        let (status, page, _) = browser.get(&format!("/dashboard/{TASK}?span={span}")).await;
        assert_eq!(status, 200);
        assert!(
            page.contains(&format!("40 items in the last {span}")),
            "{page}"
        );
    }
}

#[actix_web::test]
async fn a_reviewer_is_refused_and_a_visitor_is_sent_to_sign_in() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    let paths = [
        "/dashboard".to_string(),
        "/dashboard?live=1".to_string(),
        format!("/dashboard/{TASK}"),
        format!("/dashboard/{TASK}/live"),
    ];
    let mut visitor = Browser::new(&app);
    for path in &paths {
        let (status, _, location) = visitor.get(path).await;
        // To sign in, and back here afterwards.
        let back = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", path)
            .finish();
        assert_eq!(
            (status, location),
            (303, Some(format!("/sign-in?{back}"))),
            "{path}"
        );
    }
    add_user(&app, "rita", Role::Reviewer, &[TASK]);
    let mut reviewer = Browser::new(&app);
    reviewer.sign_in("rita", "a long passphrase").await;
    for path in &paths {
        let (status, page, _) = reviewer.get(path).await;
        assert_eq!(status, 403, "{path}");
        assert!(page.contains("Only admins may open this page."), "{page}");
    }
    let (_, home, _) = reviewer.get("/").await;
    assert!(!home.contains("/dashboard"), "no Dashboard link: {home}");
}

#[actix_web::test]
async fn an_unknown_task_is_404_and_a_bad_span_400() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    let mut browser = admin(&app).await;
    for path in ["/dashboard/no-such-task", "/dashboard/no-such-task/live"] {
        let (status, page, _) = browser.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(page.contains("There is no such task."), "{page}");
    }
    for path in [
        "/dashboard?span=month".to_string(),
        format!("/dashboard/{TASK}?span=year"),
        format!("/dashboard/{TASK}/live?span="),
        format!("/dashboard/{TASK}?span=day&span=week"),
    ] {
        let (status, page, _) = browser.get(&path).await;
        assert_eq!(status, 400, "{path}");
        assert!(
            page.contains("<h1>Bad request</h1>") && page.contains("/static/verdict.css"),
            "a styled page: {page}"
        );
    }
}

#[actix_web::test]
async fn the_live_fragments_have_the_sections_only() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    score(&app, 12).await;
    flush(&app).await;
    let mut browser = admin(&app).await;
    let (status, fragment, _) = browser
        .get(&format!("/dashboard/{TASK}/live?span=day"))
        .await;
    assert_eq!(status, 200, "{fragment}");
    for s in SECTIONS {
        assert!(fragment.contains(s), "{s}");
    }
    assert!(fragment.contains("12 items in the last day"));
    for page_only in ["<html", "<header", "Sign out", "data-live", "<script"] {
        assert!(!fragment.contains(page_only), "{page_only} in {fragment}");
    }
    let (status, fragment, _) = browser.get("/dashboard?span=week&live=1").await;
    assert_eq!(status, 200);
    assert!(fragment.contains("<dt>Items</dt><dd>12</dd>"), "{fragment}");
    assert!(fragment.contains(&format!("/dashboard/{TASK}?span=week")));
    for page_only in ["<html", "<header", "Sign out", "data-live"] {
        assert!(!fragment.contains(page_only), "{page_only} in {fragment}");
    }
    // The script the pages load is served.
    let script = app
        .client
        .get(format!("{}/static/dashboard.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.text().await.unwrap().contains("visibilitychange"));
}

#[actix_web::test]
async fn the_pages_read_well_with_no_data_at_all() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    let mut browser = admin(&app).await;
    let (status, overview, _) = browser.get("/dashboard?span=week").await;
    assert_eq!(status, 200, "{overview}");
    assert!(overview.contains("<dt>Items</dt><dd>0</dd>"), "{overview}");
    let (status, page, _) = browser.get(&format!("/dashboard/{TASK}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("0 items in the last hour"));
    assert!(
        page.contains("No data in this range"),
        "empty charts say so"
    );
    assert!(page.contains("not evaluated this task yet"), "{page}");
    assert!(page.contains("No alert of this task fired in the range."));
    assert!(!page.contains("NaN") && !page.contains("inf%"), "{page}");
}
