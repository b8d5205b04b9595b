//! Escalation: `[mail]` (who gets alert email, how often), `[smtp]` (the
//! mail server), `[outbox]` (the worker that sends email and webhooks) and
//! `[alerts]` (the monitor's rules).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// The sender of every email.
    pub from: String,
    /// Where links in email point: this service as people reach it.
    pub base_url: String,
    /// Get every alert.
    pub recipients: Vec<String>,
    /// Also get the alerts of one severity (`warning`, `critical`).
    pub severity_recipients: BTreeMap<String, Vec<String>>,
    /// Most emails one recipient gets per hour; more wait and go as a digest.
    pub max_per_recipient_per_hour: u32,
    /// This many emails waiting for one recipient go as one digest.
    pub digest_after: u32,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            from: "verdict <verdict@localhost>".into(),
            base_url: "http://127.0.0.1:8080".into(),
            recipients: Vec::new(),
            severity_recipients: BTreeMap::new(),
            max_per_recipient_per_hour: 20,
            digest_after: 3,
        }
    }
}

impl MailSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_address("mail.from", &self.from)?;
        for address in &self.recipients {
            check_address("mail.recipients", address)?;
        }
        for (severity, addresses) in &self.severity_recipients {
            let key = format!("mail.severity_recipients.{severity}");
            if !matches!(severity.as_str(), "warning" | "critical") {
                return Err(ConfigError::at(key, "severity must be warning or critical"));
            }
            for address in addresses {
                check_address(&key, address)?;
            }
        }
        if self.digest_after < 2 {
            return Err(ConfigError::at("mail.digest_after", "must be at least 2"));
        }
        if self.max_per_recipient_per_hour == 0 {
            return Err(ConfigError::at(
                "mail.max_per_recipient_per_hour",
                "must be at least 1",
            ));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(ConfigError::at(
                "mail.base_url",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(())
    }
}

/// Refuses what is not an email address (`a@b` or `Name <a@b>`).
pub(super) fn check_address(key: &str, address: &str) -> Result<(), ConfigError> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|e| ConfigError(format!("{key}: {address:?} is not an email address ({e})")))
}

/// How the connection to the mail server is secured.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or network.
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Credentials come from `VERDICT_SMTP_USERNAME` and
    /// `VERDICT_SMTP_PASSWORD`, never from the file.
    #[serde(skip)]
    pub username: Option<String>,
    #[serde(skip)]
    pub password: Option<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    /// Root certificates (PEM) trusted besides the built-in ones (Mozilla's
    /// list): a private CA that signed the mail server's certificate.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

fn default_smtp_timeout() -> u64 {
    20
}

impl SmtpSettings {
    /// A send must end well inside the outbox lease.
    pub fn validate(&self, outbox: &OutboxSettings) -> Result<(), ConfigError> {
        if self.host.is_empty() {
            return Err(ConfigError::at("smtp.host", "must not be empty"));
        }
        if outbox.lease_secs < 2 * self.timeout_secs.max(1) {
            return Err(ConfigError::at(
                "outbox.lease_secs",
                "must be at least twice smtp.timeout_secs",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSettings {
    /// How often the worker looks for messages due.
    pub poll_ms: u64,
    /// Attempts before a message is dead.
    pub max_attempts: u32,
    /// The wait after the first failure; doubles with each further one.
    pub backoff_base_ms: u64,
    /// The longest wait between two attempts.
    pub backoff_max_ms: u64,
    /// How long an instance holds a message it is sending.
    pub lease_secs: u64,
    /// Timeout of one webhook request.
    pub webhook_timeout_secs: u64,
    /// Root certificates (PEM) trusted for `https://` webhooks besides the
    /// built-in ones (Mozilla's list): a private CA of the receivers.
    pub webhook_ca_file: Option<std::path::PathBuf>,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            poll_ms: 1000,
            max_attempts: 10,
            backoff_base_ms: 5_000,
            backoff_max_ms: 15 * 60 * 1000,
            lease_secs: 120,
            webhook_timeout_secs: 10,
            webhook_ca_file: None,
        }
    }
}

impl OutboxSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::at("outbox.max_attempts", "must be at least 1"));
        }
        if self.poll_ms == 0 || self.backoff_base_ms == 0 {
            return Err(ConfigError::at(
                "outbox.poll_ms",
                "poll_ms and backoff_base_ms must be at least 1",
            ));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(ConfigError::at(
                "outbox.backoff_max_ms",
                "must be at least backoff_base_ms",
            ));
        }
        // A send must end well inside the lease that keeps other instances
        // off the message.
        if self.lease_secs < 2 * self.webhook_timeout_secs.max(1) {
            return Err(ConfigError::at(
                "outbox.lease_secs",
                "must be at least twice outbox.webhook_timeout_secs",
            ));
        }
        Ok(())
    }
}

