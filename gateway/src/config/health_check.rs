//! `[cluster.health_check]`: how the gateway probes each endpoint of a
//! cluster, and the checks of those keys (docs/traffic.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an active health check does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A request; healthy when the status is one of `expected_statuses`.
    #[default]
    Http,
    /// A TCP connect (and the TLS handshake, with `[cluster.tls]`).
    Tcp,
}

/// `[cluster.health_check]`: probes every endpoint on an interval, from
/// the gateway process (not once per worker).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    #[serde(default)]
    pub kind: CheckKind,
    #[serde(default = "default_interval", with = "crate::config::duration")]
    pub interval: Duration,
    /// A random extra of up to this much is added to each interval, so
    /// checks of many endpoints do not fire together.
    #[serde(default = "default_jitter", with = "crate::config::duration")]
    pub jitter: Duration,
    #[serde(default = "default_check_timeout", with = "crate::config::duration")]
    pub timeout: Duration,
    /// Consecutive failed checks that take an endpoint out of rotation.
    #[serde(default = "default_unhealthy")]
    pub unhealthy_threshold: u32,
    /// Consecutive passed checks that bring it back.
    #[serde(default = "default_healthy")]
    pub healthy_threshold: u32,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// `Host` of the check request; default: the endpoint's `host:port`.
    #[serde(default)]
    pub host: Option<String>,
    /// Statuses that pass: `"200"` or ranges `"200-399"`.
    #[serde(default = "default_statuses")]
    pub expected_statuses: Vec<String>,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_jitter() -> Duration {
    Duration::ZERO
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_unhealthy() -> u32 {
    3
}
fn default_healthy() -> u32 {
    2
}
fn default_method() -> String {
    "GET".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_statuses() -> Vec<String> {
    vec!["200-399".into()]
}

impl HealthCheckConfig {
    /// Whether `status` passes the check. The ranges were validated.
    pub fn passes(&self, status: u16) -> bool {
        self.expected_statuses
            .iter()
            .filter_map(|s| parse_status_range(s).ok())
            .any(|(lo, hi)| (lo..=hi).contains(&status))
    }
}

/// `"204"` or `"200-399"` as an inclusive range.
pub fn parse_status_range(text: &str) -> Result<(u16, u16), String> {
    let status = |s: &str| match s.trim().parse::<u16>() {
        Ok(n) if (100..=599).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a status (100-599) or a range of them"
        )),
    };
    match text.split_once('-') {
        Some((lo, hi)) => {
            let (lo, hi) = (status(lo)?, status(hi)?);
            if lo > hi {
                return Err(format!("`{text}`: the range is empty"));
            }
            Ok((lo, hi))
        }
        None => status(text).map(|n| (n, n)),
    }
}

pub(super) fn check_problems(check: &HealthCheckConfig, problem: &mut impl FnMut(&str, String)) {
    if check.interval.is_zero() {
        problem("health_check.interval", "must be more than 0s".into());
    }
    if check.timeout.is_zero() {
        problem("health_check.timeout", "must be more than 0s".into());
    }
    if check.unhealthy_threshold == 0 {
        problem(
            "health_check.unhealthy_threshold",
            "must be at least 1".into(),
        );
    }
    if check.healthy_threshold == 0 {
        problem(
            "health_check.healthy_threshold",
            "must be at least 1".into(),
        );
    }
    if check.kind == CheckKind::Http {
        if http::Method::from_bytes(check.method.as_bytes()).is_err() {
            problem(
                "health_check.method",
                format!("`{}` is not a method", check.method),
            );
        }
        if !check.path.starts_with('/')
            || http::uri::PathAndQuery::try_from(check.path.as_str()).is_err()
        {
            problem(
                "health_check.path",
                format!("`{}` is not a path starting with /", check.path),
            );
        }
        if let Some(host) = &check.host {
            if http::HeaderValue::from_str(host).is_err() || host.is_empty() {
                problem("health_check.host", format!("`{host}` is not a host"));
            }
        }
        if check.expected_statuses.is_empty() {
            problem("health_check.expected_statuses", "lists no status".into());
        }
        for (k, range) in check.expected_statuses.iter().enumerate() {
            if let Err(why) = parse_status_range(range) {
                problem(&format!("health_check.expected_statuses[{k}]"), why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_parse_and_match() {
        assert_eq!(parse_status_range("204"), Ok((204, 204)));
        assert_eq!(parse_status_range("200-399"), Ok((200, 399)));
        assert!(parse_status_range("399-200").is_err());
        assert!(parse_status_range("99").is_err());
        assert!(parse_status_range("2xx").is_err());
        let check: HealthCheckConfig = toml::from_str("expected_statuses = [\"200\", \"300-302\"]")
            .expect("as the test set it up");
        assert!(check.passes(200) && check.passes(301));
        assert!(!check.passes(204) && !check.passes(503));
    }
}
