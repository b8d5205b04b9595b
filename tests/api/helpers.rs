//! `spawn_app`: the real application on port 0 with its own database.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

use verdict::config::{Settings, TaskConfig};
use verdict::db::{self, DbConnection};
use verdict::domain::AutomationLevel;
use verdict::http::state::AppState;
use verdict::startup::Application;

pub const TASK: &str = "tumor-triage";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The PostgreSQL server tests use (`VERDICT_TEST_POSTGRES_URL`, default
/// `postgres://127.0.0.1:5432/test`).
pub fn postgres_admin_url() -> String {
    std::env::var("VERDICT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://127.0.0.1:5432/test".into())
}

/// A database of the test's own: a temporary SQLite file, or a fresh
/// PostgreSQL schema dropped at the end. `None` when PostgreSQL is not
/// reachable outside CI (with `CI` set that is a failure).
pub struct TestDb {
    pub url: String,
    schema: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: format!("sqlite://{}", dir.path().join("verdict.db").display()),
                schema: None,
                _dir: dir,
            }),
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let mut conn = match diesel::PgConnection::establish(&admin) {
                    Ok(conn) => conn,
                    Err(e) if std::env::var_os("CI").is_some() => {
                        panic!("CI is set and PostgreSQL at {admin} is unreachable: {e}")
                    }
                    Err(e) => {
                        eprintln!("skipping a PostgreSQL test: {admin} is unreachable ({e}); set CI to make this fail");
                        return None;
                    }
                };
                let schema = format!("t_{}", hex_id());
                conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .expect("create schema");
                let sep = if admin.contains('?') { '&' } else { '?' };
                Some(TestDb {
                    // Commits need not wait for the disk in tests.
                    url: format!(
                        "{admin}{sep}options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
                    ),
                    schema: Some(schema),
                    _dir: dir,
                })
            }
        }
    }

    /// A temporary directory of the test's own.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn connect(&self) -> DbConnection {
        db::establish(&verdict::config::DatabaseSettings {
            url: self.url.clone(),
            ..Default::default()
        })
        .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = &self.schema {
            if let Ok(mut conn) = diesel::PgConnection::establish(&postgres_admin_url()) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
            }
        }
    }
}

pub fn hex_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The demo task of the built-in configuration at `automation`, with no
/// audits and no description.
pub fn task(automation: AutomationLevel) -> TaskConfig {
    let demo = Settings::default().tasks.remove(0);
    assert_eq!(demo.name.as_str(), TASK);
    TaskConfig {
        description: String::new(),
        guidelines: String::new(),
        guidelines_file: None,
        label_definitions: Default::default(),
        automation,
        audit_rate: 0.0,
        ..demo
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    pub db: TestDb,
    /// The running app's own store: tests read and write through it as the
    /// app does (on SQLite, through its one writer).
    pub store: verdict::db::Db,
    /// The running app's own state: its `Db`, mailer and settings.
    pub state: actix_web::web::Data<AppState>,
}

/// Starts the app with `task` on `backend`, models from `models_dir`
/// (default: the repository's `models/`).
pub async fn spawn_with(
    backend: Backend,
    task: TaskConfig,
    models_dir: Option<&Path>,
) -> Option<TestApp> {
    spawn_configured(backend, task, models_dir, |_| {}).await
}

/// The settings of a test app on the database at `url`.
pub fn test_settings(url: &str, task: TaskConfig, models_dir: Option<&Path>) -> Settings {
    let mut settings = Settings::default();
    settings.server.port = 0;
    settings.server.workers = Some(2);
    settings.database.url = url.to_string();
    settings.database.pool_size = 8;
    settings.models.dir = models_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("models"));
    settings.tasks = vec![task];
    // Background jobs at test speed.
    settings.outbox.poll_ms = 50;
    settings.outbox.backoff_base_ms = 50;
    settings.outbox.backoff_max_ms = 200;
    settings.alerts.interval_ms = 500;
    settings.server.deployment_poll_ms = 200;
    settings
}

/// [`spawn_with`], with the settings changed by `configure` last.
pub async fn spawn_configured(
    backend: Backend,
    task: TaskConfig,
    models_dir: Option<&Path>,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_app(backend, task, models_dir, configure, true).await
}

