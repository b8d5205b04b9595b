//! The alerts page: what is firing now (a task's late items on one row),
//! what resolved lately and the silences that hold; an admin acknowledges
//! an alert, silences its kind for a while, or ends a silence early.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::format::{path_segment, when, When};
use super::session::{CsrfForm, SignedIn};
use super::{redirect, render, WebError};
use crate::alerts::{self, AlertError, Entry, Scope, SilencePeriod};
use crate::domain::{now, AlertKind, Timestamp};
use crate::http::state::AppState;

/// Resolved alerts shown below the open ones.
const RESOLVED_SHOWN: i64 = 50;

/// Items of a group named on its row; the rest are behind "all of them".
const ITEMS_NAMED: usize = 5;

/// An item of a group of late items, linked.
pub struct ItemLink {
    pub id: String,
    pub link: String,
}

pub struct Ack {
    pub by: String,
    pub at: When,
}

pub struct AlertRow {
    /// The alert the row's buttons act on.
    pub id: i64,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub kind: String,
    pub task: String,
    pub severity: String,
    pub summary: String,
    pub numbers: Vec<(String, String)>,
    pub fired_at: When,
    pub resolved_at: Option<When>,
    /// A link to the item the alert is about, if any.
    pub item_link: Option<String>,
    /// A task's late items, the most late first (empty for other alerts).
    pub items: Vec<ItemLink>,
    /// Who acknowledged it (the latest, for a group) and when.
    pub acknowledged: Option<Ack>,
    /// Open alerts on the row nobody acknowledged.
    pub unacknowledged: usize,
    /// Until when a silence holds its email.
    pub silenced_until: Option<When>,
    /// Whether it may be silenced on its own rather than by kind.
    pub own_scope: bool,
}

impl AlertRow {
    /// The items named on the row itself.
    pub fn named(&self) -> &[ItemLink] {
        &self.items[..self.items.len().min(ITEMS_NAMED)]
    }
}

fn item_link(task: &str, id: &str) -> String {
    format!("/admin/items/{}/{}", path_segment(task), path_segment(id))
}

/// The latest acknowledgement among `alerts`.
fn acknowledged(alerts: &[alerts::Alert], now: &Timestamp) -> Option<Ack> {
    alerts
        .iter()
        .filter_map(|a| Some((a.acknowledged_at?, a.acknowledged_by.clone()?)))
        .max_by_key(|(at, _)| *at)
        .map(|(at, by)| Ack {
            by,
            at: when(&at, now),
        })
}

