//! The host's clock.

use crate::host;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The host's wall clock (`proxy_get_current_time_nanoseconds`). Use it
/// instead of `SystemTime::now()`, which is not available on
/// `wasm32-unknown-unknown`; under `gateway_sdk::testing` it is the test's
/// clock ([`crate::testing::FilterTest::advance_time`]).
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(host::with(|h| h.current_time_nanos()))
}

/// Seconds since the Unix epoch, as JWT `exp`/`nbf` claims count them.
pub fn unix_seconds() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
