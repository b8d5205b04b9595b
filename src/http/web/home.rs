//! The start page: the queues the signed-in person may work.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::session::SignedIn;
use super::{render, WebError};
use crate::http::state::AppState;
use crate::review;

pub struct QueueRow {
    pub task: String,
    /// The task's description, as HTML.
    pub description: String,
    pub automation: &'static str,
    pub live_model: String,
    pub queued: i64,
    pub in_review: i64,
    pub overdue: i64,
    /// Labels the signed-in person gave today (UTC).
    pub mine_today: i64,
    /// Ties waiting for an admin.
    pub adjudication: i64,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    user: String,
    csrf: String,
    queues: Vec<QueueRow>,
    is_admin: bool,
}

pub async fn page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    let tasks: Vec<_> = state
        .tasks
        .all()
        .filter(|t| signed_in.user.may_work(t.name()))
        .cloned()
        .collect();
    let names: Vec<String> = tasks.iter().map(|t| t.name().to_string()).collect();
    let who = signed_in.user.name.clone();
    let figures = state
        .db
        .read(move |conn| {
            let midnight = chrono::Utc::now()
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight exists");
            names
                .iter()
                .map(|task| {
                    Ok((
                        review::depth(conn, task)?,
                        review::labelled_since(conn, task, &who, midnight)?,
                    ))
                })
                .collect::<Result<Vec<_>, review::ReviewError>>()
        })
        .await?;
    let queues = tasks
        .iter()
        .zip(figures)
        .map(|(t, (depth, mine))| QueueRow {
            task: t.name().to_string(),
            description: super::markdown::to_html(&t.config.description),
            automation: t.config.automation.as_str(),
            live_model: t
                .live()
                .map(|m| m.version().to_string())
                .unwrap_or_else(|| "none".into()),
            queued: depth.queued,
            in_review: depth.in_review,
            overdue: depth.overdue,
            mine_today: mine,
            adjudication: depth.adjudication,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &HomePage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            queues,
            is_admin: signed_in.is_admin(),
        },
    ))
}
