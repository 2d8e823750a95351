//! Span export off the request path: finished spans go through a bounded
//! queue to one export thread, which sends them in batches to the OTLP/HTTP
//! collector through our own hyper client (so no second HTTP stack is
//! compiled in). A full queue or a failed export drops spans and counts
//! them (`gateway_trace_spans_dropped_total`), never slowing a request.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use tokio::sync::{mpsc, oneshot};

use crate::config::TracingConfig;

/// Collector answers larger than this are an error (they are tiny).
const MAX_ANSWER: usize = 64 << 10;

/// What the export thread is asked to do.
enum Job {
    Span(Box<SpanData>),
    /// Send everything queued, then answer.
    Flush(oneshot::Sender<()>),
}

/// A span processor whose `on_end` only hands the span to the queue.
#[derive(Debug)]
pub(super) struct QueuedExport {
    jobs: mpsc::Sender<Job>,
    /// Control messages are never dropped; they wait for room instead.
    control: Mutex<Option<mpsc::Sender<Job>>>,
}

impl QueuedExport {
    /// Starts the export thread for `exporter`.
    pub(super) fn start<E: SpanExporter + 'static>(
        exporter: E,
        config: &TracingConfig,
    ) -> std::io::Result<QueuedExport> {
        let (tx, rx) = mpsc::channel(config.queue_size);
        let (batch, interval, timeout) = (
            config.batch_size,
            config.export_interval,
            config.export_timeout,
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("gateway-trace-export".into())
            .spawn(move || runtime.block_on(export_loop(exporter, rx, batch, interval, timeout)))?;
        Ok(QueuedExport {
            control: Mutex::new(Some(tx.clone())),
            jobs: tx,
        })
    }

    fn flush_within(&self, limit: Duration) -> OTelSdkResult {
        let control = self
            .control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(control) = control else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        let (done, answered) = oneshot::channel();
        // Called at shutdown from a thread outside the export runtime.
        let wait = async move {
            control
                .send(Job::Flush(done))
                .await
                .map_err(|_| OTelSdkError::AlreadyShutdown)?;
            answered.await.map_err(|_| OTelSdkError::AlreadyShutdown)
        };
        let waited = std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
                // The timer is made inside the runtime it needs.
                runtime
                    .block_on(async { tokio::time::timeout(limit, wait).await })
                    .map_err(|_| OTelSdkError::Timeout(limit))?
            })
            .join()
        });
        waited.unwrap_or_else(|_| Err(OTelSdkError::InternalFailure("flush panicked".into())))
    }
}

impl SpanProcessor for QueuedExport {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if self.jobs.try_send(Job::Span(Box::new(span))).is_err() {
            crate::metrics::trace_spans_dropped(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.flush_within(Duration::from_secs(5))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let flushed = self.flush_within(timeout);
        self.control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        flushed
    }
}

async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut jobs: mpsc::Receiver<Job>,
    batch_size: usize,
    interval: Duration,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(batch_size);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        let flush = tokio::select! {
            job = jobs.recv() => match job {
                Some(Job::Span(span)) => {
                    batch.push(*span);
                    if batch.len() < batch_size {
                        continue;
                    }
                    None
                }
                Some(Job::Flush(done)) => Some(done),
                None => return,
            },
            _ = tick.tick() => None,
        };
        // A flush also takes what is queued behind it.
        while flush.is_some() {
            match jobs.try_recv() {
                Ok(Job::Span(span)) => batch.push(*span),
                Ok(Job::Flush(other)) => {
                    let _ = other.send(());
                }
                Err(_) => break,
            }
        }
        while !batch.is_empty() {
            let take = batch.len().min(batch_size);
            let sent: Vec<SpanData> = batch.drain(..take).collect();
            let count = sent.len() as u64;
            let result = tokio::time::timeout(timeout, exporter.export(sent)).await;
            match result {
                Ok(Ok(())) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("trace export to the collector works again");
                    }
                }
                Ok(Err(error)) => {
                    crate::metrics::trace_spans_dropped(count);
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "trace export failed; spans are dropped and counted until it works again");
                    }
                }
                Err(_) => {
                    crate::metrics::trace_spans_dropped(count);
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!("trace export timed out after {timeout:?}; spans are dropped and counted until it works again");
                    }
                }
            }
        }
        if let Some(done) = flush {
            let _ = done.send(());
        }
    }
}

/// The exporter's HTTP client: hyper's, on the export thread's runtime.
#[derive(Debug, Clone)]
pub(super) struct CollectorClient {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl CollectorClient {
    pub(super) fn new(timeout: Duration) -> CollectorClient {
        CollectorClient {
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout,
        }
    }
}

impl opentelemetry_http::HttpClient for CollectorClient {
    fn send_bytes<'a, 'f>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> BoxFuture<'f, Result<http::Response<Bytes>, opentelemetry_http::HttpError>>
    where
        'a: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let send = async {
                let response = self.client.request(request.map(Full::new)).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
            };
            tokio::time::timeout(self.timeout, send)
                .await
                .map_err(|_| "the collector did not answer in time")?
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    use super::*;

    /// Holds every export until released; says when one has started.
    #[derive(Debug)]
    struct Held {
        started: std::sync::mpsc::Sender<()>,
        release: Arc<tokio::sync::Semaphore>,
        exported: Arc<AtomicUsize>,
    }

    impl SpanExporter for Held {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let _ = self.started.send(());
            let _ = self.release.acquire().await.map(|p| p.forget());
            self.exported.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn dropped_total() -> u64 {
        crate::metrics::encode(&[])
            .lines()
            .find_map(|l| l.strip_prefix("gateway_trace_spans_dropped_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_full_queue_drops_and_counts_spans_without_waiting() {
        let (started, export_started) = std::sync::mpsc::channel();
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let exported = Arc::new(AtomicUsize::new(0));
        let config = TracingConfig {
            queue_size: 2,
            batch_size: 1,
            export_interval: Duration::from_secs(3600),
            ..TracingConfig::default()
        };
        let exporter = Held {
            started,
            release: release.clone(),
            exported: exported.clone(),
        };
        let processor = QueuedExport::start(exporter, &config).expect("export thread");
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("test");
        let before = dropped_total();

        // The first span is taken by an export that does not finish...
        drop(tracer.start("first"));
        export_started
            .recv_timeout(Duration::from_secs(10))
            .expect("the export started");
        // ...so two more fill the queue and the other seven are dropped.
        for _ in 0..9 {
            drop(tracer.start("more"));
        }
        assert_eq!(dropped_total() - before, 7);

        release.add_permits(100);
        provider.force_flush().expect("flush");
        assert_eq!(exported.load(Ordering::SeqCst), 3);
    }
}
