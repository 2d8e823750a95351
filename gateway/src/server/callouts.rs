//! `proxy_http_call` from filters: a request to a cluster of the config in
//! force, answered whole.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;

use crate::http::body;
use crate::state::Snapshot;
use crate::upstream::callout::{CalloutClient, CalloutError, CalloutResponse};

/// Callout answers larger than this are an error, not a memory hazard.
const MAX_CALLOUT_BODY: usize = 1 << 20;

/// Sends callouts through the clusters of the current snapshot. Set once
/// the snapshot exists (the filter host is built before it).
#[derive(Default)]
pub struct SnapshotCallouts {
    pub state: OnceLock<Arc<ArcSwap<Snapshot>>>,
}

impl CalloutClient for SnapshotCallouts {
    fn call(
        &self,
        cluster: &str,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let cluster = self
            .state
            .get()
            .and_then(|s| s.load().clusters.get(cluster).cloned())
            .ok_or_else(|| CalloutError::UnknownCluster(cluster.to_string()));
        Box::pin(async move {
            let cluster = cluster?;
            if let Some(redis) = cluster.redis() {
                return Ok(redis.callout(request.into_body(), timeout).await);
            }
            let exchange = async {
                // A callout is a request to the cluster like any other.
                let _admitted = cluster
                    .breaker
                    .request()
                    .map_err(|e| CalloutError::Failed(e.to_string()))?;
                let mut request = request.map(body::full);
                // Origin form for the HTTP/1.1 upstream, Host from the authority.
                let path = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                if let Some(authority) = request.uri().authority().map(|a| a.as_str().to_owned()) {
                    if let Ok(v) = http::HeaderValue::from_str(&authority) {
                        request.headers_mut().entry(http::header::HOST).or_insert(v);
                    }
                }
                *request.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
                if !request.headers().contains_key(http::header::HOST) {
                    request.headers_mut().insert(
                        http::header::HOST,
                        http::HeaderValue::from_static("callout"),
                    );
                }
                *request.version_mut() = http::Version::HTTP_11;
                // Callouts get the cluster's retry policy, as routes do,
                // and its hash key from their own headers.
                let none = crate::upstream::AddedFields::default();
                let key =
                    crate::upstream::request_key(&cluster.config, request.headers(), &none, || {
                        None
                    });
                let response = crate::http::attempts::forward(
                    &cluster,
                    &cluster.retry,
                    request,
                    none,
                    key,
                    timeout,
                    None,
                )
                .await
                .result
                .map_err(|e| CalloutError::Failed(e.to_string()))?;
                let (parts, body) = response.into_parts();
                let (body, trailers) = read_whole(body).await?;
                Ok(CalloutResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                    trailers,
                })
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| CalloutError::Timeout)?
        })
    }

    fn has_cluster(&self, cluster: &str) -> bool {
        self.state
            .get()
            .is_some_and(|s| s.load().clusters.get(cluster).is_some())
    }
}

/// Reads an answer's body and trailers whole, up to `MAX_CALLOUT_BODY`.
async fn read_whole(mut body: body::Body) -> Result<(Bytes, http::HeaderMap), CalloutError> {
    let mut data = bytes::BytesMut::new();
    let mut trailers = http::HeaderMap::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CalloutError::Failed(format!("reading the answer: {e}")))?;
        match frame.into_data() {
            Ok(chunk) => {
                if data.len() + chunk.len() > MAX_CALLOUT_BODY {
                    return Err(CalloutError::Failed(format!(
                        "reading the answer: body over {MAX_CALLOUT_BODY} bytes"
                    )));
                }
                data.extend_from_slice(&chunk);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers.extend(t);
                }
            }
        }
    }
    Ok((data.freeze(), trailers))
}
