//! Accepting connections: bind, the accept loop with its connection limit,
//! per-connection idle tracking and graceful shutdown.

pub(crate) mod accept;
mod certs;
mod conn;
mod plain;
mod prefixed;
mod send_timeout;
mod shared_stream;
mod shutdown;
mod streams;
pub mod tls;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use self::accept::{bind_per_worker, Gate};
pub use self::plain::serve_http;
pub use self::shutdown::{ListenerStop, Shutdown, ShutdownTrigger};
pub use self::tls::serve_https;

/// Requests in flight on one connection and when it was last busy, for
/// the idle timeout.
#[derive(Debug)]
pub struct ConnActivity {
    in_flight: AtomicUsize,
    /// Requests started on the connection so far.
    started: AtomicU64,
    /// A request or its answer asked for the connection to close after it.
    closing: AtomicBool,
    last_ms: AtomicU64,
    epoch: Instant,
}

impl ConnActivity {
    pub fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests started so far and requests in flight.
    pub fn counts(&self) -> (u64, usize) {
        (
            self.started.load(Ordering::Relaxed),
            self.in_flight.load(Ordering::Relaxed),
        )
    }

    /// The connection ends after the current exchange (`Connection:
    /// close`, an HTTP/1.0 request without keep-alive).
    pub fn close_after_response(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    pub fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// A request ended at `now`.
    pub fn request_done(&self, now: Instant) {
        let since = now.saturating_duration_since(self.epoch);
        self.last_ms
            .store(since.as_millis() as u64, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// `None` when the connection has been idle for `timeout`; otherwise
    /// how long until it might be.
    pub fn idle_check(&self, timeout: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(timeout);
        }
        let idle_for = Duration::from_millis(
            (self.epoch.elapsed().as_millis() as u64)
                .saturating_sub(self.last_ms.load(Ordering::Relaxed)),
        );
        timeout.checked_sub(idle_for).filter(|left| !left.is_zero())
    }
}

impl Default for ConnActivity {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_only_without_requests_in_flight() {
        let a = ConnActivity::new();
        a.request_started();
        assert_eq!(a.idle_check(Duration::ZERO), Some(Duration::ZERO));
        a.request_done(Instant::now());
        assert_eq!(a.idle_check(Duration::ZERO), None);
        assert!(a.idle_check(Duration::from_secs(60)).is_some());
    }
}
