//! Per-cluster retry and overload metrics. Clusters resolve their series
//! once when built, so the request path only touches atomics; the gauges
//! are the circuit breakers' own counters, so what is exported is exactly
//! what the limits are checked against.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    cluster: String,
    reason: String,
}

struct Families {
    registry: Registry,
    requests: Family<ClusterLabel, Gauge>,
    pending: Family<ClusterLabel, Gauge>,
    connections: Family<ClusterLabel, Gauge>,
    retries_active: Family<ClusterLabel, Gauge>,
    retries_peak: Family<ClusterLabel, Gauge>,
    retries: Family<ReasonLabels, Counter>,
    budget_exhausted: Family<ClusterLabel, Counter>,
    overloaded: Family<ReasonLabels, Counter>,
}

fn families() -> &'static Families {
    static FAMILIES: OnceLock<Families> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        let mut registry = Registry::with_prefix("gateway_cluster");
        let f = Families {
            requests: Family::default(),
            pending: Family::default(),
            connections: Family::default(),
            retries_active: Family::default(),
            retries_peak: Family::default(),
            retries: Family::default(),
            budget_exhausted: Family::default(),
            overloaded: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests_active",
            "Requests in flight to the cluster (circuit breaker max_requests)",
            f.requests.clone(),
        );
        registry.register(
            "pending",
            "Requests waiting for a new upstream connection (circuit breaker max_pending)",
            f.pending.clone(),
        );
        registry.register(
            "connections",
            "HTTP/1.1 connections open to the cluster's endpoints (circuit breaker max_connections)",
            f.connections.clone(),
        );
        registry.register(
            "retries_active",
            "Retries in flight (bounded by the retry budget)",
            f.retries_active.clone(),
        );
        registry.register(
            "retries_peak",
            "Most retries in flight at once since the gateway started",
            f.retries_peak.clone(),
        );
        registry.register(
            "retries",
            "Retries by what failed (connect_failure, reset, timeout, status, stale_connection)",
            f.retries.clone(),
        );
        registry.register(
            "retry_budget_exhausted",
            "Retries not made because the retry budget was spent",
            f.budget_exhausted.clone(),
        );
        registry.register(
            "overloaded",
            "Requests answered 503 by a circuit breaker, by limit",
            f.overloaded.clone(),
        );
        Families { registry, ..f }
    })
}

/// One cluster's series.
#[derive(Clone, Debug)]
pub struct ClusterTraffic {
    pub requests: Gauge,
    pub pending: Gauge,
    pub connections: Gauge,
    pub retries_active: Gauge,
    pub retries_peak: Gauge,
    pub budget_exhausted: Counter,
    cluster: String,
}

impl ClusterTraffic {
    pub fn new(cluster: &str) -> Self {
        let f = families();
        let label = ClusterLabel {
            cluster: cluster.to_owned(),
        };
        Self {
            requests: f.requests.get_or_create(&label).clone(),
            pending: f.pending.get_or_create(&label).clone(),
            connections: f.connections.get_or_create(&label).clone(),
            retries_active: f.retries_active.get_or_create(&label).clone(),
            retries_peak: f.retries_peak.get_or_create(&label).clone(),
            budget_exhausted: f.budget_exhausted.get_or_create(&label).clone(),
            cluster: label.cluster,
        }
    }

    /// Counts a retry made because of `reason` (rare: the label is built
    /// here).
    pub fn retried(&self, reason: &'static str) {
        families()
            .retries
            .get_or_create(&ReasonLabels {
                cluster: self.cluster.clone(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a request refused by the breaker's `limit`.
    pub fn overloaded(&self, limit: &'static str) {
        families()
            .overloaded
            .get_or_create(&ReasonLabels {
                cluster: self.cluster.clone(),
                reason: limit.to_owned(),
            })
            .inc();
    }
}

/// Appends these metrics in Prometheus text format.
pub fn encode(out: &mut String) {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut text, &families().registry).is_ok() {
        out.push_str(&text);
    }
}
