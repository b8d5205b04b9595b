//! The review page: one item at a time, everything needed to decide, a label
//! in one action. Works with plain form posts; the next item follows each
//! label.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::format::{when, When};
use super::inputs::{features, FeatureRow};
use super::markdown;
use super::session::{CsrfForm, SignedIn};
use super::{not_found_page, redirect, render, WebError};
use crate::domain::{QueueKind, VerdictBasis};
use crate::http::state::AppState;
use crate::items::{self, PredictionDoc};
use crate::review::{self, Claim, Label, Outcome, ReviewError, Rules};
use crate::tasks::TaskRuntime;

pub struct LabelButton {
    pub key: usize,
    pub label: String,
    /// The model suggests this label (assist mode, not blind).
    pub suggested: bool,
    /// The model's probability of this label, when it is shown.
    pub probability: Option<String>,
    /// What the label means (the task's definition, as written).
    pub definition: Option<String>,
}

/// The task's description, guidelines and label definitions, as HTML.
pub struct Guidelines {
    pub description: String,
    pub body: String,
    pub labels: Vec<(String, String)>,
}

impl Guidelines {
    /// The task's guidelines, if it has any.
    fn of(config: &crate::config::TaskConfig) -> Option<Guidelines> {
        let g = Guidelines {
            description: markdown::to_html(&config.description),
            body: markdown::to_html(&config.guidelines),
            labels: config
                .label_definitions
                .iter()
                .map(|(l, d)| (l.clone(), markdown::to_html(d)))
                .collect(),
        };
        let empty = config.guidelines.trim().is_empty() && config.label_definitions.is_empty();
        (!empty).then_some(g)
    }
}

pub struct Suggestion {
    pub label: String,
    pub confidence: String,
}

/// What an adjudicator weighs: the labels given so far and the flags.
pub struct Adjudication {
    pub votes: Vec<review::Vote>,
    pub flags: Vec<review::Flag>,
}

/// The reviewer's progress, shown above the item.
pub struct Progress {
    /// Labels this reviewer gave in this task since midnight (UTC).
    pub today: i64,
    /// Items waiting in the task's queue, this one included.
    pub waiting: i64,
}

/// The label just saved, confirmed on the next page (with its undo).
pub struct Saved {
    pub item: String,
    pub label: String,
}

#[derive(Template)]
#[template(path = "review/item.html")]
struct ReviewPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    task: String,
    item_id: String,
    received: When,
    due: Option<When>,
    lease_seconds: i64,
    progress: Progress,
    saved: Option<Saved>,
    guidelines: Option<Guidelines>,
    /// In the adjudication queue: what the reviewers chose, and why an
    /// item was flagged.
    adjudication: Option<Adjudication>,
    features: Vec<FeatureRow>,
    suggestion: Option<Suggestion>,
    labels: Vec<LabelButton>,
    notice: Option<&'static str>,
    /// Features outside the model's training range, when that is why the
    /// item is here (or it is marked so).
    out_of_range: Vec<String>,
}

#[derive(Template)]
#[template(path = "review/empty.html")]
struct EmptyPage {
    user: String,
    csrf: String,
    /// The nav shows the admins' links.
    is_admin: bool,
    task: String,
    notice: Option<&'static str>,
    progress: Progress,
    saved: Option<Saved>,
}

fn task_for(
    state: &AppState,
    signed_in: &SignedIn,
    name: &str,
) -> Result<std::sync::Arc<TaskRuntime>, WebError> {
    let task = state
        .tasks
        .get(name)
        .cloned()
        .ok_or(WebError::NotFound("There is no such task."))?;
    if !signed_in.user.may_work(task.name()) {
        return Err(WebError::Forbidden("You may not work this task's queue."));
    }
    Ok(task)
}

/// What the task asks of human labels (the live model's labels).
pub(super) fn rules_of(task: &TaskRuntime) -> Rules {
    Rules {
        labels: task
            .live()
            .map(|m| m.card.labels.clone())
            .unwrap_or_default(),
        reviews_required: task.config.reviews_required,
        callback_url: task.config.callback_url.clone(),
    }
}

/// The common start of every review post: the CSRF token, the permission,
/// and the task and reviewer names the write needs.
fn posted(
    state: &AppState,
    signed_in: &SignedIn,
    csrf: &str,
    task_name: &str,
) -> Result<(std::sync::Arc<TaskRuntime>, String, String), WebError> {
    signed_in.check_csrf(csrf)?;
    let task = task_for(state, signed_in, task_name)?;
    let (name, who) = (task.name().to_string(), signed_in.user.name.clone());
    Ok((task, name, who))
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
    /// `adjudication` (admins): ties between reviewers.
    queue: Option<String>,
    /// The item and label just saved, to confirm them.
    saved: Option<String>,
    #[serde(rename = "as")]
    saved_as: Option<String>,
}

