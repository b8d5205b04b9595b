//! Configuration: `verdict.toml` with environment overrides. With no file a
//! built-in default serves the demo task on SQLite. Invalid configuration
//! stops start-up with a message that names the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::TaskName;
use crate::policy::AutomationLevel;

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
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://verdict.db".into(),
            synchronous: Synchronous::Normal,
            pool_size: 8,
            busy_timeout_ms: 5000,
            max_batch_jobs: 256,
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
    pub queue_order: crate::queue::QueueOrder,
    /// The version made live when the task has no deployment yet; by default
    /// the newest version in the models directory.
    pub model_version: Option<String>,
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
    /// `VERDICT_DATASETS_DIR`, `VERDICT_BIND`, `VERDICT_PORT`, `VERDICT_LOG_FORMAT`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
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
        crate::db::Backend::from_url(&self.database.url)
            .map_err(|e| ConfigError(format!("database.url: {e}")))?;
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
