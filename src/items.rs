//! What a client sees of an item: the document the scoring API returns (and
//! a webhook carries), built from the stored rows.

use std::collections::{BTreeMap, HashMap};

use diesel::QueryResult;
use serde::Serialize;

use crate::db::DbConnection;
use crate::domain::{rfc3339, VerdictSource};
use crate::store::items::{self as store, ItemRow, PredictionRow, VerdictRow};

/// What a client sees of an item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, PartialEq)]
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
    /// Features outside the model's training range (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub out_of_range: Vec<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, PartialEq)]
pub struct VerdictDoc {
    pub label: String,
    /// `model` or `human`.
    pub source: VerdictSource,
    pub confidence: Option<f64>,
    pub model_version: Option<String>,
    pub decided_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema, PartialEq)]
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
            out_of_range: item
                .out_of_range
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            created_at: rfc3339(&item.created_at),
        }
    }
}

/// The documents of stored items (all of one task), in the order of `rows`.
/// An item shows the prediction of the model version that scored it.
pub fn docs_for(conn: &mut DbConnection, rows: &[ItemRow]) -> QueryResult<Vec<ItemDoc>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let task = first.task.as_str();
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let preds: HashMap<(String, String), PredictionRow> = store::predictions_of(conn, task, &ids)?
        .into_iter()
        .map(|p| ((p.item_id.clone(), p.model_version.clone()), p))
        .collect();
    let verdicts: HashMap<String, VerdictRow> = store::verdicts_of(conn, task, &ids)?
        .into_iter()
        .map(|v| (v.item_id.clone(), v))
        .collect();
    Ok(rows
        .iter()
        .map(|item| {
            let prediction = item
                .model_version
                .as_ref()
                .and_then(|v| preds.get(&(item.id.clone(), v.clone())));
            ItemDoc::build(item, prediction, verdicts.get(&item.id))
        })
        .collect())
}

/// One item's document; `None` for an unknown item.
pub fn load_doc(conn: &mut DbConnection, task: &str, id: &str) -> QueryResult<Option<ItemDoc>> {
    let Some(item) = store::find_item(conn, task, id)? else {
        return Ok(None);
    };
    Ok(docs_for(conn, std::slice::from_ref(&item))?.pop())
}
