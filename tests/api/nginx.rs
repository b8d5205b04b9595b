//! Several instances behind a real load balancer: two `verdict serve`
//! processes on one PostgreSQL database behind nginx (Debian's package,
//! started here with `examples/nginx/verdict.conf` on loopback ports).
//! Sixteen reviewers through nginx never share an item; scoring through
//! nginx while one instance is killed loses no acknowledged item; the
//! background jobs carry on in the surviving instance, each result once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{repo, row, Backend, TestDb, TASK};
use crate::servers::{eventually, free_port, Receiver, Serve, SmtpServer};
use verdict::db::schema::{items, outbox, reviews};
use verdict::domain::Role;

/// nginx as a child process with its own prefix directory; stopped when
/// dropped.
pub struct Nginx {
    child: Child,
    pub base: String,
    dir: tempfile::TempDir,
}

/// Debian's nginx (`apt-get install nginx`); with `CI` set its absence
/// fails the test, otherwise the test skips.
fn nginx_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and nginx is missing: apt-get install nginx"
        );
        eprintln!("skipping a test: no nginx (apt-get install nginx); set CI to make this fail");
    }
    found
}

impl Nginx {
    /// nginx on a free loopback port in front of `upstreams` (ports), with
    /// the repository's example configuration.
    pub async fn start(upstreams: &[u16]) -> Option<Nginx> {
        let binary = nginx_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let example = std::fs::read_to_string(repo().join("examples/nginx/verdict.conf")).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n"))
            .collect();
        let mut site = String::new();
        let mut in_upstream = false;
        for line in example.lines() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("upstream verdict") {
                in_upstream = true;
                site.push_str(line);
                site.push('\n');
                site.push_str(&servers);
                continue;
            }
            if in_upstream && trimmed.starts_with("server ") {
                continue;
            }
            if trimmed.starts_with('}') {
                in_upstream = false;
            }
            if trimmed == "listen 80;" {
                site.push_str(&format!("    listen 127.0.0.1:{port};\n"));
                continue;
            }
            site.push_str(line);
            site.push('\n');
        }
        assert!(
            site.contains(&format!("listen 127.0.0.1:{port}")),
            "the example has `listen 80;`"
        );
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let d = dir.path().display();
        let config = format!(
            "{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             log_format upstream '$status $request_method $uri $upstream_addr';\n\
             access_log {d}/access.log upstream;\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             {site}}}\n",
            // As root nginx's workers would switch to nobody, who cannot
            // write into this test's directory.
            user = if root { "user root;\n" } else { "" },
        );
        std::fs::write(dir.path().join("nginx.conf"), &config).unwrap();
        let check = Command::new(&binary)
            .args(["-t", "-p"])
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "nginx -t: {}\n{config}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let base = format!("http://127.0.0.1:{port}");
        eventually("nginx answers", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        })
        .await;
        Some(Nginx { child, base, dir })
    }

    /// Requests each upstream address answered, from nginx's access log.
    pub fn served_by(&self) -> BTreeMap<String, usize> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let mut counts = BTreeMap::new();
        for line in log.lines() {
            if let Some(upstream) = line.splitn(4, ' ').nth(3) {
                // A retried request lists every upstream tried: the last answered.
                let last = upstream.rsplit(", ").next().unwrap_or(upstream);
                *counts.entry(last.to_string()).or_default() += 1;
            }
        }
        counts
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT would be graceful; a test's nginx has nothing to finish.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Items scored while an instance is killed; more than the backlog alert's
/// threshold, which only this phase crosses.
const SCORED: usize = 600;
const BACKLOG_ALERT: usize = 400;
/// The instance is killed once this many items are acknowledged.
const KILL_AFTER: usize = 150;
const REVIEWED: usize = 160;

