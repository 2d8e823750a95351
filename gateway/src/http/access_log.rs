//! One structured line per request, written when the response body has
//! been sent (or abandoned), so duration and bytes are the real ones.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::filter::ChainRun;
use crate::http::body::{Body, BoxError};
use crate::listener::ConnActivity;

/// What the access log says about one request.
pub struct AccessRecord {
    pub listener: Arc<str>,
    pub id: String,
    pub method: http::Method,
    pub path: String,
    pub version: http::Version,
    pub client: std::net::SocketAddr,
    pub started: Instant,
    pub status: u16,
    pub route: Option<String>,
    pub cluster: Option<String>,
    pub endpoint: Option<Arc<str>>,
    pub error: Option<&'static str>,
    pub bytes_in: Arc<AtomicU64>,
    pub enabled: bool,
}

impl AccessRecord {
    fn emit(&self, bytes_out: u64, completed: bool) {
        crate::admin::metrics::record_request(self);
        if !self.enabled {
            return;
        }
        tracing::info!(
            target: "access",
            listener = &*self.listener,
            id = %self.id,
            client = %self.client,
            method = %self.method,
            path = %self.path,
            protocol = ?self.version,
            status = self.status,
            route = self.route.as_deref().unwrap_or("-"),
            cluster = self.cluster.as_deref().unwrap_or("-"),
            endpoint = self.endpoint.as_deref().unwrap_or("-"),
            error = self.error.unwrap_or("-"),
            duration_us = self.started.elapsed().as_micros() as u64,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            completed,
        );
    }
}

/// Wraps a response body: counts bytes, and when it ends or is dropped
/// writes the access line, ends the filter runs and marks the connection's
/// request done.
pub struct LoggedBody {
    inner: Body,
    record: Option<AccessRecord>,
    runs: Vec<ChainRun>,
    activity: Arc<ConnActivity>,
    bytes_out: u64,
    ended: bool,
}

impl LoggedBody {
    pub fn new(
        inner: Body,
        record: AccessRecord,
        runs: Vec<ChainRun>,
        activity: Arc<ConnActivity>,
    ) -> Self {
        Self {
            inner,
            record: Some(record),
            runs,
            activity,
            bytes_out: 0,
            ended: false,
        }
    }

    fn finish(&mut self) {
        if let Some(record) = self.record.take() {
            record.emit(self.bytes_out, self.ended);
            for run in self.runs.drain(..) {
                run.finish();
            }
            self.activity.request_done();
        }
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.finish();
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
                    this.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => this.finish(),
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

/// Counts the bytes of a request body as they stream upstream.
pub struct CountedBody {
    inner: Body,
    count: Arc<AtomicU64>,
}

impl CountedBody {
    pub fn new(inner: Body, count: Arc<AtomicU64>) -> Self {
        Self { inner, count }
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
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
