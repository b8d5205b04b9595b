//! Building and running the application: the listener is bound first so
//! tests can start the real app on port 0.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{web, App};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::db::Db;
use crate::http::state::AppState;
use crate::tasks::{DeploymentFollower, Registry};
use crate::tokens::{self, TokenCache};

/// HTTP workers when the configuration names none: one per core, less the
/// core SQLite's writer thread needs (on two cores one HTTP worker gives
/// twice the throughput of two, which starve the writer).
fn default_workers(backend: &crate::domain::Backend) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if backend.is_sqlite() {
        cores.saturating_sub(1).max(1)
    } else {
        cores
    }
}

/// Start-up warnings for escalation settings that are valid but likely
/// not meant.
fn warn_about_escalations(settings: &Settings) {
    let anyone_to_tell = !settings.mail.recipients.is_empty()
        || !settings.mail.severity_recipients.is_empty()
        || settings
            .tasks
            .iter()
            .any(|t| !t.alert_recipients.is_empty());
    match (&settings.smtp, anyone_to_tell) {
        (None, true) => {
            tracing::warn!("alert recipients are configured but no [smtp]: alerts are not emailed")
        }
        (Some(_), false) => {
            tracing::warn!("[smtp] is configured but no alert recipients (mail.recipients)")
        }
        _ => {}
    }
    for task in &settings.tasks {
        if task.callback_url.is_some() && task.callback_secret.is_none() {
            tracing::warn!(
                task = task.name.as_str(),
                "callback_url without a secret: webhooks go unsigned (set {})",
                crate::config::callback_secret_var(task.name.as_str())
            );
        }
    }
}

/// How often the lease reaper looks for leases that ended long ago.
const LEASE_REAPER_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The thread and runtime the background jobs run on: one worker thread,
/// and the runtime's blocking threads for their database reads, each at
/// `nice` (Linux: a thread's own priority; elsewhere the jobs run at the
/// server's). When the machine is busy the HTTP workers and the writer
/// run first; a job's pass takes longer, which none of them minds.
struct Background {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Background {
    fn start(nice: i32) -> anyhow::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("verdict-jobs")
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the background jobs' runtime: {e}"))?;
        Ok(Background {
            runtime: Some(runtime),
        })
    }

    fn spawn<F>(&self, job: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(job);
        }
    }
}

impl Drop for Background {
    /// Drops the jobs where they wait (an application stopped inside
    /// another runtime, as in tests, must not block on them).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Lowers the calling thread's CPU priority to `nice` (0 leaves it).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    // SAFETY: plain system calls on the calling thread's own id; on Linux
    // the nice value is a per-thread attribute.
    let done = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if done != 0 {
        tracing::warn!(
            nice,
            error = %std::io::Error::last_os_error(),
            "cannot lower the background jobs' priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    /// Stopped (its jobs dropped) with the application.
    _background: Background,
    /// The API token created at the first start of an empty database; shown
    /// once.
    pub initial_token: Option<String>,
    /// The password of the `admin` user created at the first start of an
    /// empty database; shown once.
    pub initial_admin_password: Option<String>,
}

impl Application {
    /// Opens the database (running migrations), loads tasks and models,
    /// binds the listener and builds the server; does not run it yet.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with(settings, true).await
    }

    /// [`Application::build`] without the outbox worker and the alert
    /// monitor: for tests that run those jobs' passes themselves
    /// (`run_once`), which the app's own would race.
    pub async fn build_without_jobs(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with(settings, false).await
    }

    async fn build_with(settings: Settings, jobs: bool) -> anyhow::Result<Application> {
        let open_settings = settings.clone();
        let (db, tasks, initial_token, initial_admin_password) =
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let db = Db::open(&open_settings.database).map_err(anyhow::Error::msg)?;
                let mut conn = db.get()?;
                let tasks = Registry::load(&open_settings, &mut conn)?;
                let initial_token = if tokens::count(&mut conn)? == 0 {
                    Some(tokens::create(&mut conn, "default", "verdict")?)
                } else {
                    None
                };
                let initial_admin_password = crate::accounts::ensure_first_admin(&mut conn)?;
                Ok((db, tasks, initial_token, initial_admin_password))
            })
            .await??;

