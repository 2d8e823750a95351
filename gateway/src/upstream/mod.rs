//! Upstream clusters: endpoints, balancing, active and passive health,
//! DNS, the keep-alive connection pool (HTTP/1.1, and multiplexed HTTP/2),
//! and retry policies, budgets and circuit breakers.

mod added;
mod balancer;
pub mod breaker;
mod budget;
pub mod callout;
mod cluster;
mod dns;
mod endpoint;
mod h2;
mod health;
mod http1;
mod pool;
mod redis;
mod redis_reply;
mod request_key;
pub mod retry;
mod ring;
mod tls;

pub use added::AddedFields;
pub use breaker::Limit;
pub(crate) use cluster::request_of;
pub use cluster::{Cluster, ClusterSet, Connection, EndpointLease};
pub use endpoint::{EndpointHealth, EndpointStatus};
pub use health::metrics::encode as encode_endpoint_metrics;
pub(crate) use http1::{keep_alive, list_tokens, ConnectionOptions};
pub use pool::connect_tcp;
pub use redis::{RedisCluster, RedisStatus};
pub use request_key::{request_key, HASH_KEY_PROPERTY};

/// What went wrong reaching an upstream; `http::error` turns it into a
/// status.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no healthy endpoint in cluster `{cluster}`")]
    NoHealthyEndpoint { cluster: String },
    #[error("cannot connect to {endpoint} (cluster `{cluster}`): {source}")]
    Connect {
        cluster: String,
        endpoint: String,
        source: std::io::Error,
    },
    #[error("upstream {endpoint} (cluster `{cluster}`) failed: {source}")]
    Protocol {
        cluster: String,
        endpoint: String,
        source: hyper::Error,
    },
    #[error("upstream {endpoint} (cluster `{cluster}`) failed: {source}")]
    Http1 {
        cluster: String,
        endpoint: String,
        source: http1::Http1Error,
        /// A pooled connection failed before any answer: the upstream had
        /// closed it while idle, and the request never reached it.
        stale: bool,
    },
    #[error("cluster `{cluster}` is over its {} limit", limit.as_str())]
    Overloaded { cluster: String, limit: Limit },
}
