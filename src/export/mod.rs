//! Label export: every labelled item of a task — its inputs, the final
//! verdict and where it came from, the human reviews, the model's prediction
//! — as JSONL or CSV. Rows come in item-id order, a page at a time, so an
//! export runs in constant memory and can resume after the last id it wrote
//! (`after=`): labels given while it runs never make it lose or repeat a row.

pub mod cli;
pub mod encode;
pub mod snapshot;

use diesel::prelude::*;
use serde::Serialize;

use crate::db::fast_time::FastTimestamp;
use crate::db::schema::{items, predictions, reviews, verdicts};
use crate::db::DbConnection;
use crate::domain::{Timestamp, VerdictSource};
use crate::http::error::AppError;
pub use encode::Encoder;

/// Rows fetched per query.
pub const PAGE_ROWS: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Jsonl,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, AppError> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            _ => Err(AppError::invalid(
                "invalid_value",
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

/// Whose verdict a row must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFilter {
    Human,
    Model,
    #[default]
    All,
}

/// Why the item reached a human, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KindFilter {
    /// Blind audit samples of model-decided items.
    Audit,
    /// Items the model did not decide (low confidence, model error, or a
    /// level that queues every item).
    Uncertain,
    #[default]
    All,
}

/// Which labelled items an export holds and what each row carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Filter {
    /// Verdicts given at or after this time.
    #[serde(with = "opt_time")]
    pub since: Option<Timestamp>,
    /// Verdicts given before this time.
    #[serde(with = "opt_time")]
    pub until: Option<Timestamp>,
    pub source: SourceFilter,
    pub kind: KindFilter,
    pub include_predictions: bool,
    pub include_reviews: bool,
}

