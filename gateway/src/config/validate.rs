//! Checks that go beyond the types: references, uniqueness, ranges.

use std::collections::HashSet;
use std::path::Path;

use super::{pem, Config, ConfigError, ListenerConfig, Protocol};

/// Every semantic problem in `config`, read from `text` at `file`.
pub(super) fn validate(config: &Config, file: &Path, text: &str) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let base = file.parent().unwrap_or(Path::new("."));
    let mut err = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
        errors.push(ConfigError::at(file, text, span, key, message));
    };

    if let Some(admin) = &config.admin {
        for (key, message) in admin.problems(base) {
            err(None, format!("admin.{key}"), message);
        }
    }

    let log = &config.access_log;
    if log.template.is_some() && log.format != super::AccessLogFormat::Text {
        let span = super::tracing::key_span(text, "access_log", "template");
        err(
            span,
            "access_log.template".into(),
            "a template lays out text lines: set format = \"text\" or remove it".into(),
        );
    }
    if log.fields.is_empty() && log.template.is_none() {
        let span = super::tracing::key_span(text, "access_log", "fields");
        err(
            span,
            "access_log.fields".into(),
            "must name at least one field".into(),
        );
    }
    for (key, message) in config.tracing.problems() {
        let span = super::tracing::key_span(text, "tracing", key);
        err(span, format!("tracing.{key}"), message);
    }

    let mut clusters = HashSet::new();
    for (i, cluster) in config.clusters.iter().enumerate() {
        let key = format!("cluster[{i}]");
        if !clusters.insert(cluster.name.as_str()) {
            err(
                None,
                format!("{key}.name"),
                format!("duplicate cluster name `{}`", cluster.name),
            );
        }
        if let Some(tls) = &cluster.tls {
            if let Some(ca) = &tls.ca {
                if let Err(e) = super::pem::root_store(&base.join(ca)) {
                    err(None, format!("{key}.tls.ca"), e.to_string());
                }
            }
        }
        if let Some((span, why)) = super::cluster::protocol_problem(cluster) {
            err(Some(span), format!("{key}.protocol"), why.into());
        }
        for (k, message) in super::redis::problems(cluster) {
            err(None, format!("{key}.{k}"), message);
        }
        for (k, message) in cluster.traffic_problems() {
            let span = super::traffic::locate(text, i, &k);
            err(span, format!("{key}.{k}"), message);
        }
        for (j, endpoint) in cluster.endpoints.iter().enumerate() {
            let endpoint = endpoint.address();
            if let Err(why) = check_endpoint(endpoint) {
                err(
                    None,
                    format!("{key}.endpoints[{j}]"),
                    format!("bad endpoint `{endpoint}`: {why}"),
                );
            }
        }
    }

    let mut services = HashSet::new();
    for (i, service) in config.services.iter().enumerate() {
        if !services.insert(service.name.as_str()) {
            err(
                None,
                format!("service[{i}].name"),
                format!("duplicate service name `{}`", service.name),
            );
        }
        for problem in service.check() {
            err(None, format!("service[{i}]"), problem);
        }
    }
    if let Some(dir) = &config.wasm.services_dir {
        if !base.join(dir).is_dir() {
            err(
                None,
                "wasm.services_dir".into(),
                format!("{} is not a directory", base.join(dir).display()),
            );
        }
    }

    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let key = format!("listener[{i}]");
        if !names.insert(listener.name.as_str()) {
            err(
                None,
                format!("{key}.name"),
                format!("duplicate listener name `{}`", listener.name),
            );
        }
        if listener.address.port() != 0 && !addresses.insert(listener.address) {
            err(
                None,
                format!("{key}.address"),
                format!("address {} is used twice", listener.address),
            );
        }
        if listener.max_connections == 0 {
            err(
                None,
                format!("{key}.max_connections"),
                "must be at least 1".into(),
            );
        }
        if listener.http.max_header_bytes < 8192 {
            err(
                None,
                format!("{key}.http.max_header_bytes"),
                "must be at least 8192".into(),
            );
        }
        match listener.protocol {
            Protocol::Tcp => match &listener.cluster {
                None if listener.sni.is_empty() => err(
                    None,
                    format!("{key}.cluster"),
                    "a tcp listener needs a cluster (or [[listener.sni]] routes)".into(),
                ),
                None => {}
                Some(name) if !clusters.contains(name.get_ref().as_str()) => err(
                    Some(name.span()),
                    format!("{key}.cluster"),
                    format!("unknown cluster `{}`", name.get_ref()),
                ),
                Some(_) => {}
            },
            Protocol::Http | Protocol::Https => {
                if let Some(name) = &listener.cluster {
                    err(
                        Some(name.span()),
                        format!("{key}.cluster"),
                        "only tcp listeners take a cluster; use routes".into(),
                    );
                }
            }
        }
        if let Some(dir) = &listener.filters_dir {
            let resolved = if dir.is_relative() {
                file.parent().unwrap_or(Path::new(".")).join(dir)
            } else {
                dir.clone()
            };
            if !resolved.is_dir() {
                err(
                    None,
                    format!("{key}.filters_dir"),
                    format!("{} is not a directory", resolved.display()),
                );
            }
        }
        for (j, filter) in listener.filters.iter().enumerate() {
            for problem in filter.check() {
                err(None, format!("{key}.filter[{j}]"), problem);
            }
        }
        for (span, k, message) in tls_problems(listener, &clusters, base) {
            err(span, format!("{key}.{k}"), message);
        }
        for (j, route) in listener.routes.iter().enumerate() {
            let key = format!("{key}.route[{j}]");
            for (k, filter) in route.filters.iter().enumerate() {
                for problem in filter.check() {
                    err(None, format!("{key}.filter[{k}]"), problem);
                }
            }
            if route.path.is_some() == route.path_prefix.is_some() {
                err(
                    None,
                    key.clone(),
                    "a route needs exactly one of `path` and `path_prefix`".into(),
                );
            }
            for p in route.path.iter().chain(route.path_prefix.iter()) {
                if !p.starts_with('/') {
                    err(None, key.clone(), format!("path `{p}` must start with `/`"));
                }
            }
            if let Some(host) = &route.host {
                if let Err(why) = check_route_host(host.get_ref()) {
                    err(Some(host.span()), format!("{key}.host"), why);
                }
            }
            if let Some(method) = &route.method {
                if http::Method::from_bytes(method.as_bytes()).is_err() {
                    err(
                        None,
                        format!("{key}.method"),
                        format!("`{method}` is not a method"),
                    );
                }
            }
            match (&route.cluster, &route.direct) {
                (Some(name), None) => {
                    if !clusters.contains(name.get_ref().as_str()) {
                        err(
                            Some(name.span()),
                            format!("{key}.cluster"),
                            format!("unknown cluster `{}`", name.get_ref()),
                        );
                    } else if super::redis::is_redis(config, name.get_ref()) {
                        err(
                            Some(name.span()),
                            format!("{key}.cluster"),
                            format!("cluster `{}` speaks redis: filters reach it by callout, routes cannot", name.get_ref()),
                        );
                    }
                }
                (None, Some(direct)) => {
                    if !(100..=599).contains(&direct.status) {
                        err(
                            None,
                            format!("{key}.direct.status"),
                            format!("{} is not an HTTP status", direct.status),
                        );
                    }
                }
                _ => err(
                    None,
                    key.clone(),
                    "a route needs exactly one of `cluster` and `direct`".into(),
                ),
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

/// A route's `host`: a name or address without port, or `*.` and a
/// suffix (the only wildcard, as for TLS server names).
fn check_route_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let bracketed = name.starts_with('[') && name.ends_with(']');
    if host == "*" {
        Err("`*` is not a host; leave `host` out to match every host".into())
    } else if name.is_empty() {
        Err(format!("`{host}` has no name after `*.`"))
    } else if name.contains('*') {
        Err(format!(
            "`{host}`: `*` is only allowed as the whole first label (`*.example.com`)"
        ))
    } else if bracketed && name.len() > 2 && !host.starts_with("*.") {
        let inner = &name[1..name.len() - 1];
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        Ok(())
    } else if name.contains(':') {
        Err(format!("`{host}`: a route's host takes no port"))
    } else if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        Err(format!("`{host}` has an empty label"))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        Err(format!("`{host}` has `{c}`, not allowed in a host name"))
    } else {
        Ok(())
    }
}

