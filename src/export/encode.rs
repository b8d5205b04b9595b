//! The two export formats, both walking [`COLUMNS`]. JSONL: one object per
//! line, the input as stored. CSV: the same columns in the same order, the
//! input as one `input.<name>` column per input field.

use std::fmt::Write as _;
use std::io::Write as _;

use super::columns::{predictions_of, reviews_of, Column, Read, Value, COLUMNS};
use super::input::InputColumns;
use super::{Filter, Format, Record};
use crate::domain::rfc3339;

/// The prefix of input columns in CSV, so an input field never collides
/// with a column of the export's own.
pub const INPUT_PREFIX: &str = "input.";

/// Turns records into bytes of one format.
pub struct Encoder {
    format: Format,
    /// The columns of this export (details only when asked for), each with
    /// its JSON key as written (`{"id":`, `,"label":`), worked out once.
    plan: Vec<(&'static Column, Box<[u8]>)>,
    input: InputColumns,
    scratch: String,
}

impl Encoder {
    /// `columns`: the task's input fields in the model's order, if known.
    pub fn new(format: Format, filter: &Filter, columns: Option<Vec<String>>) -> Encoder {
        let plan = COLUMNS
            .iter()
            .filter(|c| match c.read {
                Read::Reviews => filter.include_reviews,
                Read::Predictions => filter.include_predictions,
                Read::Value(_) | Read::Input => true,
            })
            .enumerate()
            .map(|(i, c)| {
                // Column names are plain identifiers: nothing to escape.
                let key = format!("{}\"{}\":", if i == 0 { '{' } else { ',' }, c.name);
                (c, key.into_bytes().into_boxed_slice())
            })
            .collect();
        Encoder {
            format,
            plan,
            input: InputColumns::new(columns),
            scratch: String::new(),
        }
    }

    /// The CSV header row (nothing for JSONL). The first row names the
    /// input columns when no model does.
    pub fn header(&mut self, first: Option<&Record>, out: &mut Vec<u8>) {
        if self.format != Format::Csv {
            return;
        }
        let mut row = CsvRow::new(out);
        for (column, _) in &self.plan {
            if let Read::Input = column.read {
                let first_input = first.map(|r| r.head.input.as_str());
                for name in self.input.names_or_from(first_input) {
                    row.field(&format!("{INPUT_PREFIX}{name}"));
                }
            } else {
                row.field(column.name);
            }
        }
        row.end();
    }

    pub fn row(&mut self, record: &Record, out: &mut Vec<u8>) {
        match self.format {
            Format::Jsonl => self.json_row(record, out),
            Format::Csv => self.csv_row(record, out),
        }
    }

    fn csv_row(&mut self, r: &Record, out: &mut Vec<u8>) {
        let mut s = std::mem::take(&mut self.scratch);
        let mut row = CsvRow::new(out);
        for (column, _) in &self.plan {
            match &column.read {
                Read::Value(read) => csv_value(&mut row, &mut s, read(r)),
                Read::Input => {
                    for cell in self.input.cells(&r.head.input) {
                        csv_input_cell(&mut row, cell);
                    }
                }
                Read::Reviews => {
                    let json = serde_json::to_string(&reviews_of(r)).expect("plain data");
                    row.field(&json);
                }
                Read::Predictions => {
                    let json = serde_json::to_string(&predictions_of(r)).expect("plain data");
                    row.field(&json);
                }
            }
        }
        row.end();
        self.scratch = s;
    }

