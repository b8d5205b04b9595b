//! Reading and parsing request bodies: a size limit that answers 413, JSON
//! errors that say where, and bare NaN / Infinity (which Python's `json`
//! writes) turned into strings so that validation can name the field.

use actix_web::{http::header, web, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use crate::domain::ItemId;
use crate::http::error::AppError;
use crate::scoring::Submission;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, AppError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| AppError::MalformedJson(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses JSON; bare `NaN`, `Infinity` and `-Infinity` become strings.
pub fn parse_json(bytes: &[u8]) -> Result<Value, AppError> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(e) => {
            if let Some(quoted) = quote_non_finite(bytes) {
                if let Ok(value) = serde_json::from_slice(&quoted) {
                    return Ok(value);
                }
            }
            Err(AppError::MalformedJson(e.to_string()))
        }
    }
}

/// Rewrites bare non-finite number words outside strings as JSON strings;
/// `None` when there are none.
fn quote_non_finite(bytes: &[u8]) -> Option<Vec<u8>> {
    const WORDS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
            continue;
        }
        if let Some(word) = WORDS.iter().find(|w| bytes[i..].starts_with(w)) {
            out.push(b'"');
            out.extend_from_slice(word);
            out.push(b'"');
            i += word.len();
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    changed.then_some(out)
}

/// `{"id": …, "input": {…}}` or `{"items": [ … ]}`; returns the items and
/// whether it was a batch.
pub fn submissions(body: Value, max_batch: usize) -> Result<(Vec<Submission>, bool), AppError> {
    let Value::Object(mut fields) = body else {
        return Err(AppError::invalid(
            "wrong_type",
            "",
            "the body must be a JSON object: {\"id\": …, \"input\": {…}} or {\"items\": […]}",
        ));
    };
    if let Some(items) = fields.remove("items") {
        if let Some(other) = fields.keys().next() {
            return Err(AppError::invalid(
                "unknown_field",
                other.clone(),
                format!("unexpected field {other:?} beside \"items\""),
            ));
        }
        let Value::Array(items) = items else {
            return Err(AppError::invalid(
                "wrong_type",
                "items",
                "items must be an array",
            ));
        };
        if items.is_empty() {
            return Err(AppError::invalid("empty_batch", "items", "items is empty"));
        }
        if items.len() > max_batch {
            return Err(AppError::invalid(
                "batch_too_large",
                "items",
                format!(
                    "a batch holds at most {max_batch} items, this one {}",
                    items.len()
                ),
            ));
        }
        let parsed = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| one(item).map_err(|e| e.within(&format!("items[{i}]."))))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((parsed, true));
    }
    Ok((vec![one(Value::Object(fields))?], false))
}

fn one(item: Value) -> Result<Submission, AppError> {
    let Value::Object(mut fields) = item else {
        return Err(AppError::invalid(
            "wrong_type",
            "",
            "an item must be an object with id and input",
        ));
    };
    let id = match fields.remove("id") {
        None => {
            return Err(AppError::invalid(
                "missing_field",
                "id",
                "the item has no id",
            ))
        }
        Some(Value::String(s)) => {
            ItemId::parse(&s).map_err(|e| AppError::invalid("invalid_id", "id", e))?
        }
        Some(_) => return Err(AppError::invalid("wrong_type", "id", "id must be a string")),
    };
    let input = fields
        .remove("input")
        .ok_or_else(|| AppError::invalid("missing_field", "input", "the item has no input"))?;
    if let Some(other) = fields.keys().next() {
        return Err(AppError::invalid(
            "unknown_field",
            other.clone(),
            format!("unexpected field {other:?}"),
        ));
    }
    Ok(Submission { id, input })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_nan_becomes_a_string_but_not_inside_strings() {
        let v = parse_json(br#"{"a": NaN, "b": "NaN x", "c": [-Infinity, Infinity]}"#).unwrap();
        assert_eq!(v["a"], "NaN");
        assert_eq!(v["b"], "NaN x");
        assert_eq!(v["c"][0], "-Infinity");
        assert!(parse_json(b"{\"a\": 1,}").is_err());
        assert!(parse_json(br#"{"a": "\"NaN"}"#).is_ok());
    }

    #[test]
    fn shapes_are_checked() {
        let (items, batch) = submissions(serde_json::json!({"id": "a", "input": {}}), 10).unwrap();
        assert_eq!((items.len(), batch), (1, false));
        let e = submissions(
            serde_json::json!({"items": [{"id": "a", "input": {}}, {"id": 3, "input": {}}]}),
            10,
        )
        .unwrap_err();
        assert!(matches!(e, AppError::InvalidInput { ref field, .. } if field == "items[1].id"));
        let e = submissions(
            serde_json::json!({"items": vec![serde_json::json!({"id": "a", "input": {}}); 3]}),
            2,
        )
        .unwrap_err();
        assert_eq!(e.code(), "batch_too_large");
    }
}
