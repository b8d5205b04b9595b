//! The start page: the queues the signed-in person may work.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use diesel::prelude::*;

use super::session::SignedIn;
use super::{render, WebError};
use crate::db::schema::items;
use crate::items::REVIEW_PENDING;
use crate::startup::AppState;

pub struct QueueRow {
    pub task: String,
    pub automation: &'static str,
    pub live_model: String,
    pub queued: i64,
    pub overdue: i64,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    user: String,
    role: &'static str,
    csrf: String,
    queues: Vec<QueueRow>,
}

pub async fn page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    let (queued, overdue) = state
        .db
        .read(|conn| {
            let now = crate::domain::now();
            let queued: Vec<(String, i64)> = items::table
                .filter(items::review_state.eq(REVIEW_PENDING))
                .group_by(items::task)
                .select((items::task, diesel::dsl::count_star()))
                .load(conn)?;
            let overdue: Vec<(String, i64)> = items::table
                .filter(items::review_state.eq(REVIEW_PENDING))
                .filter(items::sla_deadline.lt(now))
                .group_by(items::task)
                .select((items::task, diesel::dsl::count_star()))
                .load(conn)?;
            Ok((
                queued
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
                overdue
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            ))
        })
        .await?;
    let queues = state
        .tasks
        .all()
        .filter(|t| signed_in.user.may_work(t.name()))
        .map(|t| QueueRow {
            task: t.name().to_string(),
            automation: t.config.automation.as_str(),
            live_model: t
                .live()
                .map(|m| m.version().to_string())
                .unwrap_or_else(|| "none".into()),
            queued: queued.get(t.name()).copied().unwrap_or(0),
            overdue: overdue.get(t.name()).copied().unwrap_or(0),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &HomePage {
            user: signed_in.user.name.clone(),
            role: signed_in.user.role.as_str(),
            csrf: signed_in.csrf.clone(),
            queues,
        },
    ))
}
