//! The alert monitor: a job that evaluates the rules every
//! `alerts.interval_ms`, in every instance (on PostgreSQL an advisory lock
//! lets one apply at a time).

use std::sync::Arc;

use super::{apply, measure, AlertConfig, AlertError, Pass};
use crate::db::Db;

/// The monitor job: the database and what the rules read of the settings.
pub struct AlertMonitor {
    db: Db,
    config: Arc<AlertConfig>,
}

impl AlertMonitor {
    pub fn new(db: Db, config: AlertConfig) -> Self {
        AlertMonitor {
            db,
            config: Arc::new(config),
        }
    }

    /// One pass: measures on a reading connection (on SQLite the counts
    /// never hold up the one writer), then applies in a write transaction.
    #[tracing::instrument(name = "alert_monitor", skip_all)]
    pub async fn run_once(&self) -> Result<Pass, AlertError> {
        let config = self.config.clone();
        let findings = self
            .db
            .read(move |conn| Ok::<_, AlertError>(measure(conn, &config)?))
            .await?;
        let config = self.config.clone();
        self.db
            .write(move |conn| Ok::<_, AlertError>(apply(conn, &config, &findings)?))
            .await
    }

    /// Runs a pass every `alerts.interval_ms` until the runtime stops.
    pub async fn run_until_stopped(self) {
        let every = std::time::Duration::from_millis(self.config.rules.interval_ms);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, code = e.code(), "alert monitor pass failed");
            }
            tokio::time::sleep(every).await;
        }
    }
}
