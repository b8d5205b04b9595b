//! Your account: change your own password (after an admin's reset, say).
//! The current password is checked under the sign-in limit; the new one
//! ends every other session of the account.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::{self, SignedIn};
use super::{redirect, render, WebError};
use crate::accounts::{self, MIN_PASSWORD_LEN};
use crate::http::state::AppState;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    role: String,
    tasks: Vec<String>,
    min_length: usize,
    error: Option<&'static str>,
    changed: bool,
}

#[derive(Deserialize)]
pub struct AccountQuery {
    changed: Option<String>,
}

fn account_page(
    signed_in: &SignedIn,
    status: StatusCode,
    error: Option<&'static str>,
    changed: bool,
) -> HttpResponse {
    render(
        status,
        &AccountPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            role: signed_in.user.role.to_string(),
            tasks: signed_in.user.tasks.clone(),
            min_length: MIN_PASSWORD_LEN,
            error,
            changed,
        },
    )
}

pub async fn page(signed_in: SignedIn, query: web::Query<AccountQuery>) -> HttpResponse {
    let changed = query.changed.as_deref() == Some("1");
    account_page(&signed_in, StatusCode::OK, None, changed)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    again: String,
}

pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.check_csrf(&form.csrf)?;
    let PasswordForm {
        current,
        new,
        again,
        ..
    } = form.into_inner();
    let refuse = |message| {
        Ok(account_page(
            &signed_in,
            StatusCode::BAD_REQUEST,
            Some(message),
            false,
        ))
    };
    if new != again {
        return refuse("The new password and its repetition differ.");
    }
    if new.chars().count() < MIN_PASSWORD_LEN {
        return refuse("The new password is too short.");
    }
    // The current password is guessed no faster here than at sign-in.
    let name = signed_in.user.name.clone();
    let address = super::signin::client_address(&state, &req);
    super::signin::admit(&state, &name, &address).await?;
    let check = name.clone();
    let known = state
        .db
        .read(move |conn| {
            accounts::authenticate(conn, &check, &current).map_err(crate::db::DbError::from)
        })
        .await?;
    if known.is_none() {
        return Ok(account_page(
            &signed_in,
            StatusCode::UNAUTHORIZED,
            Some("The current password is wrong."),
            false,
        ));
    }
    let hash = tokio::task::spawn_blocking(move || accounts::hash_password(&new))
        .await
        .map_err(|_| WebError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot hash a password");
            WebError::Internal
        })?;
    // Every session ends (a thief's too); this browser gets a new one.
    let id = state
        .db
        .write(move |conn| {
            accounts::set_password_hash(conn, &name, &hash, &name)?;
            accounts::signed_in(conn, &name, &address)?;
            Ok::<_, crate::accounts::AccountError>(crate::sessions::start(conn, &name, None)?)
        })
        .await?;
    let mut response = redirect("/account?changed=1");
    let _ = response.add_cookie(&session::cookie(&req, id, crate::sessions::SESSION_HOURS));
    Ok(response)
}
