//! Configuration: `verdict.toml` with environment overrides. With no file a
//! built-in default serves the demo task on SQLite. Invalid configuration
//! stops start-up with a message that names the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::TaskName;
use crate::domain::{AutomationLevel, Backend, QueueOrder};

pub const DEFAULT_CONFIG_FILE: &str = "verdict.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub models: ModelSettings,
    #[serde(default)]
    pub datasets: DatasetSettings,
    #[serde(default = "default_tasks")]
    pub tasks: Vec<TaskConfig>,
    /// Who gets escalation email, and how often.
    #[serde(default)]
    pub mail: MailSettings,
    /// The mail server; without it no email is written (alerts still are).
    pub smtp: Option<SmtpSettings>,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub alerts: AlertSettings,
}

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
}

fn default_smtp_timeout() -> u64 {
    20
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
        }
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
        }
    }
}

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
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: "127.0.0.1".into(),
            port: 8080,
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_items: 1000,
            workers: None,
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (default `sqlite://verdict.db`) or `postgres://…`.
    pub url: String,
    /// SQLite `synchronous`: `normal` survives a crash of the process (kill -9),
    /// `full` also survives power loss, at a cost.
    pub synchronous: Synchronous,
    pub pool_size: u32,
    pub busy_timeout_ms: u32,
    /// Most units of work the writer commits in one transaction.
    pub max_batch_jobs: usize,
    /// SQLite: the WAL is rewound once it holds this many MiB (checkpoints
    /// run in the background; a rewind pauses the writer for a few ms, so a
    /// larger WAL means fewer pauses under heavy writes).
    pub wal_limit_mb: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://verdict.db".into(),
            synchronous: Synchronous::Normal,
            pool_size: 8,
            busy_timeout_ms: 5000,
            max_batch_jobs: 256,
            wal_limit_mb: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Normal,
    Full,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// Holds `<task>/<version>/{model.safetensors,card.json}`.
    pub dir: PathBuf,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            dir: PathBuf::from("models"),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetSettings {
    /// Holds `<task>/<name>.{jsonl,csv}`, the dataset snapshots.
    pub dir: PathBuf,
}

impl Default for DatasetSettings {
    fn default() -> Self {
        DatasetSettings {
            dir: PathBuf::from("datasets"),
        }
    }
}

/// One decision problem and how far its model may decide alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    pub name: TaskName,
    #[serde(default)]
    pub description: String,
    pub automation: AutomationLevel,
    /// Confidence at or above which the model decides (`partial`).
    pub threshold: Option<f64>,
    /// Per-label thresholds; override `threshold` for their label.
    #[serde(default)]
    pub label_thresholds: BTreeMap<String, f64>,
    /// Share of model-decided items also queued blind for a human.
    #[serde(default)]
    pub audit_rate: f64,
    /// Minutes a queued item may wait for a human.
    #[serde(default = "default_sla_minutes")]
    pub sla_minutes: u32,
    /// Independent human labels an item needs.
    #[serde(default = "default_reviews_required")]
    pub reviews_required: u32,
    /// How the review queue orders items.
    #[serde(default)]
    pub queue_order: QueueOrder,
    /// The version made live when the task has no deployment yet; by default
    /// the newest version in the models directory.
    pub model_version: Option<String>,
    /// Where the final human verdict of an item is POSTed.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Signs webhook bodies (HMAC-SHA256); `VERDICT_CALLBACK_SECRET_<TASK>`
    /// (the task name upper-cased, other characters `_`) overrides it.
    #[serde(default)]
    pub callback_secret: Option<String>,
    /// Get this task's alerts (besides `mail.recipients`).
    #[serde(default)]
    pub alert_recipients: Vec<String>,
}

/// Refuses what is not an email address (`a@b` or `Name <a@b>`).
fn check_address(key: &str, address: &str) -> Result<(), ConfigError> {
    address
        .parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|e| ConfigError(format!("{key}: {address:?} is not an email address ({e})")))
}

/// The environment variable holding a task's webhook secret.
pub fn callback_secret_var(task: &str) -> String {
    let upper: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("VERDICT_CALLBACK_SECRET_{upper}")
}

