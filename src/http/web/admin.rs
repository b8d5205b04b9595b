//! Admin pages. Every handler checks the role on the server.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::session::{CsrfForm, SignedIn};
use super::{redirect, render, WebError};
use crate::accounts::{self, AccountError};
use crate::http::state::AppState;

pub struct UserRow {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub tasks: String,
    /// The tasks given, for the checkboxes.
    pub given: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    users: Vec<UserRow>,
    tasks: Vec<String>,
    message: Option<String>,
    /// A password just reset: whose, and the new one (shown this once).
    reset: Option<(String, String)>,
}

async fn users_page(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    message: Option<String>,
) -> Result<HttpResponse, WebError> {
    users_page_with(state, signed_in, status, message, None).await
}

async fn users_page_with(
    state: &AppState,
    signed_in: &SignedIn,
    status: StatusCode,
    message: Option<String>,
    reset: Option<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let users = state
        .db
        .read(|conn| {
            let mut rows = Vec::new();
            for (name, role, disabled) in accounts::list(conn)? {
                let given = accounts::tasks_of(conn, &name)?;
                rows.push(UserRow {
                    name,
                    role,
                    disabled,
                    tasks: given.join(", "),
                    given,
                });
            }
            Ok::<_, crate::db::DbError>(rows)
        })
        .await?;
    Ok(render(
        status,
        &UsersPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            users,
            tasks: state.tasks.all().map(|t| t.name().to_string()).collect(),
            message,
            reset,
        },
    ))
}

pub async fn users(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    users_page(&state, &signed_in, StatusCode::OK, None).await
}

#[derive(Deserialize)]
pub struct AddUserForm {
    csrf: String,
    name: String,
    role: String,
    password: String,
    /// Comma-separated task names.
    #[serde(default)]
    tasks: String,
}

pub async fn add_user(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    form: web::Form<AddUserForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let form = form.into_inner();
    let tasks: Vec<String> = form
        .tasks
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let problem = match accounts::parse_role(&form.role) {
        Err(e) => Some(e),
        Ok(_) => tasks
            .iter()
            .find(|t| state.tasks.get(t).is_none())
            .map(|t| format!("There is no task named {t:?}.")),
    };
    if let Some(problem) = problem {
        return users_page(&state, &signed_in, StatusCode::BAD_REQUEST, Some(problem)).await;
    }
    let role = accounts::parse_role(&form.role).expect("checked above");
    let actor = signed_in.user.name.clone();
    let name = form.name.trim().to_string();
    // argon2 is slow on purpose: the service hashes on the blocking pool,
    // then writes through the writer.
    let added = accounts::add(&state.db, name, form.password, role, tasks, actor).await;
    match added {
        Ok(()) => Ok(redirect("/admin/users")),
        Err(e) if e.is_refusal() => {
            users_page(
                &state,
                &signed_in,
                StatusCode::BAD_REQUEST,
                Some(e.to_string()),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

/// An unknown user is a missing page; other account errors as usual.
fn user_error(e: AccountError) -> WebError {
    match e {
        AccountError::UnknownUser(_) => WebError::NotFound("There is no such user."),
        other => other.into(),
    }
}

/// `POST /admin/users/{name}/tasks`: the tasks a reviewer may work.
pub async fn set_tasks(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    // The checkboxes repeat `task` (serde_urlencoded cannot collect repeats
    // into a list, so the form is read pair by pair).
    let (mut csrf, mut tasks) = (String::new(), Vec::<String>::new());
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "csrf" => csrf = value.into_owned(),
            "task" if !tasks.contains(&value.to_string()) => tasks.push(value.into_owned()),
            _ => {}
        }
    }
    signed_in.check_csrf(&csrf)?;
    if let Some(t) = tasks.iter().find(|t| state.tasks.get(t).is_none()) {
        return users_page(
            &state,
            &signed_in,
            StatusCode::BAD_REQUEST,
            Some(format!("There is no task named {t:?}.")),
        )
        .await;
    }
    let (name, actor) = (path.into_inner(), signed_in.user.name.clone());
    state
        .db
        .write(move |conn| accounts::set_tasks(conn, &name, &tasks, &actor))
        .await
        .map_err(user_error)?;
    Ok(redirect("/admin/users"))
}

pub async fn set_disabled(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let (name, action) = path.into_inner();
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(WebError::NotFound("There is no such action.")),
    };
    if disabled && name == signed_in.user.name {
        return users_page(
            &state,
            &signed_in,
            StatusCode::BAD_REQUEST,
            Some("You cannot disable yourself.".into()),
        )
        .await;
    }
    let actor = signed_in.user.name.clone();
    state
        .db
        .write(move |conn| accounts::set_disabled(conn, &name, disabled, &actor))
        .await
        .map_err(user_error)?;
    Ok(redirect("/admin/users"))
}

/// `POST /admin/users/{name}/password`: a generated password, shown on
/// the page this once (not cached), stored only as its hash; the user's
/// sessions end.
pub async fn reset_password(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let name = path.into_inner();
    let password = accounts::reset_password(&state.db, name.clone(), signed_in.user.name.clone())
        .await
        .map_err(user_error)?;
    let mut page = users_page_with(
        &state,
        &signed_in,
        StatusCode::OK,
        None,
        Some((name, password)),
    )
    .await?;
    page.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(page)
}
