//! Admin: the items browser (filters, keyset paging that stays fast however
//! many items there are) and one item's whole story.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::format::{when, When};
use super::session::SignedIn;
use super::{render, WebError};
use crate::domain::Timestamp;
use crate::domain::{ItemStatus, VerdictSource};
use crate::http::state::AppState;
use crate::store::browse;
use crate::store::items::{ItemRow, VerdictRow};

const PAGE: i64 = 50;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub task: String,
    /// queued | decided
    #[serde(default)]
    pub status: String,
    /// model | human
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub reviewer: String,
    /// YYYY-MM-DD, inclusive
    #[serde(default)]
    pub from: String,
    /// YYYY-MM-DD, inclusive
    #[serde(default)]
    pub to: String,
    /// Cursor: the last row of the previous page, `created_at|id`.
    #[serde(default)]
    pub after: String,
    /// An item id to open.
    #[serde(default)]
    pub id: String,
}

pub struct Row {
    pub id: String,
    pub created_at: When,
    pub status: String,
    pub label: String,
    pub source: String,
    pub decided_by: String,
}

#[derive(Template)]
#[template(path = "admin/items.html")]
struct ItemsPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    tasks: Vec<String>,
    filters: Filters,
    /// An id searched for that is not in the task.
    not_found: Option<String>,
    rows: Vec<Row>,
    next: Option<String>,
    query_without_cursor: String,
}

fn day(s: &str, end: bool) -> Option<Timestamp> {
    let date = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(if end {
        date.and_hms_opt(23, 59, 59)?
    } else {
        date.and_hms_opt(0, 0, 0)?
    })
}

pub async fn list(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<Filters>,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let mut filters = query.into_inner();
    let tasks: Vec<String> = state.tasks.all().map(|t| t.name().to_string()).collect();
    if filters.task.is_empty() {
        filters.task = tasks.first().cloned().unwrap_or_default();
    } else if !tasks.contains(&filters.task) {
        return Err(WebError::NotFound("There is no such task."));
    }
    for (date, end) in [(&filters.from, false), (&filters.to, true)] {
        if !date.trim().is_empty() && day(date, end).is_none() {
            return Err(WebError::BadRequest(
                "A date filter is not a date: use YYYY-MM-DD.",
            ));
        }
    }
    // Search by id: an exact id opens the item.
    let wanted = filters.id.trim().to_string();
    if !wanted.is_empty() {
        let (t, i) = (filters.task.clone(), wanted.clone());
        let found = state
            .db
            .read(move |conn| Ok::<_, crate::db::DbError>(browse::item(conn, &t, &i)?))
            .await?;
        if found.is_some() {
            return Ok(super::redirect(&format!(
                "/admin/items/{}/{}",
                super::format::path_segment(&filters.task),
                super::format::path_segment(&wanted)
            )));
        }
    }
    let f = filters.clone();
    let found: Vec<(ItemRow, Option<VerdictRow>)> = state
        .db
        .read(move |conn| {
            let cursor = f.after.split_once('|').and_then(|(at, id)| {
                chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|at| (at, id.to_string()))
            });
            let filter = browse::ItemFilter {
                task: f.task.clone(),
                status: ItemStatus::parse(&f.status),
                source: VerdictSource::parse(&f.source),
                label: Some(f.label.trim().to_string()).filter(|l| !l.is_empty()),
                from: day(&f.from, false),
                to: day(&f.to, true),
                reviewer: Some(f.reviewer.trim().to_string()).filter(|r| !r.is_empty()),
                after: cursor,
            };
            Ok::<_, crate::db::DbError>(browse::items(conn, &filter, PAGE + 1)?)
        })
        .await?;
    let more = found.len() as i64 > PAGE;
    let shown = &found[..found.len().min(PAGE as usize)];
    let next = more.then(|| {
        let (last, _) = shown.last().expect("a full page");
        format!(
            "{}|{}",
            last.created_at.format("%Y-%m-%dT%H:%M:%S%.f"),
            last.id
        )
    });
    let now = crate::domain::now();
    let rows = shown
        .iter()
        .map(|(item, verdict)| Row {
            id: item.id.clone(),
            created_at: when(&item.created_at, &now),
            status: item.status.to_string(),
            label: verdict
                .as_ref()
                .map(|v| v.label.clone())
                .unwrap_or_default(),
            source: verdict
                .as_ref()
                .map(|v| v.source.to_string())
                .unwrap_or_default(),
            decided_by: verdict
                .as_ref()
                .and_then(|v| v.decided_by.clone())
                .unwrap_or_default(),
        })
        .collect();
    let query_without_cursor = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("task", &filters.task),
            ("status", &filters.status),
            ("source", &filters.source),
            ("label", &filters.label),
            ("reviewer", &filters.reviewer),
            ("from", &filters.from),
            ("to", &filters.to),
        ])
        .finish();
    let not_found = (!wanted.is_empty()).then_some(wanted);
    Ok(render(
        StatusCode::OK,
        &ItemsPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            tasks,
            filters,
            not_found,
            rows,
            next: next.map(|n| form_urlencoded::byte_serialize(n.as_bytes()).collect()),
            query_without_cursor,
        },
    ))
}

