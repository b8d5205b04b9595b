//! `Authorization: Bearer <token>` for the API.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, http::header, web, FromRequest, HttpRequest};

use crate::http::error::AppError;
use crate::http::state::AppState;
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
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::Internal("no application state".into()))?;
            let token = token.ok_or(AppError::Unauthorized)?;
            match state.tokens.check(&token) {
                Cached::Valid(name) => Ok(ApiClient(name)),
                Cached::Invalid => Err(AppError::Unauthorized),
                Cached::Unknown => {
                    let cache = state.clone();
                    let name = state
                        .db
                        .read(move |conn| cache.tokens.verify(conn, &token).map_err(AppError::from))
                        .await?;
                    name.map(ApiClient).ok_or(AppError::Unauthorized)
                }
            }
        })
    }
}
