//! The route table: ordered matches on path, host and method; first match
//! wins.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};

use crate::config::RouteConfig;
use crate::filter::FilterChain;

/// What a matched route does.
#[derive(Debug, Clone)]
pub enum RouteAction {
    Forward {
        cluster: Arc<str>,
    },
    Direct {
        status: StatusCode,
        body: Bytes,
        content_type: HeaderValue,
    },
}

#[derive(Debug, Clone)]
enum PathMatch {
    Exact(String),
    Prefix(String),
}

/// One compiled route.
#[derive(Clone)]
pub struct Route {
    pub name: Arc<str>,
    path: PathMatch,
    host: Option<String>,
    method: Option<Method>,
    pub action: RouteAction,
    pub timeout: Option<Duration>,
    /// Filters for this route only.
    pub filters: FilterChain,
}

/// A listener's routes in order.
#[derive(Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl Route {
    /// Builds a route from validated config.
    pub fn from_config(config: &RouteConfig, filters: FilterChain) -> Route {
        let path = match (&config.path, &config.path_prefix) {
            (Some(p), _) => PathMatch::Exact(p.clone()),
            (None, Some(p)) => PathMatch::Prefix(p.clone()),
            (None, None) => PathMatch::Prefix("/".into()),
        };
        let action = match (&config.cluster, &config.direct) {
            (Some(cluster), _) => RouteAction::Forward {
                cluster: Arc::from(cluster.get_ref().as_str()),
            },
            (None, Some(direct)) => RouteAction::Direct {
                status: StatusCode::from_u16(direct.status).unwrap_or(StatusCode::OK),
                body: Bytes::from(direct.body.clone()),
                content_type: HeaderValue::from_str(&direct.content_type)
                    .unwrap_or(HeaderValue::from_static("text/plain")),
            },
            (None, None) => RouteAction::Direct {
                status: StatusCode::NOT_FOUND,
                body: Bytes::new(),
                content_type: HeaderValue::from_static("text/plain"),
            },
        };
        Route {
            name: Arc::from(config.display_name()),
            path,
            host: config.host.as_ref().map(|h| h.to_ascii_lowercase()),
            method: config
                .method
                .as_ref()
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok()),
            action,
            timeout: config.timeout,
            filters,
        }
    }

    fn matches(&self, method: &Method, host: Option<&str>, path: &str) -> bool {
        let path_ok = match &self.path {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(p) => path.starts_with(p.as_str()),
        };
        path_ok
            && self.method.as_ref().is_none_or(|m| m == method)
            && self
                .host
                .as_deref()
                .is_none_or(|want| host.is_some_and(|h| h.eq_ignore_ascii_case(want)))
    }
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        Self { routes }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The first route matching the request. `host` is without port.
    pub fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(method, host, path))
    }
}

/// The host of an authority, without port (`[::1]:80` gives `[::1]`).
pub fn host_without_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .split_once(']')
            .map_or(authority, |(h, _)| &authority[..=h.len()]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(toml_text: &str) -> Route {
        let config: RouteConfig = toml::from_str(toml_text).expect("route config");
        Route::from_config(&config, FilterChain::empty())
    }

    #[test]
    fn first_match_wins_and_unmatched_is_none() {
        let table = RouteTable::new(vec![
            route("path = \"/ping\"\ncluster = \"a\""),
            route("path_prefix = \"/api/\"\nmethod = \"POST\"\ncluster = \"b\""),
            route("path_prefix = \"/\"\nhost = \"example.com\"\ncluster = \"c\""),
        ]);
        let get = Method::GET;
        assert_eq!(
            table.find(&get, None, "/ping").map(|r| &*r.name),
            Some("/ping")
        );
        assert!(table.find(&get, None, "/ping/x").is_none());
        assert!(table.find(&get, None, "/api/x").is_none());
        assert_eq!(
            table.find(&Method::POST, None, "/api/x").map(|r| &*r.name),
            Some("/api/*")
        );
        assert_eq!(
            table
                .find(&get, Some("EXAMPLE.com"), "/x")
                .map(|r| &*r.name),
            Some("/*")
        );
        assert!(table.find(&get, Some("other.com"), "/x").is_none());
    }

    #[test]
    fn host_loses_its_port() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }
}
