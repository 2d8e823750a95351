//! `[admin]`: where the admin listener binds, who may use it, and its limits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[admin]`: the admin listener (health, readiness, filters, clusters,
/// metrics, the HTML page, drain and log level).
///
/// It binds to loopback unless `address` says otherwise; a non-loopback
/// address needs a `token` (or `token_file`), since the admin shows the
/// configuration and can drain the gateway.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Default `127.0.0.1:9901` (Envoy's admin port).
    pub address: SocketAddr,
    /// Bearer token every request except `/healthz` and `/ready` must carry
    /// (`Authorization: Bearer TOKEN`, or HTTP Basic with the token as the
    /// password, which is what a browser's login prompt sends).
    pub token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored), read at
    /// start; relative to the config file.
    pub token_file: Option<PathBuf>,
    /// How long a client has to send a request head, and how long a
    /// keep-alive connection may sit idle.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Admin connections open at once; further clients wait in the
    /// listen backlog.
    pub max_connections: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)),
            token: None,
            token_file: None,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 32,
        }
    }
}

impl AdminConfig {
    /// The token in force: `token`, or the content of `token_file`.
    pub fn load_token(&self) -> std::io::Result<Option<String>> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)?;
                Ok(Some(text.trim().to_string()))
            }
            None => Ok(None),
        }
    }

    /// Problems as (key under `admin`, message); `base` is the config
    /// file's directory.
    pub(super) fn problems(&self, base: &Path) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.token.is_some() && self.token_file.is_some() {
            problems.push(("token_file", "set `token` or `token_file`, not both".into()));
        }
        let resolved = Self {
            token_file: self.token_file.as_ref().map(|f| base.join(f)),
            ..self.clone()
        };
        let token = match resolved.load_token() {
            Ok(token) => token,
            Err(e) => {
                let file = resolved.token_file.unwrap_or_default();
                problems.push(("token_file", format!("cannot read {}: {e}", file.display())));
                return problems;
            }
        };
        match &token {
            Some(t) if t.is_empty() => {
                let key = if self.token.is_some() {
                    "token"
                } else {
                    "token_file"
                };
                problems.push((key, "the token is empty".into()));
            }
            Some(t) if t.chars().any(|c| !c.is_ascii_graphic()) => {
                let key = if self.token.is_some() {
                    "token"
                } else {
                    "token_file"
                };
                problems.push((
                    key,
                    "the token must be printable ASCII without spaces".into(),
                ));
            }
            _ => {}
        }
        if token.is_none() && !self.address.ip().is_loopback() {
            problems.push((
                "address",
                format!(
                    "{} is not a loopback address: set `token` or `token_file` so that only \
                     operators can read the config and drain the gateway",
                    self.address
                ),
            ));
        }
        if self.max_connections == 0 {
            problems.push(("max_connections", "must be at least 1".into()));
        }
        if self.header_read_timeout.is_zero() {
            problems.push(("header_read_timeout", "must be more than 0".into()));
        }
        problems
    }

    /// Makes `token_file` absolute against the config file's directory.
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        if let Some(file) = &mut self.token_file {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(text: &str) -> AdminConfig {
        toml::from_str(text).expect("admin config")
    }

    fn keys(config: &AdminConfig) -> Vec<&'static str> {
        config
            .problems(Path::new("."))
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn defaults_to_loopback_without_a_token() {
        let config = admin("");
        assert_eq!(config.address, "127.0.0.1:9901".parse().expect("address"));
        assert!(keys(&config).is_empty());
    }

    #[test]
    fn a_public_address_needs_a_token() {
        assert_eq!(keys(&admin(r#"address = "0.0.0.0:9901""#)), ["address"]);
        assert!(keys(&admin("address = \"0.0.0.0:9901\"\ntoken = \"s3cret\"")).is_empty());
        assert!(keys(&admin(r#"address = "[::1]:9901""#)).is_empty());
    }

    #[test]
    fn token_problems_name_their_key() {
        assert_eq!(keys(&admin(r#"token = """#)), ["token"]);
        assert_eq!(keys(&admin(r#"token = "a b""#)), ["token"]);
        assert_eq!(
            keys(&admin(r#"token_file = "/nonexistent/admin-token""#)),
            ["token_file"]
        );
        let dir = tempfile_dir();
        std::fs::write(dir.join("token"), "  abc\n").expect("write");
        let config = admin(r#"token_file = "token""#);
        assert!(config.problems(&dir).is_empty());
        let mut resolved = config.clone();
        resolved.resolve_paths(&dir);
        assert_eq!(resolved.load_token().expect("read").as_deref(), Some("abc"));
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gateway-admin-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
