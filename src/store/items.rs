//! Items, their predictions and verdicts as stored: the rows and their
//! queries.

use std::collections::HashMap;

use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::db::schema::{items, predictions, shadow_predictions, verdicts};
use crate::db::unnest::{Column, UnnestInsert};
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
    let c = match conn {
        DbConnection::Pg(c) => return pg_insert_all(c, item_rows, prediction_rows, verdict_rows),
        DbConnection::Sqlite(c) => c,
    };
    // SQLite: rows in statements of SQLITE_ROWS rows (one prepared
    // statement whatever the batch's size; a batch file's chunk is
    // thousands of rows), the rest one prepared single-row statement each
    // (a multi-row insert of any other size would be prepared anew).
    macro_rules! insert {
        ($table:expr, $rows:expr) => {{
            let mut chunks = $rows.chunks_exact(SQLITE_ROWS);
            for chunk in &mut chunks {
                // An array of owned rows, not a Vec: diesel keeps its
                // statement prepared (a Vec's, or one of borrowed rows, is
                // parsed anew on each call).
                let rows: [_; SQLITE_ROWS] = std::array::from_fn(|i| (*chunk[i]).clone());
                diesel::insert_into($table).values(rows).execute(c)?;
            }
            for row in chunks.remainder() {
                diesel::insert_into($table)
                    .values((*row).clone())
                    .execute(c)?;
            }
        }};
    }
    insert!(items::table, item_rows);
    insert!(predictions::table, prediction_rows);
    insert!(verdicts::table, verdict_rows);
    Ok(())
}

/// One column of `rows` for an [`UnnestInsert`]: `col!(rows, Kind, |r| value)`.
macro_rules! col {
    ($rows:expr, $kind:ident, |$r:ident| $value:expr) => {
        Column::$kind($rows.iter().map(|$r| $value).collect())
    };
}

/// A prediction as both prediction tables store it (the acting version's
/// and the shadow one's).
trait PredictionLike {
    fn columns(&self) -> (&str, &str, &str, Option<&str>, Option<f64>);
}

macro_rules! prediction_like {
    ($($row:ty),*) => {$(
        impl PredictionLike for $row {
            fn columns(&self) -> (&str, &str, &str, Option<&str>, Option<f64>) {
                let r = self;
                (&r.task, &r.item_id, &r.model_version, r.label.as_deref(), r.confidence)
            }
        }
    )*};
}

prediction_like!(PredictionRow, ShadowRow);

/// The columns the two prediction tables share.
fn prediction_columns<'a, R: PredictionLike>(
    insert: UnnestInsert<'a>,
    rows: &[&'a R],
) -> UnnestInsert<'a> {
    insert
        .column("task", col!(rows, Text, |r| r.columns().0))
        .column("item_id", col!(rows, Text, |r| r.columns().1))
        .column("model_version", col!(rows, Text, |r| r.columns().2))
        .column("label", col!(rows, NullableText, |r| r.columns().3))
        .column("confidence", col!(rows, NullableDouble, |r| r.columns().4))
}

/// [`insert_all`] on PostgreSQL: one `unnest` insert per table, prepared
/// once per connection whatever the number of rows.
fn pg_insert_all(
    c: &mut PgConnection,
    item_rows: &[&ItemRow],
    prediction_rows: &[&PredictionRow],
    verdict_rows: &[&VerdictRow],
) -> QueryResult<()> {
    if !item_rows.is_empty() {
        let rows = item_rows;
        UnnestInsert::into("items")
            .column("task", col!(rows, Text, |r| r.task.as_str()))
            .column("id", col!(rows, Text, |r| r.id.as_str()))
            .column("input", col!(rows, Text, |r| r.input.as_str()))
            .column(
                "input_sha256",
                col!(rows, Text, |r| r.input_sha256.as_str()),
            )
            .column("status", col!(rows, Text, |r| r.status.as_str()))
            .column(
                "reason",
                col!(rows, NullableText, |r| r.reason.map(|x| x.as_str())),
            )
            .column(
                "review_state",
                col!(rows, Text, |r| r.review_state.as_str()),
            )
            .column("blind", col!(rows, Bool, |r| r.blind))
            .column("audit", col!(rows, Bool, |r| r.audit))
            .column(
                "model_version",
                col!(rows, NullableText, |r| r.model_version.as_deref()),
            )
            .column("margin", col!(rows, NullableDouble, |r| r.margin))
            .column(
                "sla_deadline",
                col!(rows, NullableTimestamp, |r| r.sla_deadline),
            )
            .column("created_at", col!(rows, Timestamp, |r| r.created_at))
            .column(
                "decided_at",
                col!(rows, NullableTimestamp, |r| r.decided_at),
            )
            .column(
                "out_of_range",
                col!(rows, NullableText, |r| r.out_of_range.as_deref()),
            )
            .execute(c)?;
    }
    if !prediction_rows.is_empty() {
        let rows = prediction_rows;
        prediction_columns(UnnestInsert::into("predictions"), rows)
            .column(
                "probabilities",
                col!(rows, NullableText, |r| r.probabilities.as_deref()),
            )
            .column("error", col!(rows, NullableText, |r| r.error.as_deref()))
            .column("featurise_us", col!(rows, BigInt, |r| r.featurise_us))
            .column("forward_us", col!(rows, BigInt, |r| r.forward_us))
            .column("policy_us", col!(rows, BigInt, |r| r.policy_us))
            .column("created_at", col!(rows, Timestamp, |r| r.created_at))
            .execute(c)?;
    }
    if !verdict_rows.is_empty() {
        let rows = verdict_rows;
        UnnestInsert::into("verdicts")
            .column("task", col!(rows, Text, |r| r.task.as_str()))
            .column("item_id", col!(rows, Text, |r| r.item_id.as_str()))
            .column("label", col!(rows, Text, |r| r.label.as_str()))
            .column("source", col!(rows, Text, |r| r.source.as_str()))
            .column("confidence", col!(rows, NullableDouble, |r| r.confidence))
            .column(
                "model_version",
                col!(rows, NullableText, |r| r.model_version.as_deref()),
            )
            .column(
                "decided_by",
                col!(rows, NullableText, |r| r.decided_by.as_deref()),
            )
            .column("created_at", col!(rows, Timestamp, |r| r.created_at))
            .column(
                "basis",
                col!(rows, NullableText, |r| r.basis.map(|x| x.as_str())),
            )
            .execute(c)?;
    }
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
            prediction_columns(UnnestInsert::into("shadow_predictions"), rows)
                .column("error", col!(rows, NullableText, |r| r.error.as_deref()))
                .column("forward_us", col!(rows, BigInt, |r| r.forward_us))
                .column("created_at", col!(rows, Timestamp, |r| r.created_at))
                .execute(c)?;
        }
    }
    Ok(())
}
