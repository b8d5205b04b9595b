//! End to end in headless Chromium through chromedriver: sign in, label
//! three items with the keyboard, see the counts change, sign out. With `CI`
//! set a missing browser is a failure, not a skip.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{repo, row, spawn_with, task, Backend};
use crate::web::add_user;
use verdict::domain::AutomationLevel;
use verdict::domain::Role;

struct ChromeDriver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<ChromeDriver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = match Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("CI is set and chromedriver cannot start: {e}")
        }
        Err(e) => {
            eprintln!("skipping the browser test: chromedriver cannot start ({e}); set CI to make this fail");
            return None;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(ChromeDriver {
        child,
        port,
        _profile: tempfile::tempdir().unwrap(),
    })
}

async fn press(client: &fantoccini::Client, key: char) {
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.unwrap();
}

async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless Chromium session at `width` × 1100.
async fn chromium(driver: &ChromeDriver, width: u32) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", format!("--window-size={width},1100"),
            format!("--user-data-dir={}", driver._profile.path().display()),
        ]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// Fills the sign-in form the browser is on and sends it.
async fn sign_in_form(client: &fantoccini::Client, name: &str) {
    let form = client
        .wait()
        .for_element(Locator::Css("form.sign-in"))
        .await
        .unwrap();
    for (field, value) in [("name", name), ("password", "a long passphrase")] {
        form.find(Locator::Css(&format!("input[name={field}]")))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    form.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Whether the page is wider than the window (something pushed it).
async fn overflows(client: &fantoccini::Client) -> bool {
    client
        .execute(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap()
        == json!(true)
}

/// Opens the review queue, is sent to sign in, signs in as `name` and is
/// back on the queue.
async fn deep_link_sign_in(client: &fantoccini::Client, base: &str, name: &str) {
    client
        .goto(&format!("{base}/review/tumor-triage"))
        .await
        .unwrap();
    wait_for_path(client, "/sign-in").await;
    sign_in_form(client, name).await;
    wait_for_path(client, "/review/tumor-triage").await;
}

async fn wait_for_path(client: &fantoccini::Client, path: &str) {
    wait_for(path, || {
        let client = client.clone();
        let path = path.to_string();
        async move { client.current_url().await.is_ok_and(|u| u.path() == path) }
    })
    .await;
}

#[actix_web::test]
async fn long_ids_and_comments_stay_on_screen_and_an_ended_session_returns_to_the_queue() {
    let Some(driver) = chromedriver() else { return };
    let app = spawn_with(Backend::Sqlite, task(AutomationLevel::Assist), None)
        .await
        .unwrap();
    add_user(&app, "boss", Role::Admin, &[]);
    let long = format!("{}-{}", "x".repeat(60), "y".repeat(67));
    assert_eq!(long.len(), 128, "the longest id the API takes");
    app.submit(&long, row(0)).await;
    app.submit("next-one", row(1)).await;
    let client = chromium(&driver, 1200).await;

    // A deep link asks for sign-in and returns to itself.
    deep_link_sign_in(&client, &app.base, "boss").await;
    let heading = client
        .wait()
        .for_element(Locator::Css("h1 .mono"))
        .await
        .unwrap();
    assert_eq!(heading.text().await.unwrap(), long);
    assert!(!overflows(&client).await, "the review page fits");

    // Label it with a long unbroken comment.
    client
        .find(Locator::Css("textarea[name=comment]"))
        .await
        .unwrap()
        .send_keys(&"z".repeat(400))
        .await
        .unwrap();
    client
        .find(Locator::Css("button[data-key='1']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the next item", || {
        let client = client.clone();
        async move {
            match client.find(Locator::Css("h1 .mono")).await {
                Ok(h) => h.text().await.unwrap_or_default() == "next-one",
                Err(_) => false,
            }
        }
    })
    .await;
    for path in [
        "/admin/items?task=tumor-triage".to_string(),
        format!("/admin/items/tumor-triage/{long}"),
    ] {
        client.goto(&format!("{}{path}", app.base)).await.unwrap();
        client
            .wait()
            .for_element(Locator::Css("main"))
            .await
            .unwrap();
        assert!(!overflows(&client).await, "{path} fits the window");
    }
    let out = repo().join("test-output");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("item-long-values.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();

    // The session ends while the review page is open; a key press says so
    // on the sign-in page itself, and signing in returns to the queue.
    client
        .goto(&format!("{}/review/tumor-triage", app.base))
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("h1 .mono"))
        .await
        .unwrap();
    {
        use diesel::prelude::*;
        diesel::delete(verdict::db::schema::sessions::table)
            .execute(&mut app.db.connect())
            .unwrap();
    }
    press(&client, '2').await;
    wait_for_path(&client, "/sign-in").await;
    let page = client.source().await.unwrap();
    assert!(page.contains("Your session ended"), "{page}");
    assert!(!page.contains("Sign out"), "no signed-in header");
    sign_in_form(&client, "boss").await;
    wait_for_path(&client, "/review/tumor-triage").await;
    client.close().await.unwrap();
}

#[actix_web::test]
async fn a_reviewer_labels_three_items_with_the_keyboard_in_chromium() {
    let Some(driver) = chromedriver() else { return };
    let app = spawn_with(Backend::Sqlite, task(AutomationLevel::Assist), None)
        .await
        .unwrap();
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    for i in 0..4 {
        app.submit(&format!("case-{i}"), row(i)).await;
    }

    let client = chromium(&driver, 1200).await;

    client.goto(&format!("{}/", app.base)).await.unwrap();
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/sign-in"));
    sign_in_form(&client, "rita").await;
    // Pages load after a click: wait for them rather than race them.
    let queued = client
        .wait()
        .for_element(Locator::Css("td.queued"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(queued, "4");

    client
        .wait()
        .for_element(Locator::Css("a.start"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .execute("window.notReloaded = true; return null;", vec![])
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let id = client
            .wait()
            .for_element(Locator::Css("h1 .mono"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!seen.contains(&id), "a new item each time");
        seen.push(id.clone());
        press(&client, '2').await; // "benign"
        wait_for("the next item", || {
            let client = client.clone();
            let id = id.clone();
            async move {
                match client.find(Locator::Css("h1")).await {
                    Ok(h1) => !h1.text().await.unwrap_or_default().contains(&id),
                    Err(_) => false,
                }
            }
        })
        .await;
    }
    let same_page = client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        json!(true),
        "the next item came without a full page load"
    );

    let out = repo().join("test-output");
    std::fs::create_dir_all(&out).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(out.join("review-page.png"), png).unwrap();

    client.goto(&format!("{}/", app.base)).await.unwrap();
    // Pages load after a click: wait for them rather than race them.
    let queued = client
        .wait()
        .for_element(Locator::Css("td.queued"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(queued, "1", "three of four labelled");
    client
        .find(Locator::Css("form.inline button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the sign-in page", || {
        let client = client.clone();
        async move {
            client
                .current_url()
                .await
                .is_ok_and(|u| u.path() == "/sign-in")
        }
    })
    .await;
    client.close().await.unwrap();

    use diesel::prelude::*;
    use verdict::db::schema::verdicts;
    let by: Vec<(String, Option<String>, String)> = verdicts::table
        .select((verdicts::item_id, verdicts::decided_by, verdicts::label))
        .filter(verdicts::source.eq("human"))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(by.len(), 3);
    assert!(by.iter().all(|(id, who, label)| seen.contains(id)
        && who.as_deref() == Some("rita")
        && label == "benign"));
}

/// The heading's item id once it is not `old`.
async fn next_item(client: &fantoccini::Client, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(h) = client.find(Locator::Css("h1 .mono")).await {
            if let Ok(text) = h.text().await {
                if text != old {
                    return text;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for an item after {old}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shown_id(client: &fantoccini::Client) -> String {
    client
        .wait()
        .for_element(Locator::Css("h1 .mono"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn status_text(client: &fantoccini::Client) -> String {
    match client.find(Locator::Css("main")).await {
        Ok(main) => main.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn screenshot(client: &fantoccini::Client, name: &str) {
    let out = repo().join("test-output");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(name), client.screenshot().await.unwrap()).unwrap();
}

/// A reviewer's whole session with the keyboard, then the admin's: sign in
/// from a deep link, read the guidelines, skip, label, undo, flag an item
/// with a note; the admin adjudicates it. At phone width, nothing pushes
/// the page sideways.
#[actix_web::test]
async fn a_whole_review_session_in_chromium() {
    let Some(driver) = chromedriver() else { return };
    let mut t = task(AutomationLevel::Assist);
    t.guidelines = "Look at the **texture** first.".into();
    t.label_definitions = [("malignant".to_string(), "Cancerous: refer.".to_string())].into();
    let app = spawn_with(Backend::Sqlite, t, None).await.unwrap();
    add_user(&app, "rita", Role::Reviewer, &["tumor-triage"]);
    add_user(&app, "boss", Role::Admin, &[]);
    for i in 0..5 {
        app.submit(&format!("case-{i}"), row(i)).await;
    }
    let client = chromium(&driver, 400).await;

    // Deep link → sign-in → back to the queue.
    deep_link_sign_in(&client, &app.base, "rita").await;
    let first = shown_id(&client).await;
    assert!(!overflows(&client).await, "the review page fits a phone");
    // Times show the reader's local time on hover.
    let title = client
        .find(Locator::Css("p.meta time"))
        .await
        .unwrap()
        .attr("title")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        title.contains("(your time)") && title.ends_with(" UTC"),
        "{title}"
    );
    screenshot(&client, "session-phone-review.png").await;
    client.set_window_size(1200, 1100).await.unwrap();

    // The guidelines open and say what the task's config says.
    let guidelines = client
        .find(Locator::Css("details.guidelines"))
        .await
        .unwrap();
    guidelines
        .find(Locator::Css("summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = guidelines.text().await.unwrap();
    assert!(text.contains("Look at the texture first."), "{text}");
    assert!(text.contains("Cancerous: refer."), "{text}");

    // s skips: another item, and the notice says so.
    press(&client, 's').await;
    let second = next_item(&client, &first).await;
    assert!(status_text(&client).await.contains("Skipped"));

    // 2 labels it benign: the next page confirms it.
    press(&client, '2').await;
    let third = next_item(&client, &second).await;
    let saved = client
        .find(Locator::Css("p.saved"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        saved.contains(&format!("Saved benign for {second}")),
        "{saved}"
    );

    // u takes it back: the labelled item is on screen again.
    press(&client, 'u').await;
    let back = next_item(&client, &third).await;
    assert_eq!(back, second);
    assert!(status_text(&client).await.contains("taken back"));
    press(&client, '1').await;
    let fourth = next_item(&client, &second).await;

    // f opens the flag form with the cursor in the note.
    press(&client, 'f').await;
    let note = client
        .wait()
        .for_element(Locator::Css("details.flag-form[open] textarea"))
        .await
        .unwrap();
    note.send_keys("Two nuclei overlap; unsure").await.unwrap();
    screenshot(&client, "session-flag.png").await;
    client
        .find(Locator::Css("details.flag-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for("the flag's notice", || {
        let client = client.clone();
        async move { status_text(&client).await.contains("went to an admin") }
    })
    .await;
    assert_ne!(shown_id(&client).await, fourth);

    // Sign out; the admin adjudicates the flagged item.
    client
        .find(Locator::Css("form.inline button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_path(&client, "/sign-in").await;
    sign_in_form(&client, "boss").await;
    client
        .wait()
        .for_element(Locator::Css("a.adjudicate"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let flagged = shown_id(&client).await;
    assert_eq!(flagged, fourth);
    let card = client
        .find(Locator::Css(".card.adjudication"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(card.contains("flagged for an admin"), "{card}");
    assert!(card.contains("Two nuclei overlap; unsure"), "{card}");
    screenshot(&client, "session-adjudicate.png").await;
    press(&client, '1').await;
    wait_for("the empty adjudication queue", || {
        let client = client.clone();
        async move { client.find(Locator::Css("h1 .mono")).await.is_err() }
    })
    .await;
    client.close().await.unwrap();

    use diesel::prelude::*;
    use verdict::db::schema::verdicts;
    let decided: Vec<(String, String, Option<String>)> = verdicts::table
        .select((verdicts::item_id, verdicts::label, verdicts::basis))
        .order(verdicts::item_id)
        .load(&mut app.db.connect())
        .unwrap();
    let expect = |id: &str, label: &str, basis: &str| {
        assert!(
            decided
                .iter()
                .any(|(i, l, b)| i == id && l == label && b.as_deref() == Some(basis)),
            "{id} {label} {basis}: {decided:?}"
        )
    };
    expect(&second, "malignant", "single");
    expect(&fourth, "malignant", "adjudication");
    assert_eq!(decided.len(), 2, "{decided:?}");
}

/// An admin runs a candidate from the Models page: sets it as a canary,
/// sees it beside live on the same items, is refused a promotion on too
/// little evidence, forces it with a reason; at phone width the page does
/// not overflow.
#[actix_web::test]
async fn an_admin_runs_a_candidate_from_the_models_page_in_chromium() {
    let Some(driver) = chromedriver() else { return };
    let app = spawn_with(Backend::Sqlite, task(AutomationLevel::Full), None)
        .await
        .unwrap();
    add_user(&app, "boss", Role::Admin, &[]);
    let models = tempfile::tempdir().unwrap();
    crate::lifecycle::import(&app, &crate::lifecycle::variant(models.path(), "v2", false)).await;
    let client = chromium(&driver, 1200).await;
    client
        .goto(&format!("{}/admin/models", app.base))
        .await
        .unwrap();
    wait_for_path(&client, "/sign-in").await;
    sign_in_form(&client, "boss").await;
    wait_for_path(&client, "/admin/models").await;

    // A canary at 20 %.
    let form = client.find(Locator::Css("form.candidate")).await.unwrap();
    click_in(&form, "select[name=mode] option[value=canary]").await;
    let percent = form
        .find(Locator::Css("input[name=percent]"))
        .await
        .unwrap();
    percent.clear().await.unwrap();
    percent.send_keys("20").await.unwrap();
    type_in(&form, "input[name=why]", "try the retrained one").await;
    click_in(&form, "button").await;
    wait_for_text(&client, "canary, 20 % of items").await;

    // Items scored by both show up side by side.
    crate::lifecycle::follow(&app).await;
    for i in 0..50 {
        app.submit(&format!("m-{i}"), row(i)).await;
    }
    client.refresh().await.unwrap();
    let table = client
        .wait()
        .for_element(Locator::Css("table.comparison"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains("Items scored 50 50"), "{table}");
    assert!(
        table.contains("Agreement between the two 100.0 % (50 of 50"),
        "{table}"
    );

    // Promotion: refused without evidence, then forced with a reason.
    let promote = |force: bool| {
        let client = client.clone();
        async move {
            let form = client.find(Locator::Css("form.promote")).await.unwrap();
            type_in(&form, "input[name=why]", "it matches live").await;
            if force {
                click_in(&form, "input[name=force]").await;
            }
            click_in(&form, "button").await;
        }
    };
    promote(false).await;
    wait_for_text(&client, "promotion refused").await;
    promote(true).await;
    wait_for("v2 live", || {
        let client = client.clone();
        async move {
            let roles = match client.find(Locator::Css("dl.roles")).await {
                Ok(dl) => dl.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            roles.contains("LIVE\nv2") || roles.contains("Live\nv2")
        }
    })
    .await;
    screenshot(&client, "models-promoted.png").await;
    client.set_window_size(400, 1100).await.unwrap();
    client.refresh().await.unwrap();
    client
        .wait()
        .for_element(Locator::Css("dl.roles"))
        .await
        .unwrap();
    assert!(!overflows(&client).await, "the Models page fits a phone");
    client.close().await.unwrap();
}

/// Clicks the element `css` finds within `within`.
async fn click_in(within: &fantoccini::elements::Element, css: &str) {
    within
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Types `text` into the element `css` finds within `within`.
async fn type_in(within: &fantoccini::elements::Element, css: &str, text: &str) {
    within
        .find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Waits until the page's main part says `text`.
async fn wait_for_text(client: &fantoccini::Client, text: &str) {
    wait_for(text, || {
        let client = client.clone();
        let text = text.to_string();
        async move { status_text(&client).await.contains(&text) }
    })
    .await;
}
