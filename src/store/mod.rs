//! Stores: the diesel queries of each table, nothing else. They return
//! `QueryResult` (or [`DbError`](crate::db::DbError)); where SQLite and
//! PostgreSQL differ, the store owning the table matches the backend.

pub mod labels;
pub mod snapshots;
