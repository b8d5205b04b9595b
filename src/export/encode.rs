//! The two export formats. JSONL: one object per line, the input as stored.
//! CSV: a fixed column order, one `input.<name>` column per input field.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Filter, Format, Record};
use crate::domain::{rfc3339, VerdictSource};

/// The columns before the input fields.
const LEADING: [&str; 2] = ["id", "created_at"];
/// The columns after the input fields (then `reviews`, `predictions` when
/// asked for).
const TRAILING: [&str; 15] = [
    "label",
    "source",
    "basis",
    "decided_at",
    "decided_by",
    "human_label",
    "reviewers",
    "review_labels",
    "review_seconds",
    "audit",
    "reason",
    "model_version",
    "model_label",
    "model_confidence",
    "review_count",
];

/// The prefix of input columns in CSV, so an input field never collides
/// with a column of the export's own.
pub const INPUT_PREFIX: &str = "input.";

/// Turns records into bytes of one format.
pub struct Encoder {
    format: Format,
    include_predictions: bool,
    include_reviews: bool,
    /// Input fields in column order (CSV). `None` until known: then the
    /// first row's fields decide.
    columns: Option<Vec<String>>,
    /// The field order of the last input read, and where each column sits
    /// in it: stored inputs share one order, so this is worked out once.
    layout: Vec<String>,
    column_at: Vec<Option<usize>>,
    scratch: String,
}

impl Encoder {
    /// `columns`: the task's input fields in the model's order, if known.
    pub fn new(format: Format, filter: &Filter, columns: Option<Vec<String>>) -> Encoder {
        Encoder {
            format,
            include_predictions: filter.include_predictions,
            include_reviews: filter.include_reviews,
            columns,
            layout: Vec::new(),
            column_at: Vec::new(),
            scratch: String::new(),
        }
    }

    /// The CSV header row (nothing for JSONL).
    pub fn header(&mut self, first: Option<&Record>, out: &mut Vec<u8>) {
        if self.format != Format::Csv {
            return;
        }
        if self.columns.is_none() {
            let fields = first
                .and_then(|r| {
                    serde_json::from_str::<BTreeMap<String, &RawValue>>(&r.head.input).ok()
                })
                .map(|m| m.into_keys().collect())
                .unwrap_or_default();
            self.columns = Some(fields);
        }
        let mut row = CsvRow::new(out);
        for name in LEADING {
            row.field(name);
        }
        for column in self.columns.iter().flatten() {
            row.field(&format!("{INPUT_PREFIX}{column}"));
        }
        for name in TRAILING {
            row.field(name);
        }
        if self.include_reviews {
            row.field("reviews");
        }
        if self.include_predictions {
            row.field("predictions");
        }
        row.end();
    }

    pub fn row(&mut self, record: &Record, out: &mut Vec<u8>) {
        match self.format {
            Format::Jsonl => json_row(record, self, out),
            Format::Csv => self.csv_row(record, out),
        }
    }

