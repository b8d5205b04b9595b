//! Reading a file of items a chunk at a time: CSV (a header row of the
//! id column and the model's feature names) or JSONL (one API item body,
//! `{"id": …, "input": {…}}`, per line). Every row is checked as the API
//! checks an item; the first bad one stops the read, named by its line.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::domain::json::{self, JsonRefusal};
use crate::domain::ItemId;
use crate::ml::LoadedModel;
use crate::scoring::{self, Features, ScoringError};

/// The kind of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }

    /// The format a file name's extension says.
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        Format::parse(&path.extension()?.to_str()?.to_ascii_lowercase())
    }
}

/// A row refused, with where it is: 1-based line of the file, and the
/// field as the API would name it (`id`, `input.mean_radius`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: u64,
    /// A stable code: the API's (`missing_field`, `wrong_type`,
    /// `not_finite`, `out_of_range`, `unknown_field`, `invalid_id`,
    /// `idempotency_conflict`), or `duplicate_field`, `malformed_json`,
    /// `malformed_csv`.
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl RowError {
    fn new(
        line: u64,
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RowError {
            line,
            code,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A scoring error (an input's field) at `line`.
    pub fn scoring(line: u64, e: ScoringError) -> Self {
        let code = e.code();
        match e.unprefixed() {
            ScoringError::Invalid { field, message, .. }
            | ScoringError::Conflict { field, message } => {
                RowError::new(line, code, field, message)
            }
            ScoringError::Database(e) => RowError::new(line, code, "", e.to_string()),
        }
    }
}

/// The rows of one chunk, checked and featurised.
pub struct Chunk {
    /// The line each item starts on.
    pub lines: Vec<u64>,
    pub ids: Vec<ItemId>,
    pub features: Vec<Features>,
    /// How long parsing and featurising took.
    pub featurise: Duration,
}

impl Chunk {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Where a CSV header's columns go, for one model version.
struct Columns {
    version: Option<String>,
    id: usize,
    /// Column → the feature's index in the card (or, without a model, its
    /// name), `None` for the id column.
    features: Vec<Option<usize>>,
    names: Vec<String>,
}

enum Inner<R: Read> {
    Csv {
        reader: csv::Reader<R>,
        header: Vec<String>,
        id_column: String,
        columns: Option<Columns>,
        record: csv::ByteRecord,
    },
    Jsonl {
        reader: BufReader<R>,
        line: u64,
        buf: Vec<u8>,
    },
}

/// A file being read, chunk by chunk.
pub struct FileReader<R: Read> {
    inner: Inner<R>,
    rows_read: u64,
    done: bool,
}

impl<R: Read> FileReader<R> {
    /// A CSV file whose item ids are in `id_column`; its header is read
    /// at once (an unreadable header is line 1's error).
    pub fn csv(input: R, id_column: &str) -> Result<Self, RowError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .buffer_capacity(1 << 20)
            .from_reader(input);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| RowError::new(1, "malformed_csv", "", format!("the header row: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        Ok(FileReader {
            inner: Inner::Csv {
                reader,
                header,
                id_column: id_column.to_string(),
                columns: None,
                record: csv::ByteRecord::new(),
            },
            rows_read: 0,
            done: false,
        })
    }

    /// A JSONL file: one item body per line; blank lines are skipped.
    pub fn jsonl(input: R) -> Self {
        FileReader {
            inner: Inner::Jsonl {
                reader: BufReader::with_capacity(1 << 20, input),
                line: 0,
                buf: Vec::with_capacity(4096),
            },
            rows_read: 0,
            done: false,
        }
    }

    pub fn open(input: R, format: Format, id_column: &str) -> Result<Self, RowError> {
        match format {
            Format::Csv => FileReader::csv(input, id_column),
            Format::Jsonl => Ok(FileReader::jsonl(input)),
        }
    }

    /// Rows read so far, the refused one included.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Passes over `rows` rows without checking them (a resumed job's
    /// rows already scored); returns how many there were.
    pub fn skip(&mut self, rows: u64) -> Result<u64, RowError> {
        let mut skipped = 0;
        while skipped < rows {
            let more = match &mut self.inner {
                Inner::Csv { reader, record, .. } => reader
                    .read_byte_record(record)
                    .map_err(|e| csv_error(&e, self.rows_read + 2))?,
                Inner::Jsonl { reader, line, buf } => next_line(reader, line, buf)?,
            };
            if !more {
                self.done = true;
                break;
            }
            skipped += 1;
            self.rows_read += 1;
        }
        Ok(skipped)
    }

    /// Reads up to `max` rows, each checked against `model` (the live
    /// version they will be scored with); `None` at the end of the file.
    pub fn next_chunk(
        &mut self,
        model: Option<&LoadedModel>,
        max: usize,
    ) -> Result<Option<Chunk>, RowError> {
        if self.done {
            return Ok(None);
        }
        let started = Instant::now();
        let mut chunk = Chunk {
            lines: Vec::with_capacity(max),
            ids: Vec::with_capacity(max),
            features: Vec::with_capacity(max),
            featurise: Duration::ZERO,
        };
        while chunk.len() < max {
            let row = match &mut self.inner {
                Inner::Csv {
                    reader,
                    header,
                    id_column,
                    columns,
                    record,
                } => {
                    // The header first, for the version that scores now.
                    let stale = columns
                        .as_ref()
                        .is_none_or(|c| c.version.as_deref() != model.map(|m| m.version()));
                    if stale {
                        *columns = Some(map_header(header, id_column, model)?);
                    }
                    let columns = columns.as_ref().expect("mapped");
                    let more = reader
                        .read_byte_record(record)
                        .map_err(|e| csv_error(&e, self.rows_read + 2))?;
                    if !more {
                        None
                    } else {
                        self.rows_read += 1;
                        let line = record.position().map_or(self.rows_read + 1, |p| p.line());
                        Some((line, csv_row(record, columns, model, line)?))
                    }
                }
                Inner::Jsonl { reader, line, buf } => {
                    if next_line(reader, line, buf)? {
                        self.rows_read += 1;
                        Some((*line, json_row(buf, model, *line)?))
                    } else {
                        None
                    }
                }
            };
            let Some((line, (id, features))) = row else {
                self.done = true;
                break;
            };
            chunk.lines.push(line);
            chunk.ids.push(id);
            chunk.features.push(features);
        }
        chunk.featurise = started.elapsed();
        Ok((!chunk.is_empty()).then_some(chunk))
    }
}

/// Reads the next non-blank JSONL line into `buf`, counting lines in
/// `line`; false at the end of the file.
fn next_line<R: Read>(
    reader: &mut BufReader<R>,
    line: &mut u64,
    buf: &mut Vec<u8>,
) -> Result<bool, RowError> {
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', buf)
            .map_err(|e| RowError::new(*line + 1, "unreadable", "", e.to_string()))?;
        if n == 0 {
            return Ok(false);
        }
        *line += 1;
        if !buf.trim_ascii().is_empty() {
            return Ok(true);
        }
    }
}

fn csv_error(e: &csv::Error, fallback_line: u64) -> RowError {
    let line = e.position().map_or(fallback_line, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the row has {len} fields, the header {expected_len}"),
        _ => e.to_string(),
    };
    RowError::new(line, "malformed_csv", "", message)
}

/// Maps the header's columns to the model's features: the id column and
/// every feature once, nothing else.
fn map_header(
    header: &[String],
    id_column: &str,
    model: Option<&LoadedModel>,
) -> Result<Columns, RowError> {
    let mut id = None;
    let mut features = Vec::with_capacity(header.len());
    let mut seen = std::collections::HashSet::new();
    for (i, name) in header.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            let field = if name == id_column {
                "id".to_string()
            } else {
                format!("input.{name}")
            };
            return Err(RowError::new(
                1,
                "duplicate_field",
                field,
                format!("the header names column {name:?} twice"),
            ));
        }
        if name == id_column {
            id = Some(i);
            features.push(None);
            continue;
        }
        match model {
            Some(m) => match m.feature_index.get(name) {
                Some(&f) => features.push(Some(f)),
                None => {
                    return Err(RowError::new(
                        1,
                        "unknown_field",
                        format!("input.{name}"),
                        format!("the model has no feature {name:?} (column {})", i + 1),
                    ))
                }
            },
            None => features.push(Some(i)),
        }
    }
    let Some(id) = id else {
        return Err(RowError::new(
            1,
            "missing_field",
            "id",
            format!("the header has no id column {id_column:?}"),
        ));
    };
    if let Some(m) = model {
        if let Some(missing) = m.card.features.iter().find(|f| !header.contains(&f.name)) {
            let name = &missing.name;
            return Err(RowError::new(
                1,
                "missing_field",
                format!("input.{name}"),
                format!(
                    "the header has no column {name:?}; every feature of the model is required"
                ),
            ));
        }
    }
    Ok(Columns {
        version: model.map(|m| m.version().to_string()),
        id,
        features,
        names: header.to_vec(),
    })
}

