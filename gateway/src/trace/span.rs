//! The spans of one request: the request itself (server), each filter call
//! and each upstream attempt (client) as its children. Each is `None` when
//! tracing is off, so callers pay a branch and nothing else.

use std::borrow::Cow;
use std::sync::Arc;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};

use super::Tracing;

/// The request's span and the tracing it belongs to.
pub struct RequestTrace {
    tracing: Arc<Tracing>,
    /// Holds the request span; parent of every other span of the request.
    cx: Context,
    method: http::Method,
    attempts: u32,
}

impl RequestTrace {
    /// Starts the request span, continuing the caller's trace when the
    /// request carries a valid `traceparent` (else a new trace).
    pub fn start<B>(
        req: &http::Request<B>,
        listener: &str,
        request_id: &http::HeaderValue,
    ) -> Option<RequestTrace> {
        let tracing = super::active()?;
        let parent = tracing.propagator.extract(&HeaderExtractor(req.headers()));
        let attributes = vec![
            KeyValue::new("http.request.method", req.method().as_str().to_owned()),
            KeyValue::new("url.path", req.uri().path().to_owned()),
            KeyValue::new("network.protocol.version", version(req.version())),
            KeyValue::new("gateway.listener", listener.to_owned()),
            KeyValue::new(
                "gateway.request_id",
                request_id.to_str().unwrap_or_default().to_owned(),
            ),
        ];
        let span = tracing
            .tracer
            .span_builder(req.method().as_str().to_owned())
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&tracing.tracer, &parent);
        Some(RequestTrace {
            cx: parent.with_span(span),
            tracing,
            method: req.method().clone(),
            attempts: 0,
        })
    }

    /// The trace id, as `traceparent` spells it (for the access log).
    pub fn trace_id(&self) -> String {
        self.cx.span().span_context().trace_id().to_string()
    }

    /// Ends the request span with what the request came to.
    pub fn finish(
        &self,
        status: u16,
        route: Option<&str>,
        cluster: Option<&str>,
        error: Option<&str>,
    ) {
        let span = self.cx.span();
        if let Some(route) = route {
            span.update_name(format!("{} {route}", self.method));
        }
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if let Some(route) = route {
            span.set_attribute(KeyValue::new("gateway.route", route.to_owned()));
        }
        if let Some(cluster) = cluster {
            span.set_attribute(KeyValue::new("gateway.cluster", cluster.to_owned()));
        }
        if let Some(error) = error {
            span.set_attribute(KeyValue::new("error.type", error.to_owned()));
        }
        // Server spans: 5xx are the gateway's errors, 4xx the client's.
        if status >= 500 {
            span.set_status(Status::error(error.unwrap_or("server error").to_owned()));
        }
        span.end();
    }

    /// The context holding the request span, parent of filter calls.
    pub fn context(&self) -> &Context {
        &self.cx
    }
}

/// One call into a filter; the span (if tracing) ends when this is dropped.
/// Boxed, as `UpstreamAttempt`: it lives in every filter step's future.
pub struct FilterCall(Option<Box<opentelemetry_sdk::trace::Span>>);

impl FilterCall {
    /// Starts the span of filter `filter`'s `phase` callback
    /// (`request_headers`, `response_headers`, ...).
    pub fn start(parent: Option<&Context>, filter: &str, phase: &'static str) -> FilterCall {
        let Some(parent) = parent else {
            return FilterCall(None);
        };
        let Some(tracing) = super::active() else {
            return FilterCall(None);
        };
        let span = tracing
            .tracer
            .span_builder(format!("filter {filter} {phase}"))
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("gateway.filter.name", filter.to_owned()),
                KeyValue::new("gateway.filter.phase", phase),
            ])
            .start_with_context(&tracing.tracer, parent);
        FilterCall(Some(Box::new(span)))
    }

    /// The filter answered the request itself.
    pub fn answered(&mut self, status: u16) {
        if let Some(span) = &mut self.0 {
            span.set_attribute(KeyValue::new(
                "gateway.filter.local_response",
                i64::from(status),
            ));
        }
    }
}

/// One attempt at the upstream: its span is the parent named in the
/// `traceparent` the upstream receives; it ends when this is dropped.
/// Boxed: the span is some 300 bytes that every untraced request's
/// future would otherwise carry.
pub struct UpstreamAttempt(Option<Box<Attempt>>);

struct Attempt {
    span: opentelemetry_sdk::trace::Span,
    status: Option<u16>,
}

impl UpstreamAttempt {
    /// An attempt of a request that is not traced: no span.
    pub fn untraced() -> UpstreamAttempt {
        UpstreamAttempt(None)
    }

    /// Starts attempt span on `cluster` and writes its `traceparent` (and
    /// the caller's `tracestate`) into the upstream request's headers.
    pub fn start(
        trace: Option<&mut RequestTrace>,
        cluster: &str,
        headers: &mut http::HeaderMap,
    ) -> UpstreamAttempt {
        let Some(trace) = trace else {
            return UpstreamAttempt(None);
        };
        trace.attempts += 1;
        let tracer = &trace.tracing.tracer;
        let span = tracer
            .span_builder(format!("upstream {cluster}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gateway.cluster", cluster.to_owned()),
                KeyValue::new("gateway.attempt", i64::from(trace.attempts)),
            ])
            .start_with_context(tracer, &trace.cx);
        let cx = Context::new().with_remote_span_context(span.span_context().clone());
        // A caller's `tracestate` without a valid `traceparent` belongs to
        // no trace we continue.
        headers.remove("tracestate");
        trace
            .tracing
            .propagator
            .inject_context(&cx, &mut HeaderInjector(headers));
        UpstreamAttempt(Some(Box::new(Attempt { span, status: None })))
    }

    /// The endpoint the attempt's connection goes to.
    pub fn endpoint(&mut self, endpoint: &str) {
        if let Some(a) = &mut self.0 {
            a.span
                .set_attribute(KeyValue::new("server.address", endpoint.to_owned()));
        }
    }

    /// The upstream's response status.
    pub fn response(&mut self, status: u16) {
        if let Some(a) = &mut self.0 {
            a.status = Some(status);
            a.span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        match self.status {
            None => self
                .span
                .set_status(Status::error("no response from the upstream")),
            Some(s) if s >= 500 => self
                .span
                .set_status(Status::error(Cow::Owned(format!("upstream answered {s}")))),
            Some(_) => {}
        }
        self.span.end();
    }
}

fn version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}