fn row(entry: &Entry, now: &Timestamp) -> AlertRow {
    let first = entry.alert();
    let resolved_at = entry.resolved_at();
    let (summary, numbers, item_link_, items, group, silence) = match entry {
        Entry::One { alert, silence } => {
            // A batched SLA alert names its late items: links, not a figure.
            let named: Vec<ItemLink> = if alert.kind == AlertKind::SlaBreach {
                serde_json::from_str::<serde_json::Value>(&alert.numbers)
                    .ok()
                    .and_then(|n| n["items"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| v.as_str())
                    .map(|id| ItemLink {
                        id: id.to_string(),
                        link: item_link(&alert.task, id),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let numbers = alerts::numbers(alert)
                .into_iter()
                .filter(|(name, _)| named.is_empty() || name != "items")
                .collect();
            (
                alert.summary.clone(),
                numbers,
                (alert.kind == AlertKind::SlaBreach && !alert.subject.is_empty())
                    .then(|| item_link(&alert.task, &alert.subject)),
                named,
                std::slice::from_ref(alert),
                silence,
            )
        }
        Entry::Items {
            task,
            alerts: group,
            silence,
        } => {
            let most_late = group
                .iter()
                .filter_map(|a| {
                    serde_json::from_str::<serde_json::Value>(&a.numbers).ok()?["minutes late"]
                        .as_i64()
                })
                .max()
                .unwrap_or(0);
            let verb = if resolved_at.is_none() { "are" } else { "were" };
            (
                format!("{} items {verb} past their deadline in {task}", group.len()),
                vec![("most late (minutes)".to_string(), most_late.to_string())],
                None,
                group
                    .iter()
                    .map(|a| ItemLink {
                        id: a.subject.clone(),
                        link: item_link(task, &a.subject),
                    })
                    .collect(),
                group.as_slice(),
                silence,
            )
        }
    };
    AlertRow {
        id: first.id,
        state: if resolved_at.is_none() {
            "firing"
        } else {
            "resolved"
        },
        kind: first.kind.to_string(),
        task: first.task.clone(),
        severity: first.severity.to_string(),
        summary,
        numbers,
        fired_at: when(&entry.fired_at(), now),
        resolved_at: resolved_at.map(|t| when(&t, now)),
        item_link: item_link_,
        items,
        acknowledged: acknowledged(group, now),
        unacknowledged: group
            .iter()
            .filter(|a| a.resolved_at.is_none() && a.acknowledged_at.is_none())
            .count(),
        silenced_until: silence.as_ref().map(|s| when(&s.ends_at, now)),
        own_scope: matches!(entry, Entry::One { .. })
            && !alerts::is_item_sla(first)
            && !first.subject.is_empty(),
    }
}

pub struct SilenceRow {
    pub id: i64,
    pub kind: String,
    pub task: String,
    /// The one alert's subject, or empty for the whole kind.
    pub subject: String,
    pub reason: String,
    pub by: String,
    pub since: When,
    pub until: When,
}

impl SilenceRow {
    fn new(s: &alerts::Silence, now: &Timestamp) -> Self {
        SilenceRow {
            id: s.id,
            kind: s.kind.to_string(),
            task: s.task.clone(),
            subject: s.subject.clone().unwrap_or_default(),
            reason: s.reason.clone(),
            by: s.created_by.clone(),
            since: when(&s.created_at, now),
            until: when(&s.ends_at, now),
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
    /// How many rows are firing.
    firing: usize,
    /// The open alerts, newest first, then the lately resolved.
    rows: Vec<AlertRow>,
    silences: Vec<SilenceRow>,
    /// The silence form's choices: (value, label).
    periods: Vec<(&'static str, &'static str)>,
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
    let at = now();
    let overview = state
        .db
        .read(move |conn| Ok::<_, crate::db::DbError>(alerts::overview(conn, at, RESOLVED_SHOWN)?))
        .await?;
    Ok(render(
        StatusCode::OK,
        &AlertsPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            firing: overview.open.len(),
            rows: overview
                .open
                .iter()
                .chain(&overview.resolved)
                .map(|e| row(e, &at))
                .collect(),
            silences: overview
                .silences
                .iter()
                .map(|s| SilenceRow::new(s, &at))
                .collect(),
            periods: SilencePeriod::ALL
                .iter()
                .map(|p| (p.as_str(), p.label()))
                .collect(),
            unmailed: unmailed(&state.settings),
        },
    ))
}

/// `POST /admin/alerts/{id}/acknowledge`.
pub async fn acknowledge(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let (id, actor) = (path.into_inner(), signed_in.user.name.clone());
    state
        .db
        .write(move |conn| alerts::acknowledge(conn, id, &actor))
        .await?;
    Ok(redirect("/admin/alerts"))
}

#[derive(Deserialize)]
pub struct SilenceForm {
    csrf: String,
    /// `1h`, `4h`, `1d` or `1w`.
    period: String,
    /// `kind` (the default) or `alert`.
    #[serde(default)]
    scope: String,
    #[serde(default)]
    reason: String,
}

/// `POST /admin/alerts/{id}/silence`.
pub async fn silence(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<i64>,
    form: web::Form<SilenceForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let form = form.into_inner();
    let period = SilencePeriod::parse(&form.period).ok_or(WebError::BadRequest(
        "Choose how long to silence: 1 hour, 4 hours, 1 day or 1 week.",
    ))?;
    let scope = match form.scope.as_str() {
        "" | "kind" => Scope::Kind,
        "alert" => Scope::Alert,
        _ => {
            return Err(WebError::BadRequest(
                "Silence either this kind of alert in its task, or only this alert.",
            ))
        }
    };
    let (id, actor) = (path.into_inner(), signed_in.user.name.clone());
    state
        .db
        .write(move |conn| alerts::silence(conn, id, scope, period, &form.reason, &actor))
        .await?;
    Ok(redirect("/admin/alerts"))
}

/// `POST /admin/alerts/silences/{id}/end`.
pub async fn end_silence(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<i64>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    signed_in.admin_post(&form.csrf)?;
    let (id, actor) = (path.into_inner(), signed_in.user.name.clone());
    match state
        .db
        .write(move |conn| alerts::end_silence(conn, id, &actor))
        .await
    {
        // Ended already (by time or by someone else): the page says so.
        Ok(()) | Err(AlertError::SilenceEnded(_)) => Ok(redirect("/admin/alerts")),
        Err(e) => Err(e.into()),
    }
}
