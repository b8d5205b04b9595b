//! The stores: one module per table group, diesel queries only. Each returns
//! `QueryResult` (or the db error) and holds no rules; where SQLite and
//! PostgreSQL differ, the store owning the table matches the backend.

pub mod items;
pub mod queue;