fn notice_text(notice: &Notice) -> Option<&'static str> {
    match notice.notice.as_deref() {
        Some("stale") => Some("Your claim on the last item had expired and passed to someone else, so nothing was saved. Here is the next item."),
        Some("expired") => Some("Your claim on the last item had expired, so nothing was saved; the item went back to the queue."),
        Some("not-claimed") => Some("You held no live claim on the last item, so nothing was saved."),
        Some("already-labelled") => Some("You had already labelled that item, so nothing more was saved."),
        Some("skipped") => Some("Skipped: the item went back to the queue."),
        Some("flagged") => Some("Flagged: the item and your note went to an admin."),
        Some("already-flagged") => Some("That item is with the admins already."),
        Some("undone") => Some("Your last label was taken back: label this item again."),
        Some("nothing-to-undo") => Some("There is no label of yours from the last 30 seconds to take back."),
        _ => None,
    }
}

/// Resumes the reviewer's claimed item or claims the next one.
pub async fn next(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, WebError> {
    let task = task_for(&state, &signed_in, &path)?;
    let kind = match notice.queue.as_deref() {
        Some("adjudication") if signed_in.user.role == crate::domain::Role::Admin => {
            QueueKind::Adjudication
        }
        Some("adjudication") => return Err(WebError::Forbidden("Only admins adjudicate.")),
        _ => QueueKind::Review,
    };
    let (name, who) = (task.name().to_string(), signed_in.user.name.clone());
    let order = task.config.queue_order;
    let claim: Option<Claim> = state
        .db
        .write(move |conn| {
            review::resume_or_claim(conn, kind, order, &name, &who, review::DEFAULT_LEASE)
        })
        .await?;
    let saved = match (&notice.saved, &notice.saved_as) {
        (Some(item), Some(label)) => Some(Saved {
            item: item.clone(),
            label: label.clone(),
        }),
        _ => None,
    };
    let notice = notice_text(&notice);
    let (name, who) = (task.name().to_string(), signed_in.user.name.clone());
    let progress = state
        .db
        .read(move |conn| {
            let midnight = crate::domain::now().date().and_time(chrono::NaiveTime::MIN);
            Ok::<_, WebError>(Progress {
                today: review::labelled_since(conn, &name, &who, midnight)?,
                waiting: review::depth(conn, &name)?.queued,
            })
        })
        .await?;
    let Some(claim) = claim else {
        return Ok(render(
            StatusCode::OK,
            &EmptyPage {
                user: signed_in.user.name.clone(),
                csrf: signed_in.csrf.clone(),
                is_admin: signed_in.is_admin(),
                task: task.name().to_string(),
                notice,
                progress,
                saved,
            },
        ));
    };
    let adjudication = if kind == QueueKind::Adjudication {
        let (name, id) = (task.name().to_string(), claim.item.id.clone());
        Some(
            state
                .db
                .read(move |conn| {
                    Ok::<_, ReviewError>(Adjudication {
                        votes: review::votes(conn, &name, &id)?,
                        flags: review::flags(conn, &name, &id)?,
                    })
                })
                .await?,
        )
    } else {
        None
    };
    let model = task.live();
    let item = claim.item.clone();
    // The model's view, unless the item is blind (shadow, audit, failures).
    let prediction = if item.blind {
        None
    } else {
        let doc = state
            .db
            .read(move |conn| {
                Ok::<_, crate::db::DbError>(items::docs_for(conn, std::slice::from_ref(&item))?)
            })
            .await?
            .pop();
        doc.and_then(|d| d.prediction)
    };
    // The buttons in the card's label order; in assist mode the model's
    // label is marked and each button shows its probability.
    let labels = model
        .as_ref()
        .map(|m| m.card.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, label)| LabelButton {
            key: i + 1,
            suggested: prediction.as_ref().is_some_and(|p| p.label == label),
            definition: task.config.label_definitions.get(&label).cloned(),
            probability: prediction.as_ref().and_then(|p| {
                p.probabilities
                    .get(&label)
                    .map(|v| format!("{:.1} %", v * 100.0))
            }),
            label,
        })
        .collect();
    let suggestion = prediction.map(|p: PredictionDoc| Suggestion {
        label: p.label,
        confidence: format!("{:.1} %", p.confidence * 100.0),
    });
    let at = crate::domain::now();
    Ok(render(
        StatusCode::OK,
        &ReviewPage {
            out_of_range: claim
                .item
                .out_of_range
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            user: signed_in.user.name.clone(),
            csrf: signed_in.csrf.clone(),
            is_admin: signed_in.is_admin(),
            task: task.name().to_string(),
            item_id: claim.item.id.clone(),
            received: when(&claim.item.created_at, &at),
            due: claim.item.sla_deadline.map(|d| when(&d, &at)),
            lease_seconds: (claim.lease_expires_at - at).num_seconds().max(0),
            progress,
            saved,
            guidelines: Guidelines::of(&task.config),
            adjudication,
            features: features(model.as_deref(), &claim.item.input),
            suggestion,
            labels,
            notice,
        },
    ))
}

/// The label form. (A `shown_at` field from an older page is ignored: the
/// time a label took is measured on the server, from the claim.)
#[derive(Deserialize)]
pub struct LabelForm {
    csrf: String,
    label: String,
    #[serde(default)]
    comment: String,
}

