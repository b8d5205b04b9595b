//! Rate limits: failed authentication per client address (on by default),
//! request rates per token, shared by instances on one database, client
//! addresses from `X-Forwarded-For` only behind a trusted proxy, and the
//! sign-in form's limits.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::helpers::{spawn_configured, task, test_settings, Backend, TestApp, TestDb};
use crate::web::Browser;
use verdict::config::Settings;
use verdict::domain::{AutomationLevel, Rate, Role};

crate::on_both_backends!(
    failed_authentication_locks_out_the_address_and_no_other,
    a_token_rate_refuses_after_the_burst_and_recovers_in_the_next_window,
    instances_on_one_database_share_a_token_rate,
    forwarded_for_is_ignored_unless_the_peer_is_trusted,
    an_address_rate_limits_one_address_and_no_other,
    the_sign_in_form_limits_failures_per_address,
);

/// A token of the right shape that no one has.
const UNKNOWN_TOKEN: &str =
    "vdt_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn spawn_behind_proxy(
    backend: Backend,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_configured(backend, task(AutomationLevel::Partial), None, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        configure(s)
    })
    .await
}

/// `GET /api/v1/tasks` at `base` with `token`, as if from `from` (through
/// a proxy): status, `Retry-After`, body.
async fn tasks_from(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    from: Option<&str>,
) -> (u16, Option<u64>, Value) {
    let mut request = client
        .get(format!("{base}/api/v1/tasks"))
        .bearer_auth(token);
    if let Some(from) = from {
        request = request.header("x-forwarded-for", from);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

async fn failed_authentication_locks_out_the_address_and_no_other(backend: Backend) {
    let Some(app) =
        spawn_behind_proxy(backend, |s| s.rate_limits.failed_auth_per_address = 3).await
    else {
        return;
    };
    let attacker = Some("198.51.100.1");
    // Unknown tokens (looked up in the database) and malformed ones count.
    for token in [UNKNOWN_TOKEN, "nonsense", UNKNOWN_TOKEN] {
        let (status, retry, body) = tasks_from(&app.client, &app.base, token, attacker).await;
        assert_eq!((status, retry), (401, None), "{body}");
    }
    let (status, retry, body) = tasks_from(&app.client, &app.base, UNKNOWN_TOKEN, attacker).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry = retry.expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    // Refused before the token is looked at: the right one too.
    let (status, _, body) = tasks_from(&app.client, &app.base, &app.token, attacker).await;
    assert_eq!(status, 429, "{body}");
    // Another address with the right token is served, and a success is not
    // counted.
    for _ in 0..5 {
        let (status, _, body) =
            tasks_from(&app.client, &app.base, &app.token, Some("198.51.100.2")).await;
        assert_eq!(status, 200, "{body}");
    }
    // The lock-out is in the database for every instance to see.
    assert_eq!(app.count("rate_counts"), 1);
    let (status, metrics) = app.metrics().await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("verdict_requests_limited_total{limit=\"failed_auth\"} 2\n"),
        "{metrics}"
    );
}

/// Waits until the window of `secs` seconds has at least `room` ms left.
async fn at_window_start(secs: u64, room: u64) {
    let ms = verdict::domain::unix_ms() as u64 % (secs * 1000);
    if secs * 1000 - ms < room {
        tokio::time::sleep(Duration::from_millis(secs * 1000 - ms + 10)).await;
    }
}

async fn a_token_rate_refuses_after_the_burst_and_recovers_in_the_next_window(backend: Backend) {
    let Some(app) = spawn_configured(backend, task(AutomationLevel::Partial), None, |_| {}).await
    else {
        return;
    };
    let rate: Rate = "3/2s".parse().unwrap();
    let token = app
        .store
        .write(move |conn| verdict::tokens::create_with_rate(conn, "limited", Some(rate), "test"))
        .await
        .unwrap();
    at_window_start(2, 1500).await;
    for _ in 0..3 {
        let (status, _, body) = tasks_from(&app.client, &app.base, &token, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = tasks_from(&app.client, &app.base, &token, None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let retry = retry.expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    // /metrics counts the refusal under the limit that made it.
    let (status, metrics) = app.metrics().await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("verdict_requests_limited_total{limit=\"token\"} 1\n")
            && metrics.contains("verdict_requests_limited_total{limit=\"address\"} 0\n"),
        "{metrics}"
    );
    // Another token (without a rate, and none configured) is not limited.
    for _ in 0..10 {
        assert_eq!(
            tasks_from(&app.client, &app.base, &app.token, None).await.0,
            200
        );
    }
    // After Retry-After the token is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, _, body) = tasks_from(&app.client, &app.base, &token, None).await;
    assert_eq!(status, 200, "{body}");
}

async fn instances_on_one_database_share_a_token_rate(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let mut settings = test_settings(&db.url, task(AutomationLevel::Partial), None);
    settings.datasets.dir = db.dir().join("datasets");
    let first = verdict::startup::Application::build_without_jobs(settings.clone())
        .await
        .unwrap();
    let second = verdict::startup::Application::build_without_jobs(settings)
        .await
        .unwrap();
    let bases = [first.port(), second.port()].map(|p| format!("http://127.0.0.1:{p}"));
    let states = [first.state(), second.state()];
    actix_web::rt::spawn(first.run_until_stopped());
    actix_web::rt::spawn(second.run_until_stopped());
    let limit = 20;
    let rate = Rate::new(limit, 10).unwrap();
    let token = states[0]
        .db
        .write(move |conn| verdict::tokens::create_with_rate(conn, "shared", Some(rate), "test"))
        .await
        .unwrap();

    at_window_start(10, 6000).await;
    let window = rate.window(verdict::domain::unix_ms());
    let client = reqwest::Client::new();
    let mut admitted = 0;
    for i in 0..100 {
        let (status, _, body) = tasks_from(&client, &bases[i % 2], &token, None).await;
        match status {
            200 => admitted += 1,
            429 => assert_eq!(body["error"]["code"], "rate_limited"),
            _ => panic!("{status} {body}"),
        }
    }
    // Each instance admits while what it knows of the total is under the
    // limit, so together at least the limit, and what neither saw of the
    // other is bounded: never more than instances × limit.
    assert!(
        (limit..=2 * limit).contains(&admitted),
        "admitted {admitted} of a limit of {limit} on two instances"
    );
    // Once both have synced (here, or by their own job), the database
    // holds every admitted request, counted once.
    for state in &states {
        verdict::rate_limits::RateSync::new(
            state.db.clone(),
            state.limits.clone(),
            Duration::from_millis(250),
        )
        .sync()
        .await
        .unwrap();
    }
    let key = verdict::rate_limits::token_key("shared");
    let mut counted = 0;
    for _ in 0..40 {
        counted = verdict::store::rate_counts::get(&mut db.connect(), &key, window.start).unwrap();
        if counted == i64::from(admitted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counted, i64::from(admitted));
    // And both refuse now.
    for base in &bases {
        assert_eq!(tasks_from(&client, base, &token, None).await.0, 429);
    }
}

async fn forwarded_for_is_ignored_unless_the_peer_is_trusted(backend: Backend) {
    // No trusted proxy: every request here is from 127.0.0.1, whatever it
    // says.
    let Some(app) = spawn_configured(backend, task(AutomationLevel::Partial), None, |s| {
        s.rate_limits.failed_auth_per_address = 2;
        s.rate_limits.per_address = Some("1000/min".parse().unwrap());
    })
    .await
    else {
        return;
    };
    for from in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(
            tasks_from(&app.client, &app.base, UNKNOWN_TOKEN, Some(from))
                .await
                .0,
            401
        );
    }
    let (status, _, body) =
        tasks_from(&app.client, &app.base, &app.token, Some("198.51.100.3")).await;
    assert_eq!(status, 429, "claimed another address: {body}");

    // Behind a trusted proxy the right-most untrusted address counts; what
    // the client wrote to its left does not.
    let Some(app) =
        spawn_behind_proxy(backend, |s| s.rate_limits.failed_auth_per_address = 2).await
    else {
        return;
    };
    for from in ["203.0.113.1, 198.51.100.1", "203.0.113.2, 198.51.100.1"] {
        assert_eq!(
            tasks_from(&app.client, &app.base, UNKNOWN_TOKEN, Some(from))
                .await
                .0,
            401
        );
    }
    let (status, _, _) = tasks_from(
        &app.client,
        &app.base,
        &app.token,
        Some("203.0.113.3, 198.51.100.1"),
    )
    .await;
    assert_eq!(status, 429);
    let (status, _, _) = tasks_from(&app.client, &app.base, &app.token, Some("198.51.100.9")).await;
    assert_eq!(status, 200);
}

async fn an_address_rate_limits_one_address_and_no_other(backend: Backend) {
    let Some(app) = spawn_behind_proxy(backend, |s| {
        s.rate_limits.per_address = Some("3/2s".parse().unwrap())
    })
    .await
    else {
        return;
    };
    at_window_start(2, 1500).await;
    let busy = Some("198.51.100.1");
    for _ in 0..3 {
        assert_eq!(
            tasks_from(&app.client, &app.base, &app.token, busy).await.0,
            200
        );
    }
    // Refused before the token is looked at: no token at all gets 429 too.
    let (status, retry, body) = tasks_from(&app.client, &app.base, "", busy).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!((1..=2).contains(&retry.unwrap()));
    let (status, _, body) =
        tasks_from(&app.client, &app.base, &app.token, Some("198.51.100.2")).await;
    assert_eq!(status, 200, "{body}");
}

/// A browser whose requests come through the proxy for `from`.
fn browser_from(app: &TestApp, from: &str) -> Browser {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_str(from).unwrap());
    let mut browser = Browser::new(app);
    browser.http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    browser
}

async fn the_sign_in_form_limits_failures_per_address(backend: Backend) {
    let Some(app) = spawn_behind_proxy(backend, |s| {
        s.rate_limits.sign_in_per_address = 3;
        s.rate_limits.sign_in_window_secs = 120;
    })
    .await
    else {
        return;
    };
    crate::web::add_user(&app, "ana", Role::Admin, &[]);
    crate::web::add_user(&app, "bo", Role::Reviewer, &[]);
    // Failures on several accounts from one address.
    let mut guesser = browser_from(&app, "198.51.100.1");
    for name in ["ana", "bo", "cy"] {
        assert_eq!(guesser.sign_in(name, "wrong guess").await.0, 401);
    }
    let (_, page, _) = guesser.get("/sign-in").await;
    let csrf = Browser::csrf(&page);
    let r = guesser
        .http
        .post(format!("{}/sign-in", app.base))
        .header("cookie", guesser.cookie_header())
        .form(&[
            ("name", "ana"),
            ("password", "a long passphrase"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Too many failed sign-ins. Try again in 2 minutes."),
        "{page}"
    );
    // From another address the account signs in.
    let mut other = browser_from(&app, "198.51.100.2");
    assert_eq!(other.sign_in("ana", "a long passphrase").await.0, 303);
}
