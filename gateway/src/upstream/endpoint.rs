//! One upstream endpoint: its address, requests in flight and passive
//! health (ejected after consecutive connect failures).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One `host:port` of a cluster.
#[derive(Debug)]
pub struct Endpoint {
    pub address: Arc<str>,
    state: Arc<EndpointState>,
    eject_after: u32,
    ejection: Duration,
}

#[derive(Debug)]
struct EndpointState {
    in_flight: AtomicUsize,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the endpoint is ejected.
    ejected_until: AtomicU64,
    epoch: Instant,
}

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<EndpointState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub fn new(address: Arc<str>, eject_after: u32, ejection: Duration) -> Self {
        Self {
            address,
            state: Arc::new(EndpointState {
                in_flight: AtomicUsize::new(0),
                failures: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            eject_after,
            ejection,
        }
    }

    fn now_ms(&self) -> u64 {
        self.state.epoch.elapsed().as_millis() as u64
    }

    /// Not ejected by passive health checking.
    pub fn is_available(&self) -> bool {
        self.state.ejected_until.load(Ordering::Relaxed) <= self.now_ms()
    }

    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    pub fn start_request(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.state.clone())
    }

    /// A connection to the endpoint was made: it is healthy.
    pub fn record_success(&self) {
        if self.state.failures.load(Ordering::Relaxed) != 0 {
            self.state.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connect failed. Returns true when this ejected the endpoint.
    pub fn record_connect_failure(&self) -> bool {
        let failures = self.state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.eject_after > 0 && failures >= self.eject_after {
            self.state.failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + self.ejection.as_millis() as u64;
            self.state.ejected_until.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// What an operator sees of this endpoint (the admin page).
    pub fn health(&self) -> EndpointHealth {
        let now = self.now_ms();
        let until = self.state.ejected_until.load(Ordering::Relaxed);
        EndpointHealth {
            address: self.address.to_string(),
            healthy: until <= now,
            ejected_for_ms: until.saturating_sub(now),
            in_flight: self.in_flight(),
            consecutive_failures: self.state.failures.load(Ordering::Relaxed),
        }
    }
}

/// One endpoint's passive health at a moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointHealth {
    pub address: String,
    /// Not ejected.
    pub healthy: bool,
    /// How long the ejection still lasts (0 when healthy).
    pub ejected_for_ms: u64,
    pub in_flight: usize,
    pub consecutive_failures: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejected_after_consecutive_failures_only() {
        let ep = Endpoint::new("127.0.0.1:1".into(), 2, Duration::from_secs(60));
        assert!(!ep.record_connect_failure());
        ep.record_success();
        assert!(!ep.record_connect_failure());
        assert!(ep.is_available());
        assert!(ep.record_connect_failure());
        assert!(!ep.is_available());
        let health = ep.health();
        assert!(!health.healthy && health.ejected_for_ms > 0, "{health:?}");
    }

    #[test]
    fn in_flight_is_counted_until_dropped() {
        let ep = Endpoint::new("127.0.0.1:1".into(), 2, Duration::from_secs(1));
        let a = ep.start_request();
        let b = ep.start_request();
        assert_eq!(ep.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(ep.in_flight(), 0);
    }
}