pub struct ReviewRow {
    pub reviewer: String,
    pub label: String,
    pub comment: String,
    pub seconds: String,
    pub blind: bool,
    pub at: When,
}

pub struct PredictionView {
    pub version: String,
    pub label: String,
    pub confidence: String,
    pub error: String,
    pub timings: String,
}

#[derive(Template)]
#[template(path = "admin/item.html")]
struct ItemPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    task: String,
    item: ItemRow,
    created_at: When,
    input: Vec<super::inputs::FeatureRow>,
    predictions: Vec<PredictionView>,
    reviews: Vec<ReviewRow>,
    verdict: Option<(String, String, String, String)>,
    /// Reviewers' flags: who, their note, when.
    flags: Vec<(String, String, When)>,
    /// The task's labels, to overrule the verdict with.
    labels: Vec<String>,
    /// Whether the item waits for review (then it cannot be reopened).
    waiting: bool,
    /// What the admin's last correction did.
    done: Option<&'static str>,
    /// When, who, what, detail.
    audit: Vec<(When, String, String, String)>,
}

#[derive(Deserialize)]
pub struct ItemQuery {
    /// The correction just made: `overruled` or `reopened`.
    done: Option<String>,
}

pub async fn item(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    query: web::Query<ItemQuery>,
) -> Result<HttpResponse, WebError> {
    signed_in.require_admin()?;
    let (task, id) = path.into_inner();
    let (t, i) = (task.clone(), id.clone());
    let (found, flags) = state
        .db
        .read(move |conn| {
            let found = browse::item(conn, &t, &i).map_err(crate::db::DbError::from)?;
            Ok::<_, WebError>((found, crate::review::flags(conn, &t, &i)?))
        })
        .await?;
    let done = match query.done.as_deref() {
        Some("overruled") => Some("The verdict is overruled; the audit log records why."),
        Some("reopened") => Some(
            "The item is back in the review queue; its verdict and labels are in the audit log.",
        ),
        _ => None,
    };
    let Some(browse::ItemDetail {
        item,
        predictions: preds,
        reviews: revs,
        verdict,
        audit,
    }) = found
    else {
        return Err(WebError::NotFound("There is no such item."));
    };
    let now = crate::domain::now();
    // In the live model's feature order, beside its training ranges.
    let model = state.tasks.get(&task).and_then(|t| t.live());
    let input = super::inputs::features(model.as_deref(), &item.input);
    let labels = model
        .as_ref()
        .map(|m| m.card.labels.clone())
        .unwrap_or_default();
    let waiting = matches!(
        item.review_state,
        crate::domain::ReviewState::Pending | crate::domain::ReviewState::Adjudication
    );
    Ok(render(
        StatusCode::OK,
        &ItemPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            task,
            created_at: when(&item.created_at, &now),
            input,
            predictions: preds
                .into_iter()
                .map(|p| PredictionView {
                    version: p.model_version,
                    label: p.label.unwrap_or_default(),
                    confidence: p
                        .confidence
                        .map(|c| format!("{:.4}", c))
                        .unwrap_or_default(),
                    error: p.error.unwrap_or_default(),
                    timings: format!("{} / {} / {} µs", p.featurise_us, p.forward_us, p.policy_us),
                })
                .collect(),
            reviews: revs
                .into_iter()
                .map(|(reviewer, label, comment, seconds, blind, at)| ReviewRow {
                    reviewer,
                    label,
                    comment: comment.unwrap_or_default(),
                    seconds: format!("{seconds:.1}"),
                    blind,
                    at: when(&at, &now),
                })
                .collect(),
            verdict: verdict.map(|v| {
                (
                    v.label,
                    v.source.to_string(),
                    v.basis.map(|b| b.to_string()).unwrap_or_default(),
                    v.decided_by
                        .unwrap_or_else(|| v.model_version.unwrap_or_default()),
                )
            }),
            flags: flags
                .into_iter()
                .map(|f| (f.reviewer, f.note, when(&f.at, &now)))
                .collect(),
            labels,
            waiting,
            done,
            audit: audit
                .into_iter()
                .map(|(at, actor, action, detail)| (when(&at, &now), actor, action, detail))
                .collect(),
            item,
        },
    ))
}

