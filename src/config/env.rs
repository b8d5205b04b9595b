//! Environment overrides: each `VERDICT_*` variable replaces one key of the
//! file; secrets come only from here.

use std::path::PathBuf;

use super::{callback_secret_var, ConfigError, LogFormat, Settings, Synchronous};

impl Settings {
    /// `VERDICT_DATABASE_URL`, `VERDICT_DB_SYNCHRONOUS`, `VERDICT_DB_PAGE_SIZE`, `VERDICT_MODELS_DIR`,
    /// `VERDICT_DATASETS_DIR`, `VERDICT_BIND`, `VERDICT_PORT`, `VERDICT_LOG_FORMAT`,
    /// `VERDICT_DEPLOYMENT_POLL_MS`, `VERDICT_MONITORING`, `VERDICT_SMTP_USERNAME`,
    /// `VERDICT_SMTP_PASSWORD`, `VERDICT_CALLBACK_SECRET_<TASK>`,
    /// `VERDICT_METRICS_TOKEN`, `VERDICT_TRUSTED_PROXIES` (comma-separated),
    /// `VERDICT_RATE_LIMIT_PER_TOKEN`, `VERDICT_RATE_LIMIT_PER_ADDRESS`
    /// (a rate such as `100/s`, or `off`).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        self.apply_secrets(&var);
        self.apply_storage(&var)?;
        self.apply_server(&var)?;
        self.apply_rate_limits(&var)
    }

    /// Trusted proxies and the request rates.
    fn apply_rate_limits(
        &mut self,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(list) = var("VERDICT_TRUSTED_PROXIES") {
            self.server.trusted_proxies = crate::domain::parse_networks(&list).map_err(|e| {
                ConfigError(format!(
                    "VERDICT_TRUSTED_PROXIES (server.trusted_proxies): {e}"
                ))
            })?;
        }
        for (name, key, rate) in [
            (
                "VERDICT_RATE_LIMIT_PER_TOKEN",
                "rate_limits.per_token",
                &mut self.rate_limits.per_token,
            ),
            (
                "VERDICT_RATE_LIMIT_PER_ADDRESS",
                "rate_limits.per_address",
                &mut self.rate_limits.per_address,
            ),
        ] {
            if let Some(value) = var(name) {
                *rate = match value.as_str() {
                    "" | "off" | "none" => None,
                    text => Some(
                        text.parse()
                            .map_err(|e| ConfigError(format!("{name} ({key}): {e}")))?,
                    ),
                };
            }
        }
        Ok(())
    }

    fn apply_secrets(&mut self, var: &impl Fn(&str) -> Option<String>) {
        if let Some(smtp) = &mut self.smtp {
            smtp.username = var("VERDICT_SMTP_USERNAME").or(smtp.username.take());
            smtp.password = var("VERDICT_SMTP_PASSWORD").or(smtp.password.take());
        }
        if let Some(token) = var("VERDICT_METRICS_TOKEN") {
            self.monitoring.metrics_token = Some(token);
        }
        for task in &mut self.tasks {
            if let Some(secret) = var(&callback_secret_var(task.name.as_str())) {
                task.callback_secret = Some(secret);
            }
        }
    }

    /// The database and the models and datasets directories.
    fn apply_storage(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(url) = var("VERDICT_DATABASE_URL") {
            self.database.url = url;
        }
        if let Some(value) = var("VERDICT_DB_PAGE_SIZE") {
            self.database.page_size = value.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "VERDICT_DB_PAGE_SIZE (database.page_size): expected a number of bytes, got {value:?}"
                ))
            })?;
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
        Ok(())
    }

    fn apply_server(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
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
        if let Some(on) = var("VERDICT_MONITORING") {
            self.monitoring.enabled = match on.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "VERDICT_MONITORING (monitoring.enabled): expected on or off, got {on:?}"
                    )))
                }
            };
        }
        if let Some(on) = var("VERDICT_TRUST_FORWARDED_PROTO") {
            self.server.trust_forwarded_proto = match on.as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(ConfigError(format!(
                        "VERDICT_TRUST_FORWARDED_PROTO (server.trust_forwarded_proto): expected true or false, got {on:?}"
                    )))
                }
            };
        }
        if let Some(ms) = var("VERDICT_DEPLOYMENT_POLL_MS") {
            self.server.deployment_poll_ms = ms.parse().map_err(|_| {
                ConfigError(format!(
                    "VERDICT_DEPLOYMENT_POLL_MS (server.deployment_poll_ms): expected a number of milliseconds, got {ms:?}"
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{callback_secret_var, Settings};

    #[test]
    fn secrets_come_from_the_environment() {
        let mut settings = Settings::from_toml(include_str!("../../verdict.example.toml")).unwrap();
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
    fn environment_overrides_the_file() {
        let mut settings = Settings::default();
        settings
            .apply_env(|k| match k {
                "VERDICT_DATABASE_URL" => Some("postgres://db/verdict".into()),
                "VERDICT_PORT" => Some("9000".into()),
                "VERDICT_DB_PAGE_SIZE" => Some("8192".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(settings.database.url, "postgres://db/verdict");
        assert_eq!(settings.server.port, 9000);
        assert_eq!(settings.database.page_size, 8192);
        let e = settings
            .apply_env(|k| (k == "VERDICT_DB_PAGE_SIZE").then(|| "8k".into()))
            .unwrap_err();
        assert!(e.0.contains("database.page_size"), "{e}");
        let e = settings
            .apply_env(|k| (k == "VERDICT_PORT").then(|| "x".into()))
            .unwrap_err();
        assert!(e.0.contains("server.port"), "{e}");
    }

    #[test]
    fn trusted_proxies_and_rates_come_from_the_environment() {
        let mut settings = Settings::default();
        settings
            .apply_env(|k| match k {
                "VERDICT_TRUSTED_PROXIES" => Some("127.0.0.1, 10.0.0.0/8".into()),
                "VERDICT_RATE_LIMIT_PER_TOKEN" => Some("50/s".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(settings.server.trusted_proxies.len(), 2);
        assert_eq!(settings.rate_limits.per_token.unwrap().to_string(), "50/s");
        settings
            .apply_env(|k| (k == "VERDICT_RATE_LIMIT_PER_TOKEN").then(|| "off".into()))
            .unwrap();
        assert!(settings.rate_limits.per_token.is_none());
        let e = settings
            .apply_env(|k| (k == "VERDICT_TRUSTED_PROXIES").then(|| "proxy".into()))
            .unwrap_err();
        assert!(e.0.contains("server.trusted_proxies"), "{e}");
        let e = settings
            .apply_env(|k| (k == "VERDICT_RATE_LIMIT_PER_ADDRESS").then(|| "lots".into()))
            .unwrap_err();
        assert!(e.0.contains("rate_limits.per_address"), "{e}");
    }

    #[test]
    fn deployment_poll_comes_from_the_environment() {
        let mut settings = Settings::default();
        settings
            .apply_env(|k| (k == "VERDICT_DEPLOYMENT_POLL_MS").then(|| "250".into()))
            .unwrap();
        assert_eq!(settings.server.deployment_poll_ms, 250);
        let e = settings
            .apply_env(|k| (k == "VERDICT_DEPLOYMENT_POLL_MS").then(|| "soon".into()))
            .unwrap_err();
        assert!(e.0.contains("server.deployment_poll_ms"), "{e}");
    }
}
