//! Checks that go beyond the types: references, uniqueness, ranges.

use std::collections::HashSet;
use std::path::Path;

use super::{Config, ConfigError, Protocol};

/// Every semantic problem in `config`, read from `text` at `file`.
pub(super) fn validate(config: &Config, file: &Path, text: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut err = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
        errors.push(ConfigError::at(file, text, span, key, message));
    };

    let mut clusters = HashSet::new();
    for (i, cluster) in config.clusters.iter().enumerate() {
        let key = format!("cluster[{i}]");
        if !clusters.insert(cluster.name.as_str()) {
            err(None, format!("{key}.name"), format!("duplicate cluster name `{}`", cluster.name));
        }
        for (j, endpoint) in cluster.endpoints.iter().enumerate() {
            if let Err(why) = check_endpoint(endpoint) {
                err(None, format!("{key}.endpoints[{j}]"), format!("bad endpoint `{endpoint}`: {why}"));
            }
        }
    }

    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let key = format!("listener[{i}]");
        if !names.insert(listener.name.as_str()) {
            err(None, format!("{key}.name"), format!("duplicate listener name `{}`", listener.name));
        }
        if listener.address.port() != 0 && !addresses.insert(listener.address) {
            err(None, format!("{key}.address"), format!("address {} is used twice", listener.address));
        }
        if listener.max_connections == 0 {
            err(None, format!("{key}.max_connections"), "must be at least 1".into());
        }
        if listener.http.max_header_bytes < 8192 {
            err(None, format!("{key}.http.max_header_bytes"), "must be at least 8192".into());
        }
        match listener.protocol {
            Protocol::Tcp => match &listener.cluster {
                None => err(None, format!("{key}.cluster"), "a tcp listener needs a cluster".into()),
                Some(name) if !clusters.contains(name.get_ref().as_str()) => err(
                    Some(name.span()),
                    format!("{key}.cluster"),
                    format!("unknown cluster `{}`", name.get_ref()),
                ),
                Some(_) => {}
            },
            Protocol::Http | Protocol::Https => {
                if let Some(name) = &listener.cluster {
                    err(Some(name.span()), format!("{key}.cluster"), "only tcp listeners take a cluster; use routes".into());
                }
            }
        }
        for (j, route) in listener.routes.iter().enumerate() {
            let key = format!("{key}.route[{j}]");
            if route.path.is_some() == route.path_prefix.is_some() {
                err(None, key.clone(), "a route needs exactly one of `path` and `path_prefix`".into());
            }
            for p in route.path.iter().chain(route.path_prefix.iter()) {
                if !p.starts_with('/') {
                    err(None, key.clone(), format!("path `{p}` must start with `/`"));
                }
            }
            if let Some(method) = &route.method {
                if http::Method::from_bytes(method.as_bytes()).is_err() {
                    err(None, format!("{key}.method"), format!("`{method}` is not a method"));
                }
            }
            match (&route.cluster, &route.direct) {
                (Some(name), None) => {
                    if !clusters.contains(name.get_ref().as_str()) {
                        err(Some(name.span()), format!("{key}.cluster"), format!("unknown cluster `{}`", name.get_ref()));
                    }
                }
                (None, Some(direct)) => {
                    if !(100..=599).contains(&direct.status) {
                        err(None, format!("{key}.direct.status"), format!("{} is not an HTTP status", direct.status));
                    }
                }
                _ => err(None, key.clone(), "a route needs exactly one of `cluster` and `direct`".into()),
            }
        }
    }
    errors
}

fn check_endpoint(endpoint: &str) -> Result<(), &'static str> {
    let (host, port) = endpoint.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() {
        return Err("empty host");
    }
    port.parse::<u16>().map_err(|_| "bad port")?;
    Ok(())
}
