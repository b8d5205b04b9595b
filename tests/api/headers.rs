//! Security headers on every kind of response, HSTS only over https as the
//! configuration allows it to be known, and an API token's revocation
//! reaching another instance within the token cache's second.

use std::time::{Duration, Instant};

use crate::helpers::{spawn, spawn_configured, task, Backend, TestApp};
use verdict::domain::AutomationLevel;

/// The kinds of response, each with whether it is HTML or a redirect (which
/// carry the pages' CSP and frame options).
fn kinds(app: &TestApp) -> Vec<(&'static str, reqwest::RequestBuilder, u16, bool)> {
    let c = &app.client;
    let b = &app.base;
    let bearer = format!("Bearer {}", app.token);
    vec![
        (
            "API JSON",
            c.get(format!("{b}/api/v1/tasks"))
                .header("authorization", &bearer),
            200,
            false,
        ),
        (
            "API error",
            c.get(format!("{b}/api/v1/tasks/no-such/items/x"))
                .header("authorization", &bearer),
            404,
            false,
        ),
        ("API 405", c.delete(format!("{b}/api/v1/tasks")), 405, false),
        ("HTML page", c.get(format!("{b}/sign-in")), 200, true),
        (
            "HTML error page",
            c.get(format!("{b}/no-such-page")),
            404,
            true,
        ),
        ("redirect", c.get(format!("{b}/")), 303, true),
        (
            "static file",
            c.get(format!("{b}/static/verdict.css")),
            200,
            false,
        ),
        ("metrics", c.get(format!("{b}/metrics")), 200, false),
        ("healthz", c.get(format!("{b}/healthz")), 200, false),
        ("readyz", c.get(format!("{b}/readyz")), 200, false),
    ]
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[actix_web::test]
async fn every_response_carries_nosniff_and_referrer_policy_and_pages_their_csp() {
    let Some(mut app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    app.client = no_redirects();
    for (what, request, status, html) in kinds(&app) {
        // A client claiming https is not believed by default: no HSTS.
        let r = request
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(r.status().as_u16(), status, "{what}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(h["referrer-policy"], "same-origin", "{what}");
        assert!(h.get("strict-transport-security").is_none(), "{what}");
        if html {
            assert_eq!(
                h["content-security-policy"], "default-src 'self'; frame-ancestors 'none'",
                "{what}"
            );
            assert_eq!(h["x-frame-options"], "DENY", "{what}");
        } else {
            assert!(h.get("content-security-policy").is_none(), "{what}");
        }
        if what.starts_with("API") {
            assert!(h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"));
        }
    }
}

#[actix_web::test]
async fn hsts_only_when_a_trusted_proxy_says_https() {
    let Some(mut app) =
        spawn_configured(Backend::Sqlite, task(AutomationLevel::Partial), None, |s| {
            s.server.trust_forwarded_proto = true
        })
        .await
    else {
        return;
    };
    app.client = no_redirects();
    for (what, request, _, _) in kinds(&app) {
        let r = request.try_clone().unwrap().send().await.unwrap();
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "{what}: plain http"
        );
        let r = request
            .try_clone()
            .unwrap()
            .header("x-forwarded-proto", "http")
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "{what}"
        );
        let r = request
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{what}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{what}");
    }
    let r = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("forwarded", "for=192.0.2.1;proto=https")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("strict-transport-security").is_some());
}

/// A token checked on instance B, revoked through instance A: B refuses it
/// within the cache's second (PostgreSQL: two instances on one SQLite file
/// would be two writers).
#[actix_web::test]
async fn a_revoked_token_is_refused_by_another_instance_within_a_second() {
    let Some(a) = spawn(Backend::Postgres, AutomationLevel::Partial).await else {
        return;
    };
    let mut settings =
        crate::helpers::test_settings(&a.db.url, task(AutomationLevel::Partial), None);
    settings.datasets.dir = a.db.dir().join("datasets");
    let b = verdict::startup::Application::build(settings)
        .await
        .expect("a second instance starts");
    let b_base = format!("http://127.0.0.1:{}", b.port());
    actix_web::rt::spawn(b.run_until_stopped());

    let token = a
        .store
        .write(|conn| verdict::tokens::create(conn, "client-b", "test"))
        .await
        .unwrap();
    let on_b = || {
        a.client
            .get(format!("{b_base}/api/v1/tasks"))
            .bearer_auth(&token)
            .send()
    };
    // Believed by B (and so in B's cache) up to the revocation.
    assert_eq!(on_b().await.unwrap().status().as_u16(), 200);
    a.store
        .write(|conn| verdict::tokens::revoke(conn, "client-b", "test"))
        .await
        .unwrap();
    let revoked = Instant::now();
    let mut refused = None;
    while revoked.elapsed() < Duration::from_secs(5) {
        let status = on_b().await.unwrap().status().as_u16();
        if status == 401 {
            refused = Some(revoked.elapsed());
            break;
        }
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("B refuses the revoked token");
    let bound = verdict::tokens::CACHE_TTL;
    assert!(
        refused <= bound + Duration::from_millis(200),
        "refused after {refused:?}, bound {bound:?}"
    );
    // And it stays refused, on both.
    assert_eq!(on_b().await.unwrap().status().as_u16(), 401);
    let on_a = a
        .client
        .get(format!("{}/api/v1/tasks", a.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(on_a.status().as_u16(), 401);
}

/// The cookies' `Secure` flag follows the same rule as HSTS: a client's
/// own `X-Forwarded-Proto: https` is believed only behind a trusted proxy.
#[actix_web::test]
async fn cookies_are_secure_only_over_https_as_far_as_we_may_believe() {
    for trusted in [false, true] {
        let Some(app) =
            spawn_configured(Backend::Sqlite, task(AutomationLevel::Partial), None, |s| {
                s.server.trust_forwarded_proto = trusted
            })
            .await
        else {
            return;
        };
        let cookie = |proto: &'static str| {
            let request = app
                .client
                .get(format!("{}/sign-in", app.base))
                .header("x-forwarded-proto", proto);
            async move {
                let r = request.send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.headers()["set-cookie"].to_str().unwrap().to_string()
            }
        };
        let https = cookie("https").await;
        assert_eq!(
            https.contains("Secure"),
            trusted,
            "trusted {trusted}: {https}"
        );
        let http = cookie("http").await;
        assert!(!http.contains("Secure"), "{http}");
    }
}
