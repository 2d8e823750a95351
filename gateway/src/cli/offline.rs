//! The filter host used by the offline commands (`check`, `filter
//! inspect`): it starts filters but sends no callout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::config::filter::FilterHostConfig;
use crate::filter::FilterHost;
use crate::upstream::callout::{CalloutClient, CalloutError, CalloutResponse};

/// Knows the configured cluster names (so a filter checking them at
/// configure time gets the same answer as when serving); every callout fails.
struct NoCallouts {
    clusters: Vec<String>,
}

impl CalloutClient for NoCallouts {
    fn call(
        &self,
        cluster: &str,
        _request: http::Request<Bytes>,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let _ = cluster;
        Box::pin(async {
            Err(CalloutError::Failed(
                "no callouts outside a running gateway".into(),
            ))
        })
    }

    fn has_cluster(&self, cluster: &str) -> bool {
        self.clusters.iter().any(|c| c == cluster)
    }
}

/// A filter host for offline commands; no compile cache unless `config` names one.
pub(super) fn host(
    config: &FilterHostConfig,
    clusters: Vec<String>,
) -> anyhow::Result<Arc<FilterHost>> {
    let host = FilterHost::new(
        config,
        Arc::new(NoCallouts {
            clusters: clusters.clone(),
        }),
    )?;
    host.set_clusters(clusters.iter().map(String::as_str));
    Ok(host)
}