mod opt_time {
    use crate::domain::{rfc3339, Timestamp};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339(t)),
            None => s.serialize_none(),
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
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<Params, AppError> {
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
                _ => {
                    return Err(AppError::invalid(
                        "unknown_field",
                        key.clone(),
                        format!(
                            "{key:?} is not an export parameter (format, since, until, source, kind, include, after)"
                        ),
                    ))
                }
            };
            *slot = Some(value);
        }
        Ok(p)
    }

    pub fn parse(&self, default_format: Format) -> Result<Request, AppError> {
        let format = match non_empty(&self.format) {
            Some(f) => Format::parse(f)?,
            None => default_format,
        };
        let source = match non_empty(&self.source) {
            None | Some("all") => SourceFilter::All,
            Some("human") => SourceFilter::Human,
            Some("model") => SourceFilter::Model,
            Some(other) => {
                return Err(AppError::invalid(
                    "invalid_value",
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
                return Err(AppError::invalid(
                    "invalid_value",
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
                    return Err(AppError::invalid(
                        "invalid_value",
                        "include",
                        format!("include takes predictions and reviews, not {other:?}"),
                    ))
                }
            }
        }
        let after = match non_empty(&self.after) {
            Some(id) => Some(
                crate::domain::ItemId::parse(id)
                    .map_err(|e| AppError::invalid("invalid_value", "after", e))?
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
pub fn parse_time(field: &str, s: &str) -> Result<Timestamp, AppError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.naive_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists"));
    }
    Err(AppError::invalid(
        "invalid_value",
        field,
        format!(
            "{field} is an RFC 3339 time (2026-11-28T09:30:00Z) or a date (2026-11-28), not {s:?}"
        ),
    ))
}

/// One labelled item as the export reads it.
#[derive(Debug, Clone, Queryable)]
pub struct Head {
    pub id: String,
    pub input: String,
    pub created_at: FastTimestamp,
    pub audit: bool,
    pub reason: Option<String>,
    pub model_version: Option<String>,
    pub label: String,
    pub source: String,
    pub basis: Option<String>,
    pub decided_at: FastTimestamp,
    pub decided_by: Option<String>,
    pub model_label: Option<String>,
    pub model_confidence: Option<f64>,
}

#[derive(Debug, Clone, Queryable)]
pub struct Review {
    pub item_id: String,
    pub reviewer: String,
    pub label: String,
    pub comment: Option<String>,
    pub seconds_spent: f64,
    pub blind: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Queryable)]
pub struct Prediction {
    pub item_id: String,
    pub model_version: String,
    pub label: Option<String>,
    pub confidence: Option<f64>,
    pub probabilities: Option<String>,
    pub error: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub head: Head,
    /// Oldest first.
    pub reviews: Vec<Review>,
    /// Every model version that scored the item (with `include=predictions`).
    pub predictions: Vec<Prediction>,
}

/// The filters on the verdict itself (time, source) applied to a boxed
/// query that has `verdicts` in it.
macro_rules! with_verdict_filters {
    ($q:expr, $filter:expr) => {{
        let (mut q, filter): (_, &Filter) = ($q, $filter);
        if let Some(since) = filter.since {
            q = q.filter(verdicts::created_at.ge(since));
        }
        if let Some(until) = filter.until {
            q = q.filter(verdicts::created_at.lt(until));
        }
        match filter.source {
            SourceFilter::Human => q = q.filter(verdicts::source.eq(VerdictSource::Human)),
            SourceFilter::Model => q = q.filter(verdicts::source.eq(VerdictSource::Model)),
            SourceFilter::All => {}
        }
        q
    }};
}

/// How many rows an export of `filter` holds now (the same rows [`page`]
/// yields: its verdict filters in SQL, the kind of item from `items`).
pub fn count(conn: &mut DbConnection, task: &str, filter: &Filter) -> QueryResult<i64> {
    let joined = verdicts::table.inner_join(
        items::table.on(items::task
            .eq(verdicts::task)
            .and(items::id.eq(verdicts::item_id))),
    );
    let mut q = joined
        .filter(verdicts::task.eq(task.to_string()))
        .into_boxed();
    q = with_verdict_filters!(q, filter);
    match filter.kind {
        KindFilter::Audit => q = q.filter(items::audit.eq(true)),
        KindFilter::Uncertain => {
            q = q
                .filter(items::audit.eq(false))
                .filter(items::reason.is_not_null())
        }
        // Every verdict has its item: no need to read the items.
        KindFilter::All => {
            let mut q = verdicts::table
                .filter(verdicts::task.eq(task.to_string()))
                .into_boxed();
            q = with_verdict_filters!(q, filter);
            return q.select(diesel::dsl::count_star()).get_result(conn);
        }
    }
    q.select(diesel::dsl::count_star()).get_result(conn)
}

/// One page of an export: the rows, and where the next page starts.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<Record>,
    /// The last item id this page looked at (rows a filter dropped count):
    /// the next page starts after it.
    pub cursor: Option<String>,
    /// Nothing comes after this page.
    pub done: bool,
}

#[derive(Queryable)]
struct VerdictPart {
    item_id: String,
    label: String,
    source: String,
    basis: Option<String>,
    created_at: FastTimestamp,
    decided_by: Option<String>,
}

#[derive(Queryable)]
struct ItemPart {
    id: String,
    input: String,
    created_at: FastTimestamp,
    audit: bool,
    reason: Option<String>,
    model_version: Option<String>,
}

#[derive(Queryable)]
struct ScorePart {
    item_id: String,
    model_version: String,
    label: Option<String>,
    confidence: Option<f64>,
}

/// The next page: the verdicts of up to `limit` items with ids after
/// `after`, in id order, with their items, the live model's prediction,
/// the reviews (and every prediction when asked). Each table is read as
/// one range in key order and the ranges are merged here: a join would
/// look every row up from the top of its B-tree.
pub fn page(
    conn: &mut DbConnection,
    task: &str,
    filter: &Filter,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Page> {
    // On the concrete connection: rows decode without the multi-backend
    // indirection, timestamps with the fast reader.
    let verdict_rows: Vec<VerdictPart> = crate::on_backend!(conn, c => {
        let mut q = verdicts::table
            .filter(verdicts::task.eq(task.to_string()))
            .select((
                verdicts::item_id,
                verdicts::label,
                verdicts::source,
                verdicts::basis,
                verdicts::created_at,
                verdicts::decided_by,
            ))
            .order(verdicts::item_id)
            .limit(limit)
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(verdicts::item_id.gt(after.to_string()));
        }
        q = with_verdict_filters!(q, filter);
        q.load(c)?
    });
    let done = (verdict_rows.len() as i64) < limit;
    let (Some(first), Some(last)) = (verdict_rows.first(), verdict_rows.last()) else {
        return Ok(Page {
            done: true,
            ..Page::default()
        });
    };
    let (first, last) = (first.item_id.clone(), last.item_id.clone());
    let item_rows: Vec<ItemPart> = crate::on_backend!(conn, c => items::table
        .filter(items::task.eq(task))
        .filter(items::id.ge(&first))
        .filter(items::id.le(&last))
        .select((
            items::id,
            items::input,
            items::created_at,
            items::audit,
            items::reason,
            items::model_version,
        ))
        .order(items::id)
        .load(c)?);
    let score_rows: Vec<ScorePart> = crate::on_backend!(conn, c => predictions::table
        .filter(predictions::task.eq(task))
        .filter(predictions::item_id.ge(&first))
        .filter(predictions::item_id.le(&last))
        .select((
            predictions::item_id,
            predictions::model_version,
            predictions::label,
            predictions::confidence,
        ))
        .order(predictions::item_id)
        .load(c)?);
    let mut all_reviews: Vec<Review> = reviews::table
        .filter(reviews::task.eq(task))
        .filter(reviews::item_id.ge(&first))
        .filter(reviews::item_id.le(&last))
        .select((
            reviews::item_id,
            reviews::reviewer,
            reviews::label,
            reviews::comment,
            reviews::seconds_spent,
            reviews::blind,
            reviews::created_at,
        ))
        .order((reviews::item_id, reviews::created_at, reviews::reviewer))
        .load(conn)?;
    let mut all_predictions: Vec<Prediction> = if filter.include_predictions {
        predictions::table
            .filter(predictions::task.eq(task))
            .filter(predictions::item_id.ge(&first))
            .filter(predictions::item_id.le(&last))
            .select((
                predictions::item_id,
                predictions::model_version,
                predictions::label,
                predictions::confidence,
                predictions::probabilities,
                predictions::error,
                predictions::created_at,
            ))
            .order((predictions::item_id, predictions::created_at))
            .load(conn)?
    } else {
        Vec::new()
    };
    // Every list is in id order: walk them together.
    let mut item_rows = item_rows.into_iter().rev().collect::<Vec<_>>();
    let mut score_rows = score_rows.into_iter().rev().collect::<Vec<_>>();
    all_reviews.reverse();
    all_predictions.reverse();
    let mut records = Vec::with_capacity(verdict_rows.len());
    for v in verdict_rows {
        let item = take_for(&mut item_rows, &v.item_id, |i| &i.id).pop();
        let scores = take_for(&mut score_rows, &v.item_id, |p| &p.item_id);
        let reviews = take_for(&mut all_reviews, &v.item_id, |r| &r.item_id);
        let predictions = take_for(&mut all_predictions, &v.item_id, |p| &p.item_id);
        // A verdict always has its item (the same transaction wrote both).
        let Some(item) = item else { continue };
        let wanted = match filter.kind {
            KindFilter::All => true,
            KindFilter::Audit => item.audit,
            KindFilter::Uncertain => !item.audit && item.reason.is_some(),
        };
        if !wanted {
            continue;
        }
        let score = scores
            .into_iter()
            .find(|p| Some(&p.model_version) == item.model_version.as_ref());
        records.push(Record {
            head: Head {
                id: item.id,
                input: item.input,
                created_at: item.created_at,
                audit: item.audit,
                reason: item.reason,
                model_version: item.model_version,
                label: v.label,
                source: v.source,
                basis: v.basis,
                decided_at: v.created_at,
                decided_by: v.decided_by,
                model_label: score.as_ref().and_then(|p| p.label.clone()),
                model_confidence: score.and_then(|p| p.confidence),
            },
            reviews,
            predictions,
        });
    }
    Ok(Page {
        records,
        cursor: Some(last),
        done,
    })
}

/// Pops from the end of `pending` (sorted by id, descending) the entries
/// of `id`, dropping those of smaller ids that no row of the page claimed.
fn take_for<T>(pending: &mut Vec<T>, id: &str, id_of: impl Fn(&T) -> &String) -> Vec<T> {
    let mut mine = Vec::new();
    while let Some(next) = pending.last() {
        match id_of(next).as_str().cmp(id) {
            std::cmp::Ordering::Less => {
                pending.pop();
            }
            std::cmp::Ordering::Equal => mine.extend(pending.pop()),
            std::cmp::Ordering::Greater => break,
        }
    }
    mine
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
}

/// Writes every row of `request` to `out`, a page at a time. `fetch` reads
/// one page (`after`, `limit`); `progress` hears the running row count.
pub fn run(
    request: &Request,
    encoder: &mut Encoder,
    mut fetch: impl FnMut(Option<&str>, i64) -> Result<Page, AppError>,
    out: &mut dyn std::io::Write,
    mut progress: impl FnMut(u64),
) -> Result<Summary, AppError> {
    let io = |e: std::io::Error| AppError::Internal(format!("cannot write the export: {e}"));
    let mut after = request.after.clone();
    let mut rows = 0u64;
    let mut header = true;
    let mut buf = Vec::with_capacity(256 * 1024);
    loop {
        let page = fetch(after.as_deref(), PAGE_ROWS)?;
        if header && (!page.records.is_empty() || page.done) {
            // The first row names the input columns when no model does.
            encoder.header(page.records.first(), &mut buf);
            header = false;
        }
        for record in &page.records {
            encoder.row(record, &mut buf);
        }
        rows += page.records.len() as u64;
        out.write_all(&buf).map_err(io)?;
        buf.clear();
        progress(rows);
        match page.cursor {
            Some(cursor) if !page.done => after = Some(cursor),
            _ => break,
        }
    }
    out.flush().map_err(io)?;
    Ok(Summary { rows })
}

/// The task's input fields in the live model's order, if it has a model.
pub fn columns_of(task: &crate::tasks::TaskRuntime) -> Option<Vec<String>> {
    task.live()
        .map(|m| m.card.features.iter().map(|f| f.name.clone()).collect())
}

/// Hands bytes written on a blocking thread to a response body, in chunks;
/// fails with `BrokenPipe` once the client has gone.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<actix_web::web::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 64 * 1024;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = actix_web::web::Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A response body produced by `produce` on a blocking thread, a few chunks
/// ahead of the client at most (constant memory). An error after the first
/// byte can only cut the body short; it is logged.
pub fn blocking_body<F>(
    produce: F,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, std::io::Error>>
where
    F: FnOnce(&mut ChannelWriter) -> Result<(), AppError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(ChannelWriter::CHUNK),
        };
        let result = produce(&mut out).and_then(|()| {
            std::io::Write::flush(&mut out)
                .map_err(|e| AppError::Internal(format!("cannot send: {e}")))
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "a streamed response ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Streams the export of `request` from the pool, a connection per page.
pub fn stream(
    db: crate::db::Db,
    task: String,
    request: Request,
    columns: Option<Vec<String>>,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, std::io::Error>> {
    blocking_body(move |out| {
        let started = std::time::Instant::now();
        let mut encoder = Encoder::new(request.format, &request.filter, columns);
        let fetch = |after: Option<&str>, limit: i64| {
            let mut conn = db.get()?;
            page(&mut conn, &task, &request.filter, after, limit).map_err(AppError::from)
        };
        let summary = run(&request, &mut encoder, fetch, out, |_| {})?;
        tracing::info!(
            task = %task,
            rows = summary.rows,
            seconds = started.elapsed().as_secs_f64(),
            "label export sent"
        );
        Ok(())
    })
}
