//! Service configuration: one `[[service]]` entry per service (a root-only
//! proxy-wasm module run once per gateway process), with the keys of a
//! filter that apply to it. Modules of `[wasm] services_dir` take the same
//! keys (but `path`) from their sidecar `<stem>.toml`.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::filter::FilterConfig;

/// TOML `[[service]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Plugin configuration bytes, handed to `proxy_on_configure`.
    #[serde(default, deserialize_with = "super::plugin_config::deserialize")]
    pub config: Option<String>,
    /// VM configuration bytes, handed to `proxy_on_vm_start`.
    #[serde(default, deserialize_with = "super::plugin_config::deserialize")]
    pub vm_config: Option<String>,
    #[serde(default)]
    pub root_id: Option<String>,
    /// The VM id that scopes shared data, shared queues and metrics: set
    /// it to a filter's `vm_id` (or name) to share them with that filter.
    /// Default: the service's name.
    #[serde(default)]
    pub vm_id: Option<String>,
    /// Linear-memory cap of the instance.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: ByteSize,
    /// Wall-clock budget of every single call into the guest.
    #[serde(default = "default_deadline", with = "crate::config::duration")]
    pub deadline: Duration,
    /// Longest `proxy_http_call` timeout the service may ask for.
    #[serde(default = "default_callout_timeout", with = "crate::config::duration")]
    pub max_callout_timeout: Duration,
}

fn default_memory_limit() -> ByteSize {
    ByteSize::mib(64)
}
fn default_deadline() -> Duration {
    Duration::from_millis(100)
}
fn default_callout_timeout() -> Duration {
    Duration::from_secs(30)
}

impl ServiceConfig {
    /// A configuration with every limit at its default.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        ServiceConfig {
            name: name.into(),
            path: path.into(),
            config: None,
            vm_config: None,
            root_id: None,
            vm_id: None,
            memory_limit: default_memory_limit(),
            deadline: default_deadline(),
            max_callout_timeout: default_callout_timeout(),
        }
    }

    /// The settings as the filter host runs modules: a service is one
    /// instance with a filter's limits.
    pub fn as_filter(&self) -> FilterConfig {
        let mut f = FilterConfig::new(self.name.clone(), self.path.clone());
        f.config = self.config.clone();
        f.vm_config = self.vm_config.clone();
        f.root_id = self.root_id.clone();
        f.vm_id = self.vm_id.clone();
        f.memory_limit = self.memory_limit;
        f.deadline = self.deadline;
        f.max_callout_timeout = self.max_callout_timeout;
        f
    }

    /// Semantic problems, each message naming the key.
    pub fn check(&self) -> Vec<String> {
        self.as_filter()
            .check()
            .into_iter()
            .map(|p| p.replacen("filter", "service", 1))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_takes_a_filters_limits_and_vm_id() {
        let text = r#"
            name = "denylist"
            path = "denylist.wasm"
            vm_id = "edge"
            deadline = "50ms"
            config = { url = "/list" }
        "#;
        let service: ServiceConfig = toml::from_str(text).expect("parses");
        let filter = service.as_filter();
        assert_eq!(filter.vm_id.as_deref(), Some("edge"));
        assert_eq!(filter.deadline, Duration::from_millis(50));
        assert_eq!(filter.config.as_deref(), Some(r#"{"url":"/list"}"#));
        assert!(service.check().is_empty());
        let bad: Result<ServiceConfig, _> =
            toml::from_str("name = \"a\"\npath = \"a.wasm\"\ninstances = 2\n");
        assert!(bad.is_err(), "filter-only keys are refused");
        let mut wrong = service.clone();
        wrong.path = "x.so".into();
        assert!(
            wrong.check()[0].starts_with("service `denylist`"),
            "{:?}",
            wrong.check()
        );
    }

    #[test]
    fn bad_services_are_reported_with_file_and_key() {
        let text = r#"
[wasm]
services_dir = "no-such-dir"

[[service]]
name = "a"
path = "a.wasm"

[[service]]
name = "a"
path = "a.so"
deadline = "1h"
"#;
        let path = std::path::Path::new("/etc/gateway/gateway.toml");
        let errors = crate::config::Config::parse(path, text)
            .expect_err("rejected")
            .to_string();
        assert!(errors.contains("gateway.toml"), "{errors}");
        assert!(
            errors.contains("service[1].name") && errors.contains("duplicate service name `a`"),
            "{errors}"
        );
        assert!(errors.contains("path must name a .wasm file"), "{errors}");
        assert!(
            errors.contains("deadline must be between 1ms and 10s"),
            "{errors}"
        );
        assert!(errors.contains("wasm.services_dir"), "{errors}");
    }
}
