//! The outbox worker: a job that claims due messages, sends them and
//! records the outcome, in every instance (claims keep two instances from
//! sending one message).

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;

use super::deliver::{DeliveryError, Job};
use super::{record_failure, Message, OutboxConfig, OutboxError, Pass};
use crate::db::Db;
use crate::domain::now;
use crate::mail::Mailer;
use crate::store::outbox as store;

/// Messages one pass claims at most.
const CLAIM_BATCH: usize = 100;

/// Why the webhooks' HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `outbox.webhook_ca_file` cannot be read or holds no certificate.
    #[error("outbox.webhook_ca_file: {0}")]
    Ca(String),
    #[error("the HTTP client for webhooks: {0}")]
    Http(#[from] reqwest::Error),
}

/// The worker job: the database, the mail server (when configured), an
/// HTTP client for webhooks, and what it reads of the settings.
pub struct OutboxWorker {
    db: Db,
    mailer: Option<Arc<Mailer>>,
    http: reqwest::Client,
    config: Arc<OutboxConfig>,
    /// Whom this worker's claims name: random, one per worker.
    owner: String,
}

impl OutboxWorker {
    /// A worker whose webhook requests time out after
    /// `outbox.webhook_timeout_secs`.
    pub fn new(
        db: Db,
        mailer: Option<Arc<Mailer>>,
        config: OutboxConfig,
    ) -> Result<Self, ClientError> {
        let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(
            config.outbox.webhook_timeout_secs,
        ));
        if let Some(path) = &config.outbox.webhook_ca_file {
            let pem = crate::crypto::read_ca_file(path).map_err(ClientError::Ca)?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)? {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build()?;
        Ok(OutboxWorker {
            db,
            mailer,
            http,
            config: Arc::new(config),
            owner: crate::crypto::random_token()[..16].to_string(),
        })
    }

    /// Runs passes until the runtime stops: at once again after a full
    /// claim (more may be due), else after `outbox.poll_ms`.
    pub async fn run_until_stopped(self) {
        let poll = std::time::Duration::from_millis(self.config.outbox.poll_ms);
        loop {
            match self.run_once().await {
                Ok(pass) if pass.claimed >= CLAIM_BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, code = e.code(), "outbox pass failed"),
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// One pass: claims up to a batch of due messages and delivers them.
    #[tracing::instrument(name = "outbox_worker", skip_all)]
    pub async fn run_once(&self) -> Result<Pass, OutboxError> {
        let lease_secs = self.config.outbox.lease_secs;
        let lease = Duration::seconds(lease_secs as i64);
        // A read first: an idle outbox costs no write transaction.
        if !self
            .db
            .read(|conn| Ok::<_, OutboxError>(store::any_due(conn)?))
            .await?
        {
            return Ok(Pass::default());
        }
        let who = self.owner.clone();
        let claimed_at = Instant::now();
        let claimed = self
            .db
            .write(move |conn| {
                Ok::<_, OutboxError>(store::claim(conn, &who, lease, CLAIM_BATCH as i64)?)
            })
            .await?;
        let mut pass = Pass {
            claimed: claimed.len(),
            ..Pass::default()
        };
        let mut jobs = Job::plan(claimed).into_iter();
        while let Some(job) = jobs.next() {
            // A send may take up to its timeout, which validation keeps under
            // half the lease: past half the lease, give the rest back rather
            // than send after another instance may have claimed it.
            if claimed_at.elapsed() > std::time::Duration::from_secs(lease_secs) / 2 {
                let rest: Vec<i64> = std::iter::once(job)
                    .chain(jobs)
                    .flat_map(|j| j.ids())
                    .collect();
                pass.postponed += self.postpone(rest, now()).await?;
                break;
            }
            pass += match job {
                Job::Webhook(message) => {
                    let started = Instant::now();
                    let secret = message
                        .task
                        .as_deref()
                        .and_then(|t| self.config.callback_secrets.get(t));
                    let outcome =
                        crate::webhooks::send(&self.http, &message, secret.map(String::as_str))
                            .await
                            .map_err(DeliveryError::from);
                    self.finish(vec![message.id], outcome, started).await?
                }
                Job::Emails(destination, group) => self.send_emails(destination, group).await?,
            };
        }
        Ok(pass)
    }

    /// Sends the emails claimed for one recipient: held back over the hourly
    /// limit, one digest when there are enough, else one by one.
    async fn send_emails(
        &self,
        destination: String,
        group: Vec<Message>,
    ) -> Result<Pass, OutboxError> {
        let ids: Vec<i64> = group.iter().map(|m| m.id).collect();
        let Some(mailer) = &self.mailer else {
            let outcome = Err(DeliveryError::NoMailServer);
            return self.finish(ids, outcome, Instant::now()).await;
        };
        let max = self.config.max_per_recipient_per_hour;
        let to = destination.clone();
        let limited = self
            .db
            .read(move |conn| Ok::<_, OutboxError>(store::rate_limited_until(conn, &to, max)?))
            .await?;
        if let Some(until) = limited {
            tracing::info!(recipient = %destination, %until, messages = ids.len(), "rate limited: email waits");
            let postponed = self.postpone(ids, until).await?;
            return Ok(Pass {
                postponed,
                ..Pass::default()
            });
        }
        if group.len() >= self.config.digest_after as usize {
            let started = Instant::now();
            let outcome = mailer
                .send_digest(&destination, &group, &self.config.base_url)
                .await
                .map_err(DeliveryError::from);
            return self.finish(ids, outcome, started).await;
        }
        let mut pass = Pass::default();
        for message in group {
            let started = Instant::now();
            let outcome = mailer
                .send(&destination, &message)
                .await
                .map_err(DeliveryError::from);
            pass += self.finish(vec![message.id], outcome, started).await?;
        }
        Ok(pass)
    }

    /// Puts messages back unattempted, due at `until`; returns how many.
    async fn postpone(
        &self,
        ids: Vec<i64>,
        until: crate::domain::Timestamp,
    ) -> Result<usize, OutboxError> {
        let who = self.owner.clone();
        self.db
            .write(move |conn| Ok::<_, OutboxError>(store::postpone(conn, &ids, &who, until)?))
            .await
    }

    /// Records the outcome of one send of the messages `ids`.
    async fn finish(
        &self,
        ids: Vec<i64>,
        outcome: Result<(), DeliveryError>,
        started: Instant,
    ) -> Result<Pass, OutboxError> {
        let millis = started.elapsed().as_millis() as i64;
        let who = self.owner.clone();
        match outcome {
            Ok(()) => {
                let delivery = crate::crypto::random_token()[..24].to_string();
                let sent = self
                    .db
                    .write(move |conn| {
                        Ok::<_, OutboxError>(store::mark_sent(conn, &ids, &who, &delivery, millis)?)
                    })
                    .await?;
                Ok(Pass {
                    sent,
                    ..Pass::default()
                })
            }
            Err(error) => {
                tracing::info!(messages = ?ids, %error, code = error.code(), "outbox delivery failed; will retry");
                let error = error.to_string();
                let config = self.config.clone();
                self.db
                    .write(move |conn| {
                        Ok::<_, OutboxError>(record_failure(
                            conn,
                            &ids,
                            &who,
                            &error,
                            millis,
                            &config.outbox,
                        )?)
                    })
                    .await
            }
        }
    }
}
