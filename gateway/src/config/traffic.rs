//! The traffic-management keys of a `[[cluster]]`: weighted endpoints,
//! active health checks and their checks before start (docs/traffic.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cluster::{BalancePolicy, ClusterConfig};

/// One entry of `endpoints`: `"host:port"`, or a table with a weight.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum EndpointConfig {
    Address(String),
    Weighted(WeightedEndpoint),
}

/// `{ address = "host:port", weight = 10 }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedEndpoint {
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// The largest weight an endpoint may have (as Envoy, weights are small
/// relative numbers, not request counts).
pub const MAX_WEIGHT: u32 = 10_000;

impl EndpointConfig {
    pub fn address(&self) -> &str {
        match self {
            EndpointConfig::Address(a) => a,
            EndpointConfig::Weighted(w) => &w.address,
        }
    }

    pub fn weight(&self) -> u32 {
        match self {
            EndpointConfig::Address(_) => 1,
            EndpointConfig::Weighted(w) => w.weight,
        }
    }
}

impl From<&str> for EndpointConfig {
    fn from(address: &str) -> Self {
        EndpointConfig::Address(address.to_string())
    }
}

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

impl ClusterConfig {
    /// Problems with the traffic-management keys, as (key under the
    /// cluster, message).
    pub fn traffic_problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| problems.push((key.to_string(), message));
        for (j, endpoint) in self.endpoints.iter().enumerate() {
            let weight = endpoint.weight();
            if weight == 0 || weight > MAX_WEIGHT {
                problem(
                    &format!("endpoints[{j}].weight"),
                    format!("must be 1 to {MAX_WEIGHT}, not {weight}"),
                );
            }
        }
        if self.healthy_panic_threshold > 100 {
            problem(
                "healthy_panic_threshold",
                "a percentage: 0 (off) to 100".into(),
            );
        }
        let hashing = self.hash_header.is_some() || self.hash_cookie.is_some();
        if hashing && self.balance != BalancePolicy::RingHash {
            let key = if self.hash_header.is_some() {
                "hash_header"
            } else {
                "hash_cookie"
            };
            problem(key, "needs balance = \"ring_hash\"".into());
        }
        if let Some(name) = &self.hash_header {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problem("hash_header", format!("`{name}` is not a header name"));
            }
        }
        if let Some(check) = &self.health_check {
            check_problems(check, &mut problem);
        }
        problems
    }
}

/// Where `key` of the `index`-th `[[cluster]]` (`hash_header`,
/// `endpoints[1].weight`, `health_check.path`) is written in `text`, so an
/// error can name its line: the line of the key, else of its table.
pub fn locate(text: &str, index: usize, key: &str) -> Option<std::ops::Range<usize>> {
    let leaf = |k: &str| k.split(['.', '[']).next().unwrap_or(k).to_string();
    let (table, name) = match key.strip_prefix("health_check.") {
        Some(rest) => ("cluster.health_check", leaf(rest)),
        None => ("", leaf(key)),
    };
    let (mut clusters, mut current, mut offset) = (0, None::<String>, 0);
    let mut table_line = None;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let header = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
            if header == "cluster" {
                clusters += 1;
                current = (clusters == index + 1).then(String::new);
            } else if current.is_some() && header.starts_with("cluster.") {
                current = Some(header.to_string());
            } else if current.is_some() {
                break;
            }
            if current.as_deref() == Some(table) && !table.is_empty() {
                table_line = Some(start..start + line.trim_end().len());
            }
            continue;
        }
        let Some(section) = &current else { continue };
        let written = trimmed.split('=').next().map(str::trim);
        if section == table && trimmed.contains('=') && written == Some(name.as_str()) {
            let indent = line.len() - line.trim_start().len();
            return Some(start + indent..start + line.trim_end().len());
        }
    }
    table_line
}

fn check_problems(check: &HealthCheckConfig, problem: &mut impl FnMut(&str, String)) {
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
    fn keys_are_located_in_their_cluster_and_table() {
        let text = "[[cluster]]\nname = \"a\"\nhash_header = \"x\"\n\n[[cluster]]\nname = \"b\"\n  hash_header = \"y\"\n[cluster.health_check]\npath = \"p\"\n[[listener]]\npath = \"q\"\n";
        let line = |range: Option<std::ops::Range<usize>>| {
            range.map(|r| super::super::error::line_col(text, r.start).0)
        };
        assert_eq!(line(locate(text, 0, "hash_header")), Some(3));
        assert_eq!(line(locate(text, 1, "hash_header")), Some(7));
        assert_eq!(line(locate(text, 1, "health_check.path")), Some(9));
        assert_eq!(
            line(locate(text, 1, "health_check.timeout")),
            Some(8),
            "its table"
        );
        assert_eq!(line(locate(text, 0, "health_check.path")), None);
    }

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

    #[test]
    fn endpoints_are_plain_strings_or_weighted_tables() {
        #[derive(Deserialize)]
        struct Endpoints {
            endpoints: Vec<EndpointConfig>,
        }
        let parsed: Endpoints = toml::from_str(
            r#"endpoints = ["a:1", { address = "b:2", weight = 10 }, { address = "c:3" }]"#,
        )
        .expect("as the test set it up");
        let weights: Vec<_> = parsed
            .endpoints
            .iter()
            .map(|e| (e.address(), e.weight()))
            .collect();
        assert_eq!(weights, [("a:1", 1), ("b:2", 10), ("c:3", 1)]);
    }
}
