//! The server under test: `verdict serve` as a child process on a port of
//! its own, killed with SIGKILL when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};

pub(super) struct Server {
    pub(super) child: Child,
    pub(super) base: String,
    pub(super) token: Option<String>,
}

impl Drop for Server {
    /// A bench that stops early must not leave its server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(super) async fn start_server(
    url: &str,
    synchronous: &str,
    monitoring: bool,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string()])
        .env("VERDICT_DATABASE_URL", url)
        .env("VERDICT_DB_SYNCHRONOUS", synchronous)
        .env("VERDICT_MONITORING", if monitoring { "on" } else { "off" })
        // VERDICT_BENCH_LOG: the server's log filter (say
        // `warn,verdict::db=debug` to see slow commits and WAL rewinds).
        .env(
            "RUST_LOG",
            std::env::var("VERDICT_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start verdict serve")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(tokio::process::ChildStdout::from_std(stdout)?).lines();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut token = None;
    loop {
        if Instant::now() > deadline {
            bail!("the server did not become ready in 60 s");
        }
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_millis(50), lines.next_line()).await
        {
            if let Some(t) = line.trim().strip_prefix("vdt_") {
                token = Some(format!("vdt_{t}"));
            }
            continue;
        }
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
    }
    // The token may still sit in the pipe when readiness answers first.
    while token.is_none() {
        match tokio::time::timeout(Duration::from_secs(2), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if let Some(t) = line.trim().strip_prefix("vdt_") {
                    token = Some(format!("vdt_{t}"));
                }
            }
            _ => break,
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, base, token })
}
