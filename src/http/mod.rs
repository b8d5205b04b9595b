//! The HTTP layer: the JSON API (`api/`, token auth), the web UI (`web/`,
//! askama pages and sessions), and the state they share. The only layer that
//! knows actix-web, and the only place where the errors of the services
//! become responses: `error::AppError` (JSON) and `web::WebError` (pages).

pub mod api;
pub mod download;
pub mod error;
pub mod state;
pub mod web;
