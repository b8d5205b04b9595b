//! The first stage of scoring: an input checked against the model's
//! features, in card order, and stored canonically.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{InputProblem, ScoringError};
use crate::ml::card::FeatureSpec;
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
        in_range(spec, value)?;
        values.push(value);
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
    Ok(stored(model, values))
}

/// The features of finite `values` in card order (a file's row, read
/// without a JSON object in between), each checked against the card's
/// valid range as [`featurise`] checks it.
pub fn from_values(model: &LoadedModel, values: Vec<f64>) -> Result<Features, ScoringError> {
    for (spec, &value) in model.card.features.iter().zip(&values) {
        in_range(spec, value)?;
    }
    Ok(stored(model, values))
}

fn in_range(spec: &FeatureSpec, value: f64) -> Result<(), ScoringError> {
    let name = spec.name.as_str();
    if let Some(min) = spec.valid_min.filter(|&min| value < min) {
        return Err(ScoringError::invalid(
            InputProblem::OutOfRange,
            format!("input.{name}"),
            format!("{name} is {value}, below its minimum of {min}"),
        ));
    }
    if let Some(max) = spec.valid_max.filter(|&max| value > max) {
        return Err(ScoringError::invalid(
            InputProblem::OutOfRange,
            format!("input.{name}"),
            format!("{name} is {value}, above its maximum of {max}"),
        ));
    }
    Ok(())
}

/// Checked values as stored: a compact JSON object of the features in the
/// order of their names (a `serde_json::Map`'s order), each number as
/// serde_json writes an `f64`, and its hash. Written directly rather than
/// through a `Map`: the same bytes for a fifth of the time, which batch
/// scoring of files needs.
fn stored(model: &LoadedModel, values: Vec<f64>) -> Features {
    let mut out = Vec::with_capacity(model.canonical_len_hint);
    out.push(b'{');
    for (n, (&i, key)) in model
        .canonical_order
        .iter()
        .zip(&model.canonical_keys)
        .enumerate()
    {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        serde_json::to_writer(&mut out, &values[i]).expect("a finite number");
    }
    out.push(b'}');
    let canonical = String::from_utf8(out).expect("JSON is UTF-8");
    Features {
        sha256: hex::encode(Sha256::digest(canonical.as_bytes())),
        canonical,
        values,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form written directly is the bytes a `serde_json::Map`
    /// of the same features gives (what the API stored before), so an
    /// item's input hash does not depend on how it arrived.
    #[test]
    fn the_stored_form_is_a_json_map_of_the_features() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tumor-triage/v1");
        let model = LoadedModel::load(&dir).expect("the demo model");
        let values: Vec<f64> = (0..model.card.features.len())
            .map(|i| match i % 4 {
                0 => i as f64,
                1 => 0.1 + i as f64 / 7.0,
                2 => 1e-7 * i as f64,
                _ => 12345.678e3,
            })
            .collect();
        let features = from_values(&model, values.clone()).expect("in range");
        let map: serde_json::Map<String, Value> = model
            .card
            .features
            .iter()
            .zip(&values)
            .map(|(f, &v)| (f.name.clone(), Value::from(v)))
            .collect();
        assert_eq!(features.canonical, Value::Object(map.clone()).to_string());
        let through_api = featurise(Some(&model), &Value::Object(map)).expect("valid");
        assert_eq!(through_api, features);
    }
}
