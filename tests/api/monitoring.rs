//! Monitoring: the metrics store (minute buckets that add up across
//! instances and survive a restart) and `/metrics` (parsed by Prometheus'
//! own Python parser).

use serde_json::json;

use crate::helpers::{row, spawn, spawn_configured, task, test_settings, Backend, TestDb, TASK};
use crate::servers::Serve;
use verdict::domain::{AutomationLevel, MetricSeries};
use verdict::monitoring::MetricsFlusher;
use verdict::startup::Application;
use verdict::store::metrics as store;

crate::on_both_backends!(
    metrics_of_two_instances_add_up_in_the_store,
    metrics_parse_with_the_prometheus_parser_and_count_what_was_scored,
    hourly_slots_read_from_the_roll_up_equal_the_minutes_summed,
    human_labels_count_against_the_model_and_an_undo_takes_its_count_back,
);

/// Items of `task` the store counted, by outcome, over all time.
async fn stored_outcomes(db: &verdict::db::Db) -> std::collections::BTreeMap<String, i64> {
    db.read(|conn| {
        Ok::<_, verdict::db::DbError>(store::sums(
            conn,
            TASK,
            MetricSeries::Items,
            0,
            i64::MAX / 4,
            i64::MAX / 4,
        )?)
    })
    .await
    .unwrap()
    .into_iter()
    .fold(Default::default(), |mut by, s| {
        *by.entry(s.name).or_default() += s.count;
        by
    })
}

/// Adds minute buckets to the app's store, as a flush would.
async fn add_buckets(app: &crate::helpers::TestApp, rows: Vec<store::MetricRow>) {
    app.store
        .write(move |conn| Ok::<_, verdict::db::DbError>(store::add(conn, &rows)?))
        .await
        .unwrap();
}

async fn flush(app: &verdict::http::state::AppState) {
    MetricsFlusher::new(
        app.db.clone(),
        app.recorder.clone(),
        std::time::Duration::from_secs(1),
        30,
    )
    .flush()
    .await
    .expect("flush");
}

