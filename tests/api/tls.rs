//! TLS to the outside: the mail server over STARTTLS and implicit TLS,
//! and webhooks to an `https://` receiver, each with a certificate made
//! here by `openssl` and signed by a private CA. Trusted through
//! `smtp.ca_file` / `outbox.webhook_ca_file` they are delivered; without
//! it nothing is sent and the message waits in the outbox with the reason.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use diesel::prelude::*;

use crate::helpers::{row, spawn_without_jobs, task, Backend, TestApp};
use crate::outbox::decide;
use crate::servers::{eventually, free_port, python_with, SmtpServer};
use verdict::config::{Settings, SmtpSecurity, SmtpSettings};
use verdict::db::schema::outbox;
use verdict::domain::{AutomationLevel, OutboxKind};
use verdict::outbox::NewMessage;

/// A private CA and a server certificate it signed for 127.0.0.1 and
/// localhost, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// `None` outside CI when `openssl` is missing.
    fn new() -> Option<Pki> {
        if Command::new("openssl").arg("version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and openssl is missing: apt-get install openssl"
            );
            eprintln!("skipping a test: no openssl");
            return None;
        }
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        pki.openssl(&[
            &["req", "-x509"],
            &ec[..],
            &["-nodes", "-days", "2"],
            &[
                "-subj",
                "/CN=verdict test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]);
        pki.openssl(&[
            &["req"],
            &ec[..],
            &["-nodes"],
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]);
        std::fs::write(
            pki.path("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        pki.openssl(&[&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]]);
        Some(pki)
    }

    fn openssl(&self, parts: &[&[&str]]) {
        let out = Command::new("openssl")
            .args(parts.concat())
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {:?}: {}",
            parts.concat(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }
}

/// Mail through `smtp` with `security`, trusting `ca` when given.
fn mail_over_tls(
    smtp: &SmtpServer,
    security: SmtpSecurity,
    ca: Option<PathBuf>,
) -> impl FnOnce(&mut Settings) {
    let port = smtp.port;
    move |s: &mut Settings| {
        s.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            security,
            username: None,
            password: None,
            timeout_secs: 5,
            ca_file: ca,
        });
        s.outbox.backoff_base_ms = 1;
        s.outbox.backoff_max_ms = 1;
    }
}

/// An email in the outbox, due now.
fn enqueue_email(app: &TestApp, subject: &str) {
    let mut conn = app.db.connect();
    verdict::outbox::enqueue(
        &mut conn,
        &NewMessage {
            kind: OutboxKind::Email,
            destination: "oncall@example.com",
            task: None,
            subject,
            body: "sent over TLS",
            html: None,
            dedupe_key: None,
        },
    )
    .unwrap();
}

/// The outbox's messages of `kind`: (status, attempts, last error).
fn stored(app: &TestApp, kind: &str) -> Vec<(String, i32, Option<String>)> {
    outbox::table
        .filter(outbox::kind.eq(kind))
        .order(outbox::id)
        .select((outbox::status, outbox::attempts, outbox::last_error))
        .load(&mut app.db.connect())
        .unwrap()
}

async fn pass(app: &TestApp) -> verdict::outbox::Pass {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    app.outbox_worker()
        .run_once()
        .await
        .expect("an outbox pass")
}

/// One mode: an untrusted server gets nothing and the email waits with
/// the reason; trusted through `smtp.ca_file`, the same email arrives.
async fn email_over(security: SmtpSecurity, server_options: &[&str]) {
    let Some(pki) = Pki::new() else { return };
    let Some(mut smtp) = SmtpServer::new() else {
        return;
    };
    let options: Vec<PathBuf> = server_options.iter().map(|o| pki.path(o)).collect();
    let args: Vec<&OsStr> = server_options
        .iter()
        .zip(&options)
        .map(|(flag, path)| {
            if flag.starts_with("--") {
                OsStr::new(*flag)
            } else {
                path.as_os_str()
            }
        })
        .collect();
    smtp.start_with(&args).await;

    // Without the CA: refused by the certificate check, kept to retry.
    let untrusted = spawn_without_jobs(
        Backend::Sqlite,
        task(AutomationLevel::Assist),
        None,
        mail_over_tls(&smtp, security, None),
    )
    .await
    .expect("a SQLite app");
    enqueue_email(&untrusted, "untrusted");
    let p = pass(&untrusted).await;
    assert_eq!((p.sent, p.failed), (0, 1), "{p:?}");
    let [(status, attempts, error)] = &stored(&untrusted, "email")[..] else {
        panic!("one email")
    };
    assert_eq!((status.as_str(), *attempts), ("pending", 1));
    let error = error.as_deref().unwrap_or_default();
    assert!(
        error.to_lowercase().contains("certificate"),
        "the reason names the certificate: {error}"
    );
    assert!(
        smtp.emails().is_empty(),
        "nothing reached an untrusted server"
    );

    // With the CA: delivered, over TLS (the STARTTLS server refuses mail
    // before the upgrade; the implicit one speaks nothing but TLS).
    let trusted = spawn_without_jobs(
        Backend::Sqlite,
        task(AutomationLevel::Assist),
        None,
        mail_over_tls(&smtp, security, Some(pki.ca())),
    )
    .await
    .expect("a SQLite app");
    enqueue_email(&trusted, "trusted");
    let p = pass(&trusted).await;
    assert_eq!(p.sent, 1, "{p:?} {:?}", stored(&trusted, "email"));
    let emails = smtp.wait_for(1).await;
    assert_eq!(emails[0].subject, "trusted");
    assert!(emails[0].text.contains("sent over TLS"));
}

#[actix_web::test]
async fn email_goes_over_starttls_to_a_server_the_private_ca_signed() {
    email_over(
        SmtpSecurity::Starttls,
        &["--tlscert", "server.pem", "--tlskey", "server.key"],
    )
    .await
}

#[actix_web::test]
async fn email_goes_over_implicit_tls_to_a_server_the_private_ca_signed() {
    email_over(
        SmtpSecurity::Tls,
        &["--smtpscert", "server.pem", "--smtpskey", "server.key"],
    )
    .await
}

/// An `https://` webhook receiver (Python's http.server behind its ssl
/// module): each request's path, signature header and body as a JSON
/// line in a file.
struct HttpsReceiver {
    url: String,
    log: PathBuf,
    child: Child,
}

const RECEIVER: &str = r#"
import http.server, json, ssl, sys
port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "signature": self.headers.get("Verdict-Signature"), "body": body}) + "\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", port), Hook)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

