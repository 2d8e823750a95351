//! The gateway's own Prometheus metrics, below every module that records
//! them (the admin listener only reads them). Request series are kept per
//! worker ([`requests`]); the rest are in one registry of atomics.

pub mod redis;
pub mod requests;
pub mod traffic;

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    listener: String,
    error: String,
}

struct Metrics {
    registry: Registry,
    errors: Family<ErrorLabels, Counter>,
    active_connections: Gauge,
    config_reloads: Family<ResultLabel, Counter>,
    filter_reloads: Family<FilterResult, Counter>,
    filter_calls: Family<FilterResult, Counter>,
    timeouts: Family<KindLabel, Counter>,
    filter_unknown_cluster: Family<FilterLabel, Counter>,
    trace_spans_dropped: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilterLabel {
    filter: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilterResult {
    filter: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("gateway");
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "request_errors",
            "Requests that failed in the gateway, by kind (upstream_connect_failure, upstream_timeout, no_route, ...)",
            errors.clone(),
        );
        let active_connections = Gauge::default();
        registry.register("active_connections", "Downstream connections open", active_connections.clone());
        let config_reloads = Family::<ResultLabel, Counter>::default();
        registry.register("config_reloads", "Configuration reloads by result (ok, rejected)", config_reloads.clone());
        let filter_reloads = Family::<FilterResult, Counter>::default();
        registry.register("filter_reloads", "Filter loads from a folder by filter and result (ok, rejected)", filter_reloads.clone());
        let filter_calls = Family::<FilterResult, Counter>::default();
        registry.register(
            "filter_calls",
            "Calls into filters by filter and result (ok, trap, deadline_exceeded, memory_limit)",
            filter_calls.clone(),
        );
        let timeouts = Family::<KindLabel, Counter>::default();
        registry.register(
            "timeouts",
            "Transfers cut by an idle timeout, by kind (client_send, tunnel_idle, upstream_body_idle)",
            timeouts.clone(),
        );
        let filter_unknown_cluster = Family::<FilterLabel, Counter>::default();
        registry.register(
            "filter_unknown_cluster",
            "Requests a filter routed to a cluster that is not configured (answered 503), by filter",
            filter_unknown_cluster.clone(),
        );
        let trace_spans_dropped = Counter::default();
        registry.register(
            "trace_spans_dropped",
            "Trace spans dropped because the export queue was full or the collector failed",
            trace_spans_dropped.clone(),
        );
        Metrics {
            timeouts,
            filter_unknown_cluster,
            trace_spans_dropped,
            filter_calls,
            filter_reloads,
            config_reloads,
            registry,
            errors,
            active_connections,
        }
    })
}

/// Counts a finished request: its series on the calling worker, and its
/// error kind (rare) in the registry.
pub fn record_request(
    labels: &requests::RequestLabels,
    duration: std::time::Duration,
    error: Option<&'static str>,
) {
    requests::record(labels, duration);
    if let Some(error) = error {
        metrics()
            .errors
            .get_or_create(&ErrorLabels {
                listener: labels.listener.to_string(),
                error: error.to_string(),
            })
            .inc();
    }
}

/// The counters of one filter's guest calls, resolved once at load so the
/// request path only does atomic increments.
#[derive(Clone, Debug)]
pub struct FilterCounters {
    pub ok: Counter,
    pub deadline: Counter,
    pub memory: Counter,
    pub trap: Counter,
}

impl FilterCounters {
    /// Counts a failed call by what its message says went wrong.
    pub fn fault(&self, message: &str) {
        if message.contains("deadline") {
            self.deadline.inc();
        } else if message.contains("memory") {
            self.memory.inc();
        } else {
            self.trap.inc();
        }
    }
}

/// The call counters of filter `name`.
pub fn filter_counters(name: &str) -> FilterCounters {
    let m = metrics();
    let get = |outcome: &str| {
        m.filter_calls
            .get_or_create(&FilterResult {
                filter: name.into(),
                result: outcome.into(),
            })
            .clone()
    };
    FilterCounters {
        ok: get("ok"),
        deadline: get("deadline_exceeded"),
        memory: get("memory_limit"),
        trap: get("trap"),
    }
}

/// Counts a filter (re)load from a folder.
pub fn filter_reload(filter: &str, ok: bool) {
    let result = if ok { "ok" } else { "rejected" };
    metrics()
        .filter_reloads
        .get_or_create(&FilterResult {
            filter: filter.into(),
            result: result.into(),
        })
        .inc();
}