fn csv_row(
    record: &csv::ByteRecord,
    columns: &Columns,
    model: Option<&LoadedModel>,
    line: u64,
) -> Result<(ItemId, Features), RowError> {
    let text = |i: usize| {
        std::str::from_utf8(&record[i]).map_err(|_| {
            RowError::new(
                line,
                "malformed_csv",
                "",
                format!("column {} is not UTF-8", i + 1),
            )
        })
    };
    let id =
        ItemId::parse(text(columns.id)?).map_err(|e| RowError::new(line, "invalid_id", "id", e))?;
    let number = |i: usize| -> Result<f64, RowError> {
        let name = &columns.names[i];
        let cell = text(i)?;
        if cell.is_empty() {
            return Err(RowError::new(
                line,
                "missing_field",
                format!("input.{name}"),
                format!("{name} is empty; every feature of the model is required"),
            ));
        }
        let value: f64 = cell.parse().map_err(|_| {
            RowError::new(
                line,
                "wrong_type",
                format!("input.{name}"),
                format!("{name} must be a number, not {cell:?}"),
            )
        })?;
        if !value.is_finite() {
            return Err(RowError::new(
                line,
                "not_finite",
                format!("input.{name}"),
                format!("{name} is {cell}; it must be a finite number"),
            ));
        }
        Ok(value)
    };
    let features = match model {
        Some(model) => {
            let mut values = vec![0.0; model.card.features.len()];
            for (i, feature) in columns.features.iter().enumerate() {
                if let Some(f) = feature {
                    values[*f] = number(i)?;
                }
            }
            scoring::from_values(model, values)
        }
        None => {
            // No model to check against: the columns as numbers, as sent.
            let mut input = Map::new();
            for (i, feature) in columns.features.iter().enumerate() {
                if feature.is_some() {
                    input.insert(columns.names[i].clone(), Value::from(number(i)?));
                }
            }
            scoring::featurise(None, &Value::Object(input))
        }
    };
    Ok((id, features.map_err(|e| RowError::scoring(line, e))?))
}

