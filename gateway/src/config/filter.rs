//! Filter configuration (owned by the filter host): one `[[listener.filter]]`
//! entry per filter in a chain, and the process-wide `[wasm]` section.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// How a filter's VM instances are shared between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// A few long-lived instances per filter, each serving many requests.
    #[default]
    Shared,
    /// A fresh instance per request, dropped afterwards.
    Request,
}

/// What a request gets when a filter cannot run for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// 503 with a body naming the filter.
    #[default]
    Closed,
    /// The filter is skipped for that request.
    Open,
}

/// One filter in a chain: TOML `[[listener.filter]]` / `[[listener.route.filter]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    pub name: String,
    /// The `.wasm` file (precompiled artefacts are never loaded from here).
    pub path: PathBuf,
    /// Plugin configuration bytes, handed to `proxy_on_configure`: a
    /// string as written, or a TOML table handed over as JSON.
    #[serde(default, deserialize_with = "super::plugin_config::deserialize")]
    pub config: Option<String>,
    /// VM configuration bytes, handed to `proxy_on_vm_start` (string or table, as `config`).
    #[serde(default, deserialize_with = "super::plugin_config::deserialize")]
    pub vm_config: Option<String>,
    #[serde(default)]
    pub root_id: Option<String>,
    /// The VM id that scopes shared data, shared queues and metrics
    /// (default: the filter's name); a service with the same `vm_id`
    /// shares them.
    #[serde(default)]
    pub vm_id: Option<String>,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub failure: FailurePolicy,
    /// Linear-memory cap of one instance.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ByteSize,
    /// Wall-clock budget of every single call into the guest.
    #[serde(default = "default_deadline", with = "crate::config::duration")]
    pub deadline: Duration,
    /// Instances per worker in `shared` mode. A worker runs one guest call
    /// at a time, so one instance per worker (as Envoy runs one VM per
    /// worker thread) serves every request of that worker interleaved.
    #[serde(default = "default_instances")]
    pub instances: usize,
    /// Most bytes of a body held while a filter pauses on it
    /// (over it: 413 for a request, 502 for a response).
    #[serde(default = "default_body_buffer_limit")]
    pub body_buffer_limit: ByteSize,
    /// Longest `proxy_http_call` timeout a filter may ask for.
    #[serde(default = "default_callout_timeout", with = "crate::config::duration")]
    pub max_callout_timeout: Duration,
}

fn default_memory_limit() -> ByteSize {
    ByteSize::mib(64)
}
fn default_deadline() -> Duration {
    Duration::from_millis(100)
}
fn default_instances() -> usize {
    1
}
fn default_body_buffer_limit() -> ByteSize {
    ByteSize::mib(1)
}
fn default_callout_timeout() -> Duration {
    Duration::from_secs(30)
}

impl FilterConfig {
    /// A configuration with every limit at its default.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        FilterConfig {
            name: name.into(),
            path: path.into(),
            config: None,
            vm_config: None,
            root_id: None,
            vm_id: None,
            isolation: Isolation::default(),
            failure: FailurePolicy::default(),
            memory_limit: default_memory_limit(),
            deadline: default_deadline(),
            instances: default_instances(),
            body_buffer_limit: default_body_buffer_limit(),
            max_callout_timeout: default_callout_timeout(),
        }
    }

    /// Semantic problems, each message naming the key.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() {
            problems.push("filter.name: must not be empty".to_string());
        }
        if self.path.as_os_str().is_empty() {
            problems.push(format!("filter `{}`: path must not be empty", self.name));
        } else if self.path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            problems.push(format!(
                "filter `{}`: path must name a .wasm file (got {})",
                self.name,
                self.path.display()
            ));
        }
        if self.memory_limit.as_u64() < 64 * 1024 {
            problems.push(format!(
                "filter `{}`: memory_limit must be at least 64KiB (one wasm page)",
                self.name
            ));
        }
        if self.deadline < Duration::from_millis(1) || self.deadline > Duration::from_secs(10) {
            problems.push(format!(
                "filter `{}`: deadline must be between 1ms and 10s",
                self.name
            ));
        }
        if self.instances == 0 || self.instances > 64 {
            problems.push(format!(
                "filter `{}`: instances must be between 1 and 64",
                self.name
            ));
        }
        if self.body_buffer_limit.as_u64() == 0 {
            problems.push(format!(
                "filter `{}`: body_buffer_limit must be above zero",
                self.name
            ));
        }
        problems
    }
}

/// The process-wide filter host: TOML section `[wasm]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterHostConfig {
    /// Where compiled code is cached. Default: `$XDG_CACHE_HOME/gateway/wasm`,
    /// else `$HOME/.cache/gateway/wasm`, else no cache. A directory group
    /// or others can write, or another user owns, is refused (no cache).
    /// `None` in code (or an empty string) disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Largest `.wasm` file compiled.
    pub max_module_size: ByteSize,
    /// Instances alive at once across all filters (pooling allocator slots).
    pub max_instances: u32,
    /// Largest memory any instance may have (pooling slot size); each
    /// filter's `memory_limit` is capped by it.
    pub max_memory: ByteSize,
    /// Wasm stack of one call.
    pub max_wasm_stack: ByteSize,
    /// Epoch tick: the granularity of guest deadlines.
    #[serde(with = "crate::config::duration")]
    pub epoch_tick: Duration,
    /// How long a filter that keeps failing stays out of service at first
    /// (doubles on each further back-off, up to 16x).
    #[serde(with = "crate::config::duration")]
    pub failure_backoff: Duration,
    /// Services: every `*.wasm` of this folder runs once per process
    /// (docs/services.md), configured by a sidecar `<stem>.toml`.
    pub services_dir: Option<PathBuf>,
    /// The services folder is also polled this often ("0s": events only).
    #[serde(with = "crate::config::duration")]
    pub services_poll: Duration,
}

impl Default for FilterHostConfig {
    fn default() -> Self {
        FilterHostConfig {
            cache_dir: default_cache_dir(),
            max_module_size: ByteSize::mib(32),
            max_instances: 256,
            max_memory: ByteSize::mib(256),
            max_wasm_stack: ByteSize::kib(512),
            epoch_tick: Duration::from_millis(5),
            failure_backoff: Duration::from_secs(1),
            services_dir: None,
            services_poll: Duration::from_secs(1),
        }
    }
}

/// The user's cache directory; none (no cache) when neither variable is
/// set: the working directory is not the gateway's own.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("gateway").join("wasm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_check() {
        let cfg = FilterConfig::new("auth", "auth.wasm");
        assert!(cfg.check().is_empty());
        let mut bad = cfg.clone();
        bad.instances = 0;
        bad.path = "auth.cwasm".into();
        let problems = bad.check();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("instances")));
    }
}