/// Counts a request filter `filter` routed to a cluster that does not exist.
pub fn filter_unknown_cluster(filter: &str) {
    metrics()
        .filter_unknown_cluster
        .get_or_create(&FilterLabel {
            filter: filter.into(),
        })
        .inc();
}

/// Counts trace spans that were never exported.
pub fn trace_spans_dropped(n: u64) {
    metrics().trace_spans_dropped.inc_by(n);
}

/// Counts a configuration reload.
pub fn config_reload(ok: bool) {
    let result = if ok { "ok" } else { "rejected" };
    metrics()
        .config_reloads
        .get_or_create(&ResultLabel {
            result: result.into(),
        })
        .inc();
}

/// A transfer was cut because one side stopped moving for too long.
pub fn timeout(kind: &'static str) {
    metrics().timeouts.get_or_create(&KindLabel { kind }).inc();
}

pub fn connection_opened() {
    metrics().active_connections.inc();
}

pub fn connection_closed() {
    metrics().active_connections.dec();
}

/// The registry in Prometheus text format, followed by the metrics the
/// filters defined through the ABI (`proxy_define_metric`).
pub fn encode(filters: &[crate::filter::MetricSnapshot]) -> String {
    encode_with(filters, |_| {})
}

/// [`encode`] with more families (`extra`, e.g. the endpoints') written
/// before the end marker.
pub fn encode_with(
    filters: &[crate::filter::MetricSnapshot],
    extra: impl FnOnce(&mut String),
) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut out, &metrics().registry).is_err() {
        out.clear();
    }
    requests::encode(&mut out);
    redis::encode(&mut out);
    traffic::encode(&mut out);
    encode_worker_connections(&mut out);
    extra(&mut out);
    encode_filter_metrics(&mut out, filters);
    crate::service::metrics::encode(&mut out);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

/// Connections each worker serves, over every listener: how evenly the
/// workers share them (`listener::Gate`). One slot per worker.
fn worker_connections() -> &'static [std::sync::atomic::AtomicI64] {
    static WORKERS: std::sync::OnceLock<Box<[std::sync::atomic::AtomicI64]>> =
        std::sync::OnceLock::new();
    WORKERS.get_or_init(|| {
        (0..crate::worker::count())
            .map(|_| std::sync::atomic::AtomicI64::new(0))
            .collect()
    })
}

/// A connection starts (`1`) or ends (`-1`) on `worker`.
pub fn worker_connection(worker: usize, delta: i64) {
    if let Some(n) = worker_connections().get(worker) {
        n.fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
    }
}

fn encode_worker_connections(out: &mut String) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "# HELP gateway_worker_connections Connections each worker serves."
    );
    let _ = writeln!(out, "# TYPE gateway_worker_connections gauge");
    for (i, n) in worker_connections().iter().enumerate() {
        let n = n.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(out, "gateway_worker_connections{{worker=\"{i}\"}} {n}");
    }
}

fn encode_filter_metrics(out: &mut String, filters: &[crate::filter::MetricSnapshot]) {
    use crate::filter::MetricKind;
    use requests::escape;
    use std::fmt::Write as _;
    for (kind, family, help) in [
        (
            MetricKind::Counter,
            "gateway_filter_counter",
            "Counters filters defined (proxy_define_metric)",
        ),
        (
            MetricKind::Gauge,
            "gateway_filter_gauge",
            "Gauges filters defined (proxy_define_metric)",
        ),
        (
            MetricKind::Histogram,
            "gateway_filter_histogram",
            "Histograms filters defined, as sum and count",
        ),
    ] {
        let of_kind: Vec<_> = filters.iter().filter(|m| m.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        let type_name = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "summary",
        };
        let _ = writeln!(out, "# HELP {family} {help}.");
        let _ = writeln!(out, "# TYPE {family} {type_name}");
        for m in of_kind {
            let labels = format!(
                "filter=\"{}\",name=\"{}\"",
                escape(&m.filter),
                escape(&m.name)
            );
            match kind {
                MetricKind::Counter => {
                    let _ = writeln!(out, "{family}_total{{{labels}}} {}", m.value);
                }
                MetricKind::Gauge => {
                    let _ = writeln!(out, "{family}{{{labels}}} {}", m.value);
                }
                MetricKind::Histogram => {
                    let _ = writeln!(out, "{family}_sum{{{labels}}} {}", m.value);
                    let _ = writeln!(out, "{family}_count{{{labels}}} {}", m.count);
                }
            }
        }
    }
}
