//! One service as `/services` and the admin page show it.

use std::time::{Duration, SystemTime};

use super::{ServiceState, Slot};

/// The status of service `name`: its running version (if any) and why the
/// newest one is not running (if it is not).
pub(super) fn of(name: &str, slot: &Slot) -> serde_json::Value {
    let rfc3339 = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let running = slot.running.as_ref();
    let last_tick = running.map_or(0, |r| r.last_tick());
    serde_json::json!({
        "name": name,
        "source": slot.source,
        "file": slot.file.display().to_string(),
        "state": running.map_or("failed", |r| match r.state() {
            ServiceState::Running => "running",
            ServiceState::Restarting => "restarting",
            ServiceState::Stopped => "stopped",
        }),
        "vm_id": running.map(|r| r.config.vm_id.clone().unwrap_or_else(|| r.config.name.clone())),
        "sha256": running.map(|r| r.sha256.clone()),
        "size": running.map(|r| r.size),
        "generation": slot.generation,
        "running_since": running.map(|_| rfc3339(slot.since)),
        "restarts": running.map_or(0, |r| r.restarts()),
        "last_tick": (last_tick > 0)
            .then(|| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(last_tick))),
        "last_error": running.and_then(|r| r.last_error()),
        "pending_error": slot.pending_error,
    })
}
