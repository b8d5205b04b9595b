//! An admin's corrections on the item page: overrule the verdict, or send
//! the item back for review. Each needs a reason (kept in the audit log).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::format::path_segment;
use super::session::SignedIn;
use super::{redirect, WebError};
use crate::http::state::AppState;
use crate::review;

#[derive(Deserialize)]
pub struct OverruleForm {
    csrf: String,
    label: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub struct ReopenForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// The item page, after a correction.
fn back_to_item(task: &str, id: &str, done: &str) -> HttpResponse {
    redirect(&format!(
        "/admin/items/{}/{}?done={done}",
        path_segment(task),
        path_segment(id)
    ))
}

/// The task, for an admin whose form carries this session's token.
fn admin_task(
    state: &AppState,
    signed_in: &SignedIn,
    csrf: &str,
    task: &str,
) -> Result<std::sync::Arc<crate::tasks::TaskRuntime>, WebError> {
    signed_in.admin_post(csrf)?;
    state
        .tasks
        .get(task)
        .cloned()
        .ok_or(WebError::NotFound("There is no such task."))
}

pub async fn overrule(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<OverruleForm>,
) -> Result<HttpResponse, WebError> {
    let (task_name, id) = path.into_inner();
    let task = admin_task(&state, &signed_in, &form.csrf, &task_name)?;
    let rules = super::review::rules_of(&task);
    let (name, admin, item) = (
        task.name().to_string(),
        signed_in.user.name.clone(),
        id.clone(),
    );
    let form = form.into_inner();
    state
        .db
        .write(move |conn| {
            review::overrule(
                conn,
                &name,
                &rules,
                &item,
                &admin,
                &form.label,
                &form.reason,
            )
        })
        .await?;
    Ok(back_to_item(task.name(), &id, "overruled"))
}

pub async fn reopen(
    state: web::Data<AppState>,
    signed_in: SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<ReopenForm>,
) -> Result<HttpResponse, WebError> {
    let (task_name, id) = path.into_inner();
    let task = admin_task(&state, &signed_in, &form.csrf, &task_name)?;
    let sla = chrono::Duration::minutes(i64::from(task.config.sla_minutes));
    let (name, admin, item) = (
        task.name().to_string(),
        signed_in.user.name.clone(),
        id.clone(),
    );
    let reason = form.into_inner().reason;
    state
        .db
        .write(move |conn| review::reopen(conn, &name, &item, &admin, &reason, sla))
        .await?;
    Ok(back_to_item(task.name(), &id, "reopened"))
}
