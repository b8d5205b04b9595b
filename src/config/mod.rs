//! Configuration: `verdict.toml` with environment overrides. With no file a
//! built-in default serves the demo task on SQLite. Invalid configuration
//! stops start-up with a message that names the key.
//!
//! One file per section group, each section validating itself: `server`,
//! `database` (with the models and datasets directories), `tasks`,
//! `escalation` (mail, smtp, outbox, alerts), `rate_limits`; `env` holds the environment
//! overrides.

mod database;
mod env;
mod escalation;
mod jobs;
mod monitoring;
mod rate_limits;
mod server;
mod tasks;

use std::fmt::Display;
use std::path::Path;

use serde::Deserialize;

pub use database::{
    DatabaseSettings, DatasetSettings, ModelSettings, Synchronous, BATCH_WRITER_CACHE_MB,
};
pub use escalation::{
    AlertSettings, MailSettings, OutboxSettings, Rule, SlaAlerts, SmtpSecurity, SmtpSettings,
};
pub use jobs::JobSettings;
pub use monitoring::MonitoringSettings;
pub use rate_limits::RateLimitSettings;
pub use server::{LogFormat, ServerSettings, DEPLOYMENT_POLL_MS};
pub use tasks::{callback_secret_var, CandidateRules, TaskConfig};

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
    #[serde(default = "tasks::default_tasks")]
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
    /// The metrics store, `/metrics` and the drift monitor.
    #[serde(default)]
    pub monitoring: MonitoringSettings,
    /// Batch scoring jobs uploaded through the API.
    #[serde(default)]
    pub jobs: JobSettings,
    /// Failed authentication, and request rates per token and address.
    #[serde(default)]
    pub rate_limits: RateLimitSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            models: ModelSettings::default(),
            datasets: DatasetSettings::default(),
            tasks: tasks::default_tasks(),
            mail: MailSettings::default(),
            smtp: None,
            outbox: OutboxSettings::default(),
            alerts: AlertSettings::default(),
            monitoring: MonitoringSettings::default(),
            jobs: JobSettings::default(),
            rate_limits: RateLimitSettings::default(),
        }
    }
}

/// Why configuration was refused; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `key: msg`, the shape of every validation error.
    fn at(key: impl Display, msg: impl Display) -> ConfigError {
        ConfigError(format!("{key}: {msg}"))
    }
}

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
        let mut settings = Self::from_toml(&text)
            .map_err(|ConfigError(e)| ConfigError(format!("{}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (i, task) in settings.tasks.iter_mut().enumerate() {
            task.read_guidelines(dir, i)
                .map_err(|ConfigError(e)| ConfigError(format!("{}: {e}", path.display())))?;
        }
        Ok(settings)
    }

    pub fn from_toml(text: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_string()))
    }

    /// Checks what the types alone cannot, section by section; each error
    /// names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.server.validate()?;
        tasks::validate_tasks(&self.tasks)?;
        self.mail.validate()?;
        self.outbox.validate()?;
        self.alerts.validate()?;
        self.monitoring.validate()?;
        self.jobs.validate()?;
        self.rate_limits.validate()?;
        if let Some(smtp) = &self.smtp {
            smtp.validate(&self.outbox)?;
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
        let settings = Settings::from_toml(include_str!("../../verdict.example.toml")).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.tasks[0].name.as_str(), "tumor-triage");
        assert_eq!(settings.server.deployment_poll_ms, 1000);
    }

    #[test]
    fn guidelines_come_from_a_file_beside_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("guides")).unwrap();
        std::fs::write(dir.path().join("guides/t.md"), "From **the file**.").unwrap();
        let config = dir.path().join("verdict.toml");
        let task =
            "[[tasks]]\nname = \"t\"\nautomation = \"human_only\"\nguidelines = \"Inline.\"\n";
        std::fs::write(
            &config,
            format!("{task}guidelines_file = \"guides/t.md\"\n"),
        )
        .unwrap();
        let settings = Settings::from_file(&config).unwrap();
        assert_eq!(
            settings.tasks[0].guidelines,
            "Inline.\n\nFrom **the file**."
        );
        std::fs::write(
            &config,
            format!("{task}guidelines_file = \"guides/none.md\"\n"),
        )
        .unwrap();
        let e = Settings::from_file(&config).unwrap_err();
        assert!(
            e.0.contains("tasks[0].guidelines_file") && e.0.contains("none.md"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Settings::from_toml("[server]\nprot = 80\n").unwrap_err();
        assert!(e.0.contains("prot"), "{e}");
    }
}
