//! Downloads shared by the API and the web UI: a label export streamed as
//! it is encoded, and a snapshot's file. The bytes are produced on a
//! blocking thread and handed to the response body a few chunks ahead of
//! the client at most (constant memory).

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use crate::db::Db;
use crate::export::snapshot::SnapshotRow;
use crate::export::{self, Format, Request};
use crate::http::error::AppError;
use crate::tasks::TaskRuntime;

/// The query string as key/value pairs (unknown keys are refused later);
/// a key given twice is a 400 `repeated_parameter` naming it (no reader of
/// a query here takes a list, and which of two would win is a guess).
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, AppError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| AppError::invalid("invalid_query", "query", e.to_string()))?;
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    for (key, _) in &pairs {
        if !seen.insert(key.as_str()) {
            let shown: String = key.chars().take(100).collect();
            return Err(AppError::invalid(
                "repeated_parameter",
                shown.clone(),
                format!(
                    "the parameter {shown:?} is given more than once: give each parameter once"
                ),
            ));
        }
    }
    Ok(pairs)
}

/// Hands bytes written on a blocking thread to a response body, in chunks;
/// fails with `BrokenPipe` once the client has gone.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 64 * 1024;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
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
pub fn blocking_body<F, E>(
    produce: F,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>>
where
    F: FnOnce(&mut ChannelWriter) -> Result<(), E> + Send + 'static,
    E: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(ChannelWriter::CHUNK),
        };
        let result = produce(&mut out).map_err(|e| e.to_string()).and_then(|()| {
            std::io::Write::flush(&mut out).map_err(|e| format!("cannot send: {e}"))
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "a streamed response ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// A streamed export as an HTTP response (a download), read from the pool
/// a connection per page.
pub fn export_response(db: &Db, task: &TaskRuntime, request: Request) -> HttpResponse {
    let name = task.name().to_string();
    let filename = format!("{name}-labels.{}", request.format.as_str());
    let content_type = request.format.content_type();
    let columns = export::columns_of(task);
    let db = db.clone();
    let body = blocking_body(move |out| {
        export::write_from_pool(&db, &name, &request, columns, out).map(drop)
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body)
}

/// The snapshot's file as a download.
pub fn file_response(row: &SnapshotRow) -> HttpResponse {
    let format = Format::parse(&row.format).unwrap_or(Format::Jsonl);
    let path = std::path::PathBuf::from(&row.path);
    let body = blocking_body(move |out| {
        let mut file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        std::io::copy(&mut file, out)
            .map_err(|e| format!("cannot send {}: {e}", path.display()))?;
        Ok::<_, String>(())
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, format.content_type()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "attachment; filename=\"{}-{}.{}\"",
                row.task,
                row.name,
                format.as_str()
            ),
        ))
        .insert_header(("X-Content-SHA256", row.sha256.clone()))
        .streaming(body)
}
