//! Alerts and their email, through a real SMTP server: an SLA breach
//! reaches the right people once when it fires and once when it resolves;
//! a task's late items go in one email per pass and on one row of the
//! page; many at once go as a digest; a recipient's hourly limit holds the
//! rest. Admins acknowledge alerts and silence them for a while.

use diesel::prelude::*;

use crate::helpers::{row, spawn_without_jobs, task, Backend, TestApp, TASK};
use crate::servers::{Email, SmtpServer};
use crate::web::{add_user, Browser};
use verdict::config::{Settings, SlaAlerts, SmtpSecurity, SmtpSettings};
use verdict::db::schema::{alert_silences, alerts as alerts_table, audit_log, items, outbox};
use verdict::domain::{AutomationLevel, Role};
use verdict::outbox::Pass as Sent;

crate::on_both_backends!(
    an_item_past_its_sla_emails_each_recipient_once_with_a_link_and_again_when_resolved,
    many_alerts_at_once_reach_a_recipient_as_one_digest,
    each_queue_rule_fires_once_and_resolves_when_its_condition_clears,
    an_acknowledged_alert_shows_who_and_when_and_is_not_mailed_again,
    a_silenced_kind_is_listed_but_not_mailed_until_the_silence_ends,
    a_tasks_late_items_are_one_row_and_one_email_per_pass,
    acting_on_alerts_needs_an_admin_and_the_session_csrf_token,
    the_error_rate_reads_the_newest_items_of_its_window,
);

/// Mail through `smtp`; only the SLA rule on, one alert per item.
pub fn mail_settings(smtp: &SmtpServer) -> impl FnOnce(&mut Settings) {
    let port = smtp.port;
    move |s: &mut Settings| {
        s.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            timeout_secs: 5,
            ca_file: None,
        });
        s.mail.base_url = "http://verdict.example:8080".into();
        s.mail.recipients = vec!["oncall@example.com".into()];
        s.alerts.sla = SlaAlerts::PerItem;
        s.alerts.backlog_items = None;
        s.alerts.oldest_item_minutes = None;
        s.alerts.error_rate = None;
        s.alerts.dead_messages = None;
    }
}

/// Puts the deadline of the listed items in the past.
fn breach_sla(app: &TestApp, ids: &[&str]) {
    let past = verdict::domain::now() - chrono::Duration::minutes(5);
    diesel::update(
        items::table
            .filter(items::task.eq(TASK))
            .filter(items::id.eq_any(ids)),
    )
    .set(items::sla_deadline.eq(Some(past)))
    .execute(&mut app.db.connect())
    .unwrap();
}

/// One pass of the app's outbox worker.
async fn outbox_pass(app: &TestApp) -> Sent {
    app.outbox_worker()
        .run_once()
        .await
        .expect("an outbox pass")
}

/// A pass that sent `n` messages it claimed, and nothing else.
fn sent(n: usize) -> Sent {
    Sent {
        claimed: n,
        sent: n,
        ..Sent::default()
    }
}

fn recipients(emails: &[Email]) -> Vec<String> {
    let mut to: Vec<String> = emails.iter().map(|e| e.to.clone()).collect();
    to.sort();
    to
}

