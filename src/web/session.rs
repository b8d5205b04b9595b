//! Signed-in sessions: a random id in an HttpOnly cookie, its SHA-256 in the
//! database, a CSRF token per session for every form it posts.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use diesel::prelude::*;

use super::WebError;
use crate::accounts::{self, User};
use crate::crypto::{random_token, same_token};
use crate::db::schema::{sessions, users};
use crate::db::DbConnection;
use crate::domain::now;
use crate::startup::AppState;

pub const SESSION_COOKIE: &str = "verdict_session";
/// How long a session lasts from sign-in.
pub const SESSION_HOURS: i64 = 12;

fn digest(id: &str) -> String {
    crate::crypto::sha256_hex(id)
}

/// The session cookie: HttpOnly, SameSite=Lax, Secure when the request came
/// over TLS (directly or through a proxy that says so).
pub fn cookie(req: &HttpRequest, value: String, max_age_hours: i64) -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(req.connection_info().scheme() == "https")
        .finish();
    cookie.set_max_age(actix_web::cookie::time::Duration::hours(max_age_hours));
    cookie
}

/// Starts a session for `user_name`; returns the new id (for the cookie).
/// Always a fresh id: an id the browser had before signing in is never
/// adopted (no session fixation), and `previous` is ended.
pub fn start(
    conn: &mut DbConnection,
    user_name: &str,
    previous: Option<&str>,
) -> QueryResult<String> {
    let id = random_token();
    let at = now();
    conn.transaction(|conn| {
        if let Some(previous) = previous {
            diesel::delete(sessions::table.find(digest(previous))).execute(conn)?;
        }
        diesel::delete(sessions::table.filter(sessions::expires_at.lt(at))).execute(conn)?;
        diesel::insert_into(sessions::table)
            .values((
                sessions::id_sha256.eq(digest(&id)),
                sessions::user_name.eq(user_name),
                sessions::csrf_token.eq(random_token()),
                sessions::created_at.eq(at),
                sessions::expires_at.eq(at + chrono::Duration::hours(SESSION_HOURS)),
            ))
            .execute(conn)
    })?;
    Ok(id)
}

pub fn end(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    diesel::delete(sessions::table.find(digest(id)))
        .execute(conn)
        .map(drop)
}

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
    /// Refuses anyone but an admin; the role is checked here, on the server.
    pub fn require_admin(&self) -> Result<(), WebError> {
        if self.user.role == crate::domain::Role::Admin {
            Ok(())
        } else {
            Err(WebError::Forbidden("Only admins may open this page."))
        }
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

/// Looks the session up: live, and its user still enabled.
fn lookup(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(User, String)>> {
    let row: Option<(String, String)> = sessions::table
        .inner_join(users::table.on(users::name.eq(sessions::user_name)))
        .filter(sessions::id_sha256.eq(digest(id)))
        .filter(sessions::expires_at.gt(now()))
        .filter(users::disabled.eq(false))
        .select((sessions::user_name, sessions::csrf_token))
        .get_result(conn)
        .optional()?;
    let Some((name, csrf)) = row else {
        return Ok(None);
    };
    Ok(accounts::load(conn, &name)?.map(|user| (user, csrf)))
}

impl FromRequest for SignedIn {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<SignedIn, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let id = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        Box::pin(async move {
            let state = state.ok_or(WebError::Internal)?;
            let id = id.ok_or(WebError::SignInRequired)?;
            let lookup_id = id.clone();
            let found = state
                .db
                .read(move |conn| lookup(conn, &lookup_id).map_err(crate::db::DbError::from))
                .await
                .map_err(|_| WebError::Internal)?;
            let (user, csrf) = found.ok_or(WebError::SignInRequired)?;
            Ok(SignedIn {
                user,
                csrf,
                session_id: id,
            })
        })
    }
}
