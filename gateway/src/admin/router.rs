//! The admin endpoints: which path and method does what.

use std::sync::atomic::Ordering;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::overview::Overview;
use super::{auth, logging, page, AdminState};
use crate::http::body::{self, Body};

/// The admin's paths and the methods each takes.
const ENDPOINTS: &[(&str, &str)] = &[
    ("/", "GET, HEAD"),
    ("/healthz", "GET, HEAD"),
    ("/ready", "GET, HEAD"),
    ("/overview", "GET, HEAD"),
    ("/config", "GET, HEAD"),
    ("/filters", "GET, HEAD"),
    ("/clusters", "GET, HEAD"),
    ("/services", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/drain", "POST, DELETE"),
    ("/logging", "GET, HEAD, POST"),
];

/// Answers one admin request.
pub(super) async fn handle(admin: &AdminState, req: Request<Incoming>) -> Response<Body> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    tracing::debug!(%method, path, "admin request");
    let Some((_, allowed)) = ENDPOINTS.iter().find(|(p, _)| *p == path) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if !auth::is_probe(&path) && !auth::is_authorized(admin.token.as_deref(), req.headers()) {
        return auth::challenge();
    }
    if auth::is_cross_site_write(&method, req.headers()) {
        return text(
            StatusCode::FORBIDDEN,
            "cross-site requests may not change the gateway\n",
        );
    }
    let read = method == Method::GET || method == Method::HEAD;
    match (path.as_str(), read) {
        ("/healthz", true) => text(StatusCode::OK, "ok\n"),
        ("/ready", true) => ready(admin),
        ("/", true) => {
            let view = Overview::gather(admin).await;
            with_type(body::full(page::render(&view)), "text/html; charset=utf-8")
        }
        ("/overview", true) => json(&Overview::gather(admin).await),
        ("/config", true) => {
            let mut config = serde_json::to_value(&*admin.state.load().config).unwrap_or_default();
            redact(&mut config);
            json(&config)
        }
        ("/filters", true) => json(&admin.state.load_full().filter_status().await),
        ("/clusters", true) => json(&super::clusters::ClustersView::gather(
            &admin.state.load().clusters,
        )),
        ("/services", true) => json(&super::services::status(admin)),
        ("/metrics", true) => {
            let filters = admin
                .filter_host
                .get()
                .map(|h| h.metrics())
                .unwrap_or_default();
            with_type(
                body::full(crate::metrics::encode_with(&filters, |out| {
                    crate::upstream::encode_endpoint_metrics(&admin.state.load().clusters, out)
                })),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        }
        ("/drain", false) if method == Method::POST => {
            admin.draining.store(true, Ordering::Release);
            tracing::warn!("draining: /ready now answers 503; traffic is still served");
            text(StatusCode::OK, "draining\n")
        }
        ("/drain", false) if method == Method::DELETE => {
            admin.draining.store(false, Ordering::Release);
            tracing::info!("drain cancelled: /ready follows readiness again");
            text(StatusCode::OK, "not draining\n")
        }
        ("/logging", true) => match logging::current() {
            Some(filter) => text(StatusCode::OK, &format!("{filter}\n")),
            None => text(
                StatusCode::NOT_FOUND,
                "logging is not reloadable in this process\n",
            ),
        },
        ("/logging", false) if method == Method::POST => {
            match logging::level_param(req.uri().query()) {
                None => text(
                    StatusCode::BAD_REQUEST,
                    "expected ?level=LEVEL (e.g. debug, or gateway=debug,info)\n",
                ),
                Some(level) => match logging::set(&level) {
                    Ok(filter) => text(StatusCode::OK, &format!("{filter}\n")),
                    Err(why) => text(StatusCode::BAD_REQUEST, &format!("{why}\n")),
                },
            }
        }
        _ => {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allowed));
            resp
        }
    }
}

fn ready(admin: &AdminState) -> Response<Body> {
    if admin.draining.load(Ordering::Acquire) {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if admin.ready.load(Ordering::Acquire) {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Secrets in the config in force are shown as their size only: filter
/// configurations (API keys, tokens) and the admin token.
/// `[cluster.redis]`, whose `password` is a secret.
fn map_has_redis_keys(map: &serde_json::Map<String, serde_json::Value>) -> bool {
    map.contains_key("max_in_flight") && map.contains_key("database")
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            // Filters and services (same keys but `isolation`).
            let is_filter = map.contains_key("path")
                && (map.contains_key("isolation") || map.contains_key("max_callout_timeout"));
            let is_admin =
                map.contains_key("token_file") && map.contains_key("header_read_timeout");
            let is_redis = map_has_redis_keys(map);
            for (key, v) in map.iter_mut() {
                let secret = (is_filter && (key == "config" || key == "vm_config"))
                    || (is_admin && key == "token")
                    || (is_redis && key == "password");
                match v.as_str() {
                    Some(s) if secret => *v = format!("<redacted, {} bytes>", s.len()).into(),
                    _ => redact(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    crate::http::error::text_response(status, s.to_string())
}

fn json(value: &impl serde::Serialize) -> Response<Body> {
    let s = serde_json::to_string_pretty(value).unwrap_or_default();
    with_type(body::full(s), "application/json")
}

fn with_type(body: Body, content_type: &'static str) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_configurations_and_the_admin_token_are_redacted() {
        let mut config = serde_json::json!({
            "admin": {"address": "127.0.0.1:9901", "token": "t0ken", "token_file": null, "header_read_timeout": "10s"},
            "listener": [{
                "name": "web",
                "filter": [{"name": "auth", "path": "a.wasm", "isolation": "shared", "config": "{\"tokens\":[\"s3cret\"]}"}],
                "route": [{"cluster": "c", "config": "not a filter"}],
            }],
            "cluster": [{"name": "r", "redis": {"password": "pa55", "database": 0, "max_in_flight": 8}}],
            "service": [{"name": "sync", "path": "s.wasm", "max_callout_timeout": "30s", "config": "{\"key\":\"s3cret\"}"}]
        });
        redact(&mut config);
        let text = config.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!text.contains("t0ken"), "{text}");
        assert!(!text.contains("pa55"), "{text}");
        assert!(text.contains("<redacted, 21 bytes>"), "{text}");
        assert!(text.contains("<redacted, 5 bytes>"), "{text}");
        assert!(text.contains("not a filter"));
    }
}
