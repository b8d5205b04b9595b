//! The state every request handler may use, built by `startup`.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Db;
use crate::tasks::Registry;
use crate::tokens::TokenCache;

/// Everything a request handler may use.
pub struct AppState {
    pub db: Db,
    pub tasks: Arc<Registry>,
    /// What the scoring path counts, for the metrics store and `/metrics`.
    pub recorder: Arc<crate::monitoring::Recorder>,
    /// Where scored items are written (grouped on PostgreSQL).
    pub scoring: crate::scoring::ScoreStore,
    pub tokens: TokenCache,
    /// Request rates and failed-authentication lock-outs (`[rate_limits]`).
    pub limits: Arc<crate::rate_limits::Limiter>,
    /// The mail server, when `[smtp]` is configured.
    pub mailer: Option<std::sync::Arc<crate::mail::Mailer>>,
    pub settings: Settings,
}
