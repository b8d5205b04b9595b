//! The web UI: server-rendered askama pages, sessions, CSRF on every form.

mod account;
mod admin;
mod alerts;
mod browse;
mod charts;
mod correct;
mod dashboard;
mod datasets;
mod deployment;
mod format;
mod home;
mod inputs;
mod markdown;
mod outbox;
mod panels;
mod review;
pub mod session;
mod signin;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::page))
        .route("/sign-in", web::get().to(signin::form))
        .route("/sign-in", web::post().to(signin::submit))
        .route("/sign-out", web::post().to(signin::sign_out))
        .route("/account", web::get().to(account::page))
        .route(
            "/account/password",
            web::post().to(account::change_password),
        )
        .route("/review/{task}", web::get().to(review::next))
        .route("/review/{task}/undo", web::post().to(review::undo))
        .route("/review/{task}/{item}/label", web::post().to(review::label))
        .route("/review/{task}/{item}/skip", web::post().to(review::skip))
        .route("/review/{task}/{item}/flag", web::post().to(review::flag))
        .route("/review/{task}/{item}/renew", web::post().to(review::renew))
        .route("/admin/items", web::get().to(browse::list))
        .route("/admin/items/{task}/{id}", web::get().to(browse::item))
        .route(
            "/admin/items/{task}/{id}/overrule",
            web::post().to(correct::overrule),
        )
        .route(
            "/admin/items/{task}/{id}/reopen",
            web::post().to(correct::reopen),
        )
        .route("/admin/reviewers", web::get().to(browse::reviewers))
        .route("/admin/models", web::get().to(datasets::models))
        .route(
            "/admin/models/{task}/candidate",
            web::post().to(deployment::set_candidate),
        )
        .route(
            "/admin/models/{task}/promote",
            web::post().to(deployment::promote),
        )
        .route(
            "/admin/models/{task}/withdraw",
            web::post().to(deployment::withdraw),
        )
        .route(
            "/admin/models/{task}/rollback",
            web::post().to(deployment::rollback),
        )
        .route("/admin/export/{task}", web::get().to(datasets::download))
        .route(
            "/admin/datasets/{task}",
            web::post().to(datasets::take_snapshot),
        )
        .route(
            "/admin/datasets/{task}/{name}",
            web::get().to(datasets::snapshot_file),
        )
        .route("/dashboard", web::get().to(dashboard::overview))
        .route("/dashboard/{task}", web::get().to(dashboard::task))
        .route(
            "/dashboard/{task}/live",
            web::get().to(dashboard::task_live),
        )
        .route("/admin/alerts", web::get().to(alerts::page))
        .route(
            "/admin/alerts/{id}/acknowledge",
            web::post().to(alerts::acknowledge),
        )
        .route(
            "/admin/alerts/{id}/silence",
            web::post().to(alerts::silence),
        )
        .route(
            "/admin/alerts/silences/{id}/end",
            web::post().to(alerts::end_silence),
        )
        .route("/admin/outbox", web::get().to(outbox::page))
        .route("/admin/outbox/{id}/retry", web::post().to(outbox::retry))
        .route("/admin/users", web::get().to(admin::users))
        .route("/admin/users", web::post().to(admin::add_user))
        .route(
            "/admin/users/{name}/tasks",
            web::post().to(admin::set_tasks),
        )
        .route(
            "/admin/users/{name}/password",
            web::post().to(admin::reset_password),
        )
        .route(
            "/admin/users/{name}/{action}",
            web::post().to(admin::set_disabled),
        )
        .route("/static/{file}", web::get().to(asset));
}

/// Renders a template into a response with `status` (the CSP and frame
/// options every HTML response carries are added by
/// [`crate::http::middleware`]).
pub fn render<T: Template>(status: StatusCode, template: &T) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            WebError::Internal.error_response()
        }
    }
}

/// The web UI's page for a path that does not exist.
pub fn not_found_page() -> HttpResponse {
    render(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            title: "Not found",
            message: "There is no page at this address.".to_string(),
        },
    )
}

pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Errors of the web UI, answered with HTML pages (or a redirect to sign in).
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No session, or it ended: to the sign-in page, which returns to
    /// `next` (a local path) and says the session ended when `ended`.
    #[error("sign in first")]
    SignInRequired { next: Option<String>, ended: bool },
    #[error("{0}")]
    Forbidden(&'static str),
    /// A request the page cannot answer (a bad query): a 400 page saying why.
    #[error("{0}")]
    BadRequest(&'static str),
    /// A missing item, task, user or page: a 404 page saying what is missing.
    #[error("{0}")]
    NotFound(&'static str),
    /// Too many sign-in attempts: a 429 page, with `Retry-After`.
    #[error("too many attempts")]
    TooManyAttempts { retry_after: u64 },
    #[error("internal error")]
    Internal,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: String,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (title, message) = match self {
            WebError::SignInRequired { next, ended } => {
                return redirect(&signin::sign_in_url(next.as_deref(), *ended))
            }
            WebError::Forbidden(why) => ("Not allowed", why.to_string()),
            WebError::BadRequest(why) => ("Bad request", why.to_string()),
            WebError::NotFound(what) => ("Not found", what.to_string()),
            WebError::TooManyAttempts { retry_after } => {
                let wait = match *retry_after {
                    0 | 1 => "1 second".to_string(),
                    s @ 2..=59 => format!("{s} seconds"),
                    60 => "1 minute".to_string(),
                    s => format!("{} minutes", s.div_ceil(60)),
                };
                let mut response = render(
                    self.status_code(),
                    &ErrorPage {
                        title: "Too many attempts",
                        message: format!("Too many failed sign-ins. Try again in {wait}."),
                    },
                );
                if let Ok(value) = retry_after.max(&1).to_string().parse() {
                    response
                        .headers_mut()
                        .insert(actix_web::http::header::RETRY_AFTER, value);
                }
                return response;
            }
            WebError::Internal => (
                "Something went wrong",
                "The details are in the server log.".to_string(),
            ),
        };
        render(self.status_code(), &ErrorPage { title, message })
    }
}

impl From<crate::http::error::AppError> for WebError {
    fn from(e: crate::http::error::AppError) -> Self {
        use crate::http::error::AppError;
        match e {
            AppError::UnknownTask(_) => WebError::NotFound("There is no such task."),
            AppError::ItemNotFound { .. } => WebError::NotFound("There is no such item."),
            AppError::NotFound => WebError::NotFound("There is nothing here."),
            e => {
                // The detail goes to the log with the request's span; the
                // page says only that something went wrong.
                tracing::error!(error = %e, code = e.code(), "web request failed");
                WebError::Internal
            }
        }
    }
}

const CSS: &str = include_str!("../../../static/verdict.css");
const REVIEW_JS: &str = include_str!("../../../static/review.js");
const DASHBOARD_JS: &str = include_str!("../../../static/dashboard.js");
const LOCAL_TIME_JS: &str = include_str!("../../../static/local-time.js");

/// Assets are built into the binary: one file to deploy, no CDN.
async fn asset(path: web::Path<String>) -> HttpResponse {
    const JS: &str = "text/javascript; charset=utf-8";
    let (content_type, body) = match path.as_str() {
        "verdict.css" => ("text/css; charset=utf-8", CSS),
        "review.js" => (JS, REVIEW_JS),
        "dashboard.js" => (JS, DASHBOARD_JS),
        "local-time.js" => (JS, LOCAL_TIME_JS),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

impl From<crate::db::DbError> for WebError {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, "web request failed");
        WebError::Internal
    }
}

impl From<crate::accounts::AccountError> for WebError {
    fn from(e: crate::accounts::AccountError) -> Self {
        tracing::error!(error = %e, code = e.code(), "web request failed");
        WebError::Internal
    }
}

impl From<crate::alerts::AlertError> for WebError {
    fn from(e: crate::alerts::AlertError) -> Self {
        use crate::alerts::AlertError;
        match e {
            AlertError::UnknownAlert(_) => WebError::NotFound("There is no such alert."),
            AlertError::UnknownSilence(_) => WebError::NotFound("There is no such silence."),
            AlertError::Resolved(_) => {
                WebError::BadRequest("This alert is resolved: there is nothing to acknowledge.")
            }
            AlertError::SilenceEnded(_) => WebError::BadRequest("This silence has ended."),
            AlertError::ReasonTooLong => {
                WebError::BadRequest("A silence's reason is at most 500 characters.")
            }
            e @ AlertError::Db(_) => {
                tracing::error!(error = %e, code = e.code(), "alerts request failed");
                WebError::Internal
            }
        }
    }
}

impl From<crate::review::ReviewError> for WebError {
    fn from(e: crate::review::ReviewError) -> Self {
        use crate::review::ReviewError;
        match e {
            ReviewError::UnknownLabel(_) => {
                WebError::Forbidden("That is not a label of this task.")
            }
            ReviewError::UnknownItem { .. } => WebError::NotFound("There is no such item."),
            ReviewError::NoteRequired => {
                WebError::BadRequest("Say why in the note: it is required.")
            }
            ReviewError::NoteTooLong => {
                WebError::BadRequest("The note is too long: keep it under 2,000 characters.")
            }
            ReviewError::SameVerdict => {
                WebError::BadRequest("The verdict is that label already: nothing was changed.")
            }
            ReviewError::AlreadyWaiting => WebError::BadRequest(
                "The item is waiting for review already: there is nothing to reopen.",
            ),
            e => {
                tracing::error!(error = %e, code = e.code(), "review request failed");
                WebError::Internal
            }
        }
    }
}
