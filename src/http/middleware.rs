//! What every response gets on its way out, whichever code made it (a
//! handler, an extractor, a resource's 405, the default 404):
//!
//! - `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`;
//! - HSTS when the request came over https: through a TLS listener, or a
//!   proxy's `X-Forwarded-Proto: https` when `server.trust_forwarded_proto`
//!   says that header is the proxy's own;
//! - the pages' CSP and `X-Frame-Options` on every HTML response and
//!   redirect;
//! - under `/api`, an error with an empty or non-JSON body becomes the API's
//!   JSON error (same status, a stable code), keeping `Allow`.
//!
//! Plus the extractors' error handlers, answering JSON under `/api` and a
//! page elsewhere.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, ResponseError};

use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::http::web::WebError;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000; includeSubDomains";

/// Whether a path is the API's (JSON errors) rather than the web UI's.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Whether the client reached us over https, as far as we may believe:
/// our own TLS, or a proxy's `X-Forwarded-Proto` / `Forwarded` when
/// `server.trust_forwarded_proto` says the proxy sets it (else any client
/// could claim https). Decides HSTS and the cookies' `Secure` flag.
pub fn over_https(req: &HttpRequest) -> bool {
    if req.app_config().secure() {
        return true;
    }
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.settings.server.trust_forwarded_proto);
    trusted && forwarded_https(req.headers())
}

/// `X-Forwarded-Proto: https` or `Forwarded: …;proto=https` from the
/// nearest proxy (the first value, as the client's own hop).
fn forwarded_https(headers: &HeaderMap) -> bool {
    let first = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if let Some(proto) = first(header::HeaderName::from_static("x-forwarded-proto")) {
        return proto == "https";
    }
    first(header::FORWARDED).is_some_and(|f| {
        f.split(';')
            .filter_map(|pair| pair.split_once('='))
            .any(|(k, v)| k.trim() == "proto" && v.trim().trim_matches('"') == "https")
    })
}

/// The middleware (`actix_web::middleware::from_fn`).
pub async fn respond(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let https = over_https(req.request());
    let api = is_api(req.path());
    // (The request is not cloned before routing: the router needs it
    // unshared. Handlers' and extractors' errors arrive as responses.)
    let mut res = next.call(req).await?.map_into_boxed_body();
    if api && needs_json(&res) {
        res = json_error(res);
    }
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    let html = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if html || res.status().is_redirection() {
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(res)
}

/// An error whose body is not already the API's JSON.
fn needs_json(res: &ServiceResponse<BoxBody>) -> bool {
    let status = res.status();
    (status.is_client_error() || status.is_server_error())
        && !res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/json"))
}

fn json_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let (req, old) = res.into_parts();
    let allow = old
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok());
    let error = AppError::for_status(old.status(), req.method().as_str(), allow);
    ServiceResponse::new(req, error.error_response())
}

/// The extractors' errors: the API's JSON under `/api`, the web UI's page
/// elsewhere, never the framework's parser text as plain text.
pub fn extractor_errors(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::FormConfig::default().error_handler(|e, req| {
        tracing::info!(error = %e, "malformed form refused");
        if is_api(req.path()) {
            return AppError::UnsupportedMediaType {
                got: content_type(req),
                accepted: AppError::JSON_BODY,
            }
            .into();
        }
        WebError::BadRequest(
            "This form was incomplete or not as the page sends it. Go back, reload the page and try again.",
        )
        .into()
    }))
    .app_data(web::QueryConfig::default().error_handler(|e, req| {
        tracing::info!(error = %e, "malformed query refused");
        if is_api(req.path()) {
            return AppError::invalid("invalid_query", "query", e.to_string()).into();
        }
        WebError::BadRequest("This address has a filter the page does not understand.").into()
    }))
    .app_data(web::PathConfig::default().error_handler(|e, req| {
        tracing::info!(error = %e, "malformed path refused");
        if is_api(req.path()) {
            return AppError::NotFound.into();
        }
        WebError::NotFound("There is no page at this address.").into()
    }))
    .app_data(web::JsonConfig::default().error_handler(|e, req| {
        use actix_web::error::JsonPayloadError;
        tracing::info!(error = %e, "malformed JSON refused");
        let error = match e {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => AppError::PayloadTooLarge { limit },
            JsonPayloadError::ContentType => AppError::UnsupportedMediaType {
                got: content_type(req),
                accepted: AppError::JSON_BODY,
            },
            JsonPayloadError::Deserialize(e) => AppError::MalformedJson(e.to_string()),
            _ => AppError::MalformedJson("the body could not be read".into()),
        };
        if is_api(req.path()) {
            error.into()
        } else {
            WebError::BadRequest("This request's body was not as the page sends it.").into()
        }
    }));
}

fn content_type(req: &HttpRequest) -> Option<String> {
    req.headers().get(header::CONTENT_TYPE).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(100)
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nearest_proxys_https_counts() {
        let with = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            forwarded_https(&h)
        };
        assert!(with("x-forwarded-proto", "https"));
        assert!(with("x-forwarded-proto", "HTTPS, http"));
        assert!(!with("x-forwarded-proto", "http, https"));
        assert!(with("forwarded", "for=1.2.3.4;proto=https"));
        assert!(!with("forwarded", "proto=http"));
        assert!(!forwarded_https(&HeaderMap::new()));
        assert!(is_api("/api/v1/tasks") && is_api("/api") && !is_api("/apix"));
    }
}
