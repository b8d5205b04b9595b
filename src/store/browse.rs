//! The admin's views of items: a filtered, cursor-paged list, one item with
//! everything recorded about it, and the review facts of a task.

use diesel::prelude::*;

use crate::db::schema::{audit_log, items, predictions, reviews, verdicts};
use crate::db::DbConnection;
use crate::domain::{ItemStatus, Timestamp, VerdictSource};
use crate::store::items::{ItemRow, PredictionRow, VerdictRow};

/// Which items to list; `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub task: String,
    pub status: Option<ItemStatus>,
    pub source: Option<VerdictSource>,
    pub label: Option<String>,
    /// Created at or after.
    pub from: Option<Timestamp>,
    /// Created at or before.
    pub to: Option<Timestamp>,
    /// Items this reviewer labelled.
    pub reviewer: Option<String>,
    /// Cursor: the `(created_at, id)` of the last row of the previous page.
    pub after: Option<(Timestamp, String)>,
}

/// Up to `limit` items, newest first, each with its verdict if any.
pub fn items(
    conn: &mut DbConnection,
    f: &ItemFilter,
    limit: i64,
) -> QueryResult<Vec<(ItemRow, Option<VerdictRow>)>> {
    let mut q = items::table
        .left_join(
            verdicts::table.on(verdicts::task
                .eq(items::task)
                .and(verdicts::item_id.eq(items::id))),
        )
        .filter(items::task.eq(f.task.clone()))
        .select((ItemRow::as_select(), Option::<VerdictRow>::as_select()))
        .order((items::created_at.desc(), items::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(status) = f.status {
        q = q.filter(items::status.eq(status));
    }
    if let Some(source) = f.source {
        q = q.filter(verdicts::source.eq(source));
    }
    if let Some(label) = &f.label {
        q = q.filter(verdicts::label.eq(label.clone()));
    }
    if let Some(from) = f.from {
        q = q.filter(items::created_at.ge(from));
    }
    if let Some(to) = f.to {
        q = q.filter(items::created_at.le(to));
    }
    if let Some(reviewer) = &f.reviewer {
        let reviewed = reviews::table
            .filter(reviews::task.eq(f.task.clone()))
            .filter(reviews::reviewer.eq(reviewer.clone()))
            .select(reviews::item_id);
        q = q.filter(items::id.eq_any(reviewed));
    }
    if let Some((at, id)) = &f.after {
        // A row-value comparison: both backends walk the
        // (task, created_at, id) index from the cursor on.
        q = q.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("(items.created_at, items.id) < (")
                .bind::<diesel::sql_types::Timestamp, _>(*at)
                .sql(", ")
                .bind::<diesel::sql_types::Text, _>(id.clone())
                .sql(")"),
        );
    }
    q.load(conn)
}

/// A review as the item page shows it: reviewer, label, comment, seconds
/// spent, blind, when.
pub type ReviewLine = (String, String, Option<String>, f64, bool, Timestamp);
/// An audit entry: when, who, action, detail (JSON).
pub type AuditLine = (Timestamp, String, String, String);

/// Everything recorded about one item.
pub struct ItemDetail {
    pub item: ItemRow,
    pub predictions: Vec<PredictionRow>,
    pub reviews: Vec<ReviewLine>,
    pub verdict: Option<VerdictRow>,
    pub audit: Vec<AuditLine>,
}

pub fn item(conn: &mut DbConnection, task: &str, id: &str) -> QueryResult<Option<ItemDetail>> {
    let Some(item) = items::table
        .find((task, id))
        .select(ItemRow::as_select())
        .get_result::<ItemRow>(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let predictions = predictions::table
        .filter(predictions::task.eq(task))
        .filter(predictions::item_id.eq(id))
        .select(PredictionRow::as_select())
        .load(conn)?;
    let reviews = reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::item_id.eq(id))
        .order(reviews::created_at)
        .select((
            reviews::reviewer,
            reviews::label,
            reviews::comment,
            reviews::seconds_spent,
            reviews::blind,
            reviews::created_at,
        ))
        .load(conn)?;
    let verdict = verdicts::table
        .find((task, id))
        .select(VerdictRow::as_select())
        .get_result(conn)
        .optional()?;
    let audit = audit_log::table
        .filter(audit_log::task.eq(Some(task)))
        .filter(audit_log::subject.eq(Some(id)))
        .order(audit_log::id)
        .select((
            audit_log::at,
            audit_log::actor,
            audit_log::action,
            audit_log::detail,
        ))
        .load(conn)?;
    Ok(Some(ItemDetail {
        item,
        predictions,
        reviews,
        verdict,
        audit,
    }))
}

/// A review as the reviewers' page counts it: item id, reviewer, label,
/// seconds spent, blind.
pub type ReviewFactRow = (String, String, String, f64, bool);
/// A reviewed item's verdict: item id, label, source, basis.
pub type VerdictFactRow = (String, String, String, Option<String>);

/// Every review of a task.
pub fn reviews_of_task(conn: &mut DbConnection, task: &str) -> QueryResult<Vec<ReviewFactRow>> {
    reviews::table
        .filter(reviews::task.eq(task))
        .select((
            reviews::item_id,
            reviews::reviewer,
            reviews::label,
            reviews::seconds_spent,
            reviews::blind,
        ))
        .load(conn)
}

/// The verdicts of a task's reviewed items.
pub fn verdicts_of_reviewed(
    conn: &mut DbConnection,
    task: &str,
) -> QueryResult<Vec<VerdictFactRow>> {
    let reviewed = reviews::table
        .filter(reviews::task.eq(task))
        .select(reviews::item_id);
    verdicts::table
        .filter(verdicts::task.eq(task))
        .filter(verdicts::item_id.eq_any(reviewed))
        .select((
            verdicts::item_id,
            verdicts::label,
            verdicts::source,
            verdicts::basis,
        ))
        .load(conn)
}
