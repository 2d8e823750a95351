//! Filter configuration (owned by the filter host; placeholder until it lands).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One filter in a chain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub config: Option<String>,
}

/// `[wasm]`: the filter host.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterHostConfig {}
