//! `[database]`, and the directories of `[models]` and `[datasets]`.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::Backend;

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
    /// PostgreSQL: threads writing scored items, taking turns to commit
    /// concurrent requests together (each holds a pooled connection while
    /// it writes).
    pub group_writers: usize,
    /// SQLite: the WAL is rewound once it holds this many MiB (checkpoints
    /// run in the background; a rewind pauses the writer for a few ms, so a
    /// larger WAL means fewer pauses under heavy writes).
    pub wal_limit_mb: u32,
    /// SQLite: the writer's page cache, in MiB (default 2, SQLite's own).
    /// Larger is not free: SQLite scans the cache at every commit, which
    /// at 64 MiB cost the API a fifth of its single-item throughput.
    /// `verdict score` uses at least [`BATCH_WRITER_CACHE_MB`]: a batch
    /// file's chunk dirties ~20 MiB, which a small cache spills to the WAL
    /// before the commit and writes again.
    pub writer_cache_mb: u32,
    /// SQLite: the page size of a database file this creates, in bytes (a
    /// power of two from 512 to 65536; an existing file keeps its own).
    /// 2048 (the default) suits the API's single items under random ids:
    /// each commit writes the pages it dirtied, a leaf of every index, and
    /// smaller pages write fewer bytes. A database that mostly takes batch
    /// files (`verdict score`, scoring jobs) fills pages in long runs and
    /// gains from larger ones: 8192 scored a million items 30 % faster, at
    /// ~10 % fewer single items per second through the API.
    pub page_size: u32,
}

/// The writer's page cache of `verdict score` at least (MiB): its few,
/// large commits gain what the API's many small ones would lose (measured
/// on a million items: 28,400 items/s with 2 MiB, 36,000–40,700 with 64).
pub const BATCH_WRITER_CACHE_MB: u32 = 64;

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://verdict.db".into(),
            synchronous: Synchronous::Normal,
            pool_size: 8,
            busy_timeout_ms: 5000,
            max_batch_jobs: 256,
            group_writers: 2,
            wal_limit_mb: 256,
            writer_cache_mb: 2,
            page_size: 2048,
        }
    }
}

impl DatabaseSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        Backend::from_url(&self.url).map_err(|e| ConfigError::at("database.url", e))?;
        if self.wal_limit_mb == 0 {
            return Err(ConfigError::at(
                "database.wal_limit_mb",
                "must be at least 1",
            ));
        }
        if self.writer_cache_mb == 0 || self.writer_cache_mb > 65_536 {
            return Err(ConfigError::at(
                "database.writer_cache_mb",
                "must be between 1 and 65536",
            ));
        }
        if !self.page_size.is_power_of_two() || !(512..=65_536).contains(&self.page_size) {
            return Err(ConfigError::at(
                "database.page_size",
                format!(
                    "must be a power of two from 512 to 65536, got {}",
                    self.page_size
                ),
            ));
        }
        if self.group_writers == 0 || self.group_writers as u64 >= u64::from(self.pool_size) {
            return Err(ConfigError::at(
                "database.group_writers",
                "must be at least 1 and less than database.pool_size",
            ));
        }
        if self.pool_size == 0 {
            return Err(ConfigError::at("database.pool_size", "must be at least 1"));
        }
        Ok(())
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
