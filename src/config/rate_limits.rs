//! `[rate_limits]`: how many requests the API and the sign-in form take.
//! Failed authentication is limited by default; request rates per token
//! and per client address only when configured.

use serde::Deserialize;

use super::ConfigError;
use crate::domain::Rate;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Failed API token attempts one client address may make per window
    /// before every request from it is refused (429) until the window
    /// ends; 0 turns this off.
    pub failed_auth_per_address: u32,
    /// The window of `failed_auth_per_address`, in seconds.
    pub failed_auth_window_secs: u32,
    /// Sign-in attempts on the web form per account per window (a
    /// success gives them back).
    pub sign_in_per_account: u32,
    /// Failed sign-ins per client address per window, over all accounts.
    pub sign_in_per_address: u32,
    /// The window of the sign-in limits, in seconds.
    pub sign_in_window_secs: u32,
    /// Requests per token for tokens that have no rate of their own
    /// (`verdict token create --rate`), e.g. `"100/s"`; none by default.
    pub per_token: Option<Rate>,
    /// Requests per client address to `/api`, e.g. `"50/s"`; none by
    /// default.
    pub per_address: Option<Rate>,
    /// How often an instance adds its counts to the database and reads the
    /// totals of every instance, in ms (also sooner, when a count reaches
    /// a quarter of its limit).
    pub sync_ms: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            failed_auth_per_address: 20,
            failed_auth_window_secs: 60,
            sign_in_per_account: 5,
            sign_in_per_address: 20,
            sign_in_window_secs: 15 * 60,
            per_token: None,
            per_address: None,
            sync_ms: 250,
        }
    }
}

impl RateLimitSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = crate::domain::MAX_WINDOW_SECS;
        for (key, secs) in [
            (
                "rate_limits.failed_auth_window_secs",
                self.failed_auth_window_secs,
            ),
            ("rate_limits.sign_in_window_secs", self.sign_in_window_secs),
        ] {
            if !(1..=max).contains(&secs) {
                return Err(ConfigError::at(
                    key,
                    format!("must be between 1 and {max} (seconds), got {secs}"),
                ));
            }
        }
        if self.sign_in_per_account == 0 || self.sign_in_per_address == 0 {
            return Err(ConfigError::at(
                "rate_limits.sign_in_per_account",
                "sign-in limits must be at least 1 (sign_in_per_account, sign_in_per_address)",
            ));
        }
        if !(10..=10_000).contains(&self.sync_ms) {
            return Err(ConfigError::at(
                "rate_limits.sync_ms",
                format!(
                    "must be between 10 and 10000 (milliseconds), got {}",
                    self.sync_ms
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    #[test]
    fn failed_authentication_is_limited_by_default_and_rates_are_not() {
        let s = Settings::default().rate_limits;
        assert_eq!(
            (s.failed_auth_per_address, s.failed_auth_window_secs),
            (20, 60)
        );
        assert!(s.per_token.is_none() && s.per_address.is_none());
        s.validate().unwrap();
    }

    #[test]
    fn rates_are_read_from_the_file() {
        let s = Settings::from_toml(
            "[rate_limits]\nper_token = \"100/s\"\nper_address = \"600/min\"\nsync_ms = 100\n",
        )
        .unwrap();
        let r = s.rate_limits;
        assert_eq!(r.per_token.unwrap().to_string(), "100/s");
        assert_eq!(r.per_address.unwrap().to_string(), "600/min");
        let e = Settings::from_toml("[rate_limits]\nper_token = \"fast\"\n").unwrap_err();
        assert!(
            e.0.contains("per_token") && e.0.contains("not a rate"),
            "{e}"
        );
        let mut s = Settings::default();
        s.rate_limits.sync_ms = 5;
        let e = s.validate().unwrap_err();
        assert!(e.0.contains("rate_limits.sync_ms"), "{e}");
    }
}
