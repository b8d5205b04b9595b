//! What the threshold advisor reads: a version's predictions beside the
//! blind labels humans gave the same items, and the confidences it scored.

use diesel::prelude::*;

use crate::db::schema::{predictions, reviews};
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
    Ok(rows
        .into_iter()
        .filter_map(|(id, label, confidence, human)| Some((id, label?, confidence?, human)))
        .collect())
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
    Ok(rows.into_iter().flatten().collect())
}
