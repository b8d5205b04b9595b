//! Stores: diesel queries only, one module per table (or group of tables)
//! it owns. Each returns `QueryResult` or `DbError`; where SQLite and
//! PostgreSQL differ, the store owning the table matches on the backend.

pub mod alerts;
pub mod outbox;
