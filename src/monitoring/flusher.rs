//! The metrics flusher: adds what the recorder counted to the database
//! every few seconds, through the writer, off the scoring path; and once an
//! hour deletes buckets older than the retention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::{Db, DbError};
use crate::store::metrics as store;

use super::recorder::{current_minute, Recorder};

/// How often old buckets are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The first deletion waits this long after start, out of start-up's way.
const FIRST_PRUNE: Duration = Duration::from_secs(60);

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Rows added to the database.
    pub rows: usize,
    /// Old rows deleted.
    pub pruned: usize,
}

/// A job: every `every`, the recorder's pending counts go to the database
/// in one write transaction; if that fails they go back to the recorder
/// for the next pass, so nothing counted is lost while the process lives.
pub struct MetricsFlusher {
    pub db: Db,
    pub recorder: Arc<Recorder>,
    pub every: Duration,
    pub retention_days: u32,
    next_prune: Instant,
}

impl MetricsFlusher {
    pub fn new(db: Db, recorder: Arc<Recorder>, every: Duration, retention_days: u32) -> Self {
        MetricsFlusher {
            db,
            recorder,
            every,
            retention_days,
            next_prune: Instant::now() + FIRST_PRUNE,
        }
    }

    /// One pass: flush, and prune once an hour (the first a minute after
    /// start).
    #[tracing::instrument(name = "metrics_flusher", skip_all)]
    pub async fn run_once(&mut self) -> Result<Flushed, DbError> {
        let rows = self.flush().await?;
        let pruned = if Instant::now() >= self.next_prune {
            self.next_prune = Instant::now() + PRUNE_EVERY;
            self.prune().await?
        } else {
            0
        };
        Ok(Flushed { rows, pruned })
    }

    /// Deletes minute buckets and drift evaluations older than the
    /// retention; returns how many rows went.
    pub async fn prune(&self) -> Result<usize, DbError> {
        let minute = current_minute() - i64::from(self.retention_days) * 24 * 60;
        let before = crate::domain::now() - chrono::Duration::days(i64::from(self.retention_days));
        self.db
            .write(move |conn| {
                let buckets = store::prune(conn, minute)?;
                let evaluations = crate::store::monitoring::prune_evaluations(conn, before)?;
                Ok::<_, DbError>(buckets + evaluations)
            })
            .await
    }

    /// Adds the pending counts to the database; returns the rows written.
    pub async fn flush(&self) -> Result<usize, DbError> {
        let rows = self.recorder.take();
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        let rows = Arc::new(rows);
        let written = rows.clone();
        match self
            .db
            .write(move |conn| Ok::<_, DbError>(store::add(conn, &written)?))
            .await
        {
            Ok(()) => Ok(n),
            Err(e) => {
                self.recorder.restore(&rows);
                Err(e)
            }
        }
    }

    /// Runs a pass every `every`, for ever; a failed pass is logged and the
    /// next one tries again with what it could not write.
    pub async fn run_until_stopped(mut self) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.run_once().await {
                Ok(Flushed { pruned: 0, .. }) => {}
                Ok(Flushed { pruned, .. }) => tracing::info!(pruned, "old metric buckets deleted"),
                Err(e) => {
                    tracing::error!(error = %e, "metrics flush failed; kept for the next pass")
                }
            }
        }
    }
}
