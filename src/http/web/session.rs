//! The session cookie (HttpOnly, SameSite=Lax) and the signed-in user of a
//! request; sessions themselves are `crate::sessions`.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

use super::WebError;
use crate::accounts::User;
use crate::crypto::same_token;
use crate::http::state::AppState;

pub const SESSION_COOKIE: &str = "verdict_session";

/// The session cookie: HttpOnly, SameSite=Lax, Secure when the request came
/// over TLS (directly, or through a trusted proxy that says so).
pub fn cookie(req: &HttpRequest, value: String, max_age_hours: i64) -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(crate::http::middleware::over_https(req))
        .finish();
    cookie.set_max_age(actix_web::cookie::time::Duration::hours(max_age_hours));
    cookie
}

pub use crate::sessions::{end, start, SESSION_HOURS};

/// The signed-in user of a request and their session's CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub user: User,
    pub csrf: String,
    pub session_id: String,
}

/// A form whose only field is the session's CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

impl SignedIn {
    pub fn is_admin(&self) -> bool {
        self.user.role == crate::domain::Role::Admin
    }

    /// Refuses anyone but an admin; the role is checked here, on the server.
    pub fn require_admin(&self) -> Result<(), WebError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(WebError::Forbidden("Only admins may open this page."))
        }
    }

    /// An admin's form post: the role, then the form's CSRF token.
    pub fn admin_post(&self, csrf: &str) -> Result<(), WebError> {
        self.require_admin()?;
        self.check_csrf(csrf)
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), WebError> {
        if same_token(&self.csrf, presented) {
            Ok(())
        } else {
            Err(WebError::Forbidden("This form has expired or did not come from this site. Reload the page and try again."))
        }
    }
}

/// Where the sign-in page should return to after signing in: the page a
/// GET asked for; for a form post, the page the form was on (its
/// `Referer`, when it is this site's).
fn return_to(req: &HttpRequest) -> Option<String> {
    let path = if req.method() == actix_web::http::Method::GET {
        let uri = req.uri();
        uri.path_and_query().map(|p| p.as_str().to_string())
    } else {
        let referer = req.headers().get(actix_web::http::header::REFERER)?;
        let url = referer.to_str().ok()?;
        let host = req.connection_info().host().to_string();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))?
            .strip_prefix(host.as_str())?;
        Some(if rest.is_empty() {
            "/".to_string()
        } else {
            rest.to_string()
        })
    }?;
    super::signin::local_path(&path).map(str::to_string)
}

impl FromRequest for SignedIn {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<SignedIn, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let id = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let next = return_to(req);
        Box::pin(async move {
            let state = state.ok_or(WebError::Internal)?;
            let Some(id) = id else {
                return Err(WebError::SignInRequired { next, ended: false });
            };
            let lookup_id = id.clone();
            let found = state
                .db
                .read(move |conn| {
                    crate::sessions::lookup(conn, &lookup_id).map_err(crate::db::DbError::from)
                })
                .await
                .map_err(|_| WebError::Internal)?;
            // A cookie without a live session: it ended (signed out
            // elsewhere, expired, or the account was disabled).
            let (user, csrf) = found.ok_or(WebError::SignInRequired { next, ended: true })?;
            Ok(SignedIn {
                user,
                csrf,
                session_id: id,
            })
        })
    }
}
