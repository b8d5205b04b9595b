//! `Authorization: Bearer <token>` for the API, and the rate limits that
//! go with it (`[rate_limits]`, [`crate::rate_limits`]): an address locked
//! out for failed authentication is refused before its token is looked at;
//! then the address's rate, the token, and the token's rate. With no rate
//! configured and nobody locked out this adds one atomic load.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::rate_limits::{self, Failure, LimitKind};
use crate::tokens::Cached;

/// The client a valid API token belongs to.
#[derive(Debug, Clone)]
pub struct ApiClient(pub String);

impl FromRequest for ApiClient {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiClient, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal("no application state".into()))?;
            let limits = state.limits.clone();
            let address =
                || crate::http::client_address(&req, &state.settings.server.trusted_proxies);
            if limits.any_locked() {
                if let Some(limited) = limits.locked(address()) {
                    limits.count_refusal(LimitKind::LockedOut);
                    return Err(limited.into());
                }
            }
            if let Some(rate) = limits.settings().per_address {
                limits
                    .admit(&rate_limits::address_key(address()), rate)
                    .inspect_err(|_| limits.count_refusal(LimitKind::Address))?;
            }
            let token = token.ok_or(AppError::Unauthorized)?;
            let client = match state.tokens.check(&token) {
                Cached::Valid(client) => Some(client),
                Cached::Invalid => None,
                Cached::Unknown => {
                    // To the database anyway: ask it too whether another
                    // instance locked this address out.
                    let (cache, from, locks) = (state.clone(), address(), limits.clone());
                    let found = state
                        .db
                        .read(move |conn| {
                            if let Some(limited) =
                                rate_limits::failed_auth_blocked(conn, &locks, from)?
                            {
                                return Ok(Err(limited));
                            }
                            Ok::<_, AppError>(Ok(cache.tokens.verify(conn, &token)?))
                        })
                        .await?;
                    match found {
                        Ok(client) => client,
                        Err(limited) => {
                            limits.lock(from, limited);
                            limits.count_refusal(LimitKind::LockedOut);
                            return Err(limited.into());
                        }
                    }
                }
            };
            let Some(client) = client else {
                return Err(failed(&state, address()).await);
            };
            if let Some(rate) = limits.token_rate(client.rate) {
                limits
                    .admit(&rate_limits::token_key(&client.name), rate)
                    .inspect_err(|_| limits.count_refusal(LimitKind::Token))?;
            }
            Ok(ApiClient(client.name))
        })
    }
}

/// Counts a failed authentication from `address`; the error to answer.
async fn failed(state: &AppState, address: std::net::IpAddr) -> AppError {
    let limits = state.limits.clone();
    let counted = state
        .db
        .write(move |conn| rate_limits::count_failed_auth(conn, &limits, address))
        .await;
    match counted {
        Ok(Failure::Counted) => AppError::Unauthorized,
        Ok(Failure::LastAllowed(limited)) => {
            tracing::warn!(%address, "API authentication failures reached the limit: address locked out");
            state.limits.lock(address, limited);
            AppError::Unauthorized
        }
        Ok(Failure::Refused(limited)) => {
            state.limits.lock(address, limited);
            state.limits.count_refusal(LimitKind::LockedOut);
            limited.into()
        }
        Err(e) => e.into(),
    }
}