/// One JSONL line: `{"id": "…", "input": {…}}`, read with the API's
/// strict parser (a key twice refused, bare NaN named by featurise).
fn json_row(
    bytes: &[u8],
    model: Option<&LoadedModel>,
    line: u64,
) -> Result<(ItemId, Features), RowError> {
    let value = json::parse_strict(bytes).map_err(|refusal| match refusal {
        JsonRefusal::Malformed(e) => {
            RowError::new(line, "malformed_json", "", format!("not an item body: {e}"))
        }
        JsonRefusal::Duplicate(d) => {
            RowError::new(line, "duplicate_field", d.field.clone(), d.message())
        }
    })?;
    let Value::Object(mut fields) = value else {
        return Err(RowError::new(
            line,
            "wrong_type",
            "",
            "not an item body: expected an object with id and input",
        ));
    };
    let (id, input) = (fields.remove("id"), fields.remove("input"));
    if let Some(other) = fields.keys().next() {
        return Err(RowError::new(
            line,
            "unknown_field",
            other.clone(),
            format!("unexpected field {other:?}"),
        ));
    }
    let id = match id {
        None => {
            return Err(RowError::new(
                line,
                "missing_field",
                "id",
                "the item has no id",
            ))
        }
        Some(Value::String(s)) => {
            ItemId::parse(&s).map_err(|e| RowError::new(line, "invalid_id", "id", e))?
        }
        Some(_) => {
            return Err(RowError::new(
                line,
                "wrong_type",
                "id",
                "id must be a string",
            ))
        }
    };
    let input = match input {
        None => {
            return Err(RowError::new(
                line,
                "missing_field",
                "input",
                "the item has no input",
            ))
        }
        Some(input @ Value::Object(_)) => input,
        Some(_) => {
            return Err(RowError::new(
                line,
                "wrong_type",
                "input",
                "input must be an object of feature values",
            ))
        }
    };
    let features = scoring::featurise(model, &input).map_err(|e| RowError::scoring(line, e))?;
    Ok((id, features))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> LoadedModel {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tumor-triage/v1");
        LoadedModel::load(&dir).expect("the demo model")
    }

    fn csv_text(model: &LoadedModel, rows: &[(&str, Option<(usize, &str)>)]) -> String {
        let names: Vec<&str> = model
            .card
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        let mut out = format!("id,{}\n", names.join(","));
        for (id, change) in rows {
            let mut cells: Vec<String> = (0..names.len()).map(|i| format!("{}", 1 + i)).collect();
            if let Some((i, v)) = change {
                cells[*i] = v.to_string();
            }
            out.push_str(&format!("{id},{}\n", cells.join(",")));
        }
        out
    }

    #[test]
    fn csv_rows_are_featurised_as_the_api_featurises_them() {
        let model = model();
        let text = csv_text(&model, &[("a", None), ("b", None), ("c", None)]);
        let mut reader = FileReader::csv(text.as_bytes(), "id").unwrap();
        let chunk = reader.next_chunk(Some(&model), 2).unwrap().unwrap();
        assert_eq!(chunk.lines, [2, 3]);
        let input: Map<String, Value> = model
            .card
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), Value::from(1 + i)))
            .collect();
        let api = scoring::featurise(Some(&model), &Value::Object(input)).unwrap();
        assert_eq!(chunk.features[0], api);
        let rest = reader.next_chunk(Some(&model), 2).unwrap().unwrap();
        assert_eq!((rest.ids[0].as_str(), rest.lines[0]), ("c", 4));
        assert!(reader.next_chunk(Some(&model), 2).unwrap().is_none());
        assert_eq!(reader.rows_read(), 3);
    }

    #[test]
    fn a_bad_csv_cell_is_refused_with_its_line() {
        let model = model();
        let name = model.card.features[3].name.clone();
        for (cell, code) in [
            ("abc", "wrong_type"),
            ("NaN", "not_finite"),
            ("inf", "not_finite"),
            ("", "missing_field"),
        ] {
            let text = csv_text(&model, &[("a", None), ("b", Some((3, cell)))]);
            let mut reader = FileReader::csv(text.as_bytes(), "id").unwrap();
            let e = reader.next_chunk(Some(&model), 10).err().unwrap();
            assert_eq!((e.line, e.code), (3, code), "{cell:?}: {e}");
            assert_eq!(e.field, format!("input.{name}"));
        }
        let text = csv_text(&model, &[("a", None)]).replace("\na,", "\na,1,");
        let e = FileReader::csv(text.as_bytes(), "id")
            .unwrap()
            .next_chunk(Some(&model), 10)
            .err()
            .unwrap();
        assert_eq!((e.line, e.code), (2, "malformed_csv"), "{e}");
        let dup = csv_text(&model, &[("a", None)]).replacen("id,", "id,id,", 1);
        let e = FileReader::csv(dup.as_bytes(), "id")
            .unwrap()
            .next_chunk(Some(&model), 10)
            .err()
            .unwrap();
        assert_eq!((e.line, e.code), (1, "duplicate_field"), "{e}");
    }

    #[test]
    fn jsonl_lines_refuse_duplicate_keys_and_name_their_line() {
        let model = model();
        let input: Map<String, Value> = model
            .card
            .features
            .iter()
            .map(|f| (f.name.clone(), Value::from(2.5)))
            .collect();
        let good = serde_json::json!({"id": "a", "input": input}).to_string();
        let first = &model.card.features[0].name;
        let dup = good.replacen(
            &format!("\"{first}\":2.5"),
            &format!("\"{first}\":-5,\"{first}\":2.5"),
            1,
        );
        let text = format!("{good}\n\n{dup}\n");
        let mut reader = FileReader::jsonl(text.as_bytes());
        let e = reader.next_chunk(Some(&model), 10).err().unwrap();
        assert_eq!((e.line, e.code), (3, "duplicate_field"), "{e}");
        assert_eq!(e.field, format!("input.{first}"));
        // A bare NaN, as Python writes it, is named as the API names it.
        let nan = good.replacen(&format!("\"{first}\":2.5"), &format!("\"{first}\":NaN"), 1);
        let text = format!("{good}\n{nan}\n");
        let e = FileReader::jsonl(text.as_bytes())
            .next_chunk(Some(&model), 10)
            .err()
            .unwrap();
        assert_eq!(
            (e.line, e.code, e.field.as_str()),
            (2, "not_finite", format!("input.{first}").as_str()),
            "{e}"
        );
        let text = format!("{good}\n{{\"id\": \"b\", \"input\": {{\"x\": 1}}\n");
        let e = FileReader::jsonl(text.as_bytes())
            .next_chunk(Some(&model), 10)
            .err()
            .unwrap();
        assert_eq!((e.line, e.code), (2, "malformed_json"), "{e}");
    }
}
