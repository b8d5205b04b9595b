//! The stores: one module per group of tables, queries only. Each returns
//! `QueryResult` or `DbError`; where SQLite and PostgreSQL differ, the store
//! that owns the table matches on the connection; nothing above this layer
//! writes SQL.

pub mod accounts;
pub mod advisor;
pub mod alerts;
pub mod audit;
pub mod browse;
pub mod candidates;
pub mod corrections;
pub mod items;
pub mod jobs;
pub mod labels;
pub mod metrics;
pub mod monitoring;
pub mod outbox;
pub mod queue;
pub mod rate_counts;
pub mod sessions;
pub mod snapshots;
pub mod tasks;
pub mod tokens;
