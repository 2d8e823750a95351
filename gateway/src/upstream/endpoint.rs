//! One upstream endpoint: its address and weight, requests in flight, and
//! its health as active checks and passive ejection see it, shared by
//! every worker (atomics only on the request path).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

mod status;

pub use status::{EndpointHealth, EndpointStatus};

/// One `host:port` of a cluster.
#[derive(Debug)]
pub struct Endpoint {
    pub address: Arc<str>,
    pub weight: u32,
    state: Arc<EndpointState>,
    outlier: Outlier,
}

/// When passive health ejects an endpoint (0 = never for that cause).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outlier {
    pub connect_failures: u32,
    pub resets: u32,
    pub status_5xx: u32,
    pub ejection: Duration,
}

/// Why passive health took an endpoint out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Ejection {
    ConnectFailures = 1,
    Resets = 2,
    Status5xx = 3,
}

impl Ejection {
    fn from_u8(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::ConnectFailures),
            2 => Some(Self::Resets),
            3 => Some(Self::Status5xx),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectFailures => "consecutive connect failures",
            Self::Resets => "consecutive resets",
            Self::Status5xx => "consecutive 5xx responses",
        }
    }
}

#[derive(Debug)]
pub(super) struct EndpointState {
    in_flight: AtomicUsize,
    connect_failures: AtomicU32,
    resets: AtomicU32,
    status_5xx: AtomicU32,
    /// Milliseconds since `epoch` until which the endpoint is ejected.
    ejected_until: AtomicU64,
    ejection: AtomicU8,
    /// Wall clock (ms since 1970) of the last ejection.
    ejected_at: AtomicU64,
    epoch: Instant,
    /// Out of rotation by active health checks.
    pub(super) check_failed: AtomicBool,
    /// Wall clock (ms since 1970) of the last active-check transition (or
    /// of the endpoint's creation).
    pub(super) check_since: AtomicU64,
    /// What the last failed check saw (only the checker and the admin
    /// touch it, never a request).
    pub(super) check_detail: Mutex<String>,
    pub(super) check_passes: AtomicU32,
    pub(super) check_fails: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    ejections: AtomicU64,
}

/// Counts a request in flight until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<EndpointState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Endpoint {
    pub fn new(address: Arc<str>, weight: u32, outlier: Outlier) -> Self {
        Self {
            address,
            weight: weight.max(1),
            state: Arc::new(EndpointState {
                in_flight: AtomicUsize::new(0),
                connect_failures: AtomicU32::new(0),
                resets: AtomicU32::new(0),
                status_5xx: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
                ejection: AtomicU8::new(0),
                ejected_at: AtomicU64::new(0),
                epoch: Instant::now(),
                check_failed: AtomicBool::new(false),
                check_since: AtomicU64::new(wall_ms()),
                check_detail: Mutex::new(String::new()),
                check_passes: AtomicU32::new(0),
                check_fails: AtomicU32::new(0),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                ejections: AtomicU64::new(0),
            }),
            outlier,
        }
    }

    pub(super) fn state(&self) -> &Arc<EndpointState> {
        &self.state
    }

    fn now_ms(&self) -> u64 {
        self.state.epoch.elapsed().as_millis() as u64
    }

    /// In rotation: passing active checks and not ejected.
    pub fn is_available(&self) -> bool {
        !self.state.check_failed.load(Ordering::Relaxed) && !self.is_ejected()
    }

    fn is_ejected(&self) -> bool {
        // Zero: never ejected (the common case), and no clock read.
        let until = self.state.ejected_until.load(Ordering::Relaxed);
        until != 0 && until > self.now_ms()
    }

    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::Relaxed)
    }

    pub fn start_request(&self) -> InFlight {
        self.state.in_flight.fetch_add(1, Ordering::Relaxed);
        self.state.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.state.clone())
    }

    /// A connection to the endpoint was made.
    pub fn record_success(&self) {
        clear(&self.state.connect_failures);
    }

    /// A connect failed. Returns true when this ejected the endpoint.
    pub fn record_connect_failure(&self) -> bool {
        self.failed(
            &self.state.connect_failures,
            self.outlier.connect_failures,
            Ejection::ConnectFailures,
        )
    }

    /// The connection was lost before the response head. True when this
    /// ejected the endpoint.
    pub fn record_reset(&self) -> bool {
        self.failed(&self.state.resets, self.outlier.resets, Ejection::Resets)
    }

    /// A response head arrived. True when this (a 5xx) ejected the endpoint.
    pub fn record_status(&self, status: http::StatusCode) -> bool {
        clear(&self.state.resets);
        if status.is_server_error() {
            return self.failed(
                &self.state.status_5xx,
                self.outlier.status_5xx,
                Ejection::Status5xx,
            );
        }
        clear(&self.state.status_5xx);
        false
    }

    fn failed(&self, consecutive: &AtomicU32, threshold: u32, why: Ejection) -> bool {
        self.state.failures.fetch_add(1, Ordering::Relaxed);
        let count = consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if threshold == 0 || count < threshold {
            return false;
        }
        consecutive.store(0, Ordering::Relaxed);
        let until = self.now_ms() + self.outlier.ejection.as_millis() as u64;
        self.state.ejected_until.store(until, Ordering::Relaxed);
        self.state.ejection.store(why as u8, Ordering::Relaxed);
        self.state.ejected_at.store(wall_ms(), Ordering::Relaxed);
        self.state.ejections.fetch_add(1, Ordering::Relaxed);
        true
    }
}

