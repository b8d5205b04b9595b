//! Every integration test in one binary: the real application on port 0
//! against a real SQLite file and a real PostgreSQL server.

mod accounts;
mod advisor;
mod alerts;
mod architecture;
mod batch;
mod browser;
mod cli;
mod corrections;
mod dashboard;
mod drift;
mod durability;
mod export;
mod fuzz;
mod headers;
mod helpers;
mod hostile;
mod items_browser;
mod lifecycle;
mod monitoring;
mod nginx;
mod openapi;
mod outbox;
mod outbox_instances;
mod queue;
mod rate_limits;
mod review_ux;
mod scoring;
mod servers;
mod simulate;
mod tls;
mod train;
mod validation;
pub mod web;
