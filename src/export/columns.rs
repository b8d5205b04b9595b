//! The columns of an export, in order: one table that both encoders walk,
//! so a column added here appears in the CSV and in the JSONL alike. Each
//! column says how its value is read from a [`Record`]; the encoders say
//! how a kind of value is written.

use serde::Serialize;
use serde_json::value::RawValue;

use super::Record;
use crate::domain::{rfc3339, Timestamp, VerdictSource};
use crate::store::labels::Review;

/// One column: its name (the CSV header, the JSON field) and its value.
pub struct Column {
    pub name: &'static str,
    pub read: Read,
}

/// How a column's value is read.
pub enum Read {
    /// One value per record.
    Value(for<'a> fn(&'a Record) -> Value<'a>),
    /// The stored input: in JSONL the object as it is, in CSV one
    /// `input.<field>` column per input field.
    Input,
    /// The reviews in full (`include=reviews`).
    Reviews,
    /// Every model version's prediction (`include=predictions`).
    Predictions,
}

/// A value as both encoders know it: JSON writes `null` where CSV leaves
/// the cell empty.
pub enum Value<'a> {
    /// Text that never needs quoting in CSV (item ids are
    /// `[A-Za-z0-9._:-]`); escaped in JSON all the same.
    Id(&'a str),
    Time(&'a Timestamp),
    Text(Option<&'a str>),
    Owned(Option<String>),
    /// One text of each review: a JSON list, `;`-joined in CSV.
    List(&'a [Review], fn(&Review) -> &str),
    /// `null` in JSON when missing or not finite.
    Number(Option<f64>),
    Bool(bool),
    Count(usize),
}

const fn value(name: &'static str, read: for<'a> fn(&'a Record) -> Value<'a>) -> Column {
    Column {
        name,
        read: Read::Value(read),
    }
}

/// Every column, in output order (`reviews` and `predictions` only when
/// asked for).
pub const COLUMNS: &[Column] = &[
    value("id", |r| Value::Id(&r.head.id)),
    value("created_at", |r| Value::Time(&r.head.created_at.0)),
    Column {
        name: "input",
        read: Read::Input,
    },
    value("label", |r| Value::Text(Some(&r.head.label))),
    value("source", |r| Value::Text(Some(&r.head.source))),
    value("basis", |r| Value::Text(r.head.basis.as_deref())),
    value("decided_at", |r| Value::Time(&r.head.decided_at.0)),
    value("decided_by", |r| Value::Text(r.head.decided_by.as_deref())),
    value("human_label", |r| Value::Owned(human_label(r))),
    value("reviewers", |r| Value::List(&r.reviews, |v| &v.reviewer)),
    value("review_labels", |r| Value::List(&r.reviews, |v| &v.label)),
    value("review_seconds", |r| {
        Value::Number((!r.reviews.is_empty()).then(|| review_seconds(r)))
    }),
    value("audit", |r| Value::Bool(r.head.audit)),
    value("reason", |r| Value::Text(r.head.reason.as_deref())),
    value("model_version", |r| {
        Value::Text(r.head.model_version.as_deref())
    }),
    value("model_label", |r| {
        Value::Text(r.head.model_label.as_deref())
    }),
    value("model_confidence", |r| {
        Value::Number(r.head.model_confidence)
    }),
    value("review_count", |r| Value::Count(r.reviews.len())),
    Column {
        name: "reviews",
        read: Read::Reviews,
    },
    Column {
        name: "predictions",
        read: Read::Predictions,
    },
];

/// The label people gave: the verdict when a human decided, else (a blind
/// audit) the majority of the reviews.
pub fn human_label(r: &Record) -> Option<String> {
    if r.head.source == VerdictSource::Human.as_str() {
        return Some(r.head.label.clone());
    }
    let votes: Vec<String> = r.reviews.iter().map(|v| v.label.clone()).collect();
    crate::review::majority(&votes)
}

fn review_seconds(r: &Record) -> f64 {
    r.reviews.iter().map(|v| v.seconds_spent).sum()
}

#[derive(Serialize)]
pub struct ReviewOut<'a> {
    reviewer: &'a str,
    label: &'a str,
    comment: Option<&'a str>,
    seconds_spent: f64,
    blind: bool,
    created_at: String,
}

#[derive(Serialize)]
pub struct PredictionOut<'a> {
    model_version: &'a str,
    label: Option<&'a str>,
    confidence: Option<f64>,
    probabilities: Option<&'a RawValue>,
    error: Option<&'a str>,
    created_at: String,
}

pub fn reviews_of(r: &Record) -> Vec<ReviewOut<'_>> {
    r.reviews
        .iter()
        .map(|v| ReviewOut {
            reviewer: &v.reviewer,
            label: &v.label,
            comment: v.comment.as_deref(),
            seconds_spent: v.seconds_spent,
            blind: v.blind,
            created_at: rfc3339(&v.created_at),
        })
        .collect()
}

pub fn predictions_of(r: &Record) -> Vec<PredictionOut<'_>> {
    r.predictions
        .iter()
        .map(|p| PredictionOut {
            model_version: &p.model_version,
            label: p.label.as_deref(),
            confidence: p.confidence,
            probabilities: p
                .probabilities
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            error: p.error.as_deref(),
            created_at: rfc3339(&p.created_at),
        })
        .collect()
}
