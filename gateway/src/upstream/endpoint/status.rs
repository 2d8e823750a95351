//! What operators see of an endpoint: its health, why and since when,
//! and its counters (the admin page, `GET /clusters`, the metrics).

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::{Ejection, Endpoint};

impl Endpoint {
    /// What an operator sees of this endpoint (the admin page).
    pub fn health(&self) -> EndpointHealth {
        let now = self.now_ms();
        let until = self.state.ejected_until.load(Ordering::Relaxed);
        EndpointHealth {
            address: self.address.to_string(),
            healthy: self.is_available(),
            ejected_for_ms: until.saturating_sub(now),
            in_flight: self.in_flight(),
            consecutive_failures: self.state.connect_failures.load(Ordering::Relaxed),
        }
    }

    /// Health, why and since when, and the counters (`GET /clusters`).
    pub fn status(&self) -> EndpointStatus {
        let s = &self.state;
        let ejected = self.is_ejected();
        let check_failed = s.check_failed.load(Ordering::Relaxed);
        let check_since = s.check_since.load(Ordering::Relaxed);
        let ejected_at = s.ejected_at.load(Ordering::Relaxed);
        let ejection = Ejection::from_u8(s.ejection.load(Ordering::Relaxed));
        let (health, reason, since) = if check_failed {
            let detail = s.check_detail.lock().unwrap_or_else(|p| p.into_inner());
            (
                "unhealthy",
                Some(format!("active check: {detail}")),
                check_since,
            )
        } else if ejected {
            let why = ejection.map_or("ejected", Ejection::as_str);
            ("ejected", Some(format!("passive: {why}")), ejected_at)
        } else {
            // Back in rotation since the later of the last check
            // transition and the end of the last ejection.
            let ejection_end = if ejected_at > 0 {
                ejected_at + self.outlier.ejection.as_millis() as u64
            } else {
                0
            };
            ("healthy", None, check_since.max(ejection_end))
        };
        EndpointStatus {
            address: self.address.to_string(),
            weight: self.weight,
            health,
            reason,
            since: humantime::format_rfc3339_millis(
                SystemTime::UNIX_EPOCH + Duration::from_millis(since),
            )
            .to_string(),
            in_flight: self.in_flight(),
            requests: s.requests.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
            ejections: s.ejections.load(Ordering::Relaxed),
            resolved: crate::upstream::dns::resolved(&self.address)
                .map(|a| a.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

/// One endpoint's passive health at a moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointHealth {
    pub address: String,
    /// In rotation (not ejected, passing active checks).
    pub healthy: bool,
    /// How long the ejection still lasts (0 when not ejected).
    pub ejected_for_ms: u64,
    pub in_flight: usize,
    pub consecutive_failures: u32,
}

/// One endpoint as `GET /clusters` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointStatus {
    pub address: String,
    pub weight: u32,
    /// `healthy`, `unhealthy` (active checks) or `ejected` (passive).
    pub health: &'static str,
    /// Which check or ejection took it out of rotation.
    pub reason: Option<String>,
    /// When it entered its present health (RFC 3339).
    pub since: String,
    pub in_flight: usize,
    pub requests: u64,
    pub failures: u64,
    pub ejections: u64,
    /// The addresses a host name resolved to (empty for an IP address).
    pub resolved: Vec<String>,
}
