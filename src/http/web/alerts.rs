//! The alerts page: what is firing now, and what resolved lately.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::session::SignedIn;
use super::{render, WebError};
use crate::alerts;
use crate::domain::{rfc3339, AlertKind};
use crate::http::state::AppState;

/// Resolved alerts shown below the open ones.
const RESOLVED_SHOWN: i64 = 50;

pub struct AlertRow {
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub kind: String,
    pub task: String,
    pub severity: String,
    pub summary: String,
    pub numbers: Vec<(String, String)>,
    pub fired_at: String,
    pub resolved_at: String,
    /// A link to the item the alert is about, if any.
    pub item_link: Option<String>,
}

impl From<&alerts::Alert> for AlertRow {
    fn from(a: &alerts::Alert) -> Self {
        AlertRow {
            state: if a.resolved_at.is_none() {
                "firing"
            } else {
                "resolved"
            },
            kind: a.kind.to_string(),
            task: a.task.clone(),
            severity: a.severity.to_string(),
            summary: a.summary.clone(),
            numbers: alerts::numbers(a),
            fired_at: rfc3339(&a.fired_at),
            resolved_at: a.resolved_at.as_ref().map(rfc3339).unwrap_or_default(),
            item_link: (a.kind == AlertKind::SlaBreach && !a.subject.is_empty()).then(|| {
                format!(
                    "/admin/items/{}/{}",
                    super::format::path_segment(&a.task),
                    super::format::path_segment(&a.subject)
                )
            }),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/alerts.html")]
struct AlertsPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    /// How many alerts are open.
    firing: usize,
    /// The open alerts, newest first, then the lately resolved.
    rows: Vec<AlertRow>,
    /// Why nobody is emailed about them, when nobody is.
    unmailed: Option<&'static str>,
}

/// Why alerts reach no inbox, if they do not: no `[smtp]`, or nobody to
/// write to.
fn unmailed(settings: &crate::config::Settings) -> Option<&'static str> {
    let anyone = !settings.mail.recipients.is_empty()
        || settings
            .mail
            .severity_recipients
            .values()
            .any(|r| !r.is_empty())
        || settings
            .tasks
            .iter()
            .any(|t| !t.alert_recipients.is_empty());
    if settings.smtp.is_none() {
        Some("No [smtp] server is configured: alerts are shown here but nobody is emailed.")
    } else if !anyone {
        Some("No alert recipients are configured (mail.recipients or a task's alert_recipients): nobody is emailed.")
    } else {
        None
    }
}

pub async fn page(
    state: web::Data<AppState>,
    signed_in: SignedIn,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let (open, resolved) = state
        .db
        .read(|conn| Ok::<_, crate::db::DbError>(crate::store::alerts::list(conn, RESOLVED_SHOWN)?))
        .await?;
    Ok(render(
        StatusCode::OK,
        &AlertsPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            firing: open.len(),
            rows: open.iter().chain(&resolved).map(AlertRow::from).collect(),
            unmailed: unmailed(&state.settings),
        },
    ))
}
