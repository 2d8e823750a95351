//! Circuit breaking per cluster: requests in flight, requests waiting for a
//! new connection and open connections are counted across workers, and a
//! request beyond a limit is refused at once rather than queued behind an
//! upstream that is already saturated.

use prometheus_client::metrics::gauge::Gauge;

use super::UpstreamError;
use crate::config::CircuitBreakerConfig;
use crate::metrics::traffic::ClusterTraffic;

/// The limits of one cluster and the counters they are checked against
/// (the counters are the exported gauges, shared by every worker).
#[derive(Debug)]
pub struct CircuitBreaker {
    max_connections: i64,
    max_pending: i64,
    max_requests: i64,
    pub(crate) traffic: ClusterTraffic,
    cluster: String,
}

/// Counts one unit against a limit until dropped.
#[derive(Debug)]
pub struct Permit(Gauge);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Which limit refused a request: the value of `x-gateway-overloaded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxConnections,
    MaxPending,
    MaxRequests,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MaxConnections => "max_connections",
            Limit::MaxPending => "max_pending",
            Limit::MaxRequests => "max_requests",
        }
    }
}

impl CircuitBreaker {
    pub fn new(cluster: &str, config: &CircuitBreakerConfig) -> Self {
        Self {
            max_connections: i64::from(config.max_connections),
            max_pending: i64::from(config.max_pending),
            max_requests: i64::from(config.max_requests),
            traffic: ClusterTraffic::new(cluster),
            cluster: cluster.to_owned(),
        }
    }

    /// A request enters the cluster; held until its response has ended.
    pub fn request(&self) -> Result<Permit, UpstreamError> {
        self.take(
            &self.traffic.requests,
            self.max_requests,
            Limit::MaxRequests,
        )
    }

    /// A request waits for a new connection; held while it opens.
    pub fn pending(&self) -> Result<Permit, UpstreamError> {
        self.take(&self.traffic.pending, self.max_pending, Limit::MaxPending)
    }

    /// A connection is about to be opened; held for the connection's life.
    pub fn connection(&self) -> Result<Permit, UpstreamError> {
        self.take(
            &self.traffic.connections,
            self.max_connections,
            Limit::MaxConnections,
        )
    }

    /// Requests in flight now (the retry budget's base).
    pub fn requests_in_flight(&self) -> i64 {
        self.traffic.requests.get()
    }

    fn take(&self, gauge: &Gauge, max: i64, limit: Limit) -> Result<Permit, UpstreamError> {
        // Count first, then check: two workers racing for the last slot
        // cannot both get it.
        if gauge.inc() >= max {
            gauge.dec();
            self.traffic.overloaded(limit.as_str());
            return Err(UpstreamError::Overloaded {
                cluster: self.cluster.clone(),
                limit,
            });
        }
        Ok(Permit(gauge.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_refuses_beyond_its_count_and_frees_on_drop() {
        let config = CircuitBreakerConfig {
            max_connections: 1,
            max_pending: 1,
            max_requests: 2,
        };
        let breaker = CircuitBreaker::new("breaker-unit-test", &config);
        let a = breaker.request().expect("first");
        let _b = breaker.request().expect("second");
        let refused = breaker.request().expect_err("third is over max_requests");
        assert!(matches!(
            refused,
            UpstreamError::Overloaded {
                limit: Limit::MaxRequests,
                ..
            }
        ));
        assert_eq!(breaker.requests_in_flight(), 2);
        drop(a);
        assert!(breaker.request().is_ok());
        let _c = breaker.connection().expect("one connection");
        assert!(breaker.connection().is_err());
        let _p = breaker.pending().expect("one pending");
        assert!(breaker.pending().is_err());
    }
}
