//! Admin: the items browser (filters, a sort by column, keyset paging both
//! ways that stays fast however many items there are, a capped count) and
//! one item's whole story.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::format::{self, when, When};
use super::session::SignedIn;
use super::{render, WebError};
use crate::domain::Timestamp;
use crate::domain::{ItemStatus, VerdictSource};
use crate::http::state::AppState;
use crate::store::browse::{self, ListedItem, PageStart, Sort, SortColumn, SortValue};
use crate::store::items::ItemRow;

const PAGE: i64 = 50;

/// The count stops here ("10,000+ items match"), and a sort on no index
/// orders the newest this many matching items: both read at most this
/// many rows, however many the task holds.
const CAP: i64 = 10_000;

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
    /// One of the live model's labels.
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
    /// received | confidence | decided (default received).
    #[serde(default)]
    pub sort: String,
    /// asc | desc (default: the column's first direction).
    #[serde(default)]
    pub dir: String,
    /// Cursor: the last row of the previous page, `value|id`.
    #[serde(default)]
    pub after: String,
    /// Cursor: the first row of the next page, `value|id`.
    #[serde(default)]
    pub before: String,
    /// An item id to open.
    #[serde(default)]
    pub id: String,
}

pub struct Row {
    pub id: String,
    pub created_at: When,
    pub status: String,
    pub decided_at: Option<When>,
    pub label: String,
    /// The confidence of the item's model's prediction: `93.1 %`.
    pub confidence: String,
    pub source: String,
    pub decided_by: String,
    /// Why it was queued for a human.
    pub reason: String,
    /// A blind audit item.
    pub audit: bool,
}

/// A sortable column's header: its link and how it is marked.
pub struct Header {
    pub href: String,
    /// `ascending` | `descending` on the column sorted by, else empty.
    pub aria_sort: &'static str,
    pub arrow: &'static str,
}

/// A link to the page before or after this one.
pub struct PageLink {
    pub href: String,
    pub text: &'static str,
}

#[derive(Template)]
#[template(path = "admin/items.html")]
struct ItemsPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    tasks: Vec<String>,
    /// The live model's labels: the label filter's choices.
    labels: Vec<String>,
    filters: Filters,
    /// An id searched for that is not in the task.
    not_found: Option<String>,
    rows: Vec<Row>,
    /// "1,234 items match", "10,000+ items match"; empty when none do.
    total: String,
    /// Said when a sort on no index orders only the newest [`CAP`] items.
    window_note: Option<String>,
    received: Header,
    confidence: Header,
    decided: Header,
    newer: Option<PageLink>,
    older: Option<PageLink>,
}

fn day(s: &str, end: bool) -> Option<Timestamp> {
    let date = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some(if end {
        date.and_hms_opt(23, 59, 59)?
    } else {
        date.and_hms_opt(0, 0, 0)?
    })
}

const CURSOR_TIME: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// A cursor as links carry it: `value|id` (an id may hold `|`; the value
/// never does). Confidences print in Rust's shortest exact form, so they
/// read back to the same `f64`.
fn cursor_text(value: SortValue, id: &str) -> String {
    match value {
        SortValue::At(at) => format!("{}|{id}", at.format(CURSOR_TIME)),
        SortValue::Confidence(c) => format!("{c}|{id}"),
    }
}

fn parse_cursor(column: SortColumn, text: &str) -> Option<(SortValue, String)> {
    let (value, id) = text.split_once('|')?;
    let value = match column {
        SortColumn::Received | SortColumn::Decided => {
            SortValue::At(chrono::NaiveDateTime::parse_from_str(value, CURSOR_TIME).ok()?)
        }
        SortColumn::Confidence => {
            SortValue::Confidence(value.parse::<f64>().ok().filter(|c| c.is_finite())?)
        }
    };
    Some((value, id.to_string()))
}

fn column_name(column: SortColumn) -> &'static str {
    match column {
        SortColumn::Received => "received",
        SortColumn::Confidence => "confidence",
        SortColumn::Decided => "decided",
    }
}

/// A column's first direction: times newest first, confidence least sure
/// first.
fn first_descending(column: SortColumn) -> bool {
    column != SortColumn::Confidence
}