    /// The raw JSON text of each column's value in `input`.
    fn cells<'a>(&mut self, input: &'a str) -> Vec<Option<&'a str>> {
        if let Some(values) = same_layout(input, &self.layout) {
            return self
                .column_at
                .iter()
                .map(|at| at.map(|i| values[i]))
                .collect();
        }
        let columns = self.columns.as_deref().unwrap_or_default();
        let Some(fields) = flat_object(input) else {
            // Unusual JSON (escaped names, nesting): the general parser.
            let map: BTreeMap<String, &RawValue> = serde_json::from_str(input).unwrap_or_default();
            return columns
                .iter()
                .map(|c| map.get(c.as_str()).map(|v| v.get()))
                .collect();
        };
        self.layout = fields.iter().map(|(k, _)| k.to_string()).collect();
        self.column_at = columns
            .iter()
            .map(|c| self.layout.iter().position(|k| k == c))
            .collect();
        self.column_at
            .iter()
            .map(|at| at.map(|i| fields[i].1))
            .collect()
    }

    fn csv_row(&mut self, r: &Record, out: &mut Vec<u8>) {
        let h = &r.head;
        let cells = self.cells(&h.input);
        let mut s = std::mem::take(&mut self.scratch);
        let mut row = CsvRow::new(out);
        // Item ids are `[A-Za-z0-9._:-]`: never quoted.
        row.raw(&h.id);
        row.raw(&rfc3339(&h.created_at.0));
        for cell in cells {
            match cell {
                None | Some("null") => row.field(""),
                Some(text) if text.starts_with('"') => {
                    let decoded: String = serde_json::from_str(text).unwrap_or_default();
                    row.field(&decoded)
                }
                // Nested JSON (only from the general parser) may hold commas.
                Some(text) if text.starts_with(['{', '[']) => row.field(text),
                // A JSON number, true or false.
                Some(text) => row.raw(text),
            }
        }
        row.field(&h.label);
        row.field(&h.source);
        row.field(h.basis.as_deref().unwrap_or(""));
        row.raw(&rfc3339(&h.decided_at.0));
        row.field(h.decided_by.as_deref().unwrap_or(""));
        row.field(human_label(r).as_deref().unwrap_or(""));
        s.clear();
        join(&mut s, r.reviews.iter().map(|v| v.reviewer.as_str()));
        row.field(&s);
        s.clear();
        join(&mut s, r.reviews.iter().map(|v| v.label.as_str()));
        row.field(&s);
        s.clear();
        if !r.reviews.is_empty() {
            let _ = write!(s, "{}", review_seconds(r));
        }
        row.field(&s);
        row.field(if h.audit { "true" } else { "false" });
        row.field(h.reason.as_deref().unwrap_or(""));
        row.field(h.model_version.as_deref().unwrap_or(""));
        row.field(h.model_label.as_deref().unwrap_or(""));
        s.clear();
        if let Some(c) = h.model_confidence {
            let _ = write!(s, "{c}");
        }
        row.field(&s);
        s.clear();
        let _ = write!(s, "{}", r.reviews.len());
        row.field(&s);
        if self.include_reviews {
            let json = serde_json::to_string(&reviews_of(r)).expect("plain data");
            row.field(&json);
        }
        if self.include_predictions {
            let json = serde_json::to_string(&predictions_of(r)).expect("plain data");
            row.field(&json);
        }
        row.end();
        self.scratch = s;
    }
}

/// One CSV record (RFC 4180): a field is quoted only when it holds a comma,
/// a quote or a line break; quotes inside are doubled; rows end with `\n`.
struct CsvRow<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> CsvRow<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        CsvRow { out, first: true }
    }

    fn field(&mut self, v: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        if v.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
            self.out.push(b'"');
            for b in v.bytes() {
                if b == b'"' {
                    self.out.push(b'"');
                }
                self.out.push(b);
            }
            self.out.push(b'"');
        } else {
            self.out.extend_from_slice(v.as_bytes());
        }
    }

    /// A field known to need no quoting (numbers, ids, timestamps).
    fn raw(&mut self, v: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(v.as_bytes());
    }

    fn end(self) {
        self.out.push(b'\n');
    }
}

/// The raw values of `s` if it is a flat object with exactly the field
/// names of `layout`, in that order (the common case: the service stores
/// every input of a task the same way), checked without scanning names.
fn same_layout<'a>(s: &'a str, layout: &[String]) -> Option<Vec<&'a str>> {
    if layout.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut values = Vec::with_capacity(layout.len());
    let mut i = 1;
    for (n, name) in layout.iter().enumerate() {
        let end = i + name.len() + 3;
        if b.get(i) != Some(&b'"')
            || b.get(i + 1..end - 2) != Some(name.as_bytes())
            || b.get(end - 2..end) != Some(b"\":".as_slice())
        {
            return None;
        }
        let mut k = end;
        if *b.get(k)? == b'"' {
            return None; // strings: the general path decodes them
        }
        while !matches!(*b.get(k)?, b',' | b'}') {
            if matches!(b[k], b'{' | b'[' | b'"') {
                return None;
            }
            k += 1;
        }
        values.push(&s[end..k]);
        let last = n + 1 == layout.len();
        match (b[k], last) {
            (b',', false) => i = k + 1,
            (b'}', true) if k + 1 == b.len() => {}
            _ => return None,
        }
    }
    Some(values)
}

