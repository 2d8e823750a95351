//! Active health checking: one task per endpoint of a cluster with
//! `[cluster.health_check]`, on the runtime that builds the configuration
//! (once per process, not per worker). Results move the endpoint in and
//! out of rotation through its shared state, which every worker reads.

mod check;
pub mod metrics;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::Rng;

use super::endpoint::{wall_ms, Endpoint};
use super::{dns, Cluster};
use crate::config::HealthCheckConfig;

/// Starts the background work of a new cluster (active checks, DNS
/// re-resolution), if there is a runtime to run it on. The tasks end when
/// the cluster is dropped (replaced by a reload that changed it).
pub(super) fn start(cluster: &Arc<Cluster>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let names: Vec<Arc<str>> = cluster
        .endpoints()
        .iter()
        .map(|e| e.address.clone())
        .filter(|a| dns::is_host_name(a))
        .collect();
    if !names.is_empty() {
        let every = cluster.config.dns_refresh;
        runtime.spawn(dns::keep_resolved(Arc::downgrade(cluster), names, every));
    }
    if cluster.config.health_check.is_some() {
        for index in 0..cluster.endpoints().len() {
            runtime.spawn(keep_checking(Arc::downgrade(cluster), index));
        }
    }
}

/// Checks endpoint `index` now and then every interval (plus jitter).
async fn keep_checking(cluster: Weak<Cluster>, index: usize) {
    loop {
        let Some(strong) = cluster.upgrade() else {
            return;
        };
        let Some(config) = strong.config.health_check.clone() else {
            return;
        };
        let outcome = check::probe(&strong, index, &config).await;
        record(&strong, &strong.endpoints()[index], &config, outcome);
        drop(strong);
        let jitter = if config.jitter.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=config.jitter)
        };
        tokio::time::sleep(config.interval + jitter).await;
    }
}

/// Counts one check's outcome; after `unhealthy_threshold` failures in a
/// row the endpoint leaves the rotation, after `healthy_threshold` passes
/// in a row it comes back.
fn record(
    cluster: &Cluster,
    endpoint: &Endpoint,
    config: &HealthCheckConfig,
    outcome: Result<(), String>,
) {
    let state = endpoint.state();
    let failed = state.check_failed.load(Ordering::Relaxed);
    match outcome {
        Ok(()) => {
            state.check_fails.store(0, Ordering::Relaxed);
            let passes = state.check_passes.fetch_add(1, Ordering::Relaxed) + 1;
            if failed && passes >= config.healthy_threshold {
                state.check_since.store(wall_ms(), Ordering::Relaxed);
                state.check_failed.store(false, Ordering::Relaxed);
                tracing::info!(cluster = cluster.name(), endpoint = %endpoint.address,
                    passes, "endpoint passes its health checks: back in rotation");
            }
        }
        Err(why) => {
            state.check_passes.store(0, Ordering::Relaxed);
            let fails = state.check_fails.fetch_add(1, Ordering::Relaxed) + 1;
            let mut detail = state.check_detail.lock().unwrap_or_else(|p| p.into_inner());
            *detail = why;
            if !failed && fails >= config.unhealthy_threshold {
                state.check_since.store(wall_ms(), Ordering::Relaxed);
                state.check_failed.store(true, Ordering::Relaxed);
                tracing::warn!(cluster = cluster.name(), endpoint = %endpoint.address,
                    fails, check = %detail, "endpoint fails its health checks: out of rotation");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterConfig;

    #[test]
    fn thresholds_move_an_endpoint_out_and_back() {
        let config: ClusterConfig = toml::from_str(
            "name = \"c\"\nendpoints = [\"127.0.0.1:1\"]\n[health_check]\nunhealthy_threshold = 2\nhealthy_threshold = 3",
        )
        .expect("as the test set it up");
        let check = config.health_check.clone().expect("as the test set it up");
        let cluster = Cluster::new(config);
        let ep = &cluster.endpoints()[0];
        let fail = || Err("HTTP 503".to_string());
        record(&cluster, ep, &check, fail());
        assert!(ep.is_available(), "one failure is below the threshold");
        record(&cluster, ep, &check, fail());
        assert!(!ep.is_available());
        assert_eq!(
            ep.status().reason.as_deref(),
            Some("active check: HTTP 503")
        );
        record(&cluster, ep, &check, Ok(()));
        record(&cluster, ep, &check, Ok(()));
        assert!(!ep.is_available(), "two passes are below the threshold");
        record(&cluster, ep, &check, fail());
        record(&cluster, ep, &check, Ok(()));
        record(&cluster, ep, &check, Ok(()));
        assert!(!ep.is_available(), "a failure restarts the count");
        record(&cluster, ep, &check, Ok(()));
        assert!(ep.is_available());
        assert_eq!(ep.status().health, "healthy");
    }
}
