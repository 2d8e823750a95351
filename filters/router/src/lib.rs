//! `filter-router`: picks the upstream cluster from the path (exact or
//! prefix), the host and header values, by setting the gateway's
//! `gateway.upstream` property. The first matching route wins; unmatched
//! requests get 404, or pass through untouched with `unmatched = "pass"`.
//!
//! See README.md for the configuration.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::{Decision, Filter, Hooks, LocalResponse, PreparedResponse, Request};
use serde::Deserialize;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouterConfig {
    /// Routes, tried in order.
    pub routes: Vec<RouteConfig>,
    /// What happens to a request no route matches.
    pub unmatched: Unmatched,
    /// The 404 for `unmatched = "reject"`, encoded on first use.
    #[serde(skip)]
    not_found: OnceCell<PreparedResponse>,
}

/// One route: every condition given must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The path (without query) equals this.
    #[serde(default)]
    pub path: Option<String>,
    /// The path starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The host (authority without port) equals this, case-insensitive.
    #[serde(default)]
    pub host: Option<String>,
    /// Each header has exactly this value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The cluster to send matching requests to.
    pub cluster: String,
}

/// Policy for requests no route matches.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Answer 404.
    #[default]
    Reject,
    /// Let the request through without choosing a cluster.
    Pass,
}

impl RouteConfig {
    fn matches(&self, request: &Request, path: &str, host: &str) -> bool {
        self.path.as_deref().is_none_or(|p| p == path)
            && self.prefix.as_deref().is_none_or(|p| path.starts_with(p))
            && self
                .host
                .as_deref()
                .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && self
                .headers
                .iter()
                .all(|(name, value)| request.header(name).as_deref() == Some(value.as_str()))
    }
}

/// Strips the port from an authority, keeping IPv6 brackets intact.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..h.len() + 1]);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The filter; one per request.
pub struct Router {
    config: Rc<RouterConfig>,
}

impl Filter for Router {
    type Config = RouterConfig;
    // Only these hooks: the gateway calls nothing else per request.
    const HOOKS: Hooks = Hooks::REQUEST;

    fn new(config: &Rc<RouterConfig>) -> Self {
        Router {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let path = request.path();
        // The authority is asked of the host only when a route names one.
        let authority = if self.config.routes.iter().any(|r| r.host.is_some()) {
            request.authority().unwrap_or_default()
        } else {
            String::new()
        };
        let host = host_of(&authority);
        let route = self
            .config
            .routes
            .iter()
            .find(|r| r.matches(request, &path, host));
        match (route, &self.config.unmatched) {
            (Some(route), _) => {
                if !request.set_upstream(&route.cluster) {
                    gateway_sdk::error!("host refused upstream {}", route.cluster);
                }
                Decision::Continue
            }
            (None, Unmatched::Pass) => Decision::Continue,
            (None, Unmatched::Reject) => self
                .config
                .not_found
                .get_or_init(|| {
                    LocalResponse::new(404)
                        .header("content-type", "text/plain")
                        .body("not found\n")
                        .prepare()
                })
                .into(),
        }
    }
}

gateway_sdk::export_filter!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest};

    const DEMO: &str = r#"
        [[routes]]
        path = "/ping"
        cluster = "ping_pong"
    "#;

    #[test]
    fn demo_routes_ping_and_404s_the_rest() {
        let mut test = FilterTest::<Router>::new(DEMO).unwrap();
        let ping = test.request(TestRequest::get("/ping?x=1"));
        assert!(ping.is_continue());
        assert_eq!(ping.upstream().as_deref(), Some("ping_pong"));
        drop(ping);
        let other = test.request(TestRequest::get("/ping/more"));
        assert_eq!(other.local_response().unwrap().status, 404);
        assert_eq!(other.upstream(), None);
    }

    #[test]
    fn prefix_host_and_headers() {
        let config = r#"{"routes": [
            {"prefix": "/api/", "host": "api.example.com", "headers": {"x-env": "canary"}, "cluster": "canary"},
            {"prefix": "/api/", "cluster": "api"}
        ]}"#;
        let mut test = FilterTest::<Router>::new(config).unwrap();
        let canary = TestRequest::get("/api/users")
            .authority("API.example.com:8443")
            .header("x-env", "canary");
        assert_eq!(test.request(canary).upstream().as_deref(), Some("canary"));
        let plain = TestRequest::get("/api/users").authority("api.example.com");
        assert_eq!(test.request(plain).upstream().as_deref(), Some("api"));
    }

    #[test]
    fn unmatched_can_pass() {
        let mut test = FilterTest::<Router>::new(r#"{"unmatched": "pass"}"#).unwrap();
        let exchange = test.request(TestRequest::get("/anything"));
        assert!(exchange.is_continue());
        assert_eq!(exchange.upstream(), None);
    }

    #[test]
    fn route_without_cluster_is_rejected_at_load() {
        assert!(FilterTest::<Router>::new(r#"{"routes": [{"path": "/x"}]}"#).is_err());
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("a.b:80"), "a.b");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("a.b"), "a.b");
    }
}