/// The fields of a flat JSON object as (name, raw value text), in order,
/// for the compact JSON the service stores (no whitespace, names without
/// escapes, scalar values). `None` for anything else.
fn flat_object(s: &str) -> Option<Vec<(&str, &str)>> {
    let b = s.as_bytes();
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return None;
    }
    let mut fields = Vec::with_capacity(32);
    let mut i = 1;
    if b.len() == 2 {
        return Some(fields);
    }
    loop {
        // "name":
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let name_start = i + 1;
        let j = name_start + s[name_start..].find('"')?;
        let name = &s[name_start..j];
        if name.contains('\\') {
            return None;
        }
        if b.get(j + 1) != Some(&b':') {
            return None;
        }
        // value: a string (escapes allowed) or a bare scalar.
        let value_start = j + 2;
        let mut k = value_start;
        if *b.get(k)? == b'"' {
            k += 1;
            loop {
                match *b.get(k)? {
                    b'\\' => k += 2,
                    b'"' => break,
                    _ => k += 1,
                }
            }
            k += 1;
        } else {
            while !matches!(*b.get(k)?, b',' | b'}') {
                if matches!(b[k], b'{' | b'[' | b'"' | b' ') {
                    return None;
                }
                k += 1;
            }
        }
        fields.push((name, &s[value_start..k]));
        match *b.get(k)? {
            b',' => i = k + 1,
            b'}' if k == b.len() - 1 => return Some(fields),
            _ => return None,
        }
    }
}

fn join<'a>(s: &mut String, parts: impl Iterator<Item = &'a str>) {
    for (i, p) in parts.enumerate() {
        if i > 0 {
            s.push(';');
        }
        s.push_str(p);
    }
}

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
struct ReviewOut<'a> {
    reviewer: &'a str,
    label: &'a str,
    comment: Option<&'a str>,
    seconds_spent: f64,
    blind: bool,
    created_at: String,
}

#[derive(Serialize)]
struct PredictionOut<'a> {
    model_version: &'a str,
    label: Option<&'a str>,
    confidence: Option<f64>,
    probabilities: Option<&'a RawValue>,
    error: Option<&'a str>,
    created_at: String,
}

fn reviews_of(r: &Record) -> Vec<ReviewOut<'_>> {
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

fn predictions_of(r: &Record) -> Vec<PredictionOut<'_>> {
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

