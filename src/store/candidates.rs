//! A candidate beside the live version: the items both scored, read from
//! `shadow_predictions` joined to the acting prediction, the item and its
//! human verdict.

use diesel::prelude::*;

use crate::db::schema::{items, predictions, shadow_predictions, verdicts};
use crate::db::DbConnection;
use crate::domain::{Timestamp, VerdictSource};

/// One version's prediction of an item.
#[derive(Debug, Clone, Queryable)]
pub struct Side {
    pub version: String,
    pub label: Option<String>,
    pub confidence: Option<f64>,
    pub error: Option<String>,
    pub forward_us: i64,
}

/// An item both versions scored: the one that acted, the one beside it,
/// and what a human said of it (`blind`: a blind audit or blind sample,
/// an unbiased draw; the other human verdicts are the queue's hard cases).
#[derive(Debug, Clone, Queryable)]
pub struct Pair {
    pub item_id: String,
    pub acting: Side,
    pub beside: Side,
    pub human: Option<String>,
    pub blind: bool,
}

/// The newest `limit` items of `task` both `a` and `b` scored since
/// `since`, newest first.
pub fn pairs(
    conn: &mut DbConnection,
    task: &str,
    a: &str,
    b: &str,
    since: Timestamp,
    limit: i64,
) -> QueryResult<Vec<Pair>> {
    let versions = [a, b];
    shadow_predictions::table
        .inner_join(
            predictions::table.on(predictions::task
                .eq(shadow_predictions::task)
                .and(predictions::item_id.eq(shadow_predictions::item_id))),
        )
        .inner_join(
            items::table.on(items::task
                .eq(shadow_predictions::task)
                .and(items::id.eq(shadow_predictions::item_id))),
        )
        .left_join(
            verdicts::table.on(verdicts::task
                .eq(shadow_predictions::task)
                .and(verdicts::item_id.eq(shadow_predictions::item_id))
                .and(verdicts::source.eq(VerdictSource::Human))),
        )
        .filter(shadow_predictions::task.eq(task))
        .filter(shadow_predictions::created_at.ge(since))
        .filter(shadow_predictions::model_version.eq_any(versions))
        .filter(predictions::model_version.eq_any(versions))
        .order(shadow_predictions::created_at.desc())
        .limit(limit)
        .select((
            shadow_predictions::item_id,
            (
                predictions::model_version,
                predictions::label,
                predictions::confidence,
                predictions::error,
                predictions::forward_us,
            ),
            (
                shadow_predictions::model_version,
                shadow_predictions::label,
                shadow_predictions::confidence,
                shadow_predictions::error,
                shadow_predictions::forward_us,
            ),
            verdicts::label.nullable(),
            items::blind,
        ))
        .load(conn)
}
