//! The traffic-management keys of a `[[cluster]]`: weighted endpoints and
//! the checks of every health and balancing key before start, with the
//! line each is written on (docs/traffic.md).

use serde::{Deserialize, Serialize};

use super::cluster::{BalancePolicy, ClusterConfig};
use super::health_check::check_problems;

/// One entry of `endpoints`: `"host:port"`, or a table with a weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EndpointConfig {
    Address(String),
    Weighted(WeightedEndpoint),
}

impl<'de> Deserialize<'de> for EndpointConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = EndpointConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"host:port\" or { address = \"host:port\", weight = N }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(EndpointConfig::Address(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let weighted = WeightedEndpoint::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(EndpointConfig::Weighted(weighted))
            }
        }
        d.deserialize_any(Entry)
    }
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
        let wrong = toml::from_str::<Endpoints>("endpoints = [80]").err();
        let message = wrong.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("\"host:port\" or { address"), "{message}");
        let typo = toml::from_str::<Endpoints>(r#"endpoints = [{ adress = "a:1" }]"#).err();
        let message = typo.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("adress"), "{message}");
    }
}
