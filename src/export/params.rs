//! The parameters of an export, as text from a query string, a form, a
//! JSON body or the command line, checked into a [`Request`].

use serde::Serialize;

use super::{ExportError, Filter, KindFilter, SourceFilter};
use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, ExportError> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(ExportError::invalid(
                "format",
                format!("format is jsonl or csv, not {s:?}"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The request parameters of an export, as text from a query string or the
/// command line; [`Params::parse`] checks them.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub format: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub source: Option<String>,
    pub kind: Option<String>,
    pub include: Option<String>,
    pub after: Option<String>,
}

/// A checked export request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub format: Format,
    pub filter: Filter,
    /// Resume after this item id.
    pub after: Option<String>,
}

impl Params {
    /// From `key=value` pairs; an unknown key is an error (a typo would
    /// otherwise silently export everything).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, ExportError> {
        let mut p = Params::default();
        for (key, value) in pairs {
            let slot = match key.as_str() {
                "format" => &mut p.format,
                "since" => &mut p.since,
                "until" => &mut p.until,
                "source" => &mut p.source,
                "kind" => &mut p.kind,
                "include" => &mut p.include,
                "after" => &mut p.after,
                _ => return Err(ExportError::UnknownParameter { name: key }),
            };
            *slot = Some(value);
        }
        Ok(p)
    }

    pub fn parse(&self, default_format: Format) -> Result<Request, ExportError> {
        let format = match non_empty(&self.format) {
            Some(f) => Format::parse(f)?,
            None => default_format,
        };
        let source = match non_empty(&self.source) {
            None | Some("all") => SourceFilter::All,
            Some("human") => SourceFilter::Human,
            Some("model") => SourceFilter::Model,
            Some(other) => {
                return Err(ExportError::invalid(
                    "source",
                    format!("source is human, model or all, not {other:?}"),
                ))
            }
        };
        let kind = match non_empty(&self.kind) {
            None | Some("all") => KindFilter::All,
            Some("audit") => KindFilter::Audit,
            Some("uncertain") => KindFilter::Uncertain,
            Some(other) => {
                return Err(ExportError::invalid(
                    "kind",
                    format!("kind is audit, uncertain or all, not {other:?}"),
                ))
            }
        };
        let mut filter = Filter {
            since: non_empty(&self.since)
                .map(|s| parse_time("since", s))
                .transpose()?,
            until: non_empty(&self.until)
                .map(|s| parse_time("until", s))
                .transpose()?,
            source,
            kind,
            ..Filter::default()
        };
        for part in non_empty(&self.include)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match part {
                "predictions" => filter.include_predictions = true,
                "reviews" => filter.include_reviews = true,
                other => {
                    return Err(ExportError::invalid(
                        "include",
                        format!("include takes predictions and reviews, not {other:?}"),
                    ))
                }
            }
        }
        let after = match non_empty(&self.after) {
            Some(id) => Some(
                crate::domain::ItemId::parse(id)
                    .map_err(|e| ExportError::invalid("after", e))?
                    .as_str()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Request {
            format,
            filter,
            after,
        })
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// RFC 3339 (`2026-11-28T09:30:00Z`) or a UTC date (`2026-11-28`, its start).
pub fn parse_time(field: &'static str, s: &str) -> Result<Timestamp, ExportError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.naive_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists"));
    }
    Err(ExportError::invalid(
        field,
        format!(
            "{field} is an RFC 3339 time (2026-11-28T09:30:00Z) or a date (2026-11-28), not {s:?}"
        ),
    ))
}