#[actix_web::test]
async fn two_instances_behind_nginx_share_the_work_and_survive_losing_one() {
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    if nginx_binary().is_none() {
        return;
    }
    smtp.start().await;
    let receiver = Receiver::start(0);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("verdict.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
workers = 2
# As README "Running several instances" says: the proxy is trusted for
# the client's address (rate limits) and scheme.
trusted_proxies = ["127.0.0.1"]
trust_forwarded_proto = true

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "plain"
timeout_secs = 2

[mail]
from = "verdict <verdict@example.com>"
base_url = "http://verdict.example"
recipients = ["oncall@example.com"]

[outbox]
poll_ms = 100
backoff_base_ms = 100
backoff_max_ms = 500
lease_secs = 4
webhook_timeout_secs = 2

[alerts]
interval_ms = 200
backlog_items = {BACKLOG_ALERT}
oldest_item_minutes = 1000000
error_rate = 1.0
dead_messages = 1000000

[[tasks]]
name = "{TASK}"
automation = "human_only"
callback_url = "{callback}"
"#,
            smtp_port = smtp.port,
            callback = receiver.url,
        ),
    )
    .unwrap();
    let (mut first, token) = Serve::start(Some(&config), &db, true).await;
    let token = token.unwrap();
    let (second, _) = Serve::start(Some(&config), &db, false).await;
    let port_of = |s: &Serve| s.base.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let (first_port, second_port) = (port_of(&first), port_of(&second));
    let Some(nginx) = Nginx::start(&[first_port, second_port]).await else {
        return;
    };

    // 1. Sixteen reviewers, through nginx, label what a simulated client
    //    sends through nginx.
    verdict::accounts::add_user(
        &mut db.connect(),
        "sim-admin",
        "a long passphrase",
        Role::Admin,
        &[],
        "test",
    )
    .unwrap();
    let summary = crate::simulate::run_simulate(
        &nginx.base,
        &token,
        &[
            "--items",
            &REVIEWED.to_string(),
            "--rate",
            "200",
            "--reviewers",
            "16",
            "--review-seconds",
            "0.05",
        ],
    )
    .await;
    assert_eq!(summary["items"]["sent"], REVIEWED, "{summary:#}");
    assert_eq!(summary["errors"]["total"], 0, "{summary:#}");
    assert_eq!(summary["queue_left"], 0, "{summary:#}");
    let labels: Vec<(String, String)> = reviews::table
        .filter(reviews::task.eq(TASK))
        .select((reviews::item_id, reviews::reviewer))
        .load(&mut db.connect())
        .unwrap();
    let labelled: BTreeSet<&str> = labels.iter().map(|(id, _)| id.as_str()).collect();
    let reviewers: BTreeSet<&str> = labels.iter().map(|(_, r)| r.as_str()).collect();
    // One label per item: no item went to two reviewers.
    assert_eq!((labels.len(), labelled.len()), (REVIEWED, REVIEWED));
    assert!(reviewers.len() >= 8, "the work was shared: {reviewers:?}");
    let served = nginx.served_by();
    for port in [first_port, second_port] {
        let n = served
            .get(&format!("127.0.0.1:{port}"))
            .copied()
            .unwrap_or(0);
        assert!(n > 100, "both instances served requests: {served:?}");
    }
    // Every human verdict posted to the client once, before going on.
    receiver.wait_for(REVIEWED).await;
    let sent_count = || -> i64 {
        outbox::table
            .filter(outbox::status.eq("sent"))
            .filter(outbox::kind.eq("webhook"))
            .count()
            .get_result(&mut db.connect())
            .unwrap()
    };
    eventually("the webhooks are marked sent", || {
        (sent_count() == REVIEWED as i64).then_some(())
    })
    .await;
    assert!(
        smtp.emails().is_empty(),
        "no alert yet: {:?}",
        smtp.emails()
    );

    // 2. Scoring through nginx, eight clients at once; the first instance
    //    is killed (SIGKILL) once KILL_AFTER items are acknowledged.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (acked, next, retried, client) =
            (acked.clone(), next.clone(), retried.clone(), client.clone());
        let (url, token) = (
            format!("{}/api/v1/tasks/{TASK}/items", nginx.base),
            token.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= SCORED {
                    return;
                }
                let id = format!("lb{i:04}");
                let body = json!({"id": id, "input": row(i % 500)});
                // A client retries what got no 2xx, as clients of a
                // scoring API do (the same id and input are idempotent).
                for attempt in 0.. {
                    assert!(attempt < 20, "{id} never acknowledged");
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(response) = sent {
                        if response.status().is_success() {
                            let doc: Value = response.json().await.unwrap();
                            assert_eq!(doc["id"], id.as_str());
                            acked.lock().unwrap().push(id.clone());
                            break;
                        }
                    }
                    retried.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    eventually("enough items are acknowledged to kill an instance", || {
        (acked.lock().unwrap().len() >= KILL_AFTER).then_some(())
    })
    .await;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    let at_kill = acked.lock().unwrap().len();
    for c in clients {
        c.await.unwrap();
    }
    assert!(
        at_kill < BACKLOG_ALERT,
        "killed before the backlog alert's threshold"
    );
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), SCORED);
    let stored: BTreeSet<String> = items::table
        .filter(items::task.eq(TASK))
        .filter(items::id.like("lb%"))
        .select(items::id)
        .load(&mut db.connect())
        .unwrap()
        .into_iter()
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(stored.len(), SCORED);
    eprintln!(
        "killed after {at_kill} acknowledged; {} attempts retried by the clients; served: {:?}",
        retried.load(Ordering::SeqCst),
        nginx.served_by()
    );

    // 3. The background jobs carry on in the surviving instance: the
    //    backlog (crossed only after the kill) fires one alert, emailed
    //    once; new human verdicts are posted to the client once each.
    let emails = smtp.wait_for(1).await;
    assert!(
        emails[0].subject.contains("FIRING"),
        "{:?}",
        emails[0].subject
    );
    let more = 10;
    let store = crate::outbox::open(&db.url);
    for _ in 0..more {
        let claim = store
            .write(|conn| {
                verdict::review::claim_next(conn, TASK, "rita", verdict::review::DEFAULT_LEASE)
            })
            .await
            .unwrap()
            .expect("an item to claim");
        let rules = verdict::review::Rules {
            labels: vec!["malignant".into(), "benign".into()],
            reviews_required: 1,
            callback_url: Some(receiver.url.clone()),
        };
        store
            .write(move |conn| {
                verdict::review::submit(
                    conn,
                    TASK,
                    &rules,
                    &claim.item.id,
                    "rita",
                    &verdict::review::Label {
                        label: "benign".into(),
                        comment: None,
                        seconds_spent: Some(1.0),
                    },
                )
            })
            .await
            .unwrap();
    }
    receiver.wait_for(REVIEWED + more).await;
    eventually("the new webhooks are marked sent", || {
        (sent_count() == (REVIEWED + more) as i64).then_some(())
    })
    .await;
    // Time for a duplicate to show, were there one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.requests();
    let deliveries: BTreeSet<String> = got.iter().filter_map(|r| r.delivery.clone()).collect();
    assert_eq!(
        (got.len(), deliveries.len()),
        (REVIEWED + more, REVIEWED + more)
    );
    let firing = smtp
        .emails()
        .iter()
        .filter(|e| e.subject.contains("FIRING"))
        .count();
    assert_eq!(firing, 1, "{:?}", smtp.emails());
    drop(second);
}
