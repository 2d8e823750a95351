//! `/services`: each service, its state, version, last tick and last error.

use super::AdminState;

/// The services' status; an empty list when the process runs none.
pub(super) fn status(admin: &AdminState) -> serde_json::Value {
    match admin.services.get() {
        Some(set) => set.status(),
        None => serde_json::json!({ "dir": null, "services": [] }),
    }
}
