//! The upstream clusters the gateway has configured, so a filter can check
//! the cluster names in its configuration when it is loaded, instead of
//! routing requests to a cluster that does not exist (they would get 503
//! "no such cluster").
//!
//! ```no_run
//! # #[derive(serde::Deserialize)] struct Config { cluster: String }
//! fn validate_config(config: &Config) -> Result<(), String> {
//!     match gateway_sdk::clusters::names() {
//!         Some(names) if !names.contains(&config.cluster) => {
//!             Err(format!("unknown cluster `{}`; configured: {names:?}", config.cluster))
//!         }
//!         _ => Ok(()),
//!     }
//! }
//! ```

use crate::host;

/// Property path listing the configured cluster names (a gateway
/// extension: names joined by NUL bytes; other hosts answer nothing).
pub const CLUSTERS_PROPERTY: [&str; 2] = ["gateway", "clusters"];

/// The cluster names of the configuration being loaded (in
/// `validate_config` and other load-time hooks) or in force (during
/// requests), in configuration order. `None` when the host does not
/// provide the list (a host other than this gateway): skip the check then.
pub fn names() -> Option<Vec<String>> {
    let bytes = host::with(|h| h.property(&CLUSTERS_PROPERTY))?;
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    Some(bytes.split(|b| *b == 0).map(crate::abi::lossy).collect())
}

/// Whether `cluster` is configured; `None` when the host does not say.
pub fn exists(cluster: &str) -> Option<bool> {
    names().map(|names| names.iter().any(|n| n == cluster))
}
