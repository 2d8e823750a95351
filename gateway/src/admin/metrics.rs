//! The gateway's own Prometheus metrics. One process-wide registry; the
//! request path only touches atomics and a label lookup.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::http::access_log::AccessRecord;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: String,
    route: String,
    cluster: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    listener: String,
    error: String,
}

struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    duration: Family<ListenerLabel, Histogram>,
    active_connections: Gauge,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests by listener, route, cluster and status", requests.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "request_errors",
            "Requests that failed in the gateway, by kind (upstream_connect_failure, upstream_timeout, no_route, ...)",
            errors.clone(),
        );
        let duration = Family::<ListenerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register("request_duration_seconds", "Request duration until the response body ended", duration.clone());
        let active_connections = Gauge::default();
        registry.register("active_connections", "Downstream connections open", active_connections.clone());
        Metrics {
            registry,
            requests,
            errors,
            duration,
            active_connections,
        }
    })
}

/// Counts a finished request.
pub fn record_request(record: &AccessRecord) {
    let m = metrics();
    m.requests
        .get_or_create(&RequestLabels {
            listener: record.listener.to_string(),
            route: record.route.clone().unwrap_or_default(),
            cluster: record.cluster.clone().unwrap_or_default(),
            status: record.status,
        })
        .inc();
    if let Some(error) = record.error {
        m.errors
            .get_or_create(&ErrorLabels {
                listener: record.listener.to_string(),
                error: error.to_string(),
            })
            .inc();
    }
    m.duration
        .get_or_create(&ListenerLabel {
            listener: record.listener.to_string(),
        })
        .observe(record.started.elapsed().as_secs_f64());
}

pub fn connection_opened() {
    metrics().active_connections.inc();
}

pub fn connection_closed() {
    metrics().active_connections.dec();
}

/// The registry in Prometheus text format.
pub fn encode() -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    out
}
