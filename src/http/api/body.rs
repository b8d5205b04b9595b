//! Reading and parsing request bodies: `Content-Type: application/json` or
//! 415, a size limit that answers 413, JSON errors that say where, a key
//! given twice in any object refused (`duplicate_field`, naming where)
//! rather than the last one winning, and bare NaN / Infinity (which
//! Python's `json` writes) turned into strings so that validation can name
//! the field.

use actix_web::{http::header, web, HttpRequest};
use futures_util::StreamExt;
use serde_json::Value;

use crate::domain::json::{self, JsonRefusal};
use crate::domain::ItemId;
use crate::http::error::AppError;
use crate::scoring::Submission;

/// A JSON request's body: its type checked, read within `limit` bytes and
/// parsed with [`parse_json`].
pub async fn read_json(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Value, AppError> {
    require_json(req)?;
    let bytes = read(req, payload, limit).await?;
    parse_json(&bytes)
}

/// `Content-Type: application/json` (any parameters, or a `+json` type);
/// anything else, or none, is a 415. `curl -d` sends form encoding unless
/// told otherwise, and a body read as JSON whatever it says it is hides
/// that mistake, so the answer names the type to send.
pub fn require_json(req: &HttpRequest) -> Result<(), AppError> {
    let got = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = got
        .as_deref()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(t) if t.starts_with("application/") && t.ends_with("+json") => Ok(()),
        _ => Err(AppError::UnsupportedMediaType {
            got: got.map(|t| t.chars().take(100).collect()),
            accepted: AppError::JSON_BODY,
        }),
    }
}

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
        return Err(refuse_too_large(&mut payload, 0, declared, limit).await);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| AppError::MalformedJson(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            let read = body.len() + chunk.len();
            return Err(refuse_too_large(&mut payload, read, declared, limit).await);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// How much more than the limit of a refused body is still read (and
/// dropped), and for how long: a client still sending when the 413 comes
/// would otherwise meet a closed connection (a broken pipe) instead of the
/// answer — nginx's "lingering close". Bodies beyond it are cut off.
const DRAIN_BYTES: usize = 16 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops the rest of a body over `limit` (within [`DRAIN_BYTES`]
/// and [`DRAIN_TIME`]), then gives the 413.
async fn refuse_too_large(
    payload: &mut web::Payload,
    mut read: usize,
    declared: Option<usize>,
    limit: usize,
) -> AppError {
    if declared.is_none_or(|len| len <= limit + DRAIN_BYTES) {
        let drain = async {
            while let Some(Ok(chunk)) = payload.next().await {
                read += chunk.len();
                if read > limit + DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = actix_web::rt::time::timeout(DRAIN_TIME, drain).await;
    }
    AppError::PayloadTooLarge { limit }
}

/// Parses JSON ([`json::parse_strict`]): bare `NaN`, `Infinity` and
/// `-Infinity` become strings; a key twice in one object is a
/// `duplicate_field` naming where it is.
pub fn parse_json(bytes: &[u8]) -> Result<Value, AppError> {
    json::parse_strict(bytes).map_err(|refusal| match refusal {
        JsonRefusal::Malformed(e) => AppError::MalformedJson(e.to_string()),
        JsonRefusal::Duplicate(d) => {
            AppError::invalid("duplicate_field", d.field.clone(), d.message())
        }
    })
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
    fn only_json_content_types_are_read() {
        use actix_web::test::TestRequest;
        for (t, ok) in [
            (Some("application/json"), true),
            (Some("Application/JSON; charset=utf-8"), true),
            (Some("application/merge-patch+json"), true),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("application/jsonx"), false),
            (None, false),
        ] {
            let mut req = TestRequest::default();
            if let Some(t) = t {
                req = req.insert_header(("content-type", t));
            }
            let got = require_json(&req.to_http_request());
            assert_eq!(got.is_ok(), ok, "{t:?}");
            if let Err(e) = got {
                assert_eq!(e.code(), "unsupported_media_type");
                assert!(e.to_string().contains("application/json"), "{e}");
            }
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth_naming_where() {
        for (body, field) in [
            (r#"{"a": 1, "a": 2}"#, "a"),
            (
                r#"{"id": "x", "input": {"mean_radius": -5, "mean_radius": 17.99}}"#,
                "input.mean_radius",
            ),
            (
                r#"{"items": [{"id": "a", "input": {}}, {"id": "b", "input": {"z": 1, "y": [{"q": 1, "q": 1}]}}]}"#,
                "items[1].input.y[0].q",
            ),
            (r#"{"x": NaN, "input": {"k": NaN, "k": 1}}"#, "input.k"),
        ] {
            let e = parse_json(body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), "duplicate_field", "{body}");
            assert!(
                matches!(&e, AppError::InvalidInput { field: f, .. } if f == field),
                "{body}: {e:?}"
            );
        }
        // The same key in two different objects is fine, and values are
        // what serde_json's own parser makes of them.
        let body =
            br#"{"a": {"k": 1}, "b": {"k": [1.5, -2, 18446744073709551615, "s", null, true]}}"#;
        assert_eq!(
            parse_json(body).unwrap(),
            serde_json::from_slice::<Value>(body).unwrap()
        );
        assert_eq!(
            parse_json(b"{\"a\": 1} x").unwrap_err().code(),
            "malformed_json"
        );
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