#[derive(Deserialize)]
pub struct TaskQuery {
    #[serde(default)]
    task: String,
}

#[derive(Template)]
#[template(path = "admin/reviewers.html")]
struct ReviewersPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    task: String,
    tasks: Vec<String>,
    agreement: String,
    rows: Vec<(String, usize, String, String, String, String)>,
}

/// Per-reviewer statistics and agreement for one task.
pub async fn reviewers(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    query: web::Query<TaskQuery>,
) -> Result<HttpResponse, WebError> {
    use crate::review_stats::{inter_reviewer_agreement, per_reviewer, ReviewFact, VerdictFact};
    signed_in.require_admin()?;
    let tasks: Vec<String> = state.tasks.all().map(|t| t.name().to_string()).collect();
    let task = if tasks.contains(&query.task) {
        query.task.clone()
    } else {
        tasks.first().cloned().unwrap_or_default()
    };
    let t = task.clone();
    let (facts, verdict_facts) = state
        .db
        .read(move |conn| {
            let facts: Vec<ReviewFact> = browse::reviews_of_task(conn, &t)?
                .into_iter()
                .map(
                    |(item_id, reviewer, label, seconds_spent, blind)| ReviewFact {
                        item_id,
                        reviewer,
                        label,
                        seconds_spent,
                        blind,
                    },
                )
                .collect();
            let verdict_facts: std::collections::HashMap<String, VerdictFact> =
                browse::verdicts_of_reviewed(conn, &t)?
                    .into_iter()
                    .map(|(id, label, source, basis)| {
                        (
                            id,
                            VerdictFact {
                                label,
                                source,
                                basis: basis.unwrap_or_default(),
                            },
                        )
                    })
                    .collect();
            Ok::<_, crate::db::DbError>((facts, verdict_facts))
        })
        .await?;
    // A share with its sample size and 95 % Wilson interval: "100 %" after
    // one item says nothing, "100 % (n 1, 95 % CI 21–100 %)" says so.
    let percent = |s: crate::review_stats::Share| match (
        s.value(),
        crate::monitoring::stats::wilson(s.hits as u64, s.total as u64, 0.95),
    ) {
        (Some(v), Some((lo, hi))) => format!(
            "{:.0} % (n {}, 95 % CI {:.0}–{:.0} %)",
            v * 100.0,
            s.total,
            lo * 100.0,
            hi * 100.0
        ),
        _ => "– (n 0)".to_string(),
    };
    let rows = per_reviewer(&facts, &verdict_facts)
        .into_iter()
        .map(|s| {
            (
                s.reviewer,
                s.labels,
                format!("{:.0}", s.items_per_hour),
                format!("{:.1}", s.median_seconds),
                percent(s.agreement_with_consensus),
                percent(s.agreement_with_audited_model),
            )
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &ReviewersPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            task,
            tasks,
            agreement: percent(inter_reviewer_agreement(&facts)),
            rows,
        },
    ))
}