/// Problems with a listener's `tls` and `sni` settings, as (span, key,
/// message).
/// Certificate and key files are read here, so a missing or mismatched
/// file is a config error naming it.
fn tls_problems(
    listener: &ListenerConfig,
    clusters: &HashSet<&str>,
    base: &Path,
) -> Vec<(Option<std::ops::Range<usize>>, String, String)> {
    let mut problems = Vec::new();
    match (listener.protocol, &listener.tls) {
        (Protocol::Https, None) => problems.push((
            None,
            "tls".into(),
            "an https listener needs [listener.tls]".into(),
        )),
        (Protocol::Https, Some(tls)) => {
            if tls.certificates.is_empty() {
                problems.push((
                    None,
                    "tls.certificate".into(),
                    "at least one certificate is needed".into(),
                ));
            }
            for (j, c) in tls.certificates.iter().enumerate() {
                if let Err(e) = pem::certified_key(&base.join(&c.cert), &base.join(&c.key)) {
                    problems.push((None, format!("tls.certificate[{j}]"), e.to_string()));
                }
            }
            if let Some(ca) = &tls.client_ca {
                if let Err(e) = pem::root_store(&base.join(ca)) {
                    problems.push((None, "tls.client_ca".into(), e.to_string()));
                }
            }
        }
        (_, Some(_)) => problems.push((
            None,
            "tls".into(),
            "only https listeners take [listener.tls]".into(),
        )),
        (_, None) => {}
    }
    if !listener.sni.is_empty() && listener.protocol != Protocol::Tcp {
        problems.push((None, "sni".into(), "only tcp listeners route by SNI".into()));
    }
    for (j, route) in listener.sni.iter().enumerate() {
        if route.names.is_empty() {
            problems.push((
                None,
                format!("sni[{j}].names"),
                "at least one name is needed".into(),
            ));
        }
        if !clusters.contains(route.cluster.get_ref().as_str()) {
            problems.push((
                Some(route.cluster.span()),
                format!("sni[{j}].cluster"),
                format!("unknown cluster `{}`", route.cluster.get_ref()),
            ));
        }
    }
    problems
}
