//! Real servers the escalation tests talk to: an SMTP server (Python's
//! aiosmtpd writing a Maildir) and a webhook receiver (a small actix app).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// Generous bound for anything the tests wait for.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `f` until it returns `Some`, or panics after [`PATIENCE`].
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Python interpreter that can import `module`: `VERDICT_TEST_PYTHON`,
/// `python3` or Debian's `/usr/bin/python3` (`apt-get install {package}`).
/// With `CI` set its absence fails the test; otherwise the test skips.
pub fn python_with(module: &str, package: &str) -> Option<String> {
    let candidates = std::env::var("VERDICT_TEST_PYTHON")
        .into_iter()
        .chain(["python3".to_string(), "/usr/bin/python3".to_string()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and no python3 with {module} was found: apt-get install {package}");
    }
    eprintln!("skipping a test: no python3 with {module} (apt-get install {package}); set CI to make this fail");
    None
}

/// One email as the SMTP server stored it.
#[derive(Debug, Clone)]
pub struct Email {
    pub subject: String,
    pub to: String,
    /// The whole message, quoted-printable soft breaks and escapes undone.
    pub text: String,
}

/// An SMTP server on 127.0.0.1 that can be stopped and started again on
/// the same port; what it receives lands in a Maildir.
pub struct SmtpServer {
    pub port: u16,
    python: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl SmtpServer {
    /// An SMTP server not yet started; `None` when aiosmtpd is missing
    /// (outside CI).
    pub fn new() -> Option<SmtpServer> {
        Some(SmtpServer {
            port: free_port(),
            python: python_with("aiosmtpd", "python3-aiosmtpd")?,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        })
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&mut self) {
        self.start_with(&[]).await
    }

    /// Starts the server with more of aiosmtpd's options (e.g. its TLS
    /// certificate and key).
    pub async fn start_with(&mut self, options: &[&std::ffi::OsStr]) {
        assert!(self.child.is_none(), "already started");
        let child = Command::new(&self.python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.maildir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        self.child = Some(child);
        let port = self.port;
        eventually("the SMTP server accepts connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("Maildir")
    }

    /// Every email received so far, oldest first.
    pub fn emails(&self) -> Vec<Email> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir().join(sub)).ok())
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort_by_key(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::SystemTime::UNIX_EPOCH)
        });
        files.iter().map(|p| parse(p)).collect()
    }

    /// Waits until at least `n` emails arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Email> {
        eventually(&format!("{n} emails"), || {
            let emails = self.emails();
            (emails.len() >= n).then_some(emails)
        })
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(path: &Path) -> Email {
    let raw = std::fs::read_to_string(path).unwrap().replace("\r\n", "\n");
    let (head, _) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    // Unfold continued header lines.
    let head = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Email {
        subject: header("Subject"),
        to: header("To"),
        text: decode_quoted_printable(&raw),
    }
}

fn decode_quoted_printable(s: &str) -> String {
    let s = s.replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub delivery: Option<String>,
    pub body: String,
}

/// A webhook receiver on port 0 that answers 500 to its first `failures`
/// requests and 200 after.
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<Mutex<usize>>,
}

impl Receiver {
    pub fn start(failures: usize) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Default::default();
        let failures = Arc::new(Mutex::new(failures));
        let (r, f) = (received.clone(), failures.clone());
        let server = HttpServer::new(move || {
            let (r, f) = (r.clone(), f.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: String| {
                let (r, f) = (r.clone(), f.clone());
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_string())
                    };
                    r.lock().unwrap().push(Received {
                        signature: header("verdict-signature"),
                        delivery: header("verdict-delivery"),
                        body,
                    });
                    let mut left = f.lock().unwrap();
                    if *left > 0 {
                        *left -= 1;
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::Ok().finish()
                    }
                }
            }))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/verdict"),
            received,
            failures,
        }
    }

    /// From now on answer 200 (or 500 to the next `n`).
    pub fn fail_next(&self, n: usize) {
        *self.failures.lock().unwrap() = n;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} webhook requests"), || {
            let got = self.requests();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// `verdict serve` as a child process, killed (SIGKILL) when dropped.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Serve {
    /// Starts `verdict serve` on a free port against `db` (with `config`,
    /// else the built-in configuration) and waits until it answers. With
    /// `first` (a new database) it also returns the API token printed once.
    pub async fn start(
        config: Option<&Path>,
        db: &crate::helpers::TestDb,
        first: bool,
    ) -> (Serve, Option<String>) {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_verdict"));
        command.args(["serve", "--port", &port.to_string()]);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .current_dir(crate::helpers::repo())
            .env("VERDICT_DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start verdict serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + PATIENCE;
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "verdict did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // A first start prints the API token; later ones print none (the
        // reader then ends with the process).
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::{BufRead, BufReader};
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|l| l.trim().starts_with("vdt_").then(|| l.trim().to_string()))
        });
        let token = first.then(|| reader.join().unwrap().expect("the token is printed"));
        (Serve { child, base }, token)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
