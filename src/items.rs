//! Items, their predictions and verdicts as stored, and the document the
//! scoring API returns for an item.

use std::collections::{BTreeMap, HashMap};

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{items, predictions, verdicts};
use crate::db::DbConnection;
use crate::domain::{
    rfc3339, ItemStatus, QueueReason, ReviewState, Timestamp, VerdictBasis, VerdictSource,
};

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
    pub sla_deadline: Option<Timestamp>,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
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
    pub created_at: Timestamp,
    pub basis: Option<VerdictBasis>,
}

/// What a client sees of an item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ItemDoc {
    pub id: String,
    pub task: String,
    /// `decided` or `queued`.
    pub status: String,
    pub verdict: Option<VerdictDoc>,
    pub prediction: Option<PredictionDoc>,
    /// Why the item waits for a human (`low_confidence`, `model_error`, …).
    pub reason: Option<String>,
    /// A model-decided item also queued blind for a human audit.
    pub audit: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerdictDoc {
    pub label: String,
    /// `model` or `human`.
    pub source: VerdictSource,
    pub confidence: Option<f64>,
    pub model_version: Option<String>,
    pub decided_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PredictionDoc {
    pub label: String,
    pub confidence: f64,
    pub probabilities: BTreeMap<String, f64>,
    pub model_version: String,
}

impl From<&VerdictRow> for VerdictDoc {
    fn from(v: &VerdictRow) -> Self {
        VerdictDoc {
            label: v.label.clone(),
            source: v.source,
            confidence: v.confidence,
            model_version: v.model_version.clone(),
            decided_at: rfc3339(&v.created_at),
        }
    }
}

impl PredictionDoc {
    /// `None` for a failed prediction.
    pub fn from_row(p: &PredictionRow) -> Option<Self> {
        Some(PredictionDoc {
            label: p.label.clone()?,
            confidence: p.confidence?,
            probabilities: serde_json::from_str(p.probabilities.as_deref()?).ok()?,
            model_version: p.model_version.clone(),
        })
    }
}

impl ItemDoc {
    pub fn build(
        item: &ItemRow,
        prediction: Option<&PredictionRow>,
        verdict: Option<&VerdictRow>,
    ) -> Self {
        ItemDoc {
            id: item.id.clone(),
            task: item.task.clone(),
            status: item.status.as_str().to_string(),
            verdict: verdict.map(VerdictDoc::from),
            prediction: prediction.and_then(PredictionDoc::from_row),
            reason: item.reason.map(|r| r.as_str().to_string()),
            audit: item.audit,
            created_at: rfc3339(&item.created_at),
        }
    }
}

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
    // Bounded IN lists keep every backend's parameter limit happy.
    for chunk in ids.chunks(500) {
        let rows: Vec<ItemRow> = items::table
            .filter(items::task.eq(task))
            .filter(items::id.eq_any(chunk))
            .select(ItemRow::as_select())
            .load(conn)?;
        found.extend(rows.into_iter().map(|r| (r.id.clone(), r)));
    }
    Ok(found)
}

/// The documents of stored items, in the order of `rows`.
pub fn docs_for(conn: &mut DbConnection, rows: &[ItemRow]) -> QueryResult<Vec<ItemDoc>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let task = first.task.as_str();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut preds: HashMap<(String, String), PredictionRow> = HashMap::new();
    let mut verdict_rows: HashMap<String, VerdictRow> = HashMap::new();
    for chunk in ids.chunks(500) {
        for p in predictions::table
            .filter(predictions::task.eq(task))
            .filter(predictions::item_id.eq_any(chunk))
            .select(PredictionRow::as_select())
            .load(conn)?
        {
            preds.insert((p.item_id.clone(), p.model_version.clone()), p);
        }
        for v in verdicts::table
            .filter(verdicts::task.eq(task))
            .filter(verdicts::item_id.eq_any(chunk))
            .select(VerdictRow::as_select())
            .load(conn)?
        {
            verdict_rows.insert(v.item_id.clone(), v);
        }
    }
    Ok(rows
        .iter()
        .map(|item| {
            let prediction = item
                .model_version
                .as_ref()
                .and_then(|v| preds.get(&(item.id.clone(), v.clone())));
            ItemDoc::build(item, prediction, verdict_rows.get(&item.id))
        })
        .collect())
}

/// One item's document.
pub fn load_doc(conn: &mut DbConnection, task: &str, id: &str) -> QueryResult<Option<ItemDoc>> {
    let Some(item) = items::table
        .filter(items::task.eq(task))
        .filter(items::id.eq(id))
        .select(ItemRow::as_select())
        .get_result(conn)
        .optional()?
    else {
        return Ok(None);
    };
    Ok(docs_for(conn, std::slice::from_ref(&item))?.pop())
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

/// Writes new items with their predictions and model verdicts.
pub fn insert_all(
    conn: &mut DbConnection,
    item_rows: &[ItemRow],
    prediction_rows: &[PredictionRow],
    verdict_rows: &[VerdictRow],
) -> QueryResult<()> {
    // SQLite: one prepared single-row statement run per row (a multi-row
    // insert is parsed anew for every size, which cost more than it saved).
    // PostgreSQL: multi-row inserts, one round trip per table, chunked to
    // stay under the parameter limit.
    macro_rules! insert {
        ($table:expr, $rows:expr) => {
            match &mut *conn {
                DbConnection::Sqlite(c) => {
                    for row in $rows {
                        diesel::insert_into($table).values(row).execute(c)?;
                    }
                }
                DbConnection::Pg(c) => {
                    for chunk in $rows.chunks(200) {
                        diesel::insert_into($table).values(chunk).execute(c)?;
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
