//! TLS and L4 settings: `[listener.tls]` (termination), `[listener.tcp]`
//! (forwarding), `[[listener.sni]]` (passthrough routing by server name)
//! and `[cluster.tls]` (TLS to upstreams). See `docs/tls-and-l4.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// `[listener.tls]`: how an `https` listener terminates TLS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsConfig {
    /// Certificates chosen by SNI; the first is the default for clients
    /// that send no (or an unknown) server name.
    #[serde(rename = "certificate")]
    pub certificates: Vec<CertificateConfig>,
    /// Time allowed for the TLS handshake.
    #[serde(
        default = "default_handshake_timeout",
        with = "crate::config::duration"
    )]
    pub handshake_timeout: Duration,
    /// How often certificate and key files are checked for changes.
    #[serde(default = "default_reload_interval", with = "crate::config::duration")]
    pub reload_interval: Duration,
    /// Client certificates (mTLS): PEM file of the CAs that sign them.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether a client certificate is `required` or
    /// `optional` (verified when presented).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// `[[listener.tls.certificate]]`: one certificate chain and its key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file: the leaf certificate first, then intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Server names (exact or `*.example.com`) this certificate serves;
    /// empty: the DNS names in the certificate.
    #[serde(default)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

/// `[listener.tcp]`: L4 forwarding on a `tcp` listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpProxyConfig {
    /// A connection with no bytes in either direction for this long is
    /// closed.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// Overrides the cluster's `connect_timeout` for this listener.
    #[serde(with = "crate::config::duration::option")]
    pub connect_timeout: Option<Duration>,
    /// With `[[listener.sni]]`: time allowed for the TLS ClientHello.
    #[serde(with = "crate::config::duration")]
    pub sni_read_timeout: Duration,
}

impl Default for TcpProxyConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            connect_timeout: None,
            sni_read_timeout: Duration::from_secs(5),
        }
    }
}

/// `[[listener.sni]]`: TLS passthrough, picking the cluster by the server
/// name in the ClientHello (the listener's `cluster` is the default).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SniRouteConfig {
    /// Exact names or `*.example.com` (one label or more before the
    /// suffix), compared case-insensitively.
    pub names: Vec<String>,
    pub cluster: Spanned<String>,
}

/// `[cluster.tls]`: TLS from the gateway to the cluster's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM file of the CAs trusted for the endpoints' certificates;
    /// without it, the system's trusted roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The server name sent and verified; default: the endpoint's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// ALPN protocols offered, e.g. `["h2", "http/1.1"]`; HTTP/2 is used
    /// when the endpoint picks `h2`. Default: `["http/1.1"]`.
    #[serde(default = "default_alpn")]
    pub alpn: Vec<String>,
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_reload_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_alpn() -> Vec<String> {
    vec!["http/1.1".to_string()]
}

/// Whether `name` (lower case) matches `pattern` (exact or `*.suffix`).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => name
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => pattern == name,
    }
}

/// Makes `path` absolute against `base`.
pub(super) fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

/// Makes every TLS file path in `config` absolute against `base`.
pub(super) fn resolve_paths(config: &mut super::Config, base: &Path) {
    for listener in &mut config.listeners {
        if let Some(tls) = &mut listener.tls {
            for c in &mut tls.certificates {
                resolve(base, &mut c.cert);
                resolve(base, &mut c.key);
            }
            if let Some(ca) = &mut tls.client_ca {
                resolve(base, ca);
            }
        }
    }
    for cluster in &mut config.clusters {
        if let Some(tls) = &mut cluster.tls {
            if let Some(ca) = &mut tls.ca {
                resolve(base, ca);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_one_or_more_labels_only() {
        assert!(name_matches("a.example", "a.example"));
        assert!(name_matches("*.b.example", "x.b.example"));
        assert!(name_matches("*.b.example", "y.x.b.example"));
        assert!(!name_matches("*.b.example", "b.example"));
        assert!(!name_matches("*.b.example", "xb.example"));
        assert!(name_matches("A.Example", "a.example"));
    }
}
