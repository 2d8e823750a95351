//! Distributed tracing: W3C trace context carried to upstreams, spans for
//! each request, filter call and upstream attempt, exported over OTLP/HTTP
//! (see `docs/tracing.md`). When `[tracing]` is off, a request pays one
//! atomic load and no allocation.

mod export;
mod span;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::TracingConfig;

pub use span::{FilterCall, RequestTrace, UpstreamAttempt};

/// Tracing in force (absent when off).
struct Tracing {
    config: TracingConfig,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

/// The fast check every request makes first.
static ENABLED: AtomicBool = AtomicBool::new(false);

fn current() -> &'static ArcSwapOption<Tracing> {
    static CURRENT: ArcSwapOption<Tracing> = ArcSwapOption::const_empty();
    &CURRENT
}

/// The tracing in force, if on.
fn active() -> Option<Arc<Tracing>> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    current().load_full()
}

/// Applies `[tracing]` (at start and on every reload); the previous
/// exporter, if replaced, sends what it holds first.
pub fn configure(config: &TracingConfig) {
    let previous = current().load_full();
    if previous.as_ref().map(|t| &t.config) == Some(config) {
        return;
    }
    let next = if config.enabled {
        match start(config) {
            Ok(tracing) => Some(Arc::new(tracing)),
            Err(error) => {
                tracing::error!(%error, "cannot start trace export; tracing stays off");
                None
            }
        }
    } else {
        None
    };
    ENABLED.store(next.is_some(), Ordering::Relaxed);
    current().store(next);
    if let Some(previous) = previous {
        // Off the control runtime: flushing waits on the export thread.
        let _ = std::thread::Builder::new()
            .name("gateway-trace-stop".into())
            .spawn(move || {
                let _ = previous
                    .provider
                    .shutdown_with_timeout(Duration::from_secs(5));
            });
    }
}

/// Sends the spans still queued (at most `limit`), at process exit.
pub fn shutdown(limit: Duration) {
    ENABLED.store(false, Ordering::Relaxed);
    if let Some(tracing) = current().swap(None) {
        let _ = tracing.provider.shutdown_with_timeout(limit);
    }
}

fn start(config: &TracingConfig) -> anyhow::Result<Tracing> {
    let resource = Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .build();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.clone())
        .with_timeout(config.export_timeout)
        .with_http_client(export::CollectorClient::new(config.export_timeout))
        .build()?;
    opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
    let processor = export::QueuedExport::start(exporter, config)?;
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sampling_ratio,
        ))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("gateway");
    tracing::info!(endpoint = %config.endpoint, ratio = config.sampling_ratio, "tracing on");
    Ok(Tracing {
        config: config.clone(),
        provider,
        tracer,
        propagator: TraceContextPropagator::new(),
    })
}