        let listener = TcpListener::bind((settings.server.bind.as_str(), settings.server.port))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}:{}: {e}",
                    settings.server.bind,
                    settings.server.port
                )
            })?;
        let port = listener.local_addr()?.port();
        let workers = settings
            .server
            .workers
            .unwrap_or_else(|| default_workers(db.backend()));
        let mailer = match &settings.smtp {
            Some(smtp) => Some(std::sync::Arc::new(crate::mail::Mailer::new(
                smtp,
                &settings.mail.from,
            )?)),
            None => None,
        };
        warn_about_escalations(&settings);
        let scoring = crate::scoring::ScoreStore::grouped(
            &db,
            crate::db::GroupSettings {
                threads: settings.database.group_writers,
                max_jobs: settings.database.max_batch_jobs,
            },
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        let state = web::Data::new(AppState {
            db,
            scoring,
            tasks: std::sync::Arc::new(tasks),
            recorder: std::sync::Arc::new(crate::monitoring::Recorder::new(
                settings.monitoring.enabled,
            )),
            tokens: TokenCache::default(),
            limits: std::sync::Arc::new(crate::rate_limits::Limiter::new(&settings.rate_limits)),
            mailer,
            settings,
        });
        // The background jobs run on a runtime of their own, at a lower CPU
        // priority than the HTTP workers and the writer: a drift pass
        // parses every item scored since the last (50,000 at 10,000/s
        // every 5 s), and on a small machine that burst delayed requests.
        let background = Background::start(state.settings.server.background_nice)?;
        // Background jobs: the outbox worker, the alert monitor and the
        // lease reaper run in every instance; claims (outbox), an advisory
        // lock (monitor) and conditional updates (reaper) keep instances
        // from doing the same work twice. Every instance follows the
        // deployments.
        if jobs {
            let worker = crate::outbox::OutboxWorker::new(
                state.db.clone(),
                state.mailer.clone(),
                crate::outbox::OutboxConfig::from_settings(&state.settings),
            )?;
            background.spawn(worker.run_until_stopped());
            let monitor = crate::alerts::AlertMonitor::new(
                state.db.clone(),
                crate::alerts::AlertConfig::from_settings(&state.settings),
            );
            background.spawn(monitor.run_until_stopped());
            if state.settings.monitoring.enabled {
                let drift = crate::monitoring::drift::DriftMonitor::new(
                    state.db.clone(),
                    state.tasks.clone(),
                    state.settings.monitoring.clone(),
                    crate::alerts::AlertConfig::from_settings(&state.settings),
                );
                background.spawn(drift.run_until_stopped());
            }
            let reaper = crate::review::LeaseReaper {
                db: state.db.clone(),
                every: LEASE_REAPER_EVERY,
            };
            background.spawn(reaper.run_until_stopped());
            let guard = crate::lifecycle::CandidateGuard {
                db: state.db.clone(),
                tasks: state.settings.tasks.clone(),
                alerts: crate::alerts::AlertConfig::from_settings(&state.settings),
                every: std::time::Duration::from_millis(state.settings.alerts.interval_ms),
            };
            background.spawn(guard.run_until_stopped());
            let runner = crate::batch::jobs::JobRunner::new(
                state.db.clone(),
                state.recorder.clone(),
                state.tasks.clone(),
                state.settings.jobs.clone(),
            );
            background.spawn(runner.run_until_stopped());
        }
        // Every instance adds its request counts to the shared rate limits
        // and reads back every instance's totals.
        background.spawn(
            crate::rate_limits::RateSync::new(
                state.db.clone(),
                state.limits.clone(),
                std::time::Duration::from_millis(state.settings.rate_limits.sync_ms),
            )
            .run_until_stopped(),
        );
        // Every instance adds its own counts to the metrics store.
        background.spawn(
            crate::monitoring::MetricsFlusher::new(
                state.db.clone(),
                state.recorder.clone(),
                std::time::Duration::from_millis(state.settings.monitoring.flush_ms),
                state.settings.monitoring.retention_days,
            )
            .run_until_stopped(),
        );
        background.spawn(
            DeploymentFollower::new(
                state.db.clone(),
                state.tasks.clone(),
                std::time::Duration::from_millis(state.settings.server.deployment_poll_ms),
            )
            .run_until_stopped(),
        );
        let app_state = state.clone();
        let server = crate::http::front::serve(listener, workers, move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    crate::http::middleware::respond,
                ))
                .wrap(TracingLogger::default())
                .app_data(app_state.clone())
                .configure(crate::http::configure)
        })?;
        Ok(Application {
            port,
            server,
            state,
            _background: background,
            initial_token,
            initial_admin_password,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops (a signal, or its handle), then adds
    /// the metrics counted since the last flush to the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let flusher = crate::monitoring::MetricsFlusher::new(
            self.state.db.clone(),
            self.state.recorder.clone(),
            std::time::Duration::from_secs(1),
            self.state.settings.monitoring.retention_days,
        );
        if let Err(e) = flusher.flush().await {
            tracing::error!(error = %e, "the last metrics flush failed");
        }
        served
    }
}
