//! Alerts and their email, through a real SMTP server: an SLA breach
//! reaches the right people once when it fires and once when it resolves;
//! many at once go as a digest; a recipient's hourly limit holds the rest.

use diesel::prelude::*;

use crate::helpers::{row, spawn_without_jobs, task, Backend, TestApp, TASK};
use crate::servers::{Email, SmtpServer};
use verdict::config::{Settings, SlaAlerts, SmtpSecurity, SmtpSettings};
use verdict::db::schema::{alerts as alerts_table, items, outbox};
use verdict::domain::AutomationLevel;
use verdict::outbox::Pass as Sent;

crate::on_both_backends!(
    an_item_past_its_sla_emails_each_recipient_once_with_a_link_and_again_when_resolved,
    many_alerts_at_once_reach_a_recipient_as_one_digest,
    each_queue_rule_fires_once_and_resolves_when_its_condition_clears,
);

/// Mail through `smtp`; only the SLA rule on, one alert per item.
fn mail_settings(smtp: &SmtpServer) -> impl FnOnce(&mut Settings) {
    let port = smtp.port;
    move |s: &mut Settings| {
        s.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security: SmtpSecurity::Plain,
            username: None,
            password: None,
            timeout_secs: 5,
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
    let Some(app) = spawn_without_jobs(backend, task(AutomationLevel::HumanOnly), None, |s| {
        configure(s);
        s.mail.digest_after = 3;
    })
    .await
    else {
        return;
    };
    let ids = ["d1", "d2", "d3", "d4", "d5"];
    for (i, id) in ids.iter().enumerate() {
        app.submit(id, row(i)).await;
    }
    breach_sla(&app, &ids);

    assert_eq!(app.monitor_pass().await, (5, 0));
    assert_eq!(outbox_pass(&app).await, sent(5));
    let emails = smtp.wait_for(1).await;
    assert_eq!(emails[0].subject, "[verdict] 5 notifications");
    for id in ids {
        assert!(
            emails[0]
                .text
                .contains(&format!("item {id} is past its SLA")),
            "{}",
            emails[0].text
        );
    }
    // All five are marked sent by one delivery.
    let rows: Vec<(String, Option<String>)> = outbox::table
        .select((outbox::status, outbox::delivery))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(rows.len(), 5);
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
