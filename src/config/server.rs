//! `[server]`: where and how the HTTP server listens.

use serde::Deserialize;

use super::ConfigError;
use crate::domain::Network;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: String,
    pub port: u16,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest batch accepted by the scoring API.
    pub max_batch_items: usize,
    /// HTTP worker threads; defaults to the number of cores (less one on
    /// SQLite, whose writer thread needs a core).
    pub workers: Option<usize>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// How often each instance looks for deployment changes, in ms.
    pub deployment_poll_ms: u64,
    /// Believe a proxy's `X-Forwarded-Proto: https` (or `Forwarded:
    /// proto=https`) and answer with HSTS. Only when every request comes
    /// through a proxy that sets (or strips) that header: otherwise any
    /// client could claim https.
    pub trust_forwarded_proto: bool,
    /// Proxies (addresses or networks, e.g. `"127.0.0.1"`, `"10.0.0.0/8"`)
    /// whose `X-Forwarded-For` is believed: a request from one of them is
    /// counted against the right-most address in that header that is not
    /// a trusted proxy. Empty (the default): the peer's address, always.
    pub trusted_proxies: Vec<Network>,
    /// The nice value (0–19) of the background jobs' threads (drift and
    /// alert monitors, outbox, reaper, metrics flusher...): above 0 the
    /// HTTP workers and the writer run first when the cores are busy.
    pub background_nice: i32,
}

/// The range `server.deployment_poll_ms` must fall in: 100 ms to 10 minutes.
pub const DEPLOYMENT_POLL_MS: std::ops::RangeInclusive<u64> = 100..=600_000;

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_items: 1000,
            workers: None,
            log_format: LogFormat::Text,
            deployment_poll_ms: 1000,
            trust_forwarded_proto: false,
            trusted_proxies: Vec::new(),
            background_nice: 10,
        }
    }
}

impl ServerSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::at(
                "server.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.max_batch_items == 0 {
            return Err(ConfigError::at(
                "server.max_batch_items",
                "must be at least 1",
            ));
        }
        if !(0..=19).contains(&self.background_nice) {
            return Err(ConfigError::at(
                "server.background_nice",
                format!("must be between 0 and 19, got {}", self.background_nice),
            ));
        }
        if !DEPLOYMENT_POLL_MS.contains(&self.deployment_poll_ms) {
            return Err(ConfigError::at(
                "server.deployment_poll_ms",
                format!(
                    "must be between {} and {} (milliseconds), got {}",
                    DEPLOYMENT_POLL_MS.start(),
                    DEPLOYMENT_POLL_MS.end(),
                    self.deployment_poll_ms
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_poll_defaults_to_five_seconds_and_is_bounded() {
        let mut server = ServerSettings::default();
        assert_eq!(server.deployment_poll_ms, 1000);
        server.validate().unwrap();
        for ok in [100, 600_000] {
            server.deployment_poll_ms = ok;
            server.validate().unwrap();
        }
        for bad in [0, 99, 600_001] {
            server.deployment_poll_ms = bad;
            let e = server.validate().unwrap_err();
            assert_eq!(
                e.0,
                format!(
                    "server.deployment_poll_ms: must be between 100 and 600000 (milliseconds), got {bad}"
                )
            );
        }
    }
}
