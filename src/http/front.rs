//! The listener's front: what a connection's first request head looks like
//! before actix-http parses it.
//!
//! actix-http refuses two things before any middleware or handler runs, with
//! an empty body: a request head that does not fit its fixed 128 KiB read
//! buffer (`431`, not configurable in actix-http 3) and a request target
//! longer than the `http` crate's URI limit of 65,534 bytes (`400`). So the
//! front reads the first head of each connection itself and answers those
//! with the API's JSON error (`header_too_large`, `uri_too_long`) or, off
//! `/api`, a short page, with the same security headers as every other
//! response. A head it passes is handed to actix-http unchanged, bytes
//! already read first ([`Rewind`]).
//!
//! Only the first request of a connection is screened: a later request on a
//! kept-alive connection is actix-http's to frame, and an oversized head
//! there still gets actix's empty `431`/`400` (and the connection closes).
//! Clients that send such heads open a connection for them in practice.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{HttpService, Protocol, Request, Response};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory,
    ServiceFactoryExt as _,
};
use actix_web::dev::AppConfig;
use actix_web::http::StatusCode;
use actix_web::web::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::http::error::AppError;
use crate::http::middleware::{is_api, CONTENT_SECURITY_POLICY};

/// The longest request target accepted (an item id is at most 128
/// characters; the longest query the API reads is far shorter).
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// The largest request head accepted: request line and headers.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long the first head may take to arrive before it is handed to
/// actix-http as it is (which then applies its own request timeout).
const HEAD_WAIT: Duration = Duration::from_secs(5);
/// After refusing, how much of the rest of the request is read and dropped
/// (so the client, still sending, gets the answer rather than a reset).
const DRAIN_BYTES: usize = 4 * 1024 * 1024;
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Serves `app` on `listener` with `workers` threads as
/// `actix_web::HttpServer` would (HTTP/1, its default timeouts), with each
/// connection's first head screened by [`screen`].
pub fn serve<F, I, S, B>(
    listener: std::net::TcpListener,
    workers: usize,
    app: F,
) -> io::Result<actix_web::dev::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    Ok(actix_web::dev::Server::build()
        .workers(workers)
        .listen("verdict-http", listener, move || {
            let app = app().into_factory().map_err(|e| e.into().error_response());
            let http = HttpService::build()
                .local_addr(addr)
                .finish(map_config(app, |_| AppConfig::default()));
            fn_service(|io: TcpStream| async move { screen(io).await.map_err(DispatchError::Io) })
                .and_then(fn_factory(move || {
                    let http = http.new_service(());
                    async move {
                        let http = std::rc::Rc::new(http.await?);
                        Ok::<_, ()>(fn_service(
                            move |screened: Option<(Rewind, Option<SocketAddr>)>| {
                                let call = screened
                                    .map(|(io, peer)| http.call((io, Protocol::Http1, peer)));
                                async move {
                                    match call {
                                        Some(call) => call.await,
                                        None => Ok(()),
                                    }
                                }
                            },
                        ))
                    }
                }))
        })?
        .run())
}

/// What the bytes of a first head so far say.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// Complete, or not (yet) refusable: hand it over.
    Pass,
    /// Read more.
    Incomplete,
    /// Refuse with this status; the path when the request line was read.
    Refuse(StatusCode, Option<String>),
}

fn inspect(buf: &[u8]) -> Head {
    let line_end = buf.windows(2).position(|w| w == b"\r\n");
    let line = &buf[..line_end.unwrap_or(buf.len())];
    // `METHOD SP target SP version`: the target runs to the last space once
    // the line is complete, to the end of what arrived before.
    let target = line
        .iter()
        .position(|&b| b == b' ')
        .map(|start| {
            let rest = &line[start + 1..];
            match (line_end, rest.iter().rposition(|&b| b == b' ')) {
                (Some(_), Some(end)) => &rest[..end],
                _ => rest,
            }
        })
        .unwrap_or_default();
    let path = || {
        let target = String::from_utf8_lossy(&target[..target.len().min(64)]).into_owned();
        Some(target)
    };
    if target.len() > MAX_TARGET_BYTES {
        return Head::Refuse(StatusCode::URI_TOO_LONG, path());
    }
    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return if end + 4 > MAX_HEAD_BYTES {
            Head::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, path())
        } else {
            Head::Pass
        };
    }
    if buf.len() > MAX_HEAD_BYTES {
        let path = if line_end.is_some() { path() } else { None };
        return Head::Refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, path);
    }
    Head::Incomplete
}

