//! The retry budget of a cluster (as Envoy and Linkerd have it): retries in
//! flight may be at most a share of the requests in flight, with a floor so
//! a quiet cluster can still retry. When an upstream fails, every request
//! wants a retry; the budget keeps retries from multiplying the outage.

use prometheus_client::metrics::gauge::Gauge;

use crate::config::RetryBudgetConfig;
use crate::metrics::traffic::ClusterTraffic;

/// One cluster's budget.
#[derive(Debug)]
pub struct RetryBudget {
    percent: i64,
    min_concurrent: i64,
    traffic: ClusterTraffic,
}

/// A retry in flight, counted against the budget until dropped.
#[derive(Debug)]
pub struct RetryPermit(Gauge);

impl Drop for RetryPermit {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl RetryBudget {
    pub fn new(config: &RetryBudgetConfig, traffic: ClusterTraffic) -> Self {
        Self {
            percent: i64::from(config.percent),
            min_concurrent: i64::from(config.min_concurrent),
            traffic,
        }
    }

    /// Retries allowed in flight when `requests` are.
    pub fn allowed(&self, requests: i64) -> i64 {
        (requests * self.percent / 100).max(self.min_concurrent)
    }

    /// A permit for one more retry, or `None` (counted) when the budget is
    /// spent. `requests`: the cluster's requests in flight now.
    pub fn try_retry(&self, requests: i64) -> Option<RetryPermit> {
        let active = &self.traffic.retries_active;
        let now = active.inc() + 1;
        if now > self.allowed(requests) {
            active.dec();
            self.traffic.budget_exhausted.inc();
            return None;
        }
        self.traffic
            .retries_peak
            .inner()
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        Some(RetryPermit(active.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(name: &str) -> RetryBudget {
        let config = RetryBudgetConfig {
            percent: 20,
            min_concurrent: 3,
        };
        RetryBudget::new(&config, ClusterTraffic::new(name))
    }

    #[test]
    fn the_floor_holds_for_few_requests_and_the_share_for_many() {
        let b = budget("budget-unit-floor");
        assert_eq!(b.allowed(0), 3);
        assert_eq!(b.allowed(10), 3);
        assert_eq!(b.allowed(100), 20);
        let held: Vec<_> = (0..3).filter_map(|_| b.try_retry(1)).collect();
        assert_eq!(held.len(), 3);
        assert!(b.try_retry(1).is_none(), "a fourth retry is over the floor");
        let fourth = b.try_retry(20);
        assert!(fourth.is_some(), "20% of 20 requests is 4");
        assert_eq!(b.traffic.budget_exhausted.get(), 1);
        assert_eq!(b.traffic.retries_peak.get(), 4);
        drop(held);
        assert_eq!(b.traffic.retries_active.get(), 1);
    }
}