/// [`spawn_configured`] without the outbox worker and the alert monitor:
/// the test runs their passes itself (`run_once`).
pub async fn spawn_without_jobs(
    backend: Backend,
    task: TaskConfig,
    models_dir: Option<&Path>,
    configure: impl FnOnce(&mut Settings),
) -> Option<TestApp> {
    spawn_app(backend, task, models_dir, configure, false).await
}

async fn spawn_app(
    backend: Backend,
    task: TaskConfig,
    models_dir: Option<&Path>,
    configure: impl FnOnce(&mut Settings),
    jobs: bool,
) -> Option<TestApp> {
    let db = TestDb::new(backend)?;
    let mut settings = test_settings(&db.url, task, models_dir);
    settings.datasets.dir = db.dir().join("datasets");
    configure(&mut settings);
    settings.validate().expect("valid test settings");
    let app = if jobs {
        Application::build(settings).await
    } else {
        Application::build_without_jobs(settings).await
    }
    .expect("the app starts");
    let state = app.state();
    let base = format!("http://127.0.0.1:{}", app.port());
    let token = app
        .initial_token
        .clone()
        .expect("a first token on a new database");
    let store = app.state().db.clone();
    actix_web::rt::spawn(app.run_until_stopped());
    Some(TestApp {
        base,
        // Idle connections are dropped before the server's keep-alive
        // (5 s) would close them under a request (a test may pause longer).
        client: reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
        token,
        db,
        store,
        state,
    })
}

pub async fn spawn(backend: Backend, automation: AutomationLevel) -> Option<TestApp> {
    spawn_with(backend, task(automation), None).await
}

/// The demo data set's rows as API inputs.
pub fn rows() -> Vec<Value> {
    let data = verdict::ml::train::read_dataset(
        &repo().join("data/breast_cancer.csv"),
        Some(&repo().join("data/breast_cancer.features.txt")),
        "label",
    )
    .expect("demo data");
    data.x
        .iter()
        .map(|row| {
            Value::Object(
                data.features
                    .iter()
                    .cloned()
                    .zip(row.iter().map(|&v| json!(v)))
                    .collect(),
            )
        })
        .collect()
}

pub fn row(i: usize) -> Value {
    rows().swap_remove(i)
}

impl TestApp {
    /// An alert monitor built from the running app's parts; each
    /// `run_once()` is one pass.
    pub fn alert_monitor(&self) -> verdict::alerts::AlertMonitor {
        verdict::alerts::AlertMonitor::new(
            self.state.db.clone(),
            verdict::alerts::AlertConfig::from_settings(&self.state.settings),
        )
    }

    /// One pass of an alert monitor built from the app's parts, which must
    /// apply its findings: (raised, resolved).
    pub async fn monitor_pass(&self) -> (usize, usize) {
        let pass = self
            .alert_monitor()
            .run_once()
            .await
            .expect("a monitor pass");
        assert!(pass.applied, "{pass:?}");
        (pass.raised, pass.resolved)
    }

    /// An outbox worker built from the running app's parts.
    pub fn outbox_worker(&self) -> verdict::outbox::OutboxWorker {
        verdict::outbox::OutboxWorker::new(
            self.state.db.clone(),
            self.state.mailer.clone(),
            verdict::outbox::OutboxConfig::from_settings(&self.state.settings),
        )
        .expect("an HTTP client")
    }

    pub fn items_url(&self) -> String {
        format!("{}/api/v1/tasks/{TASK}/items", self.base)
    }

    pub async fn post_raw(&self, url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self
            .client
            .post(url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, body: &Value) -> (u16, Value) {
        self.post_raw(&self.items_url(), body.to_string()).await
    }

    pub async fn submit(&self, id: &str, input: Value) -> (u16, Value) {
        self.post(&json!({"id": id, "input": input})).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `GET /metrics` (no scrape token): status and text.
    pub async fn metrics(&self) -> (u16, String) {
        self.metrics_with(None).await
    }

    /// `GET /metrics` with `token` as the bearer, if any.
    pub async fn metrics_with(&self, token: Option<&str>) -> (u16, String) {
        let mut request = self.client.get(format!("{}/metrics", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET /metrics");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Counts rows of `table` in the database, read directly.
    pub fn count(&self, table: &str) -> i64 {
        use diesel::prelude::*;
        use diesel::sql_types::BigInt;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let mut conn = self.db.connect();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<Count>(&mut conn)
            .expect("count")
            .n
    }
}

/// Runs each listed test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[actix_web::test]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Runs `command` with `input` on its standard input; returns its output.
pub fn run_with_input(command: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
