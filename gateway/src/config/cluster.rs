//! `[[cluster]]`: a named set of upstream endpoints and how to reach them.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::health_check::HealthCheckConfig;
use super::redis::RedisConfig;
use super::retry::{CircuitBreakerConfig, RetryBudgetConfig, RetryConfig};
use super::tls::UpstreamTlsConfig;
use super::traffic::EndpointConfig;

/// How a cluster picks an endpoint for each request (or connection, on L4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BalancePolicy {
    #[default]
    RoundRobin,
    /// Power of two choices on requests in flight.
    LeastRequest,
    Random,
    /// Consistent hashing on a request key (`hash_header`, `hash_cookie`
    /// or the filter property `gateway.hash_key`).
    RingHash,
}

/// The protocol spoken to a cluster's endpoints (HTTP versions:
/// docs/traffic-grpc.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 in cleartext; over TLS the endpoint's ALPN choice decides.
    #[default]
    Auto,
    /// HTTP/1.1 only (over TLS, ALPN offers `http/1.1` alone).
    Http1,
    /// HTTP/2 over TLS, ALPN `h2`: needs `[cluster.tls]`.
    H2,
    /// HTTP/2 in cleartext with prior knowledge (gRPC without TLS).
    H2c,
    /// Redis (RESP): not a route target; filters reach it through
    /// `proxy_http_call` (the body convention is in docs/abi.md).
    Redis,
}

/// One cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    /// `host:port` of each endpoint, or `{ address, weight }`.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    #[serde(default)]
    pub balance: BalancePolicy,
    #[serde(default = "default_connect_timeout", with = "crate::config::duration")]
    pub connect_timeout: Duration,
    /// Time until the upstream's response headers arrive; then 504.
    #[serde(default = "default_request_timeout", with = "crate::config::duration")]
    pub request_timeout: Duration,
    /// Longest the upstream may go without sending response body data
    /// once the body has begun (nginx's `proxy_read_timeout`); then the
    /// response is cut. 0s: no limit.
    #[serde(
        default = "default_response_idle_timeout",
        with = "crate::config::duration"
    )]
    pub response_idle_timeout: Duration,
    /// Pooled keep-alive connections unused this long are closed.
    #[serde(default = "default_idle_timeout", with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// Idle pooled connections kept per endpoint.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_endpoint: usize,
    /// Passive health: consecutive connect failures that eject an endpoint.
    #[serde(default = "default_eject_after")]
    pub eject_after_failures: u32,
    /// How long an ejected endpoint stays out of rotation.
    #[serde(default = "default_ejection_time", with = "crate::config::duration")]
    pub ejection_time: Duration,
    /// Speak TLS to the endpoints.
    #[serde(default)]
    pub tls: Option<UpstreamTlsConfig>,
    /// `auto` (the default), `http1`, `h2`, `h2c` or `redis`; spanned so
    /// that a problem with it (e.g. `h2` without `[cluster.tls]`) is
    /// reported at its line.
    #[serde(default)]
    pub protocol: Option<Spanned<UpstreamProtocol>>,
    /// `[cluster.redis]`: credentials, database, connections; only with
    /// `protocol = "redis"`.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// Retries, their budget and the overload limits (`config::retry`).
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub retry_budget: RetryBudgetConfig,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// HTTP/2: streams one upstream connection carries at once; beyond it
    /// another connection is opened.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: NonZeroU32,

    // === health and balancing (docs/traffic.md, config/traffic.rs) ===
    /// Passive health: consecutive resets (connection lost before the
    /// response head) that eject an endpoint; 0 = off.
    #[serde(default)]
    pub eject_after_resets: u32,
    /// Passive health: consecutive 5xx responses that eject; 0 = off.
    #[serde(default)]
    pub eject_after_5xx: u32,
    /// Below this share (percent) of healthy endpoints, traffic goes to
    /// every endpoint regardless of health; 0 = off.
    #[serde(default)]
    pub healthy_panic_threshold: u32,
    /// `ring_hash`: the request header whose value is the hash key.
    #[serde(default)]
    pub hash_header: Option<String>,
    /// `ring_hash`: the cookie whose value is the hash key.
    #[serde(default)]
    pub hash_cookie: Option<String>,
    /// Endpoints given by host name are resolved again this often;
    /// "0s": only at start.
    #[serde(default = "default_dns_refresh", with = "crate::config::duration")]
    pub dns_refresh: Duration,
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
}

fn default_dns_refresh() -> Duration {
    Duration::from_secs(30)
}

impl ClusterConfig {
    /// The protocol spoken to the endpoints.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.protocol
            .as_ref()
            .map_or_else(Default::default, |p| *p.get_ref())
    }
}

fn default_h2_streams() -> NonZeroU32 {
    NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_response_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_idle() -> usize {
    64
}
fn default_eject_after() -> u32 {
    3
}
fn default_ejection_time() -> Duration {
    Duration::from_secs(5)
}

/// A protocol that cannot work with the cluster's TLS setting: `h2`
/// without `[cluster.tls]`, `h2c` with it. The span is the protocol's.
pub(super) fn protocol_problem(
    cluster: &ClusterConfig,
) -> Option<(std::ops::Range<usize>, &'static str)> {
    let protocol = cluster.protocol.as_ref()?;
    match (protocol.get_ref(), cluster.tls.is_some()) {
        (UpstreamProtocol::H2, false) => Some((
            protocol.span(),
            "`h2` is HTTP/2 over TLS and needs [cluster.tls]; use `h2c` for cleartext HTTP/2",
        )),
        (UpstreamProtocol::H2c, true) => Some((
            protocol.span(),
            "`h2c` is cleartext HTTP/2; with [cluster.tls] use `h2`",
        )),
        _ => None,
    }
}