    /// Writes one JSONL row by hand: the stored input goes in as it is (the
    /// service wrote it, canonical JSON), without a parse per row.
    fn json_row(&self, r: &Record, out: &mut Vec<u8>) {
        for (column, key) in &self.plan {
            out.extend_from_slice(key);
            match &column.read {
                Read::Value(read) => json_value(out, read(r)),
                Read::Input => {
                    let input = r.head.input.trim();
                    if input.starts_with('{') && input.ends_with('}') {
                        out.extend_from_slice(input.as_bytes());
                    } else {
                        out.extend_from_slice(b"null");
                    }
                }
                Read::Reviews => {
                    serde_json::to_writer(&mut *out, &reviews_of(r)).expect("plain data")
                }
                Read::Predictions => {
                    serde_json::to_writer(&mut *out, &predictions_of(r)).expect("plain data")
                }
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

fn csv_value(row: &mut CsvRow<'_>, s: &mut String, value: Value<'_>) {
    match value {
        Value::Id(id) => row.raw(id),
        Value::Time(t) => row.raw(&rfc3339(t)),
        Value::Text(text) => row.field(text.unwrap_or("")),
        Value::Owned(text) => row.field(text.as_deref().unwrap_or("")),
        Value::List(reviews, part) => {
            s.clear();
            for (i, review) in reviews.iter().enumerate() {
                if i > 0 {
                    s.push(';');
                }
                s.push_str(part(review));
            }
            row.field(s);
        }
        Value::Number(n) => {
            s.clear();
            if let Some(n) = n {
                let _ = write!(s, "{n}");
            }
            row.field(s);
        }
        Value::Bool(b) => row.field(if b { "true" } else { "false" }),
        Value::Count(n) => {
            s.clear();
            let _ = write!(s, "{n}");
            row.field(s);
        }
    }
}

/// An input field's raw JSON text as a CSV cell.
fn csv_input_cell(row: &mut CsvRow<'_>, cell: Option<&str>) {
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

fn json_value(out: &mut Vec<u8>, value: Value<'_>) {
    let text = |out: &mut Vec<u8>, s: &str| {
        serde_json::to_writer(&mut *out, s).expect("writing to memory cannot fail")
    };
    match value {
        Value::Id(s) | Value::Text(Some(s)) => text(out, s),
        Value::Owned(Some(s)) => text(out, &s),
        Value::Text(None) | Value::Owned(None) => out.extend_from_slice(b"null"),
        // RFC 3339 times hold nothing to escape.
        Value::Time(t) => {
            out.push(b'"');
            out.extend_from_slice(rfc3339(t).as_bytes());
            out.push(b'"');
        }
        Value::List(reviews, part) => {
            out.push(b'[');
            for (i, review) in reviews.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                text(out, part(review));
            }
            out.push(b']');
        }
        Value::Number(n) => match n.filter(|n| n.is_finite()) {
            Some(n) => serde_json::to_writer(&mut *out, &n).expect("writing to memory cannot fail"),
            None => out.extend_from_slice(b"null"),
        },
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Count(n) => write!(out, "{n}").expect("writing to memory cannot fail"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::fast_time::FastTimestamp;
    use crate::export::Head;

    fn record() -> Record {
        let t = FastTimestamp(chrono::NaiveDateTime::default());
        Record {
            head: Head {
                id: "case-1".into(),
                input: r#"{"a":1,"b":2}"#.into(),
                created_at: t,
                audit: false,
                reason: None,
                model_version: Some("v1".into()),
                label: "yes".into(),
                source: "human".into(),
                basis: None,
                decided_at: t,
                decided_by: Some("ana".into()),
                model_label: Some("no".into()),
                model_confidence: Some(0.5),
            },
            reviews: Vec::new(),
            predictions: Vec::new(),
        }
    }

    #[test]
    fn every_column_of_the_table_is_in_both_formats_in_the_same_order() {
        let filter = Filter {
            include_reviews: true,
            include_predictions: true,
            ..Filter::default()
        };
        let (mut csv, mut jsonl) = (Vec::new(), Vec::new());
        let mut encoder = Encoder::new(Format::Csv, &filter, None);
        encoder.header(Some(&record()), &mut csv);
        Encoder::new(Format::Jsonl, &filter, None).row(&record(), &mut jsonl);
        let header = String::from_utf8(csv).unwrap();
        let line = String::from_utf8(jsonl).unwrap();
        let mut csv_at = 0;
        let mut json_at = 0;
        for column in COLUMNS {
            let names = match column.read {
                Read::Input => vec!["input.a", "input.b"],
                _ => vec![column.name],
            };
            for name in names {
                csv_at += header[csv_at..].find(name).expect(name);
            }
            json_at += line[json_at..]
                .find(&format!("\"{}\":", column.name))
                .expect(column.name);
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
