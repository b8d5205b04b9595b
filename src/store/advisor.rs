//! What the threshold advisor reads: a version's predictions beside the
//! blind labels humans gave the same items, and the confidences it scored
//! — where it acted (`predictions`) and where it scored beside the acting
//! version as a candidate (`shadow_predictions`).

use diesel::prelude::*;

use crate::db::schema::{predictions, reviews, shadow_predictions};
use crate::db::DbConnection;

/// One blind label on an item the version scored: item id, the version's
/// label and confidence, the human's label. In item order.
pub type BlindLabel = (String, String, f64, String);

pub fn blind_labels(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
) -> QueryResult<Vec<BlindLabel>> {
    let rows: Vec<(String, Option<String>, Option<f64>, String)> = predictions::table
        .inner_join(
            reviews::table.on(reviews::task
                .eq(predictions::task)
                .and(reviews::item_id.eq(predictions::item_id))),
        )
        .filter(predictions::task.eq(task))
        .filter(predictions::model_version.eq(version))
        .filter(reviews::blind.eq(true))
        .filter(predictions::label.is_not_null())
        .filter(predictions::confidence.is_not_null())
        .order(predictions::item_id)
        .select((
            predictions::item_id,
            predictions::label,
            predictions::confidence,
            reviews::label,
        ))
        .load(conn)?;
    let beside: Vec<(String, Option<String>, Option<f64>, String)> = shadow_predictions::table
        .inner_join(
            reviews::table.on(reviews::task
                .eq(shadow_predictions::task)
                .and(reviews::item_id.eq(shadow_predictions::item_id))),
        )
        .filter(shadow_predictions::task.eq(task))
        .filter(shadow_predictions::model_version.eq(version))
        .filter(reviews::blind.eq(true))
        .filter(shadow_predictions::label.is_not_null())
        .filter(shadow_predictions::confidence.is_not_null())
        .select((
            shadow_predictions::item_id,
            shadow_predictions::label,
            shadow_predictions::confidence,
            reviews::label,
        ))
        .load(conn)?;
    let mut all: Vec<BlindLabel> = rows
        .into_iter()
        .chain(beside)
        .filter_map(|(id, label, confidence, human)| Some((id, label?, confidence?, human)))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(all)
}

/// The confidences of up to `limit` items the version scored.
pub fn confidences(
    conn: &mut DbConnection,
    task: &str,
    version: &str,
    limit: i64,
) -> QueryResult<Vec<f64>> {
    let rows: Vec<Option<f64>> = predictions::table
        .filter(predictions::task.eq(task))
        .filter(predictions::model_version.eq(version))
        .filter(predictions::confidence.is_not_null())
        .select(predictions::confidence)
        .limit(limit)
        .load(conn)?;
    let room = limit - rows.len() as i64;
    let beside: Vec<Option<f64>> = if room > 0 {
        shadow_predictions::table
            .filter(shadow_predictions::task.eq(task))
            .filter(shadow_predictions::model_version.eq(version))
            .filter(shadow_predictions::confidence.is_not_null())
            .select(shadow_predictions::confidence)
            .limit(room)
            .load(conn)?
    } else {
        Vec::new()
    };
    Ok(rows.into_iter().chain(beside).flatten().collect())
}
