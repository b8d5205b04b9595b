//! Items, their predictions and verdicts as stored: the rows and their
//! queries.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::schema::{items, predictions, shadow_predictions, verdicts};
use crate::db::DbConnection;
use crate::domain::{ItemStatus, QueueReason, ReviewState, Timestamp, VerdictBasis, VerdictSource};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = items)]
pub struct ItemRow {
    pub task: String,
    pub id: String,
    pub input: String,
    pub input_sha256: String,
    pub status: ItemStatus,
    pub reason: Option<QueueReason>,
    pub review_state: ReviewState,
    pub blind: bool,
    pub audit: bool,
    pub model_version: Option<String>,
    pub margin: Option<f64>,
    #[diesel(serialize_as = crate::db::fast_time::FastOptionalTimestamp)]
    pub sla_deadline: Option<Timestamp>,
    #[diesel(serialize_as = crate::db::fast_time::FastTimestamp)]
    pub created_at: Timestamp,
    #[diesel(serialize_as = crate::db::fast_time::FastOptionalTimestamp)]
    pub decided_at: Option<Timestamp>,
    /// Features outside the model's training range: a JSON array of names.
    pub out_of_range: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = predictions)]
pub struct PredictionRow {
    pub task: String,
    pub item_id: String,
    pub model_version: String,
    pub label: Option<String>,
    pub confidence: Option<f64>,
    pub probabilities: Option<String>,
    pub error: Option<String>,
    pub featurise_us: i64,
    pub forward_us: i64,
    pub policy_us: i64,
    #[diesel(serialize_as = crate::db::fast_time::FastTimestamp)]
    pub created_at: Timestamp,
}

/// The prediction of a version that did not act on the item (a
/// candidate, or the live version on a canary's item).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = shadow_predictions)]
pub struct ShadowRow {
    pub task: String,
    pub item_id: String,
    pub model_version: String,
    pub label: Option<String>,
    pub confidence: Option<f64>,
    pub error: Option<String>,
    pub forward_us: i64,
    #[diesel(serialize_as = crate::db::fast_time::FastTimestamp)]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(treat_none_as_default_value = false)]
#[diesel(table_name = verdicts)]
pub struct VerdictRow {
    pub task: String,
    pub item_id: String,
    pub label: String,
    pub source: VerdictSource,
    pub confidence: Option<f64>,
    pub model_version: Option<String>,
    pub decided_by: Option<String>,
    #[diesel(serialize_as = crate::db::fast_time::FastTimestamp)]
    pub created_at: Timestamp,
    pub basis: Option<VerdictBasis>,
}

/// Bounded IN lists keep every backend's parameter limit happy.
const IN_LIST: usize = 500;

/// Rows per multi-row insert on SQLite (15 columns: 960 parameters).
const SQLITE_ROWS: usize = 64;

/// The stored items among `ids`, by id.
pub fn find_items(
    conn: &mut DbConnection,
    task: &str,
    ids: &[&str],
) -> QueryResult<HashMap<String, ItemRow>> {
    let mut found = HashMap::with_capacity(ids.len());
    if let [id] = ids {
        // The common case, one item: a statement diesel keeps prepared.
        let row = crate::on_backend!(conn, c => items::table
            .find((task, *id))
            .select(ItemRow::as_select())
            .get_result::<ItemRow>(c)
            .optional())?;
        if let Some(row) = row {
            found.insert(row.id.clone(), row);
        }
        return Ok(found);
    }
    // PostgreSQL: `id = ANY($2)` from a statement diesel keeps prepared
    // may run on a generic plan made while the table was small or without
    // statistics (autovacuum off, or before its first ANALYZE), which reads
    // the whole task through `items_by_created` and filters on the id: it
    // grew with the table until it was most of the scoring path's database
    // time. Planned for the ids at hand, the primary key is always chosen.
    if let DbConnection::Pg(c) = conn {
        use diesel::connection::SimpleConnection;
        c.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")?;
    }
    for chunk in ids.chunks(IN_LIST) {
        let rows: Vec<ItemRow> = items::table
            .filter(items::task.eq(task))
            .filter(items::id.eq_any(chunk))
            .select(ItemRow::as_select())
            .load(conn)?;
        found.extend(rows.into_iter().map(|r| (r.id.clone(), r)));
    }
    Ok(found)
}

/// One stored item.
pub fn find_item(conn: &mut DbConnection, task: &str, id: &str) -> QueryResult<Option<ItemRow>> {
    items::table
        .filter(items::task.eq(task))
        .filter(items::id.eq(id))
        .select(ItemRow::as_select())
        .get_result(conn)
        .optional()
}

/// Every prediction stored for the items `ids` of `task` (any model version).
pub fn predictions_of(
    conn: &mut DbConnection,
    task: &str,
    ids: &[&str],
) -> QueryResult<Vec<PredictionRow>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST) {
        found.extend(
            predictions::table
                .filter(predictions::task.eq(task))
                .filter(predictions::item_id.eq_any(chunk))
                .select(PredictionRow::as_select())
                .load(conn)?,
        );
    }
    Ok(found)
}