/// The whole answer to a refused head: JSON under `/api` (or when the path
/// is unknown), a short page elsewhere; the connection closes after it.
fn refusal(status: StatusCode, path: Option<&str>) -> Vec<u8> {
    let error = if status == StatusCode::URI_TOO_LONG {
        AppError::Refused4xx {
            status: 414,
            code: "uri_too_long",
            message: format!("the address is longer than {MAX_TARGET_BYTES} bytes"),
        }
    } else {
        AppError::Refused4xx {
            status: 431,
            code: "header_too_large",
            message: format!(
                "the request's line and headers are larger than {MAX_HEAD_BYTES} bytes"
            ),
        }
    };
    let page = path.is_some_and(|p| !is_api(p) && p.starts_with('/'));
    let (content_type, body, extra) = if page {
        let body = format!(
            "<!doctype html><title>{code}</title><p>{message}.</p>\n",
            code = status.as_u16(),
            message = error,
        );
        (
            "text/html; charset=utf-8",
            body,
            format!(
                "content-security-policy: {CONTENT_SECURITY_POLICY}\r\nx-frame-options: DENY\r\n"
            ),
        )
    } else {
        let body =
            serde_json::json!({"error": {"code": error.code(), "message": error.to_string()}});
        ("application/json", body.to_string(), String::new())
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len}\r\nconnection: close\r\n\
         x-content-type-options: nosniff\r\nreferrer-policy: same-origin\r\n{extra}\r\n{body}",
        status = status,
        len = body.len(),
    )
    .into_bytes()
}

/// Reads a connection's first head; hands the connection on (bytes read
/// so far first) unless it refused the head itself.
pub async fn screen(mut io: TcpStream) -> io::Result<Option<(Rewind, Option<SocketAddr>)>> {
    let peer = io.peer_addr().ok();
    let mut buf = BytesMut::with_capacity(4096);
    let deadline = tokio::time::Instant::now() + HEAD_WAIT;
    loop {
        match inspect(&buf) {
            Head::Pass => break,
            Head::Refuse(status, path) => {
                tracing::info!(
                    status = status.as_u16(),
                    bytes = buf.len(),
                    "request head refused before parsing"
                );
                io.write_all(&refusal(status, path.as_deref())).await?;
                io.flush().await?;
                let _ = io.shutdown().await;
                drain(&mut io).await;
                return Ok(None);
            }
            Head::Incomplete => {}
        }
        buf.reserve(8192);
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(Some((
        Rewind {
            prefix: buf.freeze(),
            io,
        },
        peer,
    )))
}

/// Reads and drops what the client is still sending, for a while.
async fn drain(io: &mut TcpStream) {
    let mut sink = vec![0u8; 64 * 1024];
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_WAIT, async {
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// A connection whose first bytes were read already: they are read again
/// first.
pub struct Rewind {
    prefix: Bytes,
    io: TcpStream,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_refused_by_target_and_size() {
        assert_eq!(
            inspect(b"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n"),
            Head::Incomplete
        );
        assert_eq!(
            inspect(b"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n"),
            Head::Pass
        );
        let long = format!(
            "GET /api/v1/tasks/t/items/{} HTTP/1.1\r\n",
            "a".repeat(MAX_TARGET_BYTES)
        );
        // Refused as soon as the target is too long, line complete or not.
        for sent in [&long[..], &long[..MAX_TARGET_BYTES + 30]] {
            match inspect(sent.as_bytes()) {
                Head::Refuse(StatusCode::URI_TOO_LONG, Some(p)) => assert!(p.starts_with("/api/")),
                other => panic!("{other:?}"),
            }
        }
        let big = format!(
            "GET /api/v1/tasks HTTP/1.1\r\nAuthorization: Bearer {}\r\n",
            "x".repeat(MAX_HEAD_BYTES)
        );
        assert_eq!(
            inspect(big.as_bytes()),
            Head::Refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                Some("/api/v1/tasks".into())
            )
        );
        // Just under the limits passes.
        let ok = format!(
            "GET /{} HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_TARGET_BYTES - 1),
            "y".repeat(MAX_HEAD_BYTES - MAX_TARGET_BYTES - 40)
        );
        assert_eq!(inspect(ok.as_bytes()), Head::Pass);
    }

    #[test]
    fn a_refusal_is_json_under_the_api_and_a_page_elsewhere() {
        let api = String::from_utf8(refusal(StatusCode::URI_TOO_LONG, Some("/api/v1/x"))).unwrap();
        assert!(api.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{api}");
        let body: serde_json::Value =
            serde_json::from_str(api.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "uri_too_long");
        assert!(api.contains("x-content-type-options: nosniff\r\n"));
        let page = String::from_utf8(refusal(StatusCode::URI_TOO_LONG, Some("/review/x"))).unwrap();
        assert!(page.contains("content-type: text/html") && page.contains("x-frame-options: DENY"));
    }
}