async fn an_item_past_its_sla_emails_each_recipient_once_with_a_link_and_again_when_resolved(
    backend: Backend,
) {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    smtp.start().await;
    let mut t = task(AutomationLevel::HumanOnly);
    t.alert_recipients = vec!["triage@example.com".into()];
    let configure = mail_settings(&smtp);
    let Some(app) = spawn_without_jobs(backend, t, None, |s| {
        configure(s);
        s.mail
            .severity_recipients
            .insert("warning".into(), vec!["warnings@example.com".into()]);
        s.mail
            .severity_recipients
            .insert("critical".into(), vec!["pager@example.com".into()]);
    })
    .await
    else {
        return;
    };
    app.submit("late-1", row(2)).await;
    app.submit("on-time", row(4)).await;
    breach_sla(&app, &["late-1"]);

    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, sent(3));
    let emails = smtp.wait_for(3).await;
    assert_eq!(
        recipients(&emails),
        [
            "oncall@example.com",
            "triage@example.com",
            "warnings@example.com"
        ]
    );
    for email in &emails {
        assert_eq!(
            email.subject,
            format!("[verdict] FIRING warning {TASK}: item late-1 is past its SLA")
        );
        assert!(
            email.text.contains(&format!(
                "http://verdict.example:8080/admin/items/{TASK}/late-1"
            )),
            "{}",
            email.text
        );
        assert!(email.text.contains("minutes late"), "{}", email.text);
    }

    // A reviewer labels it: the alert resolves and says so, once each.
    crate::outbox::decide(&app.store, "late-1", None).await;
    assert_eq!(app.monitor_pass().await, (0, 1));
    assert_eq!(outbox_pass(&app).await, sent(3));
    let emails = smtp.wait_for(6).await;
    let resolved: Vec<Email> = emails
        .iter()
        .filter(|e| e.subject.contains("resolved"))
        .cloned()
        .collect();
    assert_eq!(recipients(&resolved).len(), 3, "{emails:?}");
    assert_eq!(
        resolved[0].subject,
        format!("[verdict] resolved warning {TASK}: item late-1 is past its SLA")
    );
    let rows: Vec<(String, bool)> = alerts_table::table
        .select((
            alerts_table::subject,
            alerts_table::resolved_at.is_not_null(),
        ))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(rows, [("late-1".to_string(), true)]);
    // Six messages, each sent once; nothing more to do.
    let statuses: Vec<(String, i32)> = outbox::table
        .select((outbox::status, outbox::attempts))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(statuses, vec![("sent".to_string(), 1); 6]);
    assert_eq!(app.monitor_pass().await, (0, 0));
    assert_eq!(outbox_pass(&app).await, Sent::default());
    assert_eq!(smtp.emails().len(), 6);
}

async fn many_alerts_at_once_reach_a_recipient_as_one_digest(backend: Backend) {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    smtp.start().await;
    let configure = mail_settings(&smtp);
    // No model on disk: every item fails to score and waits for a human.
    let empty = tempfile::tempdir().unwrap();
    let Some(app) = spawn_without_jobs(
        backend,
        task(AutomationLevel::Full),
        Some(empty.path()),
        |s| {
            configure(s);
            s.mail.digest_after = 3;
            s.alerts.backlog_items = Some(2);
            s.alerts.oldest_item_minutes = Some(30);
            s.alerts.error_rate = Some(0.5);
            s.alerts.error_rate_min_items = 3;
            s.alerts.error_rate_window_minutes = 60;
        },
    )
    .await
    else {
        return;
    };
    for id in ["d1", "d2", "d3"] {
        app.submit(id, serde_json::json!({"x": 1.0})).await;
    }
    let past = verdict::domain::now() - chrono::Duration::minutes(45);
    diesel::update(items::table.filter(items::id.eq("d1")))
        .set((
            items::created_at.eq(past),
            items::sla_deadline.eq(Some(past)),
        ))
        .execute(&mut app.db.connect())
        .unwrap();

    // Backlog, oldest item, error rate and the late item fire at once.
    assert_eq!(app.monitor_pass().await, (4, 0));
    assert_eq!(outbox_pass(&app).await, sent(4));
    let emails = smtp.wait_for(1).await;
    assert_eq!(emails[0].subject, "[verdict] 4 notifications");
    for summary in [
        "3 items wait for a human",
        "the oldest waiting item is",
        "of items failed to score",
        "item d1 is past its SLA",
    ] {
        assert!(emails[0].text.contains(summary), "{}", emails[0].text);
    }
    // All four are marked sent by one delivery.
    let rows: Vec<(String, Option<String>)> = outbox::table
        .select((outbox::status, outbox::delivery))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|r| r.0 == "sent" && r.1.is_some() && r.1 == rows[0].1),
        "{rows:?}"
    );
    assert_eq!(smtp.emails().len(), 1);
}

