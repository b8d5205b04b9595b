//! `[monitoring]`: the metrics store, `/metrics`, and the drift monitor's
//! windows and levels.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringSettings {
    /// Off: the scoring path records nothing and the drift monitor does not
    /// run (for measuring what monitoring costs).
    pub enabled: bool,
    /// How often each instance adds what it counted to the database, in ms.
    pub flush_ms: u64,
    /// Minute buckets older than this are deleted.
    pub retention_days: u32,
    /// When set, `/metrics` asks for `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// Items in the window that data and output drift look at.
    pub window_items: usize,
    /// The window is evaluated again after this many new items.
    pub step_items: usize,
    /// Bins of the population stability index (reference quantiles, plus
    /// an overflow bin each side).
    pub psi_bins: usize,
    /// Family-wise level of the drift tests of one window: a feature
    /// drifts only when its p-value is below `family_alpha / features`
    /// (and its effect exceeds the threshold calibrated on the reference).
    pub family_alpha: f64,
    /// Window-sized resamples of the reference that calibrate each
    /// statistic's threshold (mean + 3 standard deviations).
    pub calibration_draws: usize,
    /// How often the drift monitor looks for new items, in ms.
    pub interval_ms: u64,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        MonitoringSettings {
            enabled: true,
            flush_ms: 5000,
            retention_days: 30,
            metrics_token: None,
            window_items: 500,
            step_items: 100,
            psi_bins: 10,
            family_alpha: 1e-6,
            calibration_draws: 200,
            interval_ms: 5000,
        }
    }
}

impl MonitoringSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least = |key: &str, value: u64, min: u64| {
            if value < min {
                Err(ConfigError::at(
                    format!("monitoring.{key}"),
                    format!("must be at least {min}, got {value}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least("flush_ms", self.flush_ms, 100)?;
        at_least("interval_ms", self.interval_ms, 100)?;
        at_least("retention_days", u64::from(self.retention_days), 1)?;
        at_least("window_items", self.window_items as u64, 20)?;
        at_least("step_items", self.step_items as u64, 1)?;
        at_least("psi_bins", self.psi_bins as u64, 2)?;
        at_least("calibration_draws", self.calibration_draws as u64, 10)?;
        if self.step_items > self.window_items {
            return Err(ConfigError::at(
                "monitoring.step_items",
                "must not exceed monitoring.window_items",
            ));
        }
        if !(self.family_alpha > 0.0 && self.family_alpha < 1.0) {
            return Err(ConfigError::at(
                "monitoring.family_alpha",
                format!("must be between 0 and 1, got {}", self.family_alpha),
            ));
        }
        if let Some(token) = &self.metrics_token {
            if token.trim().len() < 16 {
                return Err(ConfigError::at(
                    "monitoring.metrics_token",
                    "must be at least 16 characters",
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
    fn monitoring_is_on_by_default_with_the_issue_defaults() {
        let s = Settings::default();
        assert!(s.monitoring.enabled);
        assert_eq!(s.monitoring.window_items, 500);
        assert_eq!(s.monitoring.step_items, 100);
        assert_eq!(s.monitoring.retention_days, 30);
    }

    #[test]
    fn a_step_longer_than_the_window_is_refused() {
        let e = Settings::from_toml("[monitoring]\nwindow_items = 100\nstep_items = 200\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.contains("monitoring.step_items"), "{e}");
    }

    #[test]
    fn a_short_metrics_token_is_refused() {
        let e = Settings::from_toml("[monitoring]\nmetrics_token = \"abc\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.0.contains("monitoring.metrics_token"), "{e}");
    }
}
