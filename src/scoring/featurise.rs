//! The first stage of scoring: an input checked against the model's
//! features, in card order, and stored canonically.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::error::{InputProblem, ScoringError};
use crate::ml::LoadedModel;

/// An input checked against the model's feature list.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// The input as stored: features in card order.
    pub canonical: String,
    pub sha256: String,
    /// Values in card order (empty when the task has no model).
    pub values: Vec<f64>,
}

/// Checks an input object against the card's features: each must be
/// present, a finite number and within the card's valid range; no other
/// field may appear. Errors name the field as `input.<name>`.
pub fn featurise(model: Option<&LoadedModel>, input: &Value) -> Result<Features, ScoringError> {
    let Value::Object(fields) = input else {
        return Err(ScoringError::invalid(
            InputProblem::WrongType,
            "input",
            "input must be a JSON object of feature names to values",
        ));
    };
    let Some(model) = model else {
        // No model: nothing to check the input against; keep it as sent.
        let canonical = Value::Object(fields.clone()).to_string();
        return Ok(Features {
            sha256: hex::encode(Sha256::digest(canonical.as_bytes())),
            canonical,
            values: Vec::new(),
        });
    };
    let field = |name: &str| format!("input.{name}");
    let mut values = Vec::with_capacity(model.card.features.len());
    let mut canonical = Map::new();
    for spec in &model.card.features {
        let name = spec.name.as_str();
        let value = match fields.get(name) {
            None => {
                return Err(ScoringError::invalid(
                    InputProblem::MissingField,
                    field(name),
                    format!("the input has no {name:?}; every feature of the model is required"),
                ))
            }
            Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
                ScoringError::invalid(
                    InputProblem::NotFinite,
                    field(name),
                    format!("{name} must be a finite number"),
                )
            })?,
            Some(Value::String(s)) if is_non_finite_word(s) => {
                return Err(ScoringError::invalid(
                    InputProblem::NotFinite,
                    field(name),
                    format!("{name} is {s}; it must be a finite number"),
                ))
            }
            Some(other) => {
                return Err(ScoringError::invalid(
                    InputProblem::WrongType,
                    field(name),
                    format!("{name} must be a number, not {}", json_type(other)),
                ))
            }
        };
        if let Some(min) = spec.valid_min.filter(|&min| value < min) {
            return Err(ScoringError::invalid(
                InputProblem::OutOfRange,
                field(name),
                format!("{name} is {value}, below its minimum of {min}"),
            ));
        }
        if let Some(max) = spec.valid_max.filter(|&max| value > max) {
            return Err(ScoringError::invalid(
                InputProblem::OutOfRange,
                field(name),
                format!("{name} is {value}, above its maximum of {max}"),
            ));
        }
        values.push(value);
        canonical.insert(name.to_string(), Value::from(value));
    }
    if let Some(unknown) = fields
        .keys()
        .find(|k| !model.feature_index.contains_key(k.as_str()))
    {
        return Err(ScoringError::invalid(
            InputProblem::UnknownField,
            field(unknown),
            format!("the model has no feature {unknown:?}"),
        ));
    }
    let canonical = Value::Object(canonical).to_string();
    Ok(Features {
        sha256: hex::encode(Sha256::digest(canonical.as_bytes())),
        canonical,
        values,
    })
}

/// The spellings of NaN and infinity clients send (Python's `json` writes
/// them bare; the API turns bare ones into these strings to name the field).
pub fn is_non_finite_word(s: &str) -> bool {
    matches!(
        s,
        "NaN" | "nan" | "Infinity" | "-Infinity" | "inf" | "-inf" | "+inf" | "+Infinity"
    )
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
