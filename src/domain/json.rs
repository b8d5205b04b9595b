//! Strict JSON, for every body and file line verdict reads: a key given
//! twice in any object is refused, naming where (serde_json keeps the last
//! one silently, so `"mean_radius": -5, "mean_radius": 17.99` would pass
//! while the reverse order is refused), and bare `NaN` / `Infinity` (which
//! Python's `json` writes) become strings so that validation can name the
//! field instead of failing the whole document.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses one JSON value: bare `NaN`, `Infinity` and `-Infinity` (which
/// Python's `json` writes) become strings, so that validation can name the
/// field; a key given twice in any object is refused, naming where.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonRefusal> {
    let e = match strict(bytes) {
        Ok(value) => return Ok(value),
        Err(JsonRefusal::Malformed(e)) => e,
        Err(duplicate) => return Err(duplicate),
    };
    if let Some(quoted) = quote_non_finite(bytes) {
        match strict(&quoted) {
            Ok(value) => return Ok(value),
            Err(JsonRefusal::Malformed(_)) => {}
            Err(duplicate) => return Err(duplicate),
        }
    }
    Err(JsonRefusal::Malformed(e))
}

/// Why [`parse_strict`] refused.
#[derive(Debug)]
pub enum JsonRefusal {
    /// Not JSON (serde_json's message says where).
    Malformed(serde_json::Error),
    /// A key given twice in one object.
    Duplicate(Duplicate),
}

/// A key given twice: where it is (`input.mean_radius`, `items[3].id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The path to the key, dotted, with array indexes.
    pub field: String,
    /// The key itself.
    pub key: String,
}

impl Duplicate {
    /// "the key \"k\" is given more than once in input: give each key once".
    pub fn message(&self) -> String {
        let within = self
            .field
            .strip_suffix(self.key.as_str())
            .map(|p| p.trim_end_matches('.'))
            .filter(|p| !p.is_empty())
            .map(|p| format!(" in {p}"))
            .unwrap_or_default();
        format!(
            "the key {:?} is given more than once{within}: give each key once",
            self.key
        )
    }
}

/// serde_json's own `Value`, except that a repeated key is an error.
fn strict(bytes: &[u8]) -> Result<Value, JsonRefusal> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = ValueSeed(&duplicate)
        .deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(mut path)) => {
            path.reverse();
            Err(JsonRefusal::Duplicate(duplicate_at(&path)))
        }
        (Err(e), None) => Err(JsonRefusal::Malformed(e)),
    }
}

/// A step from an outer JSON value to an inner one.
enum Step {
    Key(String),
    Index(usize),
}

fn duplicate_at(path: &[Step]) -> Duplicate {
    let mut field = String::new();
    for step in path {
        match step {
            Step::Key(k) if field.is_empty() => field.push_str(k),
            Step::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Step::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    let key = match path.last() {
        Some(Step::Key(k)) => k.clone(),
        _ => String::new(),
    };
    Duplicate { field, key }
}

/// Where a repeated key was found: set by the innermost object, and each
/// enclosing array or object adds its step while the error unwinds (so the
/// success path keeps no path at all).
type Found<'a> = &'a RefCell<Option<Vec<Step>>>;

struct ValueSeed<'a>(Found<'a>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn unwinding(&self, step: impl FnOnce() -> Step) {
        if let Some(path) = self.0.borrow_mut().as_mut() {
            path.push(step());
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        loop {
            match seq.next_element_seed(ValueSeed(self.0)) {
                Ok(Some(value)) => values.push(value),
                Ok(None) => return Ok(Value::Array(values)),
                Err(e) => {
                    let i = values.len();
                    self.unwinding(|| Step::Index(i));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                *self.0.borrow_mut() = Some(vec![Step::Key(key)]);
                return Err(de::Error::custom("duplicate key"));
            }
            match map.next_value_seed(ValueSeed(self.0)) {
                Ok(value) => {
                    fields.insert(key, value);
                }
                Err(e) => {
                    self.unwinding(|| Step::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(fields))
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
