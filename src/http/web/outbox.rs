//! The outbox page: pending, sent and dead messages; a dead one can be
//! retried.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::format::{when, When};
use super::session::{CsrfForm, SignedIn};
use super::{redirect, render, WebError};
use crate::domain::{now, OutboxStatus, Timestamp};
use crate::http::state::AppState;
use crate::outbox;

/// Messages listed per status.
const SHOWN: i64 = 100;

pub struct MessageRow {
    pub id: i64,
    pub kind: String,
    pub destination: String,
    pub subject: String,
    pub attempts: i32,
    pub next_attempt_at: When,
    pub last_error: String,
    pub created_at: When,
    pub sent_at: Option<When>,
}

impl MessageRow {
    fn new(m: &outbox::Message, now: &Timestamp) -> Self {
        MessageRow {
            id: m.id,
            kind: m.kind.to_string(),
            destination: m.destination.clone(),
            subject: m.subject.clone(),
            attempts: m.attempts,
            next_attempt_at: when(&m.next_attempt_at, now),
            last_error: m.last_error.clone().unwrap_or_default(),
            created_at: when(&m.created_at, now),
            sent_at: m.sent_at.as_ref().map(|t| when(t, now)),
        }
    }
}

pub struct Tab {
    pub status: &'static str,
    pub count: i64,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "admin/outbox.html")]
struct OutboxPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    /// The status shown.
    status: String,
    /// One tab per status.
    tabs: Vec<Tab>,
    messages: Vec<MessageRow>,
}

#[derive(Deserialize)]
pub struct Query {
    status: Option<String>,
}

pub async fn page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<Query>,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let status = match query.status.as_deref() {
        None | Some("pending") => OutboxStatus::Pending,
        Some("sent") => OutboxStatus::Sent,
        Some("dead") => OutboxStatus::Dead,
        Some(_) => {
            return Err(WebError::BadRequest(
                "There is no such status: choose pending, sent or dead.",
            ))
        }
    };
    let (counts, messages) = state
        .db
        .read(move |conn| {
            Ok::<_, crate::db::DbError>((
                crate::store::outbox::counts(conn)?,
                crate::store::outbox::list(conn, status, SHOWN)?,
            ))
        })
        .await?;
    Ok(render(
        StatusCode::OK,
        &OutboxPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            status: status.to_string(),
            tabs: [
                OutboxStatus::Pending,
                OutboxStatus::Sent,
                OutboxStatus::Dead,
            ]
            .into_iter()
            .map(|s| Tab {
                status: s.as_str(),
                count: counts.get(s.as_str()).copied().unwrap_or(0),
                current: s == status,
            })
            .collect(),
            messages: {
                let now = now();
                messages.iter().map(|m| MessageRow::new(m, &now)).collect()
            },
        },
    ))
}

pub async fn retry(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let id = path.into_inner();
    let actor = signed_in.user.name.clone();
    let retried = state
        .db
        .write(move |conn| Ok::<_, crate::db::DbError>(outbox::retry(conn, id, &actor)?))
        .await?;
    if !retried {
        return Err(WebError::Forbidden("That message is not dead."));
    }
    Ok(redirect("/admin/outbox?status=dead"))
}
