//! Signing in and out. The sign-in form carries a CSRF token bound to a
//! short-lived cookie (there is no session yet); attempts are rate-limited
//! per account and per address; success always starts a fresh session.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::{self, CsrfForm, SignedIn, SESSION_COOKIE};
use super::{redirect, render, WebError};
use crate::crypto::{random_token, same_token};
use crate::http::state::AppState;

const SIGN_IN_COOKIE: &str = "verdict_sign_in";

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    csrf: String,
    name: String,
    error: Option<&'static str>,
    /// Where to go after signing in (a local path), carried in the form.
    next: String,
    /// The reviewer's session ended (they were signed in a moment ago).
    ended: bool,
}

/// `path` if it is a path on this site (`/…`, not `//host` or `/\host`,
/// which browsers read as another site), at most 2,000 characters.
pub fn local_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2000
        && !path.starts_with("/sign-in")
        && !path.chars().any(|c| c.is_control());
    ok.then_some(path)
}

/// The sign-in page's address returning to `next`, saying the session
/// ended when `ended`.
pub fn sign_in_url(next: Option<&str>, ended: bool) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(next) = next.and_then(local_path).filter(|p| *p != "/") {
        query.append_pair("next", next);
    }
    if ended {
        query.append_pair("ended", "1");
    }
    let query = query.finish();
    if query.is_empty() {
        "/sign-in".to_string()
    } else {
        format!("/sign-in?{query}")
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    ended: Option<String>,
}

fn sign_in_cookie(req: &HttpRequest, token: String) -> Cookie<'static> {
    let mut cookie = Cookie::build(SIGN_IN_COOKIE, token)
        .path("/sign-in")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(crate::http::middleware::over_https(req))
        .finish();
    cookie.set_max_age(actix_web::cookie::time::Duration::hours(1));
    cookie
}

fn page(
    req: &HttpRequest,
    status: StatusCode,
    name: String,
    error: Option<&'static str>,
    next: &str,
    ended: bool,
) -> HttpResponse {
    let csrf = random_token();
    let mut response = render(
        status,
        &SignInPage {
            csrf: csrf.clone(),
            name,
            error,
            next: local_path(next).unwrap_or_default().to_string(),
            ended,
        },
    );
    let _ = response.add_cookie(&sign_in_cookie(req, csrf));
    response
}

pub async fn form(req: HttpRequest, query: web::Query<SignInQuery>) -> HttpResponse {
    let next = query.next.as_deref().unwrap_or_default();
    let ended = query.ended.as_deref() == Some("1");
    page(&req, StatusCode::OK, String::new(), None, next, ended)
}

#[derive(Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

/// The client's address: the peer's, or behind a trusted proxy the one it
/// forwarded for (`server.trusted_proxies`); a client cannot pick its own.
pub(super) fn client_address(state: &AppState, req: &HttpRequest) -> String {
    crate::http::client_address(req, &state.settings.server.trusted_proxies).to_string()
}

/// Counts a password check for `account` from `address` before it is
/// made, in the database (concurrent attempts and other instances share
/// the limit); too many is a 429 saying how long to wait.
pub(super) async fn admit(state: &AppState, account: &str, address: &str) -> Result<(), WebError> {
    let (account, from) = (account.to_string(), address.to_string());
    let limits = state.settings.rate_limits.clone();
    let admitted = state
        .db
        .write(move |conn| crate::accounts::admit_sign_in(conn, &account, &from, &limits))
        .await?;
    admitted.map_err(|wait| WebError::TooManyAttempts {
        retry_after: (wait.num_milliseconds().max(0) as u64)
            .div_ceil(1000)
            .max(1),
    })
}

pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, WebError> {
    let SignInForm {
        name,
        password,
        csrf,
        next,
    } = form.into_inner();
    let expected = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_string());
    if !expected.is_some_and(|e| same_token(&e, &csrf)) {
        return Err(WebError::Forbidden(
            "This sign-in form has expired or did not come from this site. Reload the page and try again.",
        ));
    }
    let address = client_address(&state, &req);
    match admit(&state, &name, &address).await {
        Err(e @ WebError::TooManyAttempts { .. }) => {
            tracing::info!(user = %name, %address, "sign-in refused: too many attempts");
            state
                .limits
                .count_refusal(crate::rate_limits::LimitKind::SignIn);
            return Err(e);
        }
        other => other?,
    }
    // argon2 is deliberately slow: off the async workers, and not on the writer.
    let check_name = name.clone();
    let user = state
        .db
        .read(move |conn| {
            crate::accounts::authenticate(conn, &check_name, &password)
                .map_err(crate::db::DbError::from)
        })
        .await?;
    let Some(user) = user else {
        tracing::info!(user = %name, %address, "sign-in refused");
        return Ok(page(
            &req,
            StatusCode::UNAUTHORIZED,
            name,
            Some("Wrong name or password."),
            &next,
            false,
        ));
    };
    let previous = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let user_name = user.name.clone();
    let id = state
        .db
        .write(move |conn| {
            crate::accounts::signed_in(conn, &name, &address)?;
            crate::store::audit::record(
                conn,
                &user_name,
                "sign_in",
                None,
                Some(&user_name),
                serde_json::json!({}),
            )?;
            Ok::<_, crate::db::DbError>(session::start(conn, &user_name, previous.as_deref())?)
        })
        .await?;
    let mut response = redirect(local_path(&next).unwrap_or("/"));
    let _ = response.add_cookie(&session::cookie(&req, id, session::SESSION_HOURS));
    let mut spent = sign_in_cookie(&req, String::new());
    spent.make_removal();
    let _ = response.add_cookie(&spent);
    Ok(response)
}

pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.check_csrf(&form.csrf)?;
    let id = signed_in.session_id.clone();
    state
        .db
        .write(move |conn| Ok::<_, crate::db::DbError>(session::end(conn, &id)?))
        .await?;
    let mut response = redirect("/sign-in");
    let mut gone = session::cookie(&req, String::new(), 0);
    gone.make_removal();
    let _ = response.add_cookie(&gone);
    Ok(response)
}
