//! `GET /clusters`: every cluster and its endpoints, their health, why an
//! endpoint is out of rotation and since when (JSON).

use serde::Serialize;

use crate::upstream::{ClusterSet, EndpointStatus};

#[derive(Serialize)]
pub(super) struct ClustersView {
    clusters: Vec<ClusterView>,
}

#[derive(Serialize)]
struct ClusterView {
    name: String,
    balance: String,
    /// Endpoints in rotation, of all.
    healthy: usize,
    total: usize,
    /// Too few healthy endpoints: every endpoint takes traffic
    /// (`healthy_panic_threshold`).
    panic: bool,
    /// Whether `[cluster.health_check]` is set.
    active_checks: bool,
    endpoints: Vec<EndpointStatus>,
}

impl ClustersView {
    pub(super) fn gather(clusters: &ClusterSet) -> Self {
        let mut clusters: Vec<ClusterView> = clusters
            .iter()
            .map(|c| {
                let endpoints = c.endpoint_status();
                ClusterView {
                    name: c.name().to_string(),
                    balance: serde_json::to_value(c.config.balance)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    healthy: endpoints.iter().filter(|e| e.health == "healthy").count(),
                    total: endpoints.len(),
                    panic: c.in_panic(),
                    active_checks: c.config.health_check.is_some(),
                    endpoints,
                }
            })
            .collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        Self { clusters }
    }
}
