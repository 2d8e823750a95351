//! Configuration: one TOML file, typed serde structs, validated whole
//! before anything starts. Every error names the file, line, column and key.

mod access_log;
mod admin;
mod cluster;
pub mod duration;
mod error;
#[cfg(test)]
mod example_keys;
pub mod filter;
mod health_check;
mod listener;
pub mod pem;
mod plugin_config;
mod redis;
mod retry;
pub mod service;
mod tls;
mod tracing;
mod traffic;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use access_log::{AccessLogField, AccessLogTemplate, TemplatePiece};
pub use admin::AdminConfig;
pub use cluster::{BalancePolicy, ClusterConfig, UpstreamProtocol};
pub use error::{ConfigError, ConfigErrors};
pub use filter::{FilterConfig, FilterHostConfig};
pub use health_check::{CheckKind, HealthCheckConfig};
pub use listener::{DirectResponseConfig, HttpLimitsConfig, ListenerConfig, Protocol, RouteConfig};
pub use redis::RedisConfig;
pub use retry::{CircuitBreakerConfig, RetryBudgetConfig, RetryConfig, RetryOn};
pub use service::ServiceConfig;
pub use tls::{
    name_matches, CertificateConfig, ClientAuth, ListenerTlsConfig, SniRouteConfig, TcpProxyConfig,
    UpstreamTlsConfig,
};
pub use tracing::TracingConfig;
pub use traffic::{EndpointConfig, WeightedEndpoint};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    #[serde(default)]
    pub access_log: AccessLogConfig,
    #[serde(default)]
    pub tracing: TracingConfig,
    #[serde(default)]
    pub wasm: FilterHostConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<ClusterConfig>,
    /// Services: root-only modules run once per process (docs/services.md).
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// Where the file was read from; relative paths in it resolve against
    /// its directory.
    #[serde(skip)]
    pub source: PathBuf,
}

/// `[runtime]`: the process itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Tokio worker threads; 0 means one per core.
    pub workers: usize,
    /// How long requests in flight may take to finish after SIGTERM/Ctrl-C.
    #[serde(with = "crate::config::duration")]
    pub shutdown_grace: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            shutdown_grace: Duration::from_secs(15),
        }
    }
}

/// `[access_log]`: one line per request, written off the request path.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    pub enabled: bool,
    /// `text` (key=value) or `json` (one object per line).
    pub format: AccessLogFormat,
    /// A file to append to (reopened on SIGUSR1); stderr when absent.
    pub path: Option<PathBuf>,
    /// What each line holds, in order (JSON keys; text `name=value`).
    pub fields: Vec<AccessLogField>,
    /// Text lines laid out nginx-style (`$client "$method $path" $status`),
    /// instead of `fields`.
    pub template: Option<AccessLogTemplate>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    #[default]
    Text,
    Json,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            format: AccessLogFormat::Text,
            path: None,
            fields: AccessLogField::DEFAULT.to_vec(),
            template: None,
        }
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`. All problems found
    /// are returned together.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors::single(ConfigError::io(path, &e)))?;
        Self::parse(path, &text)
    }

    /// Parses and validates `text` as if read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigErrors::single(ConfigError::from_toml(path, text, &e)))?;
        config.source = path.to_path_buf();
        let errors = validate::validate(&config, path, text);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        config.resolve_paths();
        Ok(config)
    }

    /// Makes filter and TLS file paths relative to the config file's
    /// directory absolute.
    fn resolve_paths(&mut self) {
        let base = self
            .source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        tls::resolve_paths(self, &base);
        if let Some(admin) = &mut self.admin {
            admin.resolve_paths(&base);
        }
        if let Some(path) = &mut self.access_log.path {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        if let Some(dir) = &mut self.wasm.services_dir {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        for service in &mut self.services {
            if service.path.is_relative() {
                service.path = base.join(&service.path);
            }
        }
        for listener in &mut self.listeners {
            if let Some(dir) = &mut listener.filters_dir {
                if dir.is_relative() {
                    *dir = base.join(&*dir);
                }
            }
            for filter in &mut listener.filters {
                if filter.path.is_relative() {
                    filter.path = base.join(&filter.path);
                }
            }
            for route in &mut listener.routes {
                for filter in &mut route.filters {
                    if filter.path.is_relative() {
                        filter.path = base.join(&filter.path);
                    }
                }
            }
        }
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }
}