impl HttpsReceiver {
    async fn start(pki: &Pki) -> Option<HttpsReceiver> {
        let python = python_with("ssl", "python3")?;
        let port = free_port();
        let log = pki.path("hooks.jsonl");
        let child = Command::new(python)
            .args(["-c", RECEIVER, &port.to_string()])
            .args([pki.path("server.pem"), pki.path("server.key"), log.clone()])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the https receiver");
        eventually("the https receiver accepts connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
        Some(HttpsReceiver {
            url: format!("https://127.0.0.1:{port}/verdicts"),
            log,
            child,
        })
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        read_lines(&self.log)
    }
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A task whose human verdicts go to `url`, signed.
fn https_task(url: &str) -> verdict::config::TaskConfig {
    let mut t = task(AutomationLevel::Assist);
    t.callback_url = Some(url.into());
    t.callback_secret = Some("tls hook secret".into());
    t
}

#[actix_web::test]
async fn a_verdict_is_posted_to_an_https_receiver_the_private_ca_signed() {
    let Some(pki) = Pki::new() else { return };
    let Some(receiver) = HttpsReceiver::start(&pki).await else {
        return;
    };
    let ca = pki.ca();
    let app = spawn_without_jobs(Backend::Sqlite, https_task(&receiver.url), None, |s| {
        s.outbox.backoff_base_ms = 1;
        s.outbox.backoff_max_ms = 1;
    })
    .await
    .expect("a SQLite app");
    let (status, body) = app.submit("tls-1", row(3)).await;
    assert!(status < 300, "{body}");
    decide(&app.store, "tls-1", Some(receiver.url.clone())).await;

    // Mozilla's roots do not know the private CA: not sent, kept to retry.
    let p = pass(&app).await;
    assert_eq!((p.sent, p.failed), (0, 1), "{p:?}");
    let [(status, attempts, error)] = &stored(&app, "webhook")[..] else {
        panic!("one webhook")
    };
    assert_eq!((status.as_str(), *attempts), ("pending", 1));
    assert!(
        error.as_deref().unwrap_or_default().contains("certificate"),
        "the reason names the certificate: {error:?}"
    );
    assert!(receiver.requests().is_empty());

    // The same app's outbox, with the CA trusted: delivered and signed.
    let mut config = verdict::outbox::OutboxConfig::from_settings(&app.state.settings);
    config.outbox.webhook_ca_file = Some(ca);
    let worker =
        verdict::outbox::OutboxWorker::new(app.state.db.clone(), None, config).expect("a client");
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let p = worker.run_once().await.expect("an outbox pass");
    assert_eq!(p.sent, 1, "{p:?} {:?}", stored(&app, "webhook"));
    let got = receiver.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["path"], "/verdicts");
    let body = got[0]["body"].as_str().unwrap();
    let signature = got[0]["signature"].as_str().expect("signed");
    let now = chrono::Utc::now().timestamp();
    assert!(verdict::webhooks::verify(
        "tls hook secret",
        signature,
        body,
        now,
        300
    ));
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(doc["id"], "tls-1");
}

#[actix_web::test]
async fn a_ca_file_without_a_certificate_is_refused_when_the_worker_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let mut settings = Settings::default();
    settings.outbox.webhook_ca_file = Some(not_pem.clone());
    let db = crate::outbox::open(&format!("sqlite://{}", dir.path().join("v.db").display()));
    let config = verdict::outbox::OutboxConfig::from_settings(&settings);
    let error = verdict::outbox::OutboxWorker::new(db, None, config)
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("holds no PEM certificate"),
        "{error}"
    );
    settings.outbox.webhook_ca_file = Some(dir.path().join("missing.pem"));
    let smtp = SmtpSettings {
        host: "127.0.0.1".into(),
        port: 25,
        security: SmtpSecurity::Starttls,
        username: None,
        password: None,
        timeout_secs: 5,
        ca_file: Some(dir.path().join("missing.pem")),
    };
    let error = verdict::mail::Mailer::new(&smtp, "verdict <v@example.com>")
        .err()
        .expect("refused");
    assert!(error.to_string().contains("cannot read"), "{error}");
}
