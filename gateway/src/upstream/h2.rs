//! HTTP/2 to upstreams: the multiplexed connections of one endpoint (per
//! worker), each carrying up to the cluster's `h2_max_concurrent_streams`
//! requests at once, and the exchange of one request on a stream.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::breaker::Permit;
use crate::http::body::{Body, BoxError};

/// A stream's place on a connection: counted while the request is in
/// flight (until its response body has ended or was dropped).
pub struct StreamSlot(Arc<AtomicU32>);

impl StreamSlot {
    fn take(active: &Arc<AtomicU32>) -> StreamSlot {
        active.fetch_add(1, Ordering::Relaxed);
        StreamSlot(active.clone())
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request's way onto an HTTP/2 connection.
pub struct H2Stream {
    tx: http2::SendRequest<Body>,
    slot: StreamSlot,
    /// `:scheme` of its requests: `https` over TLS, `http` for h2c.
    scheme: &'static str,
}

/// A pooled HTTP/2 connection of one worker.
struct H2Conn {
    tx: http2::SendRequest<Body>,
    /// Counts the connection against the cluster's `max_connections`
    /// until it leaves the pool (closed or idle).
    _permit: Permit,
    scheme: &'static str,
    /// Streams in flight on it.
    active: Arc<AtomicU32>,
    last_used: Instant,
}

/// The HTTP/2 connections one worker holds to one endpoint.
#[derive(Default)]
pub struct H2Conns {
    conns: Vec<H2Conn>,
}

impl H2Conns {
    /// A stream on an open connection with fewer than `max_streams` in
    /// flight; closed connections are dropped on the way.
    pub fn checkout(&mut self, max_streams: u32) -> Option<H2Stream> {
        self.conns.retain(|c| !c.tx.is_closed());
        let conn = self
            .conns
            .iter_mut()
            .find(|c| c.tx.is_ready() && c.active.load(Ordering::Relaxed) < max_streams)?;
        conn.last_used = Instant::now();
        Some(H2Stream {
            tx: conn.tx.clone(),
            slot: StreamSlot::take(&conn.active),
            scheme: conn.scheme,
        })
    }

    /// Keeps the connection `stream` was opened on for later requests.
    pub fn share(&mut self, stream: &H2Stream, permit: Permit) {
        self.conns.push(H2Conn {
            tx: stream.tx.clone(),
            _permit: permit,
            scheme: stream.scheme,
            active: stream.slot.0.clone(),
            last_used: Instant::now(),
        });
    }

    /// Closes connections with no stream in flight for `idle_timeout`.
    pub fn reap(&mut self, idle_timeout: Duration) {
        self.conns.retain(|c| {
            !c.tx.is_closed()
                && (c.active.load(Ordering::Relaxed) > 0 || c.last_used.elapsed() < idle_timeout)
        });
    }
}

/// Starts HTTP/2 on a connected stream (TLS with `h2`, or cleartext with
/// prior knowledge); the connection is driven by a task of its own on
/// the calling worker. Returns the first stream on it.
pub async fn handshake<S>(io: S, tls: bool) -> std::io::Result<H2Stream>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        // Large bodies (uploads, streaming answers) should not stall on the
        // 64 KiB default window.
        .adaptive_window(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "upstream h2 connection ended with an error");
        }
    });
    Ok(H2Stream {
        tx,
        slot: StreamSlot::take(&Arc::new(AtomicU32::new(0))),
        scheme: if tls { "https" } else { "http" },
    })
}

impl H2Stream {
    /// Sends `request` (HTTP/1.1-shaped: origin-form URI and `Host`) on
    /// this stream; the response body holds the stream's slot, and fails
    /// when the upstream sends nothing on it for `idle` (zero: no limit),
    /// as the cluster's `response_idle_timeout` says for every protocol.
    pub async fn send(
        mut self,
        request: http::Request<Body>,
        idle: Duration,
    ) -> Result<http::Response<Body>, hyper::Error> {
        let response = self.tx.send_request(to_http2(request, self.scheme)).await?;
        let slot = self.slot;
        Ok(response.map(|body| {
            crate::http::body::boxed(SlotBody {
                inner: body,
                _slot: slot,
                idle: (!idle.is_zero()).then(|| (idle, Box::pin(tokio::time::sleep(idle)))),
            })
        }))
    }
}

/// An HTTP/1.1-shaped upstream request (origin-form URI, `Host`) made
/// into HTTP/2: the authority moves into the URI.
fn to_http2(mut request: http::Request<Body>, scheme: &str) -> http::Request<Body> {
    let host = request.headers_mut().remove(http::header::HOST);
    let authority = host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Ok(uri) = http::Uri::try_from(format!("{scheme}://{authority}{path}")) {
        *request.uri_mut() = uri;
    }
    *request.version_mut() = http::Version::HTTP_2;
    request
}

/// A response body that keeps its stream counted until it ends, and
/// bounds the silence between its frames.
struct SlotBody {
    inner: hyper::body::Incoming,
    _slot: StreamSlot,
    idle: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
}

impl http_body::Body for SlotBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {}
            ready => {
                if let Some((idle, timer)) = this.idle.as_mut() {
                    timer.as_mut().reset(tokio::time::Instant::now() + *idle);
                }
                return ready.map_err(Into::into);
            }
        }
        let Some((idle, timer)) = this.idle.as_mut() else {
            return Poll::Pending;
        };
        if std::future::Future::poll(timer.as_mut(), cx).is_pending() {
            return Poll::Pending;
        }
        let idle = *idle;
        this.idle = None;
        Poll::Ready(Some(Err(format!(
            "upstream sent nothing for {idle:?} (response_idle_timeout)"
        )
        .into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
