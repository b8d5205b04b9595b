//! The lease reaper: clears the leases reviewers left to expire.

use std::time::Duration;

use crate::db::{Db, DbError};
use crate::domain::now;
use crate::store::queue as store;

/// How long an expired lease keeps its owner before the reaper clears it.
///
/// A claim works without the reaper: an expired lease frees the item for
/// the next claim whatever it records. But the owner recorded on an expired
/// lease is what tells a reviewer who comes back late "your claim expired"
/// ([`ReviewError::LeaseExpired`](super::ReviewError::LeaseExpired)) rather
/// than "you hold no claim" (`NotClaimed`), so the reaper leaves it for this
/// long after the lease ended.
pub const REAP_GRACE: chrono::Duration = chrono::Duration::minutes(10);

/// A job: every `every`, clears the owner and expiry of the leases that
/// ended more than [`REAP_GRACE`] ago, so the queue's figures and pages
/// show no one holding an item nobody works on. Knows nothing of actix;
/// startup spawns [`run_until_stopped`](Self::run_until_stopped), tests call
/// [`run_once`](Self::run_once).
#[derive(Clone)]
pub struct LeaseReaper {
    pub db: Db,
    pub every: Duration,
}

impl LeaseReaper {
    /// One pass; returns how many leases it cleared. The expired leases are
    /// found on a reading connection (a scan of `items`, kept out of the
    /// single writer), then cleared by key through [`Db::write`], each only
    /// if it still ended before the cut-off (a claim or renewal in between
    /// wins).
    #[tracing::instrument(name = "lease_reaper", skip_all)]
    pub async fn run_once(&self) -> Result<usize, DbError> {
        let before = now() - REAP_GRACE;
        let ended = self
            .db
            .read(move |conn| Ok::<_, DbError>(store::leases_ended_before(conn, before)?))
            .await?;
        if ended.is_empty() {
            return Ok(0);
        }
        self.db
            .write(move |conn| {
                Ok::<_, DbError>(store::clear_leases_ended_before(conn, &ended, before)?)
            })
            .await
    }

    /// Runs a pass every `every`, for ever; a failed pass is logged and the
    /// next one tries again.
    pub async fn run_until_stopped(self) {
        let mut every = tokio::time::interval(self.every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self.run_once().await {
                Ok(0) => {}
                Ok(cleared) => tracing::info!(cleared, "lease reaper cleared expired leases"),
                Err(e) => tracing::error!(error = %e, "lease reaper pass failed"),
            }
        }
    }
}