async fn metrics_of_two_instances_add_up_in_the_store(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let settings = test_settings(&db.url, task(AutomationLevel::Partial), None);
    let first = Application::build_without_jobs(settings.clone())
        .await
        .unwrap();
    let token = first.initial_token.clone().unwrap();
    let second = Application::build_without_jobs(settings).await.unwrap();
    let (a, b) = (first.state(), second.state());
    let bases = [first.port(), second.port()].map(|p| format!("http://127.0.0.1:{p}"));
    actix_web::rt::spawn(first.run_until_stopped());
    actix_web::rt::spawn(second.run_until_stopped());
    let client = reqwest::Client::new();
    for i in 0..30 {
        let base = &bases[i % 2];
        let status = client
            .post(format!("{base}/api/v1/tasks/{TASK}/items"))
            .bearer_auth(&token)
            .json(&json!({"id": format!("m-{i}"), "input": row(i)}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    // A repeated id creates nothing and counts nothing.
    client
        .post(format!("{}/api/v1/tasks/{TASK}/items", bases[1]))
        .bearer_auth(&token)
        .json(&json!({"id": "m-0", "input": row(0)}))
        .send()
        .await
        .unwrap();
    flush(&a).await;
    flush(&b).await;
    // Flushing again adds nothing: what was taken is gone from memory.
    flush(&a).await;
    let by = stored_outcomes(&a.db).await;
    assert_eq!(by.values().sum::<i64>(), 30, "{by:?}");
    let queued_in_db =
        a.db.read(|conn| {
            use diesel::prelude::*;
            use verdict::db::schema::items;
            Ok::<_, verdict::db::DbError>(
                items::table
                    .filter(items::status.eq(verdict::domain::ItemStatus::Queued))
                    .count()
                    .get_result::<i64>(conn)?,
            )
        })
        .await
        .unwrap();
    assert_eq!(
        by.get("queued").copied().unwrap_or(0) + by.get("failed").copied().unwrap_or(0),
        queued_in_db
    );
    // Every item's total latency was observed once, on one instance or the other.
    let stages =
        a.db.read(|conn| {
            Ok::<_, verdict::db::DbError>(store::sums(
                conn,
                TASK,
                MetricSeries::Stage,
                0,
                i64::MAX / 4,
                i64::MAX / 4,
            )?)
        })
        .await
        .unwrap();
    let total: i64 = stages
        .iter()
        .filter(|s| s.name == "total")
        .map(|s| s.count)
        .sum();
    let buckets: i64 = stages
        .iter()
        .filter(|s| s.name == "total")
        .flat_map(|s| s.buckets)
        .sum();
    assert_eq!((total, buckets), (30, 30));
}

/// Parses `text` with `prometheus_client`'s parser (Debian's
/// python3-prometheus-client) and returns `family sample{labels} value`
/// lines, sorted.
fn parse_with_prometheus_client(text: &str) -> Option<Vec<String>> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{family.type} {s.name}{{{labels}}} {s.value}")
"#;
    let python = crate::servers::python_with("prometheus_client", "python3-prometheus-client")?;
    let out = crate::helpers::run_with_input(
        std::process::Command::new(python).args(["-c", script]),
        text.as_bytes(),
    );
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    Some(lines)
}

async fn metrics_parse_with_the_prometheus_parser_and_count_what_was_scored(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    for i in 0..12 {
        assert_eq!(app.submit(&format!("p-{i}"), row(i)).await.0, 201);
    }
    let (status, _) = app.submit("bad", json!({"mean_radius": "x"})).await;
    assert_eq!(status, 400);
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    assert!(!text.contains("p-1"), "no item ids in labels");
    let Some(samples) = parse_with_prometheus_client(&text) else {
        return;
    };
    let value = |prefix: &str| -> f64 {
        samples
            .iter()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(value("counter verdict_items_total{"), 12.0, "{samples:#?}");
    assert_eq!(
        value("counter verdict_requests_rejected_total{code=wrong_type,task=tumor-triage}"),
        1.0,
        "{samples:#?}"
    );
    assert_eq!(
        value("histogram verdict_stage_seconds_count{stage=total,task=tumor-triage}"),
        12.0
    );
    assert_eq!(
        value("histogram verdict_stage_seconds_bucket{le=+Inf,stage=model,task=tumor-triage}"),
        12.0
    );
    assert_eq!(
        value("gauge verdict_queue_depth{task=tumor-triage}"),
        app.count("items") as f64
            - value("counter verdict_items_total{model_version=v1,outcome=automated")
    );
    assert_eq!(value("gauge verdict_alerts_firing{kind=data_drift}"), 0.0);
    assert!(value("gauge process_resident_memory_bytes{}") > 1e6);
    assert!(value("gauge process_start_time_seconds{}") > 1.7e9);
}

#[actix_web::test]
async fn metrics_ask_for_the_scrape_token_when_one_is_set() {
    let secret = "scrape-token-0123456789";
    let Some(app) = spawn_configured(Backend::Sqlite, task(AutomationLevel::Partial), None, |s| {
        s.monitoring.metrics_token = Some(secret.into())
    })
    .await
    else {
        return;
    };
    assert_eq!(app.metrics().await.0, 401);
    assert_eq!(
        app.metrics_with(Some("wrong-token-0123456789")).await.0,
        401
    );
    // The scoring API's token is not the scrape token.
    assert_eq!(app.metrics_with(Some(&app.token)).await.0, 401);
    assert_eq!(app.metrics_with(Some(secret)).await.0, 200);
}

#[actix_web::test]
async fn counted_metrics_survive_a_restart() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let (mut serve, token) = Serve::start(None, &db, true).await;
    let token = token.unwrap();
    let client = reqwest::Client::new();
    for i in 0..25 {
        let status = client
            .post(format!("{}/api/v1/tasks/{TASK}/items", serve.base))
            .bearer_auth(&token)
            .json(&json!({"id": format!("r-{i}"), "input": row(i)}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }
    // A stop (SIGTERM) flushes what the last interval counted; closing our
    // keep-alive connection first lets the server stop at once.
    drop(client);
    // SAFETY: signalling our own child process.
    assert_eq!(
        unsafe { libc::kill(serve.child.id() as i32, libc::SIGTERM) },
        0
    );
    let exit = serve.child.wait().unwrap();
    assert!(
        exit.success(),
        "verdict serve stops cleanly on SIGTERM: {exit:?}"
    );
    let (restarted, _) = Serve::start(None, &db, false).await;
    drop(restarted);
    let store = verdict::db::Db::open(&verdict::config::DatabaseSettings {
        url: db.url.clone(),
        ..Default::default()
    })
    .unwrap();
    let by = stored_outcomes(&store).await;
    assert_eq!(by.values().sum::<i64>(), 25, "{by:?}");
}

/// The demo data's first row with `mean_radius` far beyond its training
/// maximum (27.4).
fn far_out() -> serde_json::Value {
    let mut input = row(0);
    input["mean_radius"] = json!(60.0);
    input
}

#[actix_web::test]
async fn an_item_outside_the_training_range_goes_to_a_human_and_says_which_feature() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Full).await else {
        return;
    };
    let (status, doc) = app.submit("far", far_out()).await;
    assert_eq!(status, 201, "{doc}");
    assert_eq!(doc["status"], "queued", "{doc}");
    assert_eq!(doc["reason"], "out_of_distribution");
    assert_eq!(doc["out_of_range"], json!(["mean_radius"]));
    // Just inside the margin (10% of the range beyond the maximum) is fine.
    let mut near = row(0);
    near["mean_radius"] = json!(28.0);
    let (_, doc) = app.submit("near", near).await;
    assert_eq!(doc["status"], "decided", "{doc}");
    assert!(doc.get("out_of_range").is_none(), "{doc}");
}

#[actix_web::test]
async fn flagging_lets_the_policy_decide_and_marks_the_item() {
    let mut config = task(AutomationLevel::Full);
    config.out_of_range = verdict::domain::OutOfRange::Flag;
    let Some(app) = crate::helpers::spawn_with(Backend::Sqlite, config, None).await else {
        return;
    };
    let (_, doc) = app.submit("far", far_out()).await;
    assert_eq!(doc["status"], "decided", "{doc}");
    assert_eq!(doc["out_of_range"], json!(["mean_radius"]));
    app.submit("in", row(1)).await;
    let (_, metrics) = app.metrics().await;
    assert!(
        metrics.contains(r#"verdict_item_flags_total{task="tumor-triage",model_version="v1",flag="out_of_distribution"} 1"#),
        "{metrics}"
    );
}

#[actix_web::test]
async fn the_monitoring_api_reports_what_was_scored_over_the_range() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    for i in 0..40 {
        app.submit(&format!("a-{i}"), row(i)).await;
    }
    flush(&app.state).await;
    let (status, report) = app
        .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
        .await;
    assert_eq!(status, 200, "{report}");
    let software = &report["software"];
    assert_eq!(software["items"], 40, "{report}");
    let outcomes = ["automated", "queued", "failed"].map(|k| software[k].as_u64().unwrap());
    assert_eq!(outcomes.iter().sum::<u64>(), 40);
    assert_eq!(
        software["queue_depth"].as_u64().unwrap(),
        outcomes[1] + outcomes[2]
    );
    let total = software["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "total")
        .unwrap();
    assert_eq!(total["count"], 40);
    assert!(total["p99_ms"].as_f64().unwrap() > 0.0);
    let slots = software["series"].as_array().unwrap();
    assert!((50..=101).contains(&slots.len()), "{}", slots.len());
    let in_slots: u64 = slots
        .iter()
        .map(|s| {
            ["automated", "queued", "failed"]
                .map(|k| s[k].as_u64().unwrap())
                .iter()
                .sum::<u64>()
        })
        .sum();
    assert_eq!(in_slots, 40);
    let labels: u64 = report["output"]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(labels, 40);
    let shares: f64 = report["output"]["confidence"]["current"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-9);

    // A range before anything happened is empty, not an error.
    let (_, empty) = app
        .get(&format!(
            "/api/v1/tasks/{TASK}/monitoring?since=2020-01-01T00:00:00Z&until=2020-01-01T01:00:00Z"
        ))
        .await;
    assert_eq!(empty["software"]["items"], 0, "{empty}");
    for (query, field) in [
        ("since=yesterday", "since"),
        ("span=year", "span"),
        (
            "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since",
        ),
        ("span=hour&span=day", "span"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = app
            .get(&format!("/api/v1/tasks/{TASK}/monitoring?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = app.get("/api/v1/tasks/nope/monitoring").await;
    assert_eq!(status, 404);
    let (status, alerts) = app
        .get(&format!("/api/v1/alerts?task={TASK}&state=open"))
        .await;
    assert_eq!(status, 200, "{alerts}");
    assert!(alerts["alerts"].is_array());
    assert_eq!(app.get("/api/v1/alerts?state=maybe").await.0, 400);
}

#[actix_web::test]
async fn a_slow_p99_for_five_minutes_raises_an_alert() {
    let Some(app) = crate::helpers::spawn_without_jobs(
        Backend::Sqlite,
        task(AutomationLevel::Partial),
        None,
        |_| {},
    )
    .await
    else {
        return;
    };
    let now = verdict::monitoring::recorder::current_minute();
    // 200 items a minute, 3 of them (1.5%) slower than a second: the p99
    // is in the slow bucket.
    let rows = |minutes: std::ops::Range<i64>| -> Vec<store::MetricRow> {
        minutes
            .map(|m| {
                let mut buckets = [0i64; store::BUCKETS];
                buckets[9] = 197;
                buckets[19] = 3;
                store::MetricRow {
                    task: TASK.into(),
                    minute: now - m,
                    series: MetricSeries::Stage,
                    name: "total".into(),
                    model_version: "v1".into(),
                    count: 200,
                    total: 3.5,
                    buckets,
                }
            })
            .collect()
    };
    // Four slow minutes are not yet five.
    let four = rows(1..5);
    add_buckets(&app, four).await;
    app.monitor_pass().await;
    let (_, alerts) = app
        .get(&format!("/api/v1/alerts?task={TASK}&state=open"))
        .await;
    assert!(!alerts.to_string().contains("p99_latency"), "{alerts}");
    let fifth = rows(5..6);
    add_buckets(&app, fifth).await;
    app.monitor_pass().await;
    let (_, alerts) = app
        .get(&format!("/api/v1/alerts?task={TASK}&state=open"))
        .await;
    let p99 = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "p99_latency");
    let p99 = p99.unwrap_or_else(|| panic!("{alerts}"));
    assert_eq!(p99["numbers"]["minutes"], 5, "{p99}");
}

#[actix_web::test]
async fn buckets_older_than_the_retention_are_deleted() {
    let Some(app) = spawn(Backend::Sqlite, AutomationLevel::Partial).await else {
        return;
    };
    let now = verdict::monitoring::recorder::current_minute();
    let row = |minute: i64| store::MetricRow {
        task: TASK.into(),
        minute,
        series: MetricSeries::Items,
        name: "automated".into(),
        model_version: "v1".into(),
        count: 1,
        total: 0.0,
        buckets: [0; store::BUCKETS],
    };
    let rows = vec![row(now - 31 * 24 * 60), row(now - 29 * 24 * 60)];
    add_buckets(&app, rows).await;
    let flusher = MetricsFlusher::new(
        app.store.clone(),
        app.state.recorder.clone(),
        std::time::Duration::from_secs(1),
        30,
    );
    assert_eq!(flusher.prune().await.unwrap(), 1);
    assert_eq!(
        stored_outcomes(&app.store).await.values().sum::<i64>(),
        1,
        "the newer minute stays"
    );
}

/// Slots of whole hours are read from `metric_hours` (and the minutes at
/// the range's ends); they must equal the minute rows summed by hand, for
/// a range that starts and ends mid-hour.
async fn hourly_slots_read_from_the_roll_up_equal_the_minutes_summed(backend: Backend) {
    let Some(app) = spawn(backend, AutomationLevel::Partial).await else {
        return;
    };
    let start = 29_000_000; // a minute since the epoch, at 17 past an hour
    let start = start - start % 60 + 17;
    let minutes: Vec<i64> = (0..600).map(|k| start + k).collect();
    let row = |minute: i64| {
        let mut buckets = [0; store::BUCKETS];
        buckets[(minute % 7) as usize] = 1 + minute % 3;
        store::MetricRow {
            task: TASK.into(),
            minute,
            series: MetricSeries::Stage,
            name: "total".into(),
            model_version: "v1".into(),
            count: 1 + minute % 3,
            total: 0.001 * (minute % 5) as f64,
            buckets,
        }
    };
    // Two instances' flushes add up in both tables.
    add_buckets(&app, minutes.iter().map(|&m| row(m)).collect()).await;
    add_buckets(&app, minutes.iter().map(|&m| row(m)).collect()).await;
    let (from, to) = (start + 25, start + 530);
    for width in [60, 120, 360] {
        let got = app
            .store
            .read(move |conn| {
                Ok::<_, verdict::db::DbError>(store::sums(
                    conn,
                    TASK,
                    MetricSeries::Stage,
                    from,
                    to,
                    width,
                )?)
            })
            .await
            .unwrap();
        let origin = store::slot_origin(from, width);
        assert_eq!(origin % 60, 0);
        let mut expected: std::collections::BTreeMap<i64, (i64, f64, [i64; store::BUCKETS])> =
            Default::default();
        for m in (from..to).filter(|m| minutes.contains(m)) {
            let r = row(m);
            let e = expected
                .entry(origin + (m - origin) / width * width)
                .or_insert((0, 0.0, [0; store::BUCKETS]));
            e.0 += 2 * r.count;
            e.1 += 2.0 * r.total;
            for (a, b) in e.2.iter_mut().zip(r.buckets) {
                *a += 2 * b;
            }
        }
        assert_eq!(got.len(), expected.len(), "width {width}");
        for (s, (slot, (count, total, buckets))) in got.iter().zip(&expected) {
            assert_eq!(
                (s.slot, s.count, s.buckets),
                (*slot, *count, *buckets),
                "width {width}"
            );
            assert!((s.total - total).abs() < 1e-9, "width {width}");
        }
    }
}

/// A reviewer's label counts against the model's in the agreement buckets
/// (what the dashboard's agreement chart reads), blind audits apart, and an
/// undo takes the count back.
async fn human_labels_count_against_the_model_and_an_undo_takes_its_count_back(backend: Backend) {
    use verdict::review::{self, Label, Rules};
    let Some(app) = spawn(backend, AutomationLevel::Assist).await else {
        return;
    };
    let rules = Rules {
        labels: vec!["malignant".into(), "benign".into()],
        reviews_required: 1,
        callback_url: None,
    };
    let mut predicted = Vec::new();
    for i in 0..6 {
        let id = format!("g-{i}");
        let (status, doc) = app.submit(&id, row(i)).await;
        assert_eq!(status, 201, "{doc}");
        predicted.push(doc["prediction"]["label"].as_str().unwrap().to_string());
    }
    let mut agreed = 0;
    for _ in 0..predicted.len() {
        let claim = app
            .store
            .write(|conn| review::claim_next(conn, TASK, "rita", review::DEFAULT_LEASE))
            .await
            .unwrap()
            .expect("an item to review");
        let i: usize = claim.item.id.trim_start_matches("g-").parse().unwrap();
        // Agree with the model on even items, disagree on odd ones.
        let label = if i % 2 == 0 {
            predicted[i].clone()
        } else if predicted[i] == "benign" {
            "malignant".to_string()
        } else {
            "benign".to_string()
        };
        agreed += usize::from(i % 2 == 0);
        let (rules, id) = (rules.clone(), claim.item.id.clone());
        let label = Label {
            label,
            comment: None,
            seconds_spent: Some(2.0),
        };
        app.store
            .write(move |conn| review::submit(conn, TASK, &rules, &id, "rita", &label))
            .await
            .unwrap();
    }
    let assisted = |report: &serde_json::Value| {
        let a = &report["concept"]["assisted"];
        (
            a["reviewed"].as_u64().unwrap(),
            a["agreed"].as_u64().unwrap(),
        )
    };
    let (status, report) = app
        .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        assisted(&report),
        (6, agreed as u64),
        "{}",
        report["concept"]
    );
    assert_eq!(report["concept"]["blind"]["reviewed"], 0);
    // The week's view reads the hourly roll-up: the same counts.
    let (_, week) = app
        .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=week"))
        .await;
    assert_eq!(assisted(&week), (6, agreed as u64), "{}", week["concept"]);
    let undone = app
        .store
        .write(|conn| review::undo_last(conn, TASK, "rita", review::DEFAULT_LEASE))
        .await
        .unwrap();
    let last: usize = undone.trim_start_matches("g-").parse().unwrap();
    let (_, report) = app
        .get(&format!("/api/v1/tasks/{TASK}/monitoring?span=hour"))
        .await;
    let left = agreed as u64 - u64::from(last % 2 == 0);
    assert_eq!(assisted(&report), (5, left), "{}", report["concept"]);

    // A database from before the roll-ups: its migration counts the
    // reviews already stored.
    app.store
        .write(|conn| -> Result<(), verdict::db::DbError> {
            // Back to before the roll-ups' migration (and any newer one).
            while verdict::db::revert_last_migration(conn).unwrap() != "20261129000010" {}
            Ok(())
        })
        .await
        .unwrap();
    // The report also reads what later migrations added (the alerts'
    // acknowledgements), so on this schema look at the buckets themselves.
    let before: i64 = {
        use diesel::prelude::*;
        use verdict::db::schema::metric_minutes;
        metric_minutes::table
            .filter(metric_minutes::series.eq("agreement"))
            .count()
            .get_result(&mut app.db.connect())
            .unwrap()
    };
    assert_eq!(before, 0, "no agreement buckets before the roll-ups");
    app.store
        .write(|conn| -> Result<(), verdict::db::DbError> {
            verdict::db::run_migrations(conn).unwrap();
            Ok(())
        })
        .await
        .unwrap();
    for span in ["hour", "week"] {
        let (_, after) = app
            .get(&format!("/api/v1/tasks/{TASK}/monitoring?span={span}"))
            .await;
        assert_eq!(assisted(&after), (5, left), "{span}: {}", after["concept"]);
    }
}