/// The verdicts of the items `ids` of `task`.
pub fn verdicts_of(
    conn: &mut DbConnection,
    task: &str,
    ids: &[&str],
) -> QueryResult<Vec<VerdictRow>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_LIST) {
        found.extend(
            verdicts::table
                .filter(verdicts::task.eq(task))
                .filter(verdicts::item_id.eq_any(chunk))
                .select(VerdictRow::as_select())
                .load(conn)?,
        );
    }
    Ok(found)
}

/// Items waiting for a human, per task.
pub fn queue_depths(conn: &mut DbConnection) -> QueryResult<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = items::table
        .filter(items::review_state.eq(ReviewState::Pending))
        .group_by(items::task)
        .select((items::task, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Writes new items with their predictions and model verdicts. (Rows
/// are inserted owned: their timestamps go through
/// [`crate::db::fast_time::FastTimestamp`], and diesel keeps a statement of
/// owned values prepared.)
pub fn insert_all(
    conn: &mut DbConnection,
    item_rows: &[&ItemRow],
    prediction_rows: &[&PredictionRow],
    verdict_rows: &[&VerdictRow],
) -> QueryResult<()> {
    // SQLite: rows in statements of SQLITE_ROWS rows (one prepared
    // statement whatever the batch's size; a batch file's chunk is
    // thousands of rows), the rest one prepared single-row statement each
    // (a multi-row insert of any other size would be prepared anew).
    // PostgreSQL: multi-row inserts, one round trip per table, chunked to
    // stay under the parameter limit.
    macro_rules! insert {
        ($table:expr, $rows:expr) => {
            match &mut *conn {
                DbConnection::Sqlite(c) => {
                    let mut chunks = $rows.chunks_exact(SQLITE_ROWS);
                    for chunk in &mut chunks {
                        // An array of owned rows, not a Vec: diesel keeps
                        // its statement prepared (a Vec's, or one of
                        // borrowed rows, is parsed anew on each call).
                        let rows: [_; SQLITE_ROWS] = std::array::from_fn(|i| (*chunk[i]).clone());
                        diesel::insert_into($table).values(rows).execute(c)?;
                    }
                    for row in chunks.remainder() {
                        diesel::insert_into($table)
                            .values((*row).clone())
                            .execute(c)?;
                    }
                }
                DbConnection::Pg(c) => {
                    for chunk in $rows.chunks(200) {
                        let rows: Vec<_> = chunk.iter().map(|r| (*r).clone()).collect();
                        diesel::insert_into($table).values(rows).execute(c)?;
                    }
                }
            }
        };
    }
    insert!(items::table, item_rows);
    insert!(predictions::table, prediction_rows);
    insert!(verdicts::table, verdict_rows);
    Ok(())
}

/// [`insert_all`] for rows held in vectors of their own (benchmarks and
/// tests that write items directly).
pub fn insert_rows(
    conn: &mut DbConnection,
    item_rows: &[ItemRow],
    prediction_rows: &[PredictionRow],
    verdict_rows: &[VerdictRow],
) -> QueryResult<()> {
    insert_all(
        conn,
        &item_rows.iter().collect::<Vec<_>>(),
        &prediction_rows.iter().collect::<Vec<_>>(),
        &verdict_rows.iter().collect::<Vec<_>>(),
    )
}

/// Inserts the predictions kept aside, in the items' transaction.
pub fn insert_shadow(conn: &mut DbConnection, rows: &[&ShadowRow]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match &mut *conn {
        DbConnection::Sqlite(c) => {
            for row in rows {
                diesel::insert_into(shadow_predictions::table)
                    .values((*row).clone())
                    .execute(c)?;
            }
        }
        DbConnection::Pg(c) => {
            for chunk in rows.chunks(500) {
                let rows: Vec<ShadowRow> = chunk.iter().map(|r| (*r).clone()).collect();
                diesel::insert_into(shadow_predictions::table)
                    .values(rows)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}
