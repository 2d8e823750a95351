//! Metrics of `protocol = "redis"` clusters: commands by result, their
//! latency, and whether each cluster is reachable.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandResult {
    cluster: String,
    result: String,
}

struct RedisMetrics {
    registry: Registry,
    commands: Family<CommandResult, Counter>,
    latency: Family<ClusterLabel, Histogram>,
    up: Family<ClusterLabel, Gauge>,
    state_changes: Family<ClusterLabel, Counter>,
}

fn metrics() -> &'static RedisMetrics {
    static METRICS: OnceLock<RedisMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("gateway_redis");
        let commands = Family::<CommandResult, Counter>::default();
        registry.register(
            "commands",
            "Commands sent to Redis clusters by result (ok, error: Redis answered an error, unavailable, timeout)",
            commands.clone(),
        );
        let latency = Family::<ClusterLabel, Histogram>::new_with_constructor(|| {
            // 100 µs to ~1.6 s: loopback Redis answers in well under 1 ms.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 2.0, 15,
            ))
        });
        registry.register(
            "command_duration_seconds",
            "Time from sending a command to its answer",
            latency.clone(),
        );
        let up = Family::<ClusterLabel, Gauge>::default();
        registry.register(
            "up",
            "1 while the cluster answers, 0 while it is unreachable",
            up.clone(),
        );
        let state_changes = Family::<ClusterLabel, Counter>::default();
        registry.register(
            "state_changes",
            "Times a cluster went from reachable to unreachable or back",
            state_changes.clone(),
        );
        RedisMetrics {
            registry,
            commands,
            latency,
            up,
            state_changes,
        }
    })
}

/// One Redis cluster's series, resolved once when the cluster is built.
#[derive(Clone, Debug)]
pub struct RedisCounters {
    pub ok: Counter,
    pub error: Counter,
    pub unavailable: Counter,
    pub timeout: Counter,
    pub latency: Histogram,
    pub up: Gauge,
    pub state_changes: Counter,
}

/// The series of cluster `name`.
pub fn counters(name: &str) -> RedisCounters {
    let m = metrics();
    let result = |r: &str| {
        m.commands
            .get_or_create(&CommandResult {
                cluster: name.into(),
                result: r.into(),
            })
            .clone()
    };
    let label = ClusterLabel {
        cluster: name.into(),
    };
    RedisCounters {
        ok: result("ok"),
        error: result("error"),
        unavailable: result("unavailable"),
        timeout: result("timeout"),
        latency: m.latency.get_or_create(&label).clone(),
        up: m.up.get_or_create(&label).clone(),
        state_changes: m.state_changes.get_or_create(&label).clone(),
    }
}

/// Appends the Redis series (if any cluster ever existed) in text format.
pub(super) fn encode(out: &mut String) {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode_registry(&mut text, &metrics().registry).is_ok() {
        out.push_str(&text);
    }
}
