//! One line per request, formatted when the response body has been sent
//! (or abandoned), so duration and bytes are the real ones, and handed to
//! the access-log writer; the request's metrics are counted at the same
//! moment.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Frame, SizeHint};

use super::exchange::Exchange;
use crate::access_log::{self, Layout};
use crate::config::{AccessLogField, TemplatePiece};
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
    pub started: Instant,
    pub status: u16,
    pub route: Option<Arc<str>>,
    pub cluster: Option<Arc<str>>,
    pub endpoint: Option<Arc<str>>,
    pub error: Option<&'static str>,
    /// Request body bytes, counted as they stream (none without a body).
    pub bytes_in: Option<Arc<BodyProgress>>,
    /// The downstream connection (client address, TLS version, SNI).
    pub conn: Arc<crate::http::service::ConnInfo>,
    /// Time to get a connection to the upstream (pooled: near zero).
    pub upstream_connect: Option<std::time::Duration>,
    /// From sending the request to the upstream's response head.
    pub upstream_header: Option<std::time::Duration>,
    /// The filter that answered the request itself.
    pub filter: Option<Arc<str>>,
    /// The request's trace id, when tracing is on.
    pub trace_id: Option<String>,
}

impl AccessRecord {
    /// Counts the request, ended at `now`, and, when `log` is on, writes
    /// its line (through the writer's buffer, off the request path).
    pub fn emit(&mut self, now: std::time::Instant, log: bool, bytes_out: u64, completed: bool) {
        let duration = now.saturating_duration_since(self.started);
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
        let layout = access_log::layout();
        match access_log::format() {
            access_log::Format::Text => access_log::write(|buf| line.text(&layout, buf)),
            access_log::Format::Json => access_log::write(|buf| line.json(&layout, buf)),
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

/// One field's value, borrowed from the record where possible; none is
/// formatted through an intermediate string.
enum Value<'a> {
    Text(&'a str),
    /// The request id: written as it is when ASCII (what a header value's
    /// `to_str` accepts), else `-`.
    Id(&'a HeaderValue),
    /// A TLS version as rustls names it (`TLSv1_3`), written as OpenSSL
    /// does (`TLSv1.3`).
    Tls(&'a str),
    Number(u64),
    Flag(bool),
    /// Now, RFC 3339 with microseconds.
    Time,
    /// The client's address (its IP already text).
    Client(&'a crate::http::service::ConnInfo),
    Missing,
}

impl Line<'_> {
    #[inline(always)]
    fn value(&self, field: AccessLogField) -> Value<'_> {
        use AccessLogField as F;
        let r = self.record;
        let l = self.labels;
        let micros = |d: Option<std::time::Duration>| {
            d.map_or(Value::Missing, |d| Value::Number(d.as_micros() as u64))
        };
        match field {
            F::Time => Value::Time,
            F::Listener => Value::Text(&l.listener),
            F::Id => Value::Id(&r.id),
            F::Client => Value::Client(&r.conn),
            F::Method => Value::Text(r.method.as_str()),
            F::Path => Value::Text(r.uri.path()),
            F::Query => text(r.uri.query()),
            F::Protocol => Value::Text(protocol(r.version)),
            F::Status => Value::Number(u64::from(l.status)),
            F::Route => text(l.route.as_deref()),
            F::Cluster => text(l.cluster.as_deref()),
            F::Endpoint => text(r.endpoint.as_deref()),
            F::Error => text(r.error),
            F::DurationUs => Value::Number(self.duration_us),
            F::BytesIn => Value::Number(self.bytes_in),
            F::BytesOut => Value::Number(self.bytes_out),
            F::Completed => Value::Flag(self.completed),
            F::UpstreamConnectUs => micros(r.upstream_connect),
            F::UpstreamHeaderUs => micros(r.upstream_header),
            F::Filter => text(r.filter.as_deref()),
            // Spelled as OpenSSL (and nginx's `$ssl_protocol`): `TLSv1.3`.
            F::TlsVersion => r
                .conn
                .tls_version
                .as_ref()
                .map_or(Value::Missing, |v| Value::Tls(v)),
            F::Sni => text(r.conn.sni.as_deref()),
            F::TraceId => text(r.trace_id.as_deref()),
        }
    }

    /// `[time] access name=value ...`, or the template filled in.
    fn text(&self, layout: &Layout, buf: &mut Vec<u8>) {
        // Room for a usual line, so that the pieces are appended without
        // growing the buffer.
        buf.reserve(512);
        for piece in &layout.text {
            match piece {
                TemplatePiece::Text(t) => buf.extend_from_slice(t.as_bytes()),
                TemplatePiece::Field(f) => write_text(buf, &self.value(*f)),
            }
        }
    }

    /// One JSON object, keys in the chosen order.
    fn json(&self, layout: &Layout, buf: &mut Vec<u8>) {
        buf.push(b'{');
        for (i, field) in layout.fields.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.push(b'"');
            buf.extend_from_slice(field.name().as_bytes());
            buf.extend_from_slice(b"\":");
            let _ = match self.value(*field) {
                Value::Text(t) => serde_json::to_writer(&mut *buf, t),
                Value::Id(id) => serde_json::to_writer(&mut *buf, id_text(id)),
                // Digits, dots, colons, brackets: nothing to escape.
                v @ (Value::Number(_) | Value::Flag(_)) => {
                    write_text(buf, &v);
                    Ok(())
                }
                // Letters, digits and dots too.
                v @ (Value::Time | Value::Client(..) | Value::Tls(_)) => {
                    buf.push(b'"');
                    write_text(buf, &v);
                    buf.push(b'"');
                    Ok(())
                }
                Value::Missing => serde_json::to_writer(&mut *buf, &()),
            };
        }
        buf.push(b'}');
    }
}

/// The request id's bytes, `-` when they are not ASCII. A header value
/// holds no control character but the tab, so ASCII is what `to_str`
/// accepts, checked a word at a time (and not a second time as UTF-8:
/// 90 instructions a line).
fn id_bytes(id: &HeaderValue) -> &[u8] {
    let bytes = id.as_bytes();
    if bytes.is_ascii() {
        bytes
    } else {
        b"-"
    }
}

/// The request id as text, for JSON.
fn id_text(id: &HeaderValue) -> &str {
    std::str::from_utf8(id_bytes(id)).unwrap_or("-")
}

fn text(v: Option<&str>) -> Value<'_> {
    v.map_or(Value::Missing, Value::Text)
}

#[inline(always)]
fn write_text(buf: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Text(t) => buf.extend_from_slice(t.as_bytes()),
        Value::Id(id) => buf.extend_from_slice(id_bytes(id)),
        Value::Tls(v) => buf.extend(v.bytes().map(|b| if b == b'_' { b'.' } else { b })),
        Value::Number(n) => buf.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        Value::Flag(b) => buf.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Time => write_now(buf),
        Value::Client(conn) => write_client(buf, &conn.forwarded_for, conn.peer),
        Value::Missing => buf.push(b'-'),
    }
}

/// `2026-12-01T11:39:12.123456Z`: the part up to the seconds is formatted
/// once per second and thread, the microseconds each time.
fn write_now(buf: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    SECOND.with_borrow_mut(|(secs, text)| {
        if *secs != since.as_secs() {
            *secs = since.as_secs();
            *text = humantime::format_rfc3339_seconds(now).to_string();
            text.pop(); // the `Z`
        }
        buf.extend_from_slice(text.as_bytes());
    });
    let micros = since.subsec_micros();
    let mut digits = *b".000000Z";
    let mut n = micros;
    for d in digits[1..7].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits);
}

