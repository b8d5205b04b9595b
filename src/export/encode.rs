//! The two export formats. JSONL: one object per line, the input as stored.
//! CSV: a fixed column order, one `input.<name>` column per input field.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;

use super::{Filter, Format, Record};
use crate::domain::rfc3339;

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
    csv: csv::Writer<Shared>,
    /// Where `csv` writes: drained into the caller's buffer after each row.
    written: Shared,
    scratch: String,
}

/// A buffer the CSV writer and the encoder both hold.
#[derive(Clone, Default)]
struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Encoder {
    /// `columns`: the task's input fields in the model's order, if known.
    pub fn new(format: Format, filter: &Filter, columns: Option<Vec<String>>) -> Encoder {
        let written = Shared::default();
        Encoder {
            format,
            include_predictions: filter.include_predictions,
            include_reviews: filter.include_reviews,
            columns,
            csv: csv::WriterBuilder::new()
                .buffer_capacity(64 * 1024)
                .from_writer(written.clone()),
            written,
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
        let mut header: Vec<String> = LEADING.iter().map(|s| s.to_string()).collect();
        header.extend(
            self.columns
                .iter()
                .flatten()
                .map(|c| format!("{INPUT_PREFIX}{c}")),
        );
        header.extend(TRAILING.iter().map(|s| s.to_string()));
        if self.include_reviews {
            header.push("reviews".into());
        }
        if self.include_predictions {
            header.push("predictions".into());
        }
        self.csv
            .write_record(&header)
            .expect("writing to memory cannot fail");
        self.drain(out);
    }

    pub fn row(&mut self, record: &Record, out: &mut Vec<u8>) {
        match self.format {
            Format::Jsonl => json_row(record, self, out),
            Format::Csv => {
                self.csv_row(record);
                self.drain(out);
            }
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        self.csv.flush().expect("writing to memory cannot fail");
        out.append(&mut self.written.0.borrow_mut());
    }

    fn csv_row(&mut self, r: &Record) {
        let h = &r.head;
        let w = &mut self.csv;
        let s = &mut self.scratch;
        let field = |w: &mut csv::Writer<Shared>, v: &str| {
            w.write_field(v).expect("writing to memory cannot fail")
        };
        field(w, &h.id);
        field(w, &rfc3339(&h.created_at.0));
        // Keys borrowed from the row when they hold no escapes (feature names
        // never do); decoded otherwise.
        let borrowed: Option<BTreeMap<&str, &RawValue>> = serde_json::from_str(&h.input).ok();
        let owned: BTreeMap<String, &RawValue> = match borrowed {
            Some(_) => BTreeMap::new(),
            None => serde_json::from_str(&h.input).unwrap_or_default(),
        };
        let lookup = |name: &str| match &borrowed {
            Some(map) => map.get(name).copied(),
            None => owned.get(name).copied(),
        };
        for column in self.columns.iter().flatten() {
            match lookup(column.as_str()).map(|v| v.get()) {
                None | Some("null") => field(w, ""),
                Some(text) if text.starts_with('"') => {
                    let decoded: String = serde_json::from_str(text).unwrap_or_default();
                    field(w, &decoded)
                }
                Some(text) => field(w, text),
            }
        }
        field(w, &h.label);
        field(w, &h.source);
        field(w, h.basis.as_deref().unwrap_or(""));
        field(w, &rfc3339(&h.decided_at.0));
        field(w, h.decided_by.as_deref().unwrap_or(""));
        field(w, human_label(r).as_deref().unwrap_or(""));
        s.clear();
        join(s, r.reviews.iter().map(|v| v.reviewer.as_str()));
        field(w, s);
        s.clear();
        join(s, r.reviews.iter().map(|v| v.label.as_str()));
        field(w, s);
        s.clear();
        if !r.reviews.is_empty() {
            let _ = write!(s, "{}", review_seconds(r));
        }
        field(w, s);
        field(w, if h.audit { "true" } else { "false" });
        field(w, h.reason.as_deref().unwrap_or(""));
        field(w, h.model_version.as_deref().unwrap_or(""));
        field(w, h.model_label.as_deref().unwrap_or(""));
        s.clear();
        if let Some(c) = h.model_confidence {
            let _ = write!(s, "{c}");
        }
        field(w, s);
        s.clear();
        let _ = write!(s, "{}", r.reviews.len());
        field(w, s);
        if self.include_reviews {
            let json = serde_json::to_string(&reviews_of(r)).expect("plain data");
            field(w, &json);
        }
        if self.include_predictions {
            let json = serde_json::to_string(&predictions_of(r)).expect("plain data");
            field(w, &json);
        }
        w.write_record(None::<&[u8]>)
            .expect("writing to memory cannot fail");
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
    if r.head.source == crate::queue::SOURCE_HUMAN {
        return Some(r.head.label.clone());
    }
    let votes: Vec<String> = r.reviews.iter().map(|v| v.label.clone()).collect();
    crate::queue::majority(&votes)
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
