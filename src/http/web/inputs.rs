//! An item's input as people read it: in the model's feature order, each
//! value beside the range the model was trained on, flagged when outside.
//! The review page and the admin's item page show the same table.

use crate::ml::LoadedModel;

pub struct FeatureRow {
    pub name: String,
    pub value: String,
    pub reference: String,
    /// Outside the training data's range: the reviewer sees drift.
    pub outside: bool,
}

/// The rows of `input` (the stored JSON object): in the card's feature
/// order with its training ranges, or as stored when no model is known.
pub fn features(model: Option<&LoadedModel>, input: &str) -> Vec<FeatureRow> {
    let values: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(input).unwrap_or_default();
    match model {
        Some(model) => model
            .card
            .features
            .iter()
            .map(|spec| {
                let value = values.get(&spec.name).and_then(|v| v.as_f64());
                let (lo, hi) = (spec.reference.min(), spec.reference.max());
                FeatureRow {
                    name: spec.name.clone(),
                    value: value.map_or("–".into(), |v| format!("{v}")),
                    reference: format!("{} – {}", short(lo), short(hi)),
                    outside: value.is_some_and(|v| v < lo || v > hi),
                }
            })
            .collect(),
        None => values
            .iter()
            .map(|(name, v)| FeatureRow {
                name: name.clone(),
                value: v.to_string(),
                reference: "–".into(),
                outside: false,
            })
            .collect(),
    }
}

fn short(v: f64) -> String {
    format!("{:.4}", v)
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}
