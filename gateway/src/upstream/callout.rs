//! The door filters use to reach a cluster on their own (`proxy_http_call`).

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

/// A response to a callout, read whole (callout answers are small).
#[derive(Debug, Clone)]
pub struct CalloutResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: http::HeaderMap,
}

/// Why a callout produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CalloutError {
    #[error("unknown cluster `{0}`")]
    UnknownCluster(String),
    #[error("callout timed out")]
    Timeout,
    #[error("callout failed: {0}")]
    Failed(String),
}

/// Sends a request to a named cluster and reads the answer whole.
pub trait CalloutClient: Send + Sync + 'static {
    /// `request` carries the method, path (with query), authority and
    /// headers the filter gave; the body is small and complete.
    fn call(
        &self,
        cluster: &str,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>>;

    /// Whether `cluster` names a configured cluster (checked when the
    /// filter dispatches, so it gets `BAD_ARGUMENT` at once).
    fn has_cluster(&self, cluster: &str) -> bool;
}
