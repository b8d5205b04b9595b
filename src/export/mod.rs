//! Label export: every labelled item of a task — its inputs, the final
//! verdict and where it came from, the human reviews, the model's prediction
//! — as JSONL or CSV. Rows come in item-id order, a page at a time, so an
//! export runs in constant memory and can resume after the last id it wrote
//! (`after=`): labels given while it runs never make it lose or repeat a row.
//!
//! The rows are read by [`crate::store::labels`]; this module checks the
//! parameters ([`params`]), encodes the rows ([`encode`], over the one
//! column table of [`columns`]) and writes snapshots ([`snapshot`]).

pub mod columns;
pub mod encode;
mod error;
mod input;
pub mod params;
pub mod snapshot;

pub use crate::store::labels::{
    Filter, Head, KindFilter, Page, Prediction, Record, Review, SourceFilter,
};
pub use encode::Encoder;
pub use error::ExportError;
pub use params::{parse_time, Format, Params, Request};

/// Rows fetched per query.
pub const PAGE_ROWS: i64 = 1000;

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
    mut fetch: impl FnMut(Option<&str>, i64) -> Result<Page, ExportError>,
    out: &mut dyn std::io::Write,
    mut progress: impl FnMut(u64),
) -> Result<Summary, ExportError> {
    let io = |e: std::io::Error| ExportError::io("cannot write the export", e);
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

/// Writes the export of `task` to `out` from the pool, a connection per
/// page: a slow reader holds no connection between pages. Blocking.
pub fn write_from_pool(
    db: &crate::db::Db,
    task: &str,
    request: &Request,
    columns: Option<Vec<String>>,
    out: &mut dyn std::io::Write,
) -> Result<Summary, ExportError> {
    let started = std::time::Instant::now();
    let mut encoder = Encoder::new(request.format, &request.filter, columns);
    let fetch = |after: Option<&str>, limit: i64| {
        let mut conn = db.get()?;
        Ok(crate::store::labels::page(
            &mut conn,
            task,
            &request.filter,
            after,
            limit,
        )?)
    };
    let summary = run(request, &mut encoder, fetch, out, |_| {})?;
    tracing::info!(
        task = %task,
        rows = summary.rows,
        seconds = started.elapsed().as_secs_f64(),
        "label export sent"
    );
    Ok(summary)
}

/// The task's input fields in the live model's order, if it has a model.
pub fn columns_of(task: &crate::tasks::TaskRuntime) -> Option<Vec<String>> {
    task.live()
        .map(|m| m.card.features.iter().map(|f| f.name.clone()).collect())
}