/// `ip:port` (`[ip]:port` for IPv6), as `Display` shows it, from the IP's
/// text formatted once per connection (`X-Forwarded-For`'s, which leaves
/// out a link-local address's `%scope`).
fn write_client(buf: &mut Vec<u8>, ip: &HeaderValue, addr: std::net::SocketAddr) {
    if addr.is_ipv6() {
        buf.push(b'[');
        buf.extend_from_slice(ip.as_bytes());
        buf.push(b']');
    } else {
        buf.extend_from_slice(ip.as_bytes());
    }
    buf.push(b':');
    buf.extend_from_slice(itoa::Buffer::new().format(addr.port()).as_bytes());
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Wraps a response body: counts bytes, and when it ends or is dropped
/// finishes the exchange (access line, metrics, filter runs, the
/// connection's request count). The exchange is boxed: the response is
/// moved several times on its way out through hyper, and would carry its
/// half a kilobyte each time.
pub struct LoggedBody {
    inner: Body,
    exchange: Box<Exchange>,
}

impl LoggedBody {
    pub(crate) fn new(inner: Body, exchange: Box<Exchange>) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_shows_them() {
        for addr in [
            "127.0.0.1:80",
            "10.200.3.45:65535",
            "0.0.0.0:0",
            "[::1]:8080",
        ] {
            let addr: std::net::SocketAddr = addr.parse().expect("address");
            let ip = crate::http::service::forwarded_for(addr);
            let mut buf = Vec::new();
            write_client(&mut buf, &ip, addr);
            assert_eq!(String::from_utf8(buf).expect("utf-8"), addr.to_string());
        }
    }

    #[test]
    fn an_id_is_written_as_sent_when_ascii_else_as_a_dash() {
        for (id, want) in [
            (&b"b4d3411cea7677ff-1771"[..], "b4d3411cea7677ff-1771"),
            (b"req 7\tx", "req 7\tx"),
            (b"caf\xc3\xa9", "-"),
            (b"\xff\xfe", "-"),
        ] {
            let id = HeaderValue::from_bytes(id).expect("a header value");
            let mut buf = Vec::new();
            write_text(&mut buf, &Value::Id(&id));
            assert_eq!(buf, want.as_bytes());
            assert_eq!(id_text(&id), want);
        }
    }

    #[test]
    fn the_time_is_rfc3339_with_microseconds_and_current() {
        for _ in 0..3 {
            let before = std::time::SystemTime::now();
            let mut buf = Vec::new();
            write_now(&mut buf);
            let text = String::from_utf8(buf).expect("utf-8");
            assert_eq!(text.len(), "2026-12-01T11:39:12.123456Z".len(), "{text}");
            let parsed = humantime::parse_rfc3339(&text).expect("RFC 3339");
            let after = std::time::SystemTime::now();
            // Microsecond precision: the parsed time may sit up to 1 µs
            // before `before`.
            let floor = before - std::time::Duration::from_micros(1);
            assert!(parsed >= floor && parsed <= after, "{text}");
        }
    }
}
