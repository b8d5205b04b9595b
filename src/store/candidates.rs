//! A candidate beside the live version: the items both scored, read from
//! `shadow_predictions` joined to the acting prediction, the item and its
//! human verdict.

use diesel::prelude::*;

use crate::db::schema::{items, predictions, reviews, shadow_predictions, verdicts};
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
    /// The labels of blind reviews (an audit of an automated item keeps
    /// the model's verdict; its reviewers' labels are here).
    pub reviews: Vec<String>,
    pub blind: bool,
}

/// Items per IN list.
const CHUNK: usize = 500;

/// The newest `limit` items of `task` both `a` and `b` scored since
/// `since`, newest first. Two steps, so that the cost never depends on a
/// planner's guess: the newest rows of `shadow_predictions` (an index
/// range), then their acting predictions, items and human verdicts by
/// primary key, in chunks.
pub fn pairs(
    conn: &mut DbConnection,
    task: &str,
    a: &str,
    b: &str,
    since: Timestamp,
    limit: i64,
) -> QueryResult<Vec<Pair>> {
    use std::collections::HashMap;
    let versions = [a, b];
    let recent: Vec<(String, Side)> = shadow_predictions::table
        .filter(shadow_predictions::task.eq(task))
        .filter(shadow_predictions::created_at.ge(since))
        .filter(shadow_predictions::model_version.eq_any(versions))
        .order(shadow_predictions::created_at.desc())
        .limit(limit)
        .select((
            shadow_predictions::item_id,
            (
                shadow_predictions::model_version,
                shadow_predictions::label,
                shadow_predictions::confidence,
                shadow_predictions::error,
                shadow_predictions::forward_us,
            ),
        ))
        .load(conn)?;
    let mut acting: HashMap<String, Side> = HashMap::with_capacity(recent.len());
    let mut blind: HashMap<String, bool> = HashMap::with_capacity(recent.len());
    let mut human: HashMap<String, String> = HashMap::new();
    let mut blind_reviews: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in recent.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let rows: Vec<(String, Side)> = predictions::table
            .filter(predictions::task.eq(task))
            .filter(predictions::item_id.eq_any(&ids))
            .filter(predictions::model_version.eq_any(versions))
            .select((
                predictions::item_id,
                (
                    predictions::model_version,
                    predictions::label,
                    predictions::confidence,
                    predictions::error,
                    predictions::forward_us,
                ),
            ))
            .load(conn)?;
        acting.extend(rows);
        blind.extend(
            items::table
                .filter(items::task.eq(task))
                .filter(items::id.eq_any(&ids))
                .select((items::id, items::blind))
                .load::<(String, bool)>(conn)?,
        );
        human.extend(
            verdicts::table
                .filter(verdicts::task.eq(task))
                .filter(verdicts::item_id.eq_any(&ids))
                .filter(verdicts::source.eq(VerdictSource::Human))
                .select((verdicts::item_id, verdicts::label))
                .load::<(String, String)>(conn)?,
        );
        for (id, label) in reviews::table
            .filter(reviews::task.eq(task))
            .filter(reviews::item_id.eq_any(&ids))
            .filter(reviews::blind.eq(true))
            .select((reviews::item_id, reviews::label))
            .load::<(String, String)>(conn)?
        {
            blind_reviews.entry(id).or_default().push(label);
        }
    }
    Ok(recent
        .into_iter()
        .filter_map(|(item_id, beside)| {
            let acting = acting.remove(&item_id)?;
            Some(Pair {
                blind: blind.get(&item_id).copied().unwrap_or(false),
                human: human.remove(&item_id),
                reviews: blind_reviews.remove(&item_id).unwrap_or_default(),
                item_id,
                acting,
                beside,
            })
        })
        .collect())
}
