//! verdict: a machine-learning model in production with a human in the
//! loop. The modules are layered (README "Layers", ARCHITECTURE.md); each
//! uses only those before it, which `tests/api/architecture.rs` checks.

// 1. domain: validated values and every enum of the model.
pub mod crypto;
pub mod domain;

// 2. config.
pub mod config;

// 3. db: connections, pool, writer, checkpointer, schema.
pub mod db;

// 4. stores: queries only.
pub mod store;

// 5. services: the rules, with typed errors; background jobs.
pub mod accounts;
pub mod advisor;
pub mod alerts;
pub mod batch;
pub mod export;
pub mod items;
pub mod lifecycle;
pub mod mail;
pub mod ml;
pub mod monitoring;
pub mod outbox;
pub mod policy;
pub mod rate_limits;
pub mod review;
pub mod review_stats;
pub mod scoring;
pub mod sessions;
pub mod tasks;
pub mod tokens;
pub mod webhooks;

// 6. http: the JSON API and the web UI.
pub mod http;

// 7. startup: builds the state, starts the jobs, binds.
pub mod startup;
pub mod telemetry;
