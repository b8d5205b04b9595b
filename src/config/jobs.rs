//! `[jobs]`: batch scoring jobs uploaded through the API.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    /// Largest file `POST /api/v1/tasks/{task}/jobs` takes, in bytes (the
    /// file is kept in the database until the job is deleted).
    pub max_upload_bytes: usize,
    /// Rows scored and stored per transaction.
    pub chunk_rows: usize,
    /// How long an instance holds a job between two chunks before another
    /// may take it over, in seconds.
    pub lease_secs: u64,
    /// How often an idle instance looks for a job, in ms.
    pub poll_ms: u64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            max_upload_bytes: 64 * 1024 * 1024,
            chunk_rows: 10_000,
            lease_secs: 60,
            poll_ms: 1000,
        }
    }
}

impl JobSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_upload_bytes < 1024 {
            return Err(ConfigError::at(
                "jobs.max_upload_bytes",
                "must be at least 1024",
            ));
        }
        // One blob in one row: both backends keep values under 1 GB.
        if self.max_upload_bytes > 512 * 1024 * 1024 {
            return Err(ConfigError::at(
                "jobs.max_upload_bytes",
                "must be at most 536870912 (512 MiB): the file is stored in the database",
            ));
        }
        if !(1..=100_000).contains(&self.chunk_rows) {
            return Err(ConfigError::at(
                "jobs.chunk_rows",
                "must be between 1 and 100000",
            ));
        }
        if self.lease_secs == 0 {
            return Err(ConfigError::at("jobs.lease_secs", "must be at least 1"));
        }
        if !(10..=600_000).contains(&self.poll_ms) {
            return Err(ConfigError::at(
                "jobs.poll_ms",
                "must be between 10 and 600000",
            ));
        }
        Ok(())
    }
}
