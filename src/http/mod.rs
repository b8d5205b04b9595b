//! The HTTP layer: the JSON API (`api/`, token auth), the web UI (`web/`,
//! askama pages and sessions), and the state they share. The only layer that
//! knows actix-web, and the only place where the errors of the services
//! become responses: `error::AppError` (JSON) and `web::WebError` (pages);
//! `middleware` gives every response its security headers and every API
//! error its JSON.

pub mod api;
pub mod download;
pub mod error;
pub mod front;
pub mod middleware;
pub mod state;
pub mod web;

use actix_web::web as aw;

/// Every route, the extractors' error handlers, and the 404 for the rest.
pub fn configure(cfg: &mut aw::ServiceConfig) {
    middleware::extractor_errors(cfg);
    api::routes(cfg);
    web::routes(cfg);
    cfg.default_service(aw::to(api::not_found));
}
