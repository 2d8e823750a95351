//! One line per request, formatted when the response body has been sent
//! (or abandoned), so duration and bytes are the real ones, and handed to
//! the access-log writer; the request's metrics are counted at the same
//! moment.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Frame, SizeHint};

use super::exchange::Exchange;
use crate::access_log;
use crate::http::body::{Body, BoxError};
use crate::http::request_body::BodyProgress;
use crate::metrics::requests::RequestLabels;

/// What the access log says about one request.
pub struct AccessRecord {
    pub listener: Arc<str>,
    pub id: HeaderValue,
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub client: std::net::SocketAddr,
    pub started: Instant,
    pub status: u16,
    pub route: Option<Arc<str>>,
    pub cluster: Option<Arc<str>>,
    pub endpoint: Option<Arc<str>>,
    pub error: Option<&'static str>,
    /// Request body bytes, counted as they stream (none without a body).
    pub bytes_in: Option<Arc<BodyProgress>>,
    /// The downstream connection (TLS version, SNI).
    pub conn: Arc<crate::http::service::ConnInfo>,
    /// Time to get a connection to the upstream (pooled: near zero).
    pub upstream_connect: Option<std::time::Duration>,
    /// From sending the request to the upstream's response head.
    pub upstream_header: Option<std::time::Duration>,
    /// The filter that answered the request itself.
    pub filter: Option<String>,
    /// The request's trace id, when tracing is on.
    pub trace_id: Option<String>,
}

impl AccessRecord {
    /// Counts the request and, when `log` is on, writes its line (through
    /// the writer's buffer, off the request path).
    pub fn emit(&mut self, log: bool, bytes_out: u64, completed: bool) {
        let duration = self.started.elapsed();
        let labels = RequestLabels {
            listener: self.listener.clone(),
            route: self.route.take(),
            cluster: self.cluster.take(),
            status: self.status,
        };
        crate::metrics::record_request(&labels, duration, self.error);
        if !log {
            return;
        }
        let bytes_in = self
            .bytes_in
            .as_ref()
            .map_or(0, |b| b.bytes.load(Ordering::Relaxed));
        let line = Line {
            record: self,
            labels: &labels,
            duration_us: duration.as_micros() as u64,
            bytes_in,
            bytes_out,
            completed,
        };
        match access_log::format() {
            access_log::Format::Text => access_log::write(|buf| line.text(buf)),
            access_log::Format::Json => access_log::write(|buf| line.json(buf)),
        }
    }
}

/// One access line's values.
struct Line<'a> {
    record: &'a AccessRecord,
    labels: &'a RequestLabels,
    duration_us: u64,
    bytes_in: u64,
    bytes_out: u64,
    completed: bool,
}

impl Line<'_> {
    fn text(&self, buf: &mut Vec<u8>) {
        let r = self.record;
        let l = self.labels;
        let _ = write!(
            buf,
            "{} access listener={} id={} client={} method={} path={} protocol={:?} status={} \
             route={} cluster={} endpoint={} error={} duration_us={} bytes_in={} bytes_out={} completed={}",
            humantime::format_rfc3339_micros(std::time::SystemTime::now()),
            l.listener,
            r.id.to_str().unwrap_or("-"),
            r.client,
            r.method,
            r.uri.path(),
            r.version,
            l.status,
            l.route.as_deref().unwrap_or("-"),
            l.cluster.as_deref().unwrap_or("-"),
            r.endpoint.as_deref().unwrap_or("-"),
            r.error.unwrap_or("-"),
            self.duration_us,
            self.bytes_in,
            self.bytes_out,
            self.completed,
        );
    }

    fn json(&self, buf: &mut Vec<u8>) {
        let r = self.record;
        let l = self.labels;
        let value = serde_json::json!({
            "time": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            "listener": &*l.listener,
            "id": r.id.to_str().unwrap_or("-"),
            "client": r.client.to_string(),
            "method": r.method.as_str(),
            "path": r.uri.path(),
            "protocol": format!("{:?}", r.version),
            "status": l.status,
            "route": l.route.as_deref(),
            "cluster": l.cluster.as_deref(),
            "endpoint": r.endpoint.as_deref(),
            "error": r.error,
            "duration_us": self.duration_us,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "completed": self.completed,
        });
        let _ = serde_json::to_writer(&mut *buf, &value);
    }
}

/// Wraps a response body: counts bytes, and when it ends or is dropped
/// finishes the exchange (access line, metrics, filter runs, the
/// connection's request count).
pub struct LoggedBody {
    inner: Body,
    exchange: Exchange,
}

impl LoggedBody {
    pub(crate) fn new(inner: Body, exchange: Exchange) -> Self {
        Self { inner, exchange }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.bytes_out += data.len() as u64;
                }
                // HTTP/2 stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.exchange.completed = true;
                    this.exchange.finish();
                }
            }
            Poll::Ready(None) => {
                this.exchange.completed = true;
                this.exchange.finish();
            }
            Poll::Ready(Some(Err(_))) => this.exchange.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