/// Items past their SLA: an alert (and email) per item, or one per task
/// listing them.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SlaAlerts {
    PerItem,
    #[default]
    Batched,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// How often the monitor evaluates the rules.
    pub interval_ms: u64,
    pub sla: SlaAlerts,
    /// Fires when more items than this wait for a human in one task.
    pub backlog_items: Option<i64>,
    /// Fires when the oldest waiting item is older than this.
    pub oldest_item_minutes: Option<i64>,
    /// Fires when more outbox messages than this are dead.
    pub dead_messages: Option<i64>,
    /// Fires when more than this share of the items a task's model was to
    /// score in the window failed to score (no model, an error, a
    /// non-finite output), with at least `error_rate_min_items` of them.
    pub error_rate: Option<f64>,
    pub error_rate_window_minutes: i64,
    pub error_rate_min_items: i64,
    /// A feature's input distribution moved: `threshold` is how many
    /// standard deviations above the reference's own resampled mean the
    /// effect size must be (the p-value must also pass the family-wise
    /// level, `monitoring.family_alpha`); `min_sample` the items the window
    /// needs.
    pub data_drift: Rule,
    /// The outputs moved (label mix, confidence distribution; same
    /// threshold as data drift) or more than `max_repeated_share` of the
    /// window repeats an input seen in it.
    pub output_drift: Rule,
    pub max_repeated_share: f64,
    /// Page-Hinkley on the model's errors against blind audits: `threshold`
    /// is its λ, `min_sample` the observations before it may signal; the
    /// alert holds for `concept_hold` observations after a detection.
    pub concept_drift: Rule,
    pub concept_hold: u64,
    /// The automation rate of the window fell more than `threshold` below
    /// the rate the held-out rows had at the task's threshold.
    pub automation_drop: Rule,
    /// The label-free accuracy estimate (CBPE) fell more than `threshold`
    /// below the held-out accuracy.
    pub estimated_accuracy_drop: Rule,
    /// The 99th percentile of scoring time per item (`total` stage) was
    /// over `threshold` seconds in each of the last `for_evaluations`
    /// minutes with at least `min_sample` items.
    pub p99_latency: Rule,
}

/// One alert rule: on or off, its threshold, the least sample it judges,
/// and for how many consecutive evaluations it must hold before it fires.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub threshold: f64,
    pub min_sample: u64,
    #[serde(default = "one")]
    pub for_evaluations: u32,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

impl Rule {
    const fn new(threshold: f64, min_sample: u64, for_evaluations: u32) -> Rule {
        Rule {
            enabled: true,
            threshold,
            min_sample,
            for_evaluations,
        }
    }

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(ConfigError::at(
                format!("alerts.{key}.threshold"),
                format!("must be 0 or more, got {}", self.threshold),
            ));
        }
        if self.for_evaluations == 0 {
            return Err(ConfigError::at(
                format!("alerts.{key}.for_evaluations"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            interval_ms: 30_000,
            sla: SlaAlerts::default(),
            backlog_items: Some(500),
            oldest_item_minutes: Some(24 * 60),
            dead_messages: Some(0),
            error_rate: Some(0.05),
            error_rate_window_minutes: 15,
            error_rate_min_items: 20,
            data_drift: Rule::new(3.0, 500, 1),
            output_drift: Rule::new(3.0, 500, 2),
            max_repeated_share: 0.5,
            concept_drift: Rule::new(10.0, 30, 1),
            concept_hold: 100,
            automation_drop: Rule::new(0.2, 500, 2),
            estimated_accuracy_drop: Rule::new(0.05, 500, 2),
            p99_latency: Rule::new(0.5, 100, 5),
        }
    }
}

impl AlertSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_ms == 0 {
            return Err(ConfigError::at("alerts.interval_ms", "must be at least 1"));
        }
        if self.error_rate_window_minutes < 1 {
            return Err(ConfigError::at(
                "alerts.error_rate_window_minutes",
                "must be at least 1",
            ));
        }
        for (key, rule) in [
            ("data_drift", &self.data_drift),
            ("output_drift", &self.output_drift),
            ("concept_drift", &self.concept_drift),
            ("automation_drop", &self.automation_drop),
            ("estimated_accuracy_drop", &self.estimated_accuracy_drop),
            ("p99_latency", &self.p99_latency),
        ] {
            rule.validate(key)?;
        }
        if !(0.0..=1.0).contains(&self.max_repeated_share) {
            return Err(ConfigError::at(
                "alerts.max_repeated_share",
                "must be between 0 and 1",
            ));
        }
        if let Some(rate) = self.error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::at(
                    "alerts.error_rate",
                    format!("must be between 0 and 1, got {rate}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn a_bad_recipient_address_is_named() {
        let e = Settings::from_toml("[mail]\nrecipients = [\"not an address\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.starts_with("mail.recipients:"), "{e}");
    }
}