/// Sets a consecutive-failure counter back to zero, writing (and so
/// touching a shared cache line) only when it is not zero already.
fn clear(counter: &AtomicU32) {
    if counter.load(Ordering::Relaxed) != 0 {
        counter.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlier(connect: u32, resets: u32, status_5xx: u32) -> Outlier {
        Outlier {
            connect_failures: connect,
            resets,
            status_5xx,
            ejection: Duration::from_secs(60),
        }
    }

    #[test]
    fn ejected_after_consecutive_failures_only() {
        let ep = Endpoint::new("127.0.0.1:1".into(), 1, outlier(2, 0, 0));
        assert!(!ep.record_connect_failure());
        ep.record_success();
        assert!(!ep.record_connect_failure());
        assert!(ep.is_available());
        assert!(ep.record_connect_failure());
        assert!(!ep.is_available());
        let health = ep.health();
        assert!(!health.healthy && health.ejected_for_ms > 0, "{health:?}");
        let status = ep.status();
        assert_eq!(status.health, "ejected");
        assert_eq!(status.ejections, 1);
        assert_eq!(status.failures, 3);
        assert!(status
            .reason
            .expect("as the test set it up")
            .contains("connect failures"));
    }

    #[test]
    fn resets_and_5xx_eject_only_when_configured() {
        let off = Endpoint::new("127.0.0.1:1".into(), 1, outlier(3, 0, 0));
        for _ in 0..10 {
            assert!(!off.record_reset());
            assert!(!off.record_status(http::StatusCode::BAD_GATEWAY));
        }
        assert!(off.is_available());

        let ep = Endpoint::new("127.0.0.1:1".into(), 1, outlier(3, 2, 2));
        assert!(!ep.record_status(http::StatusCode::INTERNAL_SERVER_ERROR));
        assert!(
            !ep.record_status(http::StatusCode::OK),
            "a 2xx breaks the run"
        );
        assert!(!ep.record_status(http::StatusCode::SERVICE_UNAVAILABLE));
        assert!(ep.record_status(http::StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(
            ep.status().reason.as_deref(),
            Some("passive: consecutive 5xx responses")
        );

        let ep = Endpoint::new("127.0.0.1:1".into(), 1, outlier(3, 2, 0));
        assert!(!ep.record_reset());
        assert!(ep.record_reset());
        assert!(!ep.is_available());
    }

    #[test]
    fn a_failed_active_check_takes_the_endpoint_out() {
        let ep = Endpoint::new("127.0.0.1:1".into(), 1, outlier(3, 0, 0));
        ep.state().check_failed.store(true, Ordering::Relaxed);
        assert!(!ep.is_available());
        assert_eq!(ep.status().health, "unhealthy");
    }

    #[test]
    fn in_flight_is_counted_until_dropped() {
        let ep = Endpoint::new("127.0.0.1:1".into(), 1, outlier(2, 0, 0));
        let a = ep.start_request();
        let b = ep.start_request();
        assert_eq!(ep.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(ep.in_flight(), 0);
        assert_eq!(ep.status().requests, 2);
    }
}
