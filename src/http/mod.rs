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

/// The client's address: the peer's, or behind a trusted proxy
/// (`server.trusted_proxies`) the right-most address of `X-Forwarded-For`
/// that is not a trusted proxy's. Unspecified if the peer is unknown.
pub fn client_address(
    req: &actix_web::HttpRequest,
    trusted: &[crate::domain::Network],
) -> std::net::IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if trusted.is_empty() {
        return peer;
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    crate::domain::client_address(peer, forwarded, trusted)
}