fn sort_of(filters: &Filters) -> Result<Sort, WebError> {
    let column = match filters.sort.as_str() {
        "" | "received" => SortColumn::Received,
        "confidence" => SortColumn::Confidence,
        "decided" => SortColumn::Decided,
        _ => return Err(WebError::BadRequest("The items cannot be sorted by that.")),
    };
    let descending = match filters.dir.as_str() {
        "" => first_descending(column),
        "desc" => true,
        "asc" => false,
        _ => return Err(WebError::BadRequest("A sort direction is asc or desc.")),
    };
    Ok(Sort { column, descending })
}

/// "1 item matches", "1,234 items match", "10,000+ items match".
fn total_text(n: i64) -> String {
    match n {
        0 => String::new(),
        1 => "1 item matches".to_string(),
        n if n > CAP => format!("{}+ items match", format::count_i(CAP)),
        n => format!("{} items match", format::count_i(n)),
    }
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
    let labels: Vec<String> = state
        .tasks
        .get(&filters.task)
        .and_then(|t| t.live())
        .map(|m| m.card.labels.clone())
        .unwrap_or_default();
    filters.label = filters.label.trim().to_string();
    if !filters.label.is_empty() && !labels.contains(&filters.label) {
        return Err(WebError::BadRequest(
            "The label filter is not a label of this task.",
        ));
    }
    let sort = sort_of(&filters)?;
    let start = match (filters.after.as_str(), filters.before.as_str()) {
        ("", "") => PageStart::First,
        (after, "") => parse_cursor(sort.column, after)
            .map(|(v, id)| PageStart::After(v, id))
            .ok_or(WebError::BadRequest(
                "This page link is broken: start again from the first page.",
            ))?,
        ("", before) => parse_cursor(sort.column, before)
            .map(|(v, id)| PageStart::Before(v, id))
            .ok_or(WebError::BadRequest(
                "This page link is broken: start again from the first page.",
            ))?,
        _ => {
            return Err(WebError::BadRequest(
                "A page starts after one row or before another, not both.",
            ))
        }
    };
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
                format::path_segment(&filters.task),
                format::path_segment(&wanted)
            )));
        }
    }
    let filter = browse::ItemFilter {
        task: filters.task.clone(),
        status: ItemStatus::parse(&filters.status),
        source: VerdictSource::parse(&filters.source),
        label: Some(filters.label.clone()).filter(|l| !l.is_empty()),
        from: day(&filters.from, false),
        to: day(&filters.to, true),
        reviewer: Some(filters.reviewer.trim().to_string()).filter(|r| !r.is_empty()),
    };
    let page_start = start.clone();
    let (total, windowed, mut found) = state
        .db
        .read(move |conn| {
            let total = browse::count(conn, &filter, CAP)?;
            // Past the cap, a sort on no index orders the newest CAP items.
            let window = if !sort.column.indexed() && total > CAP {
                browse::window_edge(conn, &filter, CAP)?
            } else {
                None
            };
            let found = browse::items(conn, &filter, sort, &page_start, window.as_ref(), PAGE + 1)?;
            Ok::<_, crate::db::DbError>((total, window.is_some(), found))
        })
        .await?;
    // One row more than a page says there is more beyond it.
    let more = found.len() as i64 > PAGE;
    found.truncate(PAGE as usize);
    let backwards = matches!(start, PageStart::Before(..));
    if backwards {
        found.reverse();
    }
    // Rows before this page: there are when it was reached going forwards,
    // or going backwards and more were found; after it, the other way round.
    let (has_before, has_after) = match start {
        PageStart::First => (false, more),
        PageStart::After(..) => (true, more),
        PageStart::Before(..) => (more, true),
    };

    let filter_pairs = [
        ("task", &filters.task),
        ("status", &filters.status),
        ("source", &filters.source),
        ("label", &filters.label),
        ("reviewer", &filters.reviewer),
        ("from", &filters.from),
        ("to", &filters.to),
    ];
    let link = |column: SortColumn, descending: bool, cursor: Option<(&str, String)>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.extend_pairs(filter_pairs.iter().filter(|(_, v)| !v.is_empty()));
        q.append_pair("sort", column_name(column));
        q.append_pair("dir", if descending { "desc" } else { "asc" });
        if let Some((name, value)) = cursor {
            q.append_pair(name, &value);
        }
        format!("/admin/items?{}", q.finish())
    };
    let header = |column: SortColumn| {
        let current = sort.column == column;
        Header {
            // Again on the sorted column flips it; another starts at its
            // first direction.
            href: link(
                column,
                if current {
                    !sort.descending
                } else {
                    first_descending(column)
                },
                None,
            ),
            aria_sort: match (current, sort.descending) {
                (false, _) => "",
                (true, true) => "descending",
                (true, false) => "ascending",
            },
            arrow: match (current, sort.descending) {
                (false, _) => "",
                (true, true) => "▼",
                (true, false) => "▲",
            },
        }
    };
    // By time newest first, the page before holds newer items.
    let (before_text, after_text) = match (sort.column, sort.descending) {
        (SortColumn::Received, true) => ("← Newer", "Older →"),
        (SortColumn::Received, false) => ("← Older", "Newer →"),
        _ => ("← Previous", "Next →"),
    };
    let cursor_of = |row: &ListedItem| cursor_text(sort.value_of(row), &row.item.id);
    let newer = match (has_before, found.first()) {
        (true, Some(first)) => Some(PageLink {
            href: link(
                sort.column,
                sort.descending,
                Some(("before", cursor_of(first))),
            ),
            text: before_text,
        }),
        _ => None,
    };
    let older = match (has_after, found.last()) {
        (true, Some(last)) => Some(PageLink {
            href: link(
                sort.column,
                sort.descending,
                Some(("after", cursor_of(last))),
            ),
            text: after_text,
        }),
        _ => None,
    };
    let now = crate::domain::now();
    let rows = found
        .into_iter()
        .map(
            |ListedItem {
                 item,
                 verdict,
                 confidence,
             }| Row {
                created_at: when(&item.created_at, &now),
                status: item.status.to_string(),
                decided_at: item.decided_at.as_ref().map(|at| when(at, &now)),
                label: verdict
                    .as_ref()
                    .map(|v| v.label.clone())
                    .unwrap_or_default(),
                confidence: confidence
                    .map(|c| format!("{:.1} %", c * 100.0))
                    .unwrap_or_default(),
                source: verdict
                    .as_ref()
                    .map(|v| v.source.to_string())
                    .unwrap_or_default(),
                decided_by: verdict.and_then(|v| v.decided_by).unwrap_or_default(),
                reason: item.reason.map(|r| r.to_string()).unwrap_or_default(),
                audit: item.audit,
                id: item.id,
            },
        )
        .collect();
    let window_note = windowed.then(|| {
        format!(
            "More than {} items match: sorted by {}, this lists the newest {} of them.",
            format::count_i(CAP),
            column_name(sort.column),
            format::count_i(CAP)
        )
    });
    let not_found = (!wanted.is_empty()).then_some(wanted);
    Ok(render(
        StatusCode::OK,
        &ItemsPage {
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            received: header(SortColumn::Received),
            confidence: header(SortColumn::Confidence),
            decided: header(SortColumn::Decided),
            tasks,
            labels,
            total: total_text(total),
            window_note,
            not_found,
            rows,
            newer,
            older,
            filters,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_to_the_same_value_and_id() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .and_then(|d| d.and_hms_nano_opt(9, 30, 1, 123_456_789))
            .unwrap();
        for (column, value) in [
            (SortColumn::Received, SortValue::At(at)),
            (SortColumn::Decided, SortValue::At(at)),
            (SortColumn::Confidence, SortValue::Confidence(0.1 + 0.2)),
            (SortColumn::Confidence, SortValue::Confidence(-1.0)),
        ] {
            let text = cursor_text(value, "a|b c");
            assert_eq!(
                parse_cursor(column, &text),
                Some((value, "a|b c".to_string())),
                "{text}"
            );
        }
        assert_eq!(parse_cursor(SortColumn::Confidence, "NaN|x"), None);
        assert_eq!(parse_cursor(SortColumn::Received, "0.5|x"), None);
        assert_eq!(parse_cursor(SortColumn::Received, "no bar"), None);
    }

    #[test]
    fn the_total_stops_at_the_cap() {
        assert_eq!(total_text(0), "");
        assert_eq!(total_text(1), "1 item matches");
        assert_eq!(total_text(1234), "1,234 items match");
        assert_eq!(total_text(CAP), "10,000 items match");
        assert_eq!(total_text(CAP + 1), "10,000+ items match");
    }
}
