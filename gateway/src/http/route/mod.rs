//! The route table: matches on path, host and method, first match wins
//! in the configured order; looked up through an index so the cost does
//! not grow with the number of routes.

mod index;
mod matcher;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};

use self::index::RouteIndex;
use self::matcher::{method_matches, HostMatch, PathMatch};
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

/// One compiled route.
#[derive(Clone)]
pub struct Route {
    pub name: Arc<str>,
    path: PathMatch,
    host: HostMatch,
    method: Option<Method>,
    pub action: RouteAction,
    pub timeout: Option<Duration>,
    /// The route's own retry policy; `None`: the cluster's.
    pub retry: Option<Arc<crate::upstream::retry::RetryPolicy>>,
    /// Filters for this route only.
    pub filters: FilterChain,
}

/// A listener's routes in order, and their index.
#[derive(Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    index: RouteIndex,
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
            host: HostMatch::from_config(config.host.as_ref().map(|h| h.get_ref().as_str())),
            method: config
                .method
                .as_ref()
                .and_then(|m| Method::from_bytes(m.as_bytes()).ok()),
            action,
            timeout: config.timeout,
            retry: config
                .retry
                .as_ref()
                .map(|r| Arc::new(crate::upstream::retry::RetryPolicy::new(r))),
            filters,
        }
    }

    /// The matching rule itself, route by route; the index answers as
    /// a scan with it in table order would.
    pub fn matches(&self, method: &Method, host: Option<&str>, path: &str) -> bool {
        self.path.matches(path)
            && method_matches(self.method.as_ref(), method)
            && self.host.matches(host)
    }
}

impl RouteTable {
    pub fn new(routes: Vec<Route>) -> Self {
        let mut index = RouteIndex::default();
        for (position, route) in routes.iter().enumerate() {
            // More than 4 billion routes do not fit in memory anyway.
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            index.insert(position, &route.host, &route.path, route.method.as_ref());
        }
        Self { routes, index }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// Whether any route names a host: without one, a request's host
    /// need not be worked out to find its route.
    pub fn routes_by_host(&self) -> bool {
        self.index.routes_by_host()
    }

    /// The first route matching the request, in table order. `host` is
    /// without port.
    pub fn find(&self, method: &Method, host: Option<&str>, path: &str) -> Option<&Route> {
        let position = self.index.find(method, host, path)?;
        self.routes.get(position as usize)
    }

    /// [`RouteTable::find`] by trying every route in order: the reference
    /// the index is tested against.
    pub fn scan(&self, method: &Method, host: Option<&str>, path: &str) -> Option<&Route> {
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
mod tests;
