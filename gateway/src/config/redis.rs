//! `[cluster.redis]`: how a `protocol = "redis"` cluster logs in and how
//! many connections it keeps.

use serde::{Deserialize, Serialize};

use super::{ClusterConfig, UpstreamProtocol};

/// Settings of a Redis cluster beyond endpoints and timeouts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// ACL user name (Redis 6+); none: the `default` user.
    #[serde(default)]
    pub username: Option<String>,
    /// Password sent with `AUTH`; none: no `AUTH`.
    #[serde(default)]
    pub password: Option<String>,
    /// Logical database selected on every connection.
    #[serde(default)]
    pub database: u32,
    /// Connections per endpoint; each carries many commands at once
    /// (pipelined), so a few are plenty.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Commands waiting for an answer on one connection at most; more get
    /// "unreachable" at once instead of queueing without bound.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            username: None,
            password: None,
            database: 0,
            connections: default_connections(),
            max_in_flight: default_max_in_flight(),
        }
    }
}

fn default_connections() -> usize {
    2
}
fn default_max_in_flight() -> usize {
    1024
}

/// Problems of a cluster's Redis settings, as (key below the cluster, message).
pub(super) fn problems(cluster: &ClusterConfig) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    match (cluster.protocol(), &cluster.redis) {
        (UpstreamProtocol::Redis, redis) => {
            if cluster.endpoints.is_empty() {
                problems.push(("endpoints", "a redis cluster needs an endpoint".into()));
            }
            let redis = redis.clone().unwrap_or_default();
            if !(1..=64).contains(&redis.connections) {
                problems.push(("redis.connections", "must be between 1 and 64".into()));
            }
            if redis.max_in_flight == 0 {
                problems.push(("redis.max_in_flight", "must be at least 1".into()));
            }
        }
        (_, Some(_)) => problems.push((
            "redis",
            "only a cluster with protocol = \"redis\" takes [cluster.redis]".into(),
        )),
        (_, None) => {}
    }
    problems
}

/// Whether the cluster named `name` speaks Redis.
pub(super) fn is_redis(config: &super::Config, name: &str) -> bool {
    config
        .clusters
        .iter()
        .any(|c| c.name == name && c.protocol() == UpstreamProtocol::Redis)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn errors(text: &str) -> String {
        match Config::parse(Path::new("gateway.toml"), text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const LISTENER: &str = r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path = "/"
        cluster = "cache"
    "#;

    #[test]
    fn a_redis_cluster_is_no_route_target() {
        let text = format!(
            "{LISTENER}\n[[cluster]]\nname = \"cache\"\nprotocol = \"redis\"\nendpoints = [\"127.0.0.1:6379\"]\n"
        );
        let errors = errors(&text);
        assert!(errors.contains("listener[0].route[0].cluster"), "{errors}");
        assert!(errors.contains("speaks redis"), "{errors}");
    }

    #[test]
    fn redis_settings_are_checked() {
        let text =
            "[[cluster]]\nname = \"r\"\nprotocol = \"redis\"\n[cluster.redis]\nconnections = 0\n";
        let found = errors(text);
        assert!(found.contains("cluster[0].endpoints"), "{found}");
        assert!(found.contains("cluster[0].redis.connections"), "{found}");
        let text = "[[cluster]]\nname = \"h\"\nendpoints = [\"127.0.0.1:80\"]\n[cluster.redis]\n";
        assert!(
            errors(text).contains("cluster[0].redis"),
            "{}",
            errors(text)
        );
        let text = "[[cluster]]\nname = \"r\"\nprotocol = \"redis\"\nendpoints = [\"127.0.0.1:6379\"]\n[cluster.redis]\npassword = \"x\"\ndatabase = 2\n";
        assert_eq!(errors(text), "");
    }
}