pub async fn label(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<LabelForm>,
) -> Result<HttpResponse, WebError> {
    let (task_name, item_id) = path.into_inner();
    let (task, name, who) = posted(&state, &signed_in, &form.csrf, &task_name)?;
    let rules = rules_of(&task);
    let form = form.into_inner();
    let label = Label {
        label: form.label,
        comment: Some(form.comment.trim().to_string()).filter(|c| !c.is_empty()),
        seconds_spent: None,
    };
    let (saved_item, saved_label) = (item_id.clone(), label.label.clone());
    let result = state
        .db
        .write(move |conn| review::submit(conn, &name, &rules, &item_id, &who, &label))
        .await;
    match result {
        // An adjudicator goes on with the next tie.
        Ok(Outcome::Decided {
            basis: VerdictBasis::Adjudication,
            ..
        }) => Ok(redirect(&format!(
            "/review/{}?queue=adjudication",
            task.name()
        ))),
        // The next page confirms the label (and offers its undo).
        Ok(_) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("saved", &saved_item)
                .append_pair("as", &saved_label)
                .finish();
            Ok(redirect(&format!("/review/{}?{query}", task.name())))
        }
        Err(e) => refused(&task, e),
    }
}

/// The page a refused label or skip leads to: the queue with a notice
/// saying what happened to the claim; a 404 for an unknown item; an error
/// page (the detail only in the log) when the database failed.
fn refused(task: &TaskRuntime, e: ReviewError) -> Result<HttpResponse, WebError> {
    let notice = match e {
        ReviewError::StaleLease => "stale",
        ReviewError::LeaseExpired => "expired",
        ReviewError::NotClaimed => "not-claimed",
        ReviewError::AlreadyLabelled => "already-labelled",
        ReviewError::UnknownItem { .. } => return Ok(not_found_page()),
        other => return Err(other.into()),
    };
    Ok(redirect(&format!(
        "/review/{}?notice={notice}",
        task.name()
    )))
}

pub async fn skip(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    let (task_name, item_id) = path.into_inner();
    let (task, name, who) = posted(&state, &signed_in, &form.csrf, &task_name)?;
    let skipped = state
        .db
        .write(move |conn| review::skip(conn, &name, &item_id, &who))
        .await;
    match skipped {
        Ok(()) => Ok(redirect(&format!("/review/{}?notice=skipped", task.name()))),
        Err(e) => refused(&task, e),
    }
}

/// The flag form: why the reviewer is unsure.
#[derive(Deserialize)]
pub struct FlagForm {
    csrf: String,
    #[serde(default)]
    note: String,
}

/// Hands the item to an admin with the reviewer's note, and goes on with
/// the next item.
pub async fn flag(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, WebError> {
    let (task_name, item_id) = path.into_inner();
    let (task, name, who) = posted(&state, &signed_in, &form.csrf, &task_name)?;
    let note = form.into_inner().note;
    let flagged = state
        .db
        .write(move |conn| review::flag(conn, &name, &item_id, &who, &note))
        .await;
    match flagged {
        Ok(()) => Ok(redirect(&format!("/review/{}?notice=flagged", task.name()))),
        Err(ReviewError::AlreadyFlagged) => Ok(redirect(&format!(
            "/review/{}?notice=already-flagged",
            task.name()
        ))),
        Err(e @ (ReviewError::NoteRequired | ReviewError::NoteTooLong)) => Err(e.into()),
        Err(e) => refused(&task, e),
    }
}

/// Extends the reviewer's lease; answers JSON `{"seconds": left}` for the
/// page's countdown, 409 when the claim is gone.
pub async fn renew(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    let (task_name, item_id) = path.into_inner();
    let (_, name, who) = posted(&state, &signed_in, &form.csrf, &task_name)?;
    let renewed = state
        .db
        .write(move |conn| review::renew(conn, &name, &item_id, &who, review::DEFAULT_LEASE))
        .await;
    Ok(match renewed {
        Ok(expires) => HttpResponse::Ok().json(serde_json::json!({
            "seconds": (expires - crate::domain::now()).num_seconds().max(0)
        })),
        Err(e) => {
            if let ReviewError::Database(e) = &e {
                tracing::error!(error = %e, "lease renewal failed");
            }
            HttpResponse::Conflict().json(serde_json::json!({"seconds": 0}))
        }
    })
}

/// Takes back the reviewer's last label (within 30 seconds) and shows that
/// item again.
pub async fn undo(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    let (task, name, who) = posted(&state, &signed_in, &form.csrf, &path)?;
    let undone = state
        .db
        .write(move |conn| review::undo_last(conn, &name, &who, review::DEFAULT_LEASE))
        .await;
    let notice = match undone {
        Ok(_) => "undone",
        Err(ReviewError::NothingToUndo) => "nothing-to-undo",
        Err(e) => return Err(e.into()),
    };
    Ok(redirect(&format!(
        "/review/{}?notice={notice}",
        task.name()
    )))
}
