//! gRPC requests: the answers the gateway itself gives them (HTTP 200 with
//! `grpc-status` and `grpc-message`, as Envoy sends), and the deadline
//! their `grpc-timeout` sets on the upstream call.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt as _;

use super::body::{self, Body, BoxError};
use super::error::ProxyError;

/// gRPC status codes the gateway answers with.
pub mod code {
    pub const UNKNOWN: u32 = 2;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    pub const UNAUTHENTICATED: u32 = 16;
}

/// Marks a response that came from the upstream (not answered here), so
/// that only the gateway's own answers to gRPC requests are converted.
#[derive(Clone, Copy)]
pub struct FromUpstream;

/// On a converted answer: the HTTP status it stands for, which the access
/// log and metrics record (a gRPC client gets 200 either way).
#[derive(Clone, Copy)]
pub struct AnsweredAs(pub StatusCode);

/// The status to log for `response`: the HTTP status a converted gRPC
/// answer stands for, else its own.
pub fn logged_status<B>(response: &Response<B>) -> StatusCode {
    response
        .extensions()
        .get::<AnsweredAs>()
        .map_or(response.status(), |a| a.0)
}

/// Whether a request (or response) is gRPC: `content-type:
/// application/grpc`, `application/grpc+proto` and the like.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(super::head::is_grpc_type)
}

/// The gRPC status for an HTTP status, as Envoy and the gRPC spec map them.
pub fn code_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The deadline a request's `grpc-timeout` asks for (`<digits><unit>`,
/// at most 8 digits, unit one of `H M S m u n`); `None` when absent or
/// malformed (ignored, as gRPC servers do).
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(split);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A Trailers-Only gRPC answer: HTTP 200, the status and message in the
/// headers, no body.
pub fn status_response(code: u32, message: &str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(message) = HeaderValue::from_str(&encode_message(message)) {
        if !message.is_empty() {
            headers.insert("grpc-message", message);
        }
    }
    response
}

/// The gRPC form of a failure: a timeout is DEADLINE_EXCEEDED, the rest
/// follows the HTTP status the failure has for other clients; its one
/// line is the message, and headers such as `x-gateway-overloaded` stay.
pub fn error_response(error: &ProxyError) -> Response<Body> {
    let code = match error {
        ProxyError::UpstreamTimeout { .. } | ProxyError::RequestTimeout => code::DEADLINE_EXCEEDED,
        _ => code_for(error.status()),
    };
    convert(error.to_response(), code)
}

/// Converts a local answer (a filter's, a direct route's) to a gRPC
/// request into a gRPC error, keeping its other headers; an answer that
/// already is gRPC passes as it is.
pub fn local_answer(response: Response<Body>) -> Response<Body> {
    if is_grpc(response.headers()) || response.headers().contains_key("grpc-status") {
        return response;
    }
    let code = code_for(response.status());
    convert(response, code)
}

/// `response` as a gRPC error with `code`, its body's text as the message.
fn convert(response: Response<Body>, code: u32) -> Response<Body> {
    let (parts, body) = response.into_parts();
    // Local answers are in memory; one that is not (or is long) gives
    // way to the status's reason phrase.
    let text = match http_body_util::Limited::new(body, 1024)
        .collect()
        .now_or_never()
    {
        Some(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()).trim().to_owned(),
        _ => parts.status.canonical_reason().unwrap_or("").to_owned(),
    };
    let mut grpc = status_response(code, &text);
    grpc.extensions_mut().insert(AnsweredAs(parts.status));
    for (name, value) in &parts.headers {
        // The answer's own framing goes; HTTP/2 forbids `connection`.
        if name != header::CONTENT_TYPE
            && name != header::CONTENT_LENGTH
            && name != header::CONNECTION
        {
            grpc.headers_mut().append(name, value.clone());
        }
    }
    grpc
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and
/// `%` itself (gRPC over HTTP/2, "Responses").
fn encode_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A response body that ends the call with DEADLINE_EXCEEDED trailers
/// when the request's `grpc-timeout` runs out before the upstream is done
/// (dropping the upstream stream, which resets it).
pub fn with_deadline(response: Response<Body>, deadline: tokio::time::Instant) -> Response<Body> {
    response.map(|inner| {
        body::boxed(DeadlineBody {
            inner: Some(inner),
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        })
    })
}

struct DeadlineBody {
    inner: Option<Body>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => {}
            Poll::Ready(None) => {
                this.inner = None;
                return Poll::Ready(None);
            }
            ready => return ready,
        }
        if std::future::Future::poll(this.timer.as_mut(), cx).is_pending() {
            return Poll::Pending;
        }
        this.inner = None;
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from(code::DEADLINE_EXCEEDED));
        trailers.insert(
            "grpc-message",
            HeaderValue::from_static("deadline exceeded"),
        );
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types_are_recognised() {
        let with = |t: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(t));
            is_grpc(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("application/grpc; charset=utf-8"));
        assert!(!with("application/grpcx"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn grpc_timeout_units_and_bad_values() {
        let parse = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            timeout(&h)
        };
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("10u"), Some(Duration::from_micros(10)));
        assert_eq!(parse("123456789S"), None);
        assert_eq!(parse("S"), None);
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("-5S"), None);
    }

    #[test]
    fn http_statuses_map_as_envoy_maps_them() {
        assert_eq!(code_for(StatusCode::UNAUTHORIZED), code::UNAUTHENTICATED);
        assert_eq!(code_for(StatusCode::FORBIDDEN), code::PERMISSION_DENIED);
        assert_eq!(code_for(StatusCode::NOT_FOUND), code::UNIMPLEMENTED);
        assert_eq!(code_for(StatusCode::SERVICE_UNAVAILABLE), code::UNAVAILABLE);
        assert_eq!(code_for(StatusCode::IM_A_TEAPOT), code::UNKNOWN);
        let timeout = ProxyError::UpstreamTimeout {
            cluster: "c".into(),
            endpoint: "e".into(),
        };
        let r = error_response(&timeout);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "4");
        assert_eq!(r.headers()["grpc-message"], "upstream timed out");
        assert_eq!(logged_status(&r), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            error_response(&ProxyError::NoRoute).headers()["grpc-status"],
            "12"
        );
        assert_eq!(encode_message("50% é"), "50%25 %C3%A9");
    }
}