fn default_sla_minutes() -> u32 {
    60
}

fn default_reviews_required() -> u32 {
    1
}

fn default_tasks() -> Vec<TaskConfig> {
    vec![TaskConfig {
        name: TaskName::parse("tumor-triage").expect("valid demo task name"),
        description:
            "Breast cancer fine-needle aspirates: malignant or benign (Wisconsin diagnostic data)"
                .into(),
        automation: AutomationLevel::Partial,
        threshold: Some(0.95),
        label_thresholds: BTreeMap::new(),
        audit_rate: 0.02,
        sla_minutes: 60,
        reviews_required: 1,
        queue_order: Default::default(),
        model_version: None,
        callback_url: None,
        callback_secret: None,
        alert_recipients: Vec::new(),
    }]
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            models: ModelSettings::default(),
            datasets: DatasetSettings::default(),
            tasks: default_tasks(),
            mail: MailSettings::default(),
            smtp: None,
            outbox: OutboxSettings::default(),
            alerts: AlertSettings::default(),
        }
    }
}

/// Why configuration was refused; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Reads `path` (or `verdict.toml` in the working directory when it
    /// exists, or the built-in default), then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut settings = match path {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Self::from_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => Settings::default(),
        };
        settings.apply_env(|key| std::env::var(key).ok())?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text)
            .map_err(|ConfigError(e)| ConfigError(format!("{}: {e}", path.display())))
    }

    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_string()))
    }

    /// `VERDICT_DATABASE_URL`, `VERDICT_DB_SYNCHRONOUS`, `VERDICT_MODELS_DIR`,
    /// `VERDICT_DATASETS_DIR`, `VERDICT_BIND`, `VERDICT_PORT`, `VERDICT_LOG_FORMAT`,
    /// `VERDICT_SMTP_USERNAME`, `VERDICT_SMTP_PASSWORD`,
    /// `VERDICT_CALLBACK_SECRET_<TASK>`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(smtp) = &mut self.smtp {
            smtp.username = var("VERDICT_SMTP_USERNAME").or(smtp.username.take());
            smtp.password = var("VERDICT_SMTP_PASSWORD").or(smtp.password.take());
        }
        for task in &mut self.tasks {
            if let Some(secret) = var(&callback_secret_var(task.name.as_str())) {
                task.callback_secret = Some(secret);
            }
        }
        if let Some(url) = var("VERDICT_DATABASE_URL") {
            self.database.url = url;
        }
        if let Some(value) = var("VERDICT_DB_SYNCHRONOUS") {
            self.database.synchronous = match value.to_ascii_lowercase().as_str() {
                "normal" => Synchronous::Normal,
                "full" => Synchronous::Full,
                _ => {
                    return Err(ConfigError(format!(
                        "VERDICT_DB_SYNCHRONOUS (database.synchronous): expected normal or full, got {value:?}"
                    )))
                }
            };
        }
        if let Some(dir) = var("VERDICT_MODELS_DIR") {
            self.models.dir = PathBuf::from(dir);
        }
        if let Some(dir) = var("VERDICT_DATASETS_DIR") {
            self.datasets.dir = PathBuf::from(dir);
        }
        if let Some(bind) = var("VERDICT_BIND") {
            self.server.bind = bind;
        }
        if let Some(port) = var("VERDICT_PORT") {
            self.server.port = port.parse().map_err(|_| {
                ConfigError(format!(
                    "VERDICT_PORT (server.port): expected a port number, got {port:?}"
                ))
            })?;
        }
        if let Some(format) = var("VERDICT_LOG_FORMAT") {
            self.server.log_format = match format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError(format!(
                    "VERDICT_LOG_FORMAT (server.log_format): expected text or json, got {format:?}"
                )))
                }
            };
        }
        Ok(())
    }

    /// Checks what the types alone cannot; each error names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: String, msg: &str| Err(ConfigError(format!("{key}: {msg}")));
        Backend::from_url(&self.database.url)
            .map_err(|e| ConfigError(format!("database.url: {e}")))?;
        if self.database.wal_limit_mb == 0 {
            return err("database.wal_limit_mb".into(), "must be at least 1");
        }
        if self.database.pool_size == 0 {
            return err("database.pool_size".into(), "must be at least 1");
        }
        if self.server.max_body_bytes < 1024 {
            return err("server.max_body_bytes".into(), "must be at least 1024");
        }
        if self.server.max_batch_items == 0 {
            return err("server.max_batch_items".into(), "must be at least 1");
        }
        if self.tasks.is_empty() {
            return err("tasks".into(), "at least one task is needed");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, task) in self.tasks.iter().enumerate() {
            let key = |field: &str| format!("tasks[{i}].{field}");
            if !seen.insert(task.name.as_str()) {
                return err(
                    key("name"),
                    &format!("task {:?} is defined twice", task.name.as_str()),
                );
            }
            for (label, value) in std::iter::once(("", task.threshold)).chain(
                task.label_thresholds
                    .iter()
                    .map(|(l, v)| (l.as_str(), Some(*v))),
            ) {
                if let Some(value) = value {
                    if !(0.0..=1.0).contains(&value) {
                        let field = if label.is_empty() {
                            key("threshold")
                        } else {
                            key(&format!("label_thresholds.{label}"))
                        };
                        return err(field, &format!("must be between 0 and 1, got {value}"));
                    }
                }
            }
            if task.automation == AutomationLevel::Partial
                && task.threshold.is_none()
                && task.label_thresholds.is_empty()
            {
                return err(
                    key("threshold"),
                    "automation = \"partial\" needs a threshold or label_thresholds",
                );
            }
            if !(0.0..=1.0).contains(&task.audit_rate) {
                return err(
                    key("audit_rate"),
                    &format!("must be between 0 and 1, got {}", task.audit_rate),
                );
            }
            if task.sla_minutes == 0 {
                return err(key("sla_minutes"), "must be at least 1");
            }
            if task.reviews_required == 0 {
                return err(key("reviews_required"), "must be at least 1");
            }
            if let Some(url) = &task.callback_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return err(key("callback_url"), "must be an http:// or https:// URL");
                }
                if url.starts_with("https://") {
                    return err(
                        key("callback_url"),
                        "https is not supported yet: use http (e.g. through a TLS proxy)",
                    );
                }
            }
            for address in &task.alert_recipients {
                check_address(&key("alert_recipients"), address)?;
            }
        }
        check_address("mail.from", &self.mail.from)?;
        for address in &self.mail.recipients {
            check_address("mail.recipients", address)?;
        }
        for (severity, addresses) in &self.mail.severity_recipients {
            let key = format!("mail.severity_recipients.{severity}");
            if !matches!(severity.as_str(), "warning" | "critical") {
                return err(key, "severity must be warning or critical");
            }
            for address in addresses {
                check_address(&key, address)?;
            }
        }
        if self.mail.digest_after < 2 {
            return err("mail.digest_after".into(), "must be at least 2");
        }
        if self.mail.max_per_recipient_per_hour == 0 {
            return err(
                "mail.max_per_recipient_per_hour".into(),
                "must be at least 1",
            );
        }
        if self.outbox.max_attempts == 0 {
            return err("outbox.max_attempts".into(), "must be at least 1");
        }
        if self.outbox.poll_ms == 0 || self.outbox.backoff_base_ms == 0 {
            return err(
                "outbox.poll_ms".into(),
                "poll_ms and backoff_base_ms must be at least 1",
            );
        }
        if self.outbox.backoff_max_ms < self.outbox.backoff_base_ms {
            return err(
                "outbox.backoff_max_ms".into(),
                "must be at least backoff_base_ms",
            );
        }
        if self.alerts.interval_ms == 0 {
            return err("alerts.interval_ms".into(), "must be at least 1");
        }
        if self.alerts.error_rate_window_minutes < 1 {
            return err(
                "alerts.error_rate_window_minutes".into(),
                "must be at least 1",
            );
        }
        if let Some(rate) = self.alerts.error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return err(
                    "alerts.error_rate".into(),
                    &format!("must be between 0 and 1, got {rate}"),
                );
            }
        }
        if !(self.mail.base_url.starts_with("http://")
            || self.mail.base_url.starts_with("https://"))
        {
            return err("mail.base_url".into(), "must be an http:// or https:// URL");
        }
        // A send must end well inside the lease that keeps other instances
        // off the message.
        if self.outbox.lease_secs < 2 * self.outbox.webhook_timeout_secs.max(1) {
            return err(
                "outbox.lease_secs".into(),
                "must be at least twice outbox.webhook_timeout_secs",
            );
        }
        if let Some(smtp) = &self.smtp {
            if smtp.host.is_empty() {
                return err("smtp.host".into(), "must not be empty");
            }
            if self.outbox.lease_secs < 2 * smtp.timeout_secs.max(1) {
                return err(
                    "outbox.lease_secs".into(),
                    "must be at least twice smtp.timeout_secs",
                );
            }
        }
        Ok(())
    }

    pub fn task(&self, name: &str) -> Option<&TaskConfig> {
        self.tasks.iter().find(|t| t.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_gives_the_demo_task_on_sqlite() {
        let settings = Settings::default();
        settings.validate().unwrap();
        assert_eq!(settings.tasks[0].name.as_str(), "tumor-triage");
        assert!(settings.database.url.starts_with("sqlite://"));
    }

    #[test]
    fn the_example_file_is_valid() {
        let settings = Settings::from_toml(include_str!("../verdict.example.toml")).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.tasks[0].name.as_str(), "tumor-triage");
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Settings::from_toml("[server]\nprot = 80\n").unwrap_err();
        assert!(e.0.contains("prot"), "{e}");
    }

    #[test]
    fn out_of_range_threshold_is_named() {
        let e = Settings::from_toml(
            "[[tasks]]\nname = \"t\"\nautomation = \"partial\"\nthreshold = 1.5\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(e.0.starts_with("tasks[0].threshold:"), "{e}");
    }

    #[test]
    fn partial_without_threshold_is_refused() {
        let e = Settings::from_toml("[[tasks]]\nname = \"t\"\nautomation = \"partial\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.contains("tasks[0].threshold"), "{e}");
    }

    #[test]
    fn bad_automation_level_is_named() {
        let e =
            Settings::from_toml("[[tasks]]\nname = \"t\"\nautomation = \"mostly\"\n").unwrap_err();
        assert!(e.0.contains("automation") || e.0.contains("mostly"), "{e}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        let mut settings = Settings::from_toml(include_str!("../verdict.example.toml")).unwrap();
        settings
            .apply_env(|k| match k {
                "VERDICT_SMTP_USERNAME" => Some("mailer".into()),
                "VERDICT_SMTP_PASSWORD" => Some("hunter22".into()),
                "VERDICT_CALLBACK_SECRET_TUMOR_TRIAGE" => Some("s".into()),
                _ => None,
            })
            .unwrap();
        let smtp = settings.smtp.as_ref().unwrap();
        assert_eq!(smtp.username.as_deref(), Some("mailer"));
        assert_eq!(smtp.password.as_deref(), Some("hunter22"));
        assert_eq!(settings.tasks[0].callback_secret.as_deref(), Some("s"));
        assert_eq!(
            callback_secret_var("sms.moderation:v2"),
            "VERDICT_CALLBACK_SECRET_SMS_MODERATION_V2"
        );
        // Credentials in the file are refused.
        let e = Settings::from_toml(
            "[smtp]\nhost = \"h\"\nport = 25\nsecurity = \"plain\"\npassword = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.0.contains("password"), "{e}");
    }

    #[test]
    fn a_bad_recipient_address_is_named() {
        let e = Settings::from_toml("[mail]\nrecipients = [\"not an address\"]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.starts_with("mail.recipients:"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut settings = Settings::default();
        settings
            .apply_env(|k| match k {
                "VERDICT_DATABASE_URL" => Some("postgres://db/verdict".into()),
                "VERDICT_PORT" => Some("9000".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(settings.database.url, "postgres://db/verdict");
        assert_eq!(settings.server.port, 9000);
        let e = settings
            .apply_env(|k| (k == "VERDICT_PORT").then(|| "x".into()))
            .unwrap_err();
        assert!(e.0.contains("server.port"), "{e}");
    }
}