/// Writes one JSONL row by hand: the stored input goes in as it is (the
/// service wrote it, canonical JSON), without a parse per row.
fn json_row(r: &Record, e: &Encoder, out: &mut Vec<u8>) {
    let h = &r.head;
    let text = |out: &mut Vec<u8>, s: &str| {
        serde_json::to_writer(&mut *out, s).expect("writing to memory cannot fail")
    };
    let opt_text = |out: &mut Vec<u8>, s: Option<&str>| match s {
        Some(s) => text(out, s),
        None => out.extend_from_slice(b"null"),
    };
    let number = |out: &mut Vec<u8>, n: Option<f64>| match n.filter(|n| n.is_finite()) {
        Some(n) => serde_json::to_writer(&mut *out, &n).expect("writing to memory cannot fail"),
        None => out.extend_from_slice(b"null"),
    };
    let list = |out: &mut Vec<u8>, items: &mut dyn Iterator<Item = &str>| {
        out.push(b'[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            text(out, s);
        }
        out.push(b']');
    };
    out.extend_from_slice(b"{\"id\":");
    text(out, &h.id);
    out.extend_from_slice(b",\"created_at\":\"");
    out.extend_from_slice(rfc3339(&h.created_at.0).as_bytes());
    out.extend_from_slice(b"\",\"input\":");
    let input = h.input.trim();
    if input.starts_with('{') && input.ends_with('}') {
        out.extend_from_slice(input.as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"label\":");
    text(out, &h.label);
    out.extend_from_slice(b",\"source\":");
    text(out, &h.source);
    out.extend_from_slice(b",\"basis\":");
    opt_text(out, h.basis.as_deref());
    out.extend_from_slice(b",\"decided_at\":\"");
    out.extend_from_slice(rfc3339(&h.decided_at.0).as_bytes());
    out.extend_from_slice(b"\",\"decided_by\":");
    opt_text(out, h.decided_by.as_deref());
    out.extend_from_slice(b",\"human_label\":");
    opt_text(out, human_label(r).as_deref());
    out.extend_from_slice(b",\"reviewers\":");
    list(out, &mut r.reviews.iter().map(|v| v.reviewer.as_str()));
    out.extend_from_slice(b",\"review_labels\":");
    list(out, &mut r.reviews.iter().map(|v| v.label.as_str()));
    out.extend_from_slice(b",\"review_seconds\":");
    number(out, (!r.reviews.is_empty()).then(|| review_seconds(r)));
    out.extend_from_slice(if h.audit {
        b",\"audit\":true"
    } else {
        b",\"audit\":false"
    });
    out.extend_from_slice(b",\"reason\":");
    opt_text(out, h.reason.as_deref());
    out.extend_from_slice(b",\"model_version\":");
    opt_text(out, h.model_version.as_deref());
    out.extend_from_slice(b",\"model_label\":");
    opt_text(out, h.model_label.as_deref());
    out.extend_from_slice(b",\"model_confidence\":");
    number(out, h.model_confidence);
    out.extend_from_slice(b",\"review_count\":");
    out.extend_from_slice(r.reviews.len().to_string().as_bytes());
    if e.include_reviews {
        out.extend_from_slice(b",\"reviews\":");
        serde_json::to_writer(&mut *out, &reviews_of(r)).expect("plain data");
    }
    if e.include_predictions {
        out.extend_from_slice(b",\"predictions\":");
        serde_json::to_writer(&mut *out, &predictions_of(r)).expect("plain data");
    }
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_objects_split_into_raw_fields_and_odd_json_is_left_to_serde() {
        assert_eq!(
            flat_object(r#"{"a":1.5,"b":"x,\"y\"","c":null,"d":-2e-3}"#),
            Some(vec![
                ("a", "1.5"),
                ("b", r#""x,\"y\"""#),
                ("c", "null"),
                ("d", "-2e-3")
            ])
        );
        assert_eq!(flat_object("{}"), Some(vec![]));
        for odd in [
            r#"{"a":[1,2]}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a\"b":1}"#,
            r#"{ "a": 1 }"#,
            r#"{"a":1"#,
            r#"{"a":1}}"#,
            "[]",
        ] {
            assert_eq!(flat_object(odd), None, "{odd}");
        }
    }

    #[test]
    fn the_layout_shortcut_agrees_with_the_full_scan() {
        let layout: Vec<String> = vec!["a".into(), "bb".into()];
        assert_eq!(
            same_layout(r#"{"a":1,"bb":-2.5e3}"#, &layout),
            Some(vec!["1", "-2.5e3"])
        );
        for other in [
            r#"{"a":1}"#,
            r#"{"a":1,"bb":2,"c":3}"#,
            r#"{"a":1,"bc":2}"#,
            r#"{"a":"x","bb":2}"#,
            r#"{"a":1,"bb":2}}"#,
            r#"{"a":[1],"bb":2}"#,
        ] {
            assert_eq!(same_layout(other, &layout), None, "{other}");
        }
    }

    #[test]
    fn csv_fields_read_back_as_written() {
        let fields = [
            "plain",
            "with,comma",
            "with \"quotes\"",
            "two\nlines",
            "",
            " space ",
        ];
        let mut out = Vec::new();
        let mut row = CsvRow::new(&mut out);
        for f in fields {
            row.field(f);
        }
        row.end();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_slice());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(record.iter().collect::<Vec<_>>(), fields);
    }
}
