//! What the admin page shows, gathered in one serializable value (also served as `/overview`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::rates::RouteTraffic;
use super::AdminState;
use crate::config::{ListenerConfig, Protocol, RouteConfig};
use crate::upstream::EndpointHealth;

/// The gateway at one moment, for people.
#[derive(Debug, Serialize)]
pub(super) struct Overview {
    /// RFC 3339, UTC.
    pub generated_at: String,
    pub started_at: String,
    pub uptime_seconds: u64,
    /// `"ready"`, `"draining"` or `"starting"`.
    pub readiness: &'static str,
    pub log_filter: Option<String>,
    pub config_file: String,
    pub listeners: Vec<ListenerView>,
    pub clusters: Vec<ClusterView>,
    /// Each filter chain and its filters, as `/filters` reports them.
    pub chains: serde_json::Value,
    /// The services, as `/services` reports them.
    pub services: serde_json::Value,
    pub traffic: Vec<RouteTraffic>,
}

#[derive(Debug, Serialize)]
pub(super) struct ListenerView {
    pub name: String,
    pub protocol: &'static str,
    /// Where it is bound (as configured until it is).
    pub address: String,
    pub filters_dir: Option<String>,
    pub routes: Vec<RouteView>,
}

#[derive(Debug, Serialize)]
pub(super) struct RouteView {
    pub name: String,
    /// `path /ping`, `prefix /api/ host example.com method GET`, `sni *.example.com`...
    pub matches: String,
    /// `cluster NAME` or `direct 404`.
    pub target: String,
    pub filters: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct ClusterView {
    pub name: String,
    pub balance: String,
    pub endpoints: Vec<EndpointHealth>,
    /// State, latency and errors of a `protocol = "redis"` cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<crate::upstream::RedisStatus>,
}

impl Overview {
    pub(super) async fn gather(admin: &AdminState) -> Overview {
        let snapshot = admin.state.load_full();
        let config = &snapshot.config;
        let readiness = if admin.draining.load(Ordering::Acquire) {
            "draining"
        } else if admin.ready.load(Ordering::Acquire) {
            "ready"
        } else {
            "starting"
        };
        let mut clusters: Vec<ClusterView> = snapshot
            .clusters
            .iter()
            .map(|c| ClusterView {
                name: c.name().to_string(),
                balance: enum_name(&c.config.balance),
                endpoints: c.endpoint_health(),
                redis: c.redis().map(|r| r.status()),
            })
            .collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let rfc3339 = |t| humantime::format_rfc3339_seconds(t).to_string();
        Overview {
            generated_at: rfc3339(std::time::SystemTime::now()),
            started_at: rfc3339(admin.started.1),
            uptime_seconds: admin.started.0.elapsed().as_secs(),
            readiness,
            log_filter: super::logging::current(),
            config_file: config.source.display().to_string(),
            listeners: {
                let bound = admin.bound.load();
                let view = |l| listener_view(l, bound.get(&l.name));
                config.listeners.iter().map(view).collect()
            },
            clusters,
            chains: snapshot.filter_status().await,
            services: super::services::status(admin),
            traffic: admin.rates.traffic(),
        }
    }
}

fn listener_view(listener: &ListenerConfig, bound: Option<&SocketAddr>) -> ListenerView {
    let routes = match listener.protocol {
        Protocol::Tcp => {
            let sni = listener.sni.iter().map(|s| RouteView {
                name: s.names.join(" "),
                matches: format!("sni {}", s.names.join(" ")),
                target: format!("cluster {}", s.cluster.get_ref()),
                filters: Vec::new(),
            });
            let default = listener.cluster.iter().map(|c| RouteView {
                name: "(every connection)".into(),
                matches: "any".into(),
                target: format!("cluster {}", c.get_ref()),
                filters: Vec::new(),
            });
            sni.chain(default).collect()
        }
        Protocol::Http | Protocol::Https => listener.routes.iter().map(route_view).collect(),
    };
    ListenerView {
        name: listener.name.clone(),
        protocol: match listener.protocol {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Tcp => "tcp",
        },
        address: bound.unwrap_or(&listener.address).to_string(),
        filters_dir: listener
            .filters_dir
            .as_ref()
            .map(|d| d.display().to_string()),
        routes,
    }
}

fn route_view(route: &RouteConfig) -> RouteView {
    let mut matches = Vec::new();
    if let Some(path) = &route.path {
        matches.push(format!("path {path}"));
    }
    if let Some(prefix) = &route.path_prefix {
        matches.push(format!("prefix {prefix}"));
    }
    if let Some(host) = &route.host {
        matches.push(format!("host {}", host.get_ref()));
    }
    if let Some(method) = &route.method {
        matches.push(format!("method {method}"));
    }
    let target = match (&route.cluster, &route.direct) {
        (Some(cluster), _) => format!("cluster {}", cluster.get_ref()),
        (None, Some(direct)) => format!("direct {}", direct.status),
        (None, None) => "-".into(),
    };
    RouteView {
        name: route.display_name(),
        matches: matches.join(" "),
        target,
        filters: route.filters.iter().map(|f| f.name.clone()).collect(),
    }
}

/// A config enum as written in the file (`round_robin`, ...).
fn enum_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