#[actix_web::test]
async fn a_recipient_over_the_hourly_limit_gets_later_email_held_back() {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    smtp.start().await;
    let configure = mail_settings(&smtp);
    let Some(app) = spawn_without_jobs(
        Backend::Sqlite,
        task(AutomationLevel::HumanOnly),
        None,
        |s| {
            configure(s);
            s.mail.max_per_recipient_per_hour = 1;
        },
    )
    .await
    else {
        return;
    };
    app.submit("a", row(0)).await;
    app.submit("b", row(1)).await;
    breach_sla(&app, &["a"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    smtp.wait_for(1).await;
    breach_sla(&app, &["b"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    // The second email waits, unattempted, until the hour has room.
    assert_eq!(
        outbox_pass(&app).await,
        Sent {
            claimed: 1,
            postponed: 1,
            ..Sent::default()
        }
    );
    let rows: Vec<(String, i32, verdict::domain::Timestamp)> = outbox::table
        .filter(outbox::subject.like("%item b %"))
        .select((outbox::status, outbox::attempts, outbox::next_attempt_at))
        .load(&mut app.db.connect())
        .unwrap();
    let later = verdict::domain::now() + chrono::Duration::minutes(30);
    assert!(
        matches!(rows.as_slice(), [(s, 0, next)] if s == "pending" && *next > later),
        "{rows:?}"
    );
    assert_eq!(outbox_pass(&app).await, Sent::default());
    assert_eq!(smtp.emails().len(), 1);
}

/// Open alerts as (kind, summary).
fn open_alerts(app: &TestApp) -> Vec<(String, String)> {
    alerts_table::table
        .filter(alerts_table::resolved_at.is_null())
        .order(alerts_table::kind)
        .select((alerts_table::kind, alerts_table::summary))
        .load(&mut app.db.connect())
        .unwrap()
}

async fn each_queue_rule_fires_once_and_resolves_when_its_condition_clears(backend: Backend) {
    // No model on disk: every item fails to score and waits for a human.
    let empty = tempfile::tempdir().unwrap();
    let Some(app) = spawn_without_jobs(
        backend,
        task(AutomationLevel::Full),
        Some(empty.path()),
        |s| {
            s.alerts.sla = SlaAlerts::Batched;
            s.alerts.backlog_items = Some(2);
            s.alerts.oldest_item_minutes = Some(30);
            s.alerts.error_rate = Some(0.5);
            s.alerts.error_rate_min_items = 3;
            s.alerts.error_rate_window_minutes = 60;
            s.alerts.dead_messages = Some(0);
        },
    )
    .await
    else {
        return;
    };
    for id in ["e1", "e2", "e3"] {
        let (status, doc) = app.submit(id, serde_json::json!({"x": 1.0})).await;
        assert_eq!(doc["reason"], "model_error", "{status} {doc}");
    }
    // Two of them are old and late.
    let past = verdict::domain::now() - chrono::Duration::minutes(45);
    diesel::update(items::table.filter(items::id.eq_any(["e1", "e2"])))
        .set((
            items::created_at.eq(past),
            items::sla_deadline.eq(Some(past)),
        ))
        .execute(&mut app.db.connect())
        .unwrap();
    // Backlog, error rate, oldest item and SLA fire.
    assert_eq!(app.monitor_pass().await, (4, 0));
    let open = open_alerts(&app);
    let kinds: Vec<&str> = open.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["backlog", "error_rate", "oldest_item", "sla_breach"]
    );
    assert_eq!(open[0].1, "3 items wait for a human");
    assert_eq!(open[1].1, "100.0% of items failed to score");
    // 45 minutes, or more on a slow machine.
    let age: i64 = open[2]
        .1
        .strip_prefix("the oldest waiting item is ")
        .and_then(|rest| rest.strip_suffix(" minutes old"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", open[2]));
    assert!(age >= 45, "{age}");
    assert_eq!(open[3].1, "2 items are past their SLA");

    // The old, late items are labelled: SLA, age and backlog clear.
    diesel::update(items::table.filter(items::id.eq_any(["e1", "e2"])))
        .set(items::review_state.eq("done"))
        .execute(&mut app.db.connect())
        .unwrap();
    assert_eq!(app.monitor_pass().await, (0, 3));
    let open = open_alerts(&app);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].0, "error_rate");
    // Another pass with the error rate still over: nothing new.
    assert_eq!(app.monitor_pass().await, (0, 0));
    let rows: Vec<(String, bool)> = alerts_table::table
        .order((alerts_table::kind, alerts_table::id))
        .select((alerts_table::kind, alerts_table::resolved_at.is_not_null()))
        .load(&mut app.db.connect())
        .unwrap();
    // Each rule raised one alert, however many passes saw it firing.
    assert_eq!(
        rows,
        [
            ("backlog".to_string(), true),
            ("error_rate".to_string(), false),
            ("oldest_item".to_string(), true),
            ("sla_breach".to_string(), true),
        ]
    );
}

const PASSWORD: &str = "a long passphrase";

/// An admin, signed in.
async fn admin(app: &TestApp) -> Browser {
    add_user(app, "ana", Role::Admin, &[]);
    let mut ana = Browser::new(app);
    assert_eq!(ana.sign_in("ana", PASSWORD).await.0, 303);
    ana
}

/// The alerts page as `browser` sees it.
async fn alerts_page(browser: &mut Browser) -> String {
    let (status, page, _) = browser.get("/admin/alerts").await;
    assert_eq!(status, 200, "{page}");
    page
}

/// The id of the alert about `subject` (an item, or `""`).
fn alert_id(app: &TestApp, subject: &str) -> i64 {
    alerts_table::table
        .filter(alerts_table::subject.eq(subject))
        .order(alerts_table::id.desc())
        .select(alerts_table::id)
        .first(&mut app.db.connect())
        .unwrap()
}

/// Who acknowledged each alert, by subject.
fn acknowledged(app: &TestApp) -> Vec<(String, Option<String>)> {
    alerts_table::table
        .order(alerts_table::subject)
        .select((alerts_table::subject, alerts_table::acknowledged_by))
        .load(&mut app.db.connect())
        .unwrap()
}

/// The audit log's entries of alert actions as (actor, action).
fn audited(app: &TestApp) -> Vec<(String, String)> {
    audit_log::table
        .filter(audit_log::action.like("alert.%"))
        .order(audit_log::id)
        .select((audit_log::actor, audit_log::action))
        .load(&mut app.db.connect())
        .unwrap()
}

/// Puts the end of every silence in the past, as if its period ran out.
fn expire_silences(app: &TestApp) {
    let past = verdict::domain::now() - chrono::Duration::minutes(1);
    diesel::update(alert_silences::table)
        .set(alert_silences::ends_at.eq(past))
        .execute(&mut app.db.connect())
        .unwrap();
}

/// A human-only app whose alerts mail a running SMTP server, without its
/// background jobs (the test runs their passes).
async fn human_only_with_mail(backend: Backend) -> Option<(SmtpServer, TestApp)> {
    let mut smtp = SmtpServer::new()?;
    smtp.start().await;
    let app = spawn_without_jobs(
        backend,
        task(AutomationLevel::HumanOnly),
        None,
        mail_settings(&smtp),
    )
    .await?;
    Some((smtp, app))
}

async fn an_acknowledged_alert_shows_who_and_when_and_is_not_mailed_again(backend: Backend) {
    let Some((smtp, app)) = human_only_with_mail(backend).await else {
        return;
    };
    for (i, id) in ["late-1", "late-2", "on-time"].iter().enumerate() {
        app.submit(id, row(i)).await;
    }
    breach_sla(&app, &["late-1"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    smtp.wait_for(1).await;

    let mut ana = admin(&app).await;
    let page = alerts_page(&mut ana).await;
    let id = alert_id(&app, "late-1");
    let action = format!("/admin/alerts/{id}/acknowledge");
    assert!(page.contains(&action), "{page}");
    let csrf = Browser::csrf(&page);
    let (status, _, location, _) = ana.post(&action, &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_deref()), (303, Some("/admin/alerts")));

    let page = alerts_page(&mut ana).await;
    assert!(
        page.contains("acknowledged by ana, <time title=\""),
        "{page}"
    );
    assert!(page.contains(">just now</time>"), "{page}");
    assert!(!page.contains(&action), "acknowledged once: {page}");
    assert_eq!(audited(&app), [("ana".into(), "alert.acknowledge".into())]);

    // It keeps firing: no email, however many passes see it.
    for _ in 0..2 {
        assert_eq!(app.monitor_pass().await, (0, 0));
    }
    assert_eq!(outbox_pass(&app).await, Sent::default());

    // An alert held back by a silence and acknowledged meanwhile is not
    // emailed when the silence ends.
    let csrf = Browser::csrf(&page);
    let (status, _, _, _) = ana
        .post(
            &format!("/admin/alerts/{id}/silence"),
            &[("csrf", &csrf), ("period", "1h"), ("scope", "kind")],
        )
        .await;
    assert_eq!(status, 303);
    breach_sla(&app, &["late-2"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, Sent::default());
    let id2 = alert_id(&app, "late-2");
    let (status, _, _, _) = ana
        .post(
            &format!("/admin/alerts/{id2}/acknowledge"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    // The API says who acknowledged each, and which was announced.
    let (status, body) = app
        .get(&format!("/api/v1/alerts?task={TASK}&state=open"))
        .await;
    assert_eq!(status, 200, "{body}");
    let by_id = |id: i64| {
        body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("alert {id} in {body}"))
    };
    let (first, second) = (by_id(id), by_id(id2));
    for alert in [&first, &second] {
        assert_eq!(alert["acknowledged_by"], "ana", "{alert}");
        let at = alert["acknowledged_at"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{alert}");
    }
    assert!(
        first["notified_at"].is_string(),
        "emailed when it fired: {first}"
    );
    assert!(
        second["notified_at"].is_null(),
        "held by the silence: {second}"
    );

    expire_silences(&app);
    assert_eq!(app.monitor_pass().await, (0, 0));
    assert_eq!(outbox_pass(&app).await, Sent::default());
    assert_eq!(smtp.emails().len(), 1);

    // It resolves as usual when its item is labelled, and says so (the
    // alert emailed when it fired; not the one nobody was emailed about).
    crate::outbox::decide(&app.store, "late-1", None).await;
    crate::outbox::decide(&app.store, "late-2", None).await;
    assert_eq!(app.monitor_pass().await, (0, 2));
    assert_eq!(outbox_pass(&app).await, sent(1));
    let emails = smtp.wait_for(2).await;
    assert!(
        emails.iter().any(|e| e.subject
            == format!("[verdict] resolved warning {TASK}: item late-1 is past its SLA")),
        "{emails:?}"
    );
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("Nothing is firing"), "{page}");
}

async fn a_silenced_kind_is_listed_but_not_mailed_until_the_silence_ends(backend: Backend) {
    let Some((smtp, app)) = human_only_with_mail(backend).await else {
        return;
    };
    for (i, id) in ["a", "b", "c"].iter().enumerate() {
        app.submit(id, row(i)).await;
    }
    breach_sla(&app, &["a"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    smtp.wait_for(1).await;

    // Silence late items in the task for four hours.
    let mut ana = admin(&app).await;
    let page = alerts_page(&mut ana).await;
    let csrf = Browser::csrf(&page);
    let silence = format!("/admin/alerts/{}/silence", alert_id(&app, "a"));
    assert!(page.contains(&silence), "{page}");
    let (status, _, location, _) = ana
        .post(
            &silence,
            &[
                ("csrf", &csrf),
                ("period", "4h"),
                ("scope", "kind"),
                ("reason", "reviewers are at the retreat"),
            ],
        )
        .await;
    assert_eq!((status, location.as_deref()), (303, Some("/admin/alerts")));
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("reviewers are at the retreat"), "{page}");
    assert!(page.contains("<td>ana</td>"), "{page}");
    assert!(
        page.contains(">in 3 h</time>"),
        "four hours, a moment less: {page}"
    );
    assert!(page.contains("/admin/alerts/silences/"), "{page}");

    // A new late item: recorded and shown as silenced, not emailed.
    breach_sla(&app, &["b"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, Sent::default());
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("silenced, ends <time"), "{page}");
    assert!(page.contains("2 items are past their deadline"), "{page}");

    // The period runs out: the one still firing is emailed, once.
    expire_silences(&app);
    assert_eq!(app.monitor_pass().await, (0, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    let emails = smtp.wait_for(2).await;
    assert!(
        emails.iter().any(
            |e| e.subject == format!("[verdict] FIRING warning {TASK}: item b is past its SLA")
        ),
        "{emails:?}"
    );
    assert_eq!(app.monitor_pass().await, (0, 0));
    assert_eq!(outbox_pass(&app).await, Sent::default());
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("No silence holds"), "{page}");
    assert!(!page.contains("silenced, ends"), "{page}");

    // Silenced again, then ended early with the button: mail resumes.
    let csrf = Browser::csrf(&page);
    let (status, _, _, _) = ana
        .post(&silence, &[("csrf", &csrf), ("period", "1w")])
        .await;
    assert_eq!(status, 303);
    breach_sla(&app, &["c"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    assert_eq!(outbox_pass(&app).await, Sent::default());
    let silence_id: i64 = alert_silences::table
        .order(alert_silences::id.desc())
        .select(alert_silences::id)
        .first(&mut app.db.connect())
        .unwrap();
    let (status, _, _, _) = ana
        .post(
            &format!("/admin/alerts/silences/{silence_id}/end"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(app.monitor_pass().await, (0, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    let emails = smtp.wait_for(3).await;
    assert!(
        emails
            .iter()
            .any(|e| e.subject.contains("item c is past its SLA")),
        "{emails:?}"
    );
    assert_eq!(
        audited(&app),
        [
            ("ana".into(), "alert.silence".into()),
            ("ana".into(), "alert.silence".into()),
            ("ana".into(), "alert.unsilence".into()),
        ]
    );
}

async fn a_tasks_late_items_are_one_row_and_one_email_per_pass(backend: Backend) {
    let Some((smtp, app)) = human_only_with_mail(backend).await else {
        return;
    };
    let ids: Vec<String> = (1..=8).map(|i| format!("late-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        app.submit(id, row(i)).await;
    }
    let first: Vec<&str> = ids[..6].iter().map(String::as_str).collect();
    breach_sla(&app, &first);

    // Six alerts, one email listing the six items with their links.
    assert_eq!(app.monitor_pass().await, (6, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    let emails = smtp.wait_for(1).await;
    assert_eq!(
        emails[0].subject,
        format!("[verdict] FIRING warning {TASK}: 6 items are past their deadline")
    );
    for id in &first {
        let link = format!("http://verdict.example:8080/admin/items/{TASK}/{id}");
        assert!(emails[0].text.contains(&link), "{}", emails[0].text);
    }

    // The page: one row for the task, the first items linked, all of them
    // behind a <details>.
    let mut ana = admin(&app).await;
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("1 firing"), "{page}");
    assert!(
        page.contains(&format!("6 items are past their deadline in {TASK}")),
        "{page}"
    );
    assert!(
        page.contains("<details class=\"items\"><summary>all 6 items</summary>"),
        "{page}"
    );
    for id in &first {
        let link = format!("href=\"/admin/items/{TASK}/{id}\"");
        assert!(page.contains(&link), "{page}");
    }
    assert_eq!(page.matches("/acknowledge\"").count(), 1, "{page}");

    // Two more late in the next pass: one email naming just those.
    breach_sla(&app, &["late-7", "late-8"]);
    assert_eq!(app.monitor_pass().await, (2, 0));
    assert_eq!(outbox_pass(&app).await, sent(1));
    let emails = smtp.wait_for(2).await;
    let second = emails
        .iter()
        .find(|e| e.subject.contains(": 2 items are past"))
        .unwrap_or_else(|| panic!("{emails:?}"));
    assert!(second.text.contains("/late-7") && second.text.contains("/late-8"));
    assert!(!second.text.contains("/late-1"), "{}", second.text);

    // Acknowledging the row acknowledges every item on it.
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("8 items are past their deadline"), "{page}");
    let at = page.find("/acknowledge\"").unwrap();
    let action = &page[page[..at].rfind("\"").unwrap() + 1..at + "/acknowledge".len()];
    let csrf = Browser::csrf(&page);
    assert_eq!(ana.post(action, &[("csrf", &csrf)]).await.0, 303);
    let acks = acknowledged(&app);
    assert_eq!(acks.len(), 8);
    assert!(
        acks.iter().all(|(_, by)| by.as_deref() == Some("ana")),
        "{acks:?}"
    );
    assert_eq!(audited(&app).len(), 1);

    // All labelled: one email says they are no longer late.
    diesel::update(items::table.filter(items::id.eq_any(&ids)))
        .set(items::review_state.eq("done"))
        .execute(&mut app.db.connect())
        .unwrap();
    assert_eq!(app.monitor_pass().await, (0, 8));
    assert_eq!(outbox_pass(&app).await, sent(1));
    let emails = smtp.wait_for(3).await;
    assert!(
        emails.iter().any(|e| e.subject
            == format!(
                "[verdict] resolved warning {TASK}: 8 items are no longer past their deadline"
            )),
        "{emails:?}"
    );
    let page = alerts_page(&mut ana).await;
    assert!(page.contains("8 items were past their deadline"), "{page}");
}

async fn acting_on_alerts_needs_an_admin_and_the_session_csrf_token(backend: Backend) {
    let Some(app) = spawn_without_jobs(backend, task(AutomationLevel::HumanOnly), None, |s| {
        s.alerts.sla = SlaAlerts::PerItem;
    })
    .await
    else {
        return;
    };
    app.submit("late", row(0)).await;
    breach_sla(&app, &["late"]);
    assert_eq!(app.monitor_pass().await, (1, 0));
    let id = alert_id(&app, "late");
    let mut ana = admin(&app).await;
    // One silence that holds, to try to end.
    let csrf = Browser::csrf(&alerts_page(&mut ana).await);
    let silence = format!("/admin/alerts/{id}/silence");
    assert_eq!(
        ana.post(&silence, &[("csrf", &csrf), ("period", "1d")])
            .await
            .0,
        303
    );
    let end = format!(
        "/admin/alerts/silences/{}/end",
        alert_silences::table
            .select(alert_silences::id)
            .first::<i64>(&mut app.db.connect())
            .unwrap()
    );
    let acknowledge = format!("/admin/alerts/{id}/acknowledge");

    // A reviewer, with her own session's valid token.
    add_user(&app, "rita", Role::Reviewer, &[TASK]);
    let mut rita = Browser::new(&app);
    rita.sign_in("rita", PASSWORD).await;
    let rita_csrf = Browser::csrf(&rita.get("/").await.1);
    assert_eq!(rita.get("/admin/alerts").await.0, 403);
    for (path, form) in [
        (&acknowledge, vec![("csrf", rita_csrf.as_str())]),
        (
            &silence,
            vec![("csrf", rita_csrf.as_str()), ("period", "1w")],
        ),
        (&end, vec![("csrf", rita_csrf.as_str())]),
    ] {
        assert_eq!(rita.post(path, &form).await.0, 403, "{path}");
    }
    // An admin's browser posting a form from elsewhere (no or a wrong token).
    let forged = "0".repeat(64);
    for (path, form) in [
        (&acknowledge, vec![("csrf", forged.as_str())]),
        (&silence, vec![("csrf", forged.as_str()), ("period", "1w")]),
        (&end, vec![("csrf", forged.as_str())]),
    ] {
        assert_eq!(ana.post(path, &form).await.0, 403, "{path}");
    }
    // Nothing changed: not acknowledged, one silence, still holding.
    assert_eq!(acknowledged(&app), [("late".to_string(), None)]);
    let silences: Vec<Option<String>> = alert_silences::table
        .select(alert_silences::ended_by)
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(silences, [None]);
    assert_eq!(audited(&app), [("ana".into(), "alert.silence".into())]);
    let page = alerts_page(&mut ana).await;
    assert!(page.contains(&acknowledge), "{page}");

    // The admin's own form: a period the page does not offer is refused.
    assert_eq!(
        ana.post(&silence, &[("csrf", &csrf), ("period", "1y")])
            .await
            .0,
        400
    );
    assert_eq!(
        ana.post("/admin/alerts/999999/acknowledge", &[("csrf", &csrf)])
            .await
            .0,
        404
    );
}

/// The error-rate rule reads at most a sample of the newest items of its
/// window (a busy task's window holds millions), human-only items left out.
async fn the_error_rate_reads_the_newest_items_of_its_window(backend: Backend) {
    use verdict::store::alerts::{scoring_errors, ScoringErrors};
    let Some(app) = spawn_without_jobs(backend, task(AutomationLevel::Full), None, |_| {}).await
    else {
        return;
    };
    for (i, id) in ["e1", "e2", "e3", "e4", "e5"].iter().enumerate() {
        assert_eq!(app.submit(id, row(i)).await.0, 201);
    }
    let now = verdict::domain::now();
    // e1 and e2 failed ten minutes ago; e5 went to a human without the model.
    for (id, minutes) in [("e1", 11), ("e2", 10)] {
        diesel::update(items::table.filter(items::id.eq(id)))
            .set((
                items::reason.eq(Some("model_error")),
                items::created_at.eq(now - chrono::Duration::minutes(minutes)),
            ))
            .execute(&mut app.db.connect())
            .unwrap();
    }
    let read = |since_minutes: i64, sample: i64| {
        let ScoringErrors { total, failed } = scoring_errors(
            &mut app.db.connect(),
            TASK,
            now - chrono::Duration::minutes(since_minutes),
            sample,
        )
        .unwrap();
        (total, failed)
    };
    assert_eq!(read(15, 10_000), (5, 2));
    assert_eq!(read(15, 3), (3, 0), "the newest three scored");
    assert_eq!(read(15, 4), (4, 1));
    assert_eq!(read(5, 10_000), (3, 0), "the window leaves the older out");
    diesel::update(items::table.filter(items::id.eq("e5")))
        .set(items::reason.eq(Some("human_only")))
        .execute(&mut app.db.connect())
        .unwrap();
    assert_eq!(read(15, 3), (3, 1), "e3, e4 and e2");
    assert_eq!(read(15, 10_000), (4, 2));
}
