//! The admin listener: health, readiness, the config in force and metrics.
//! Bind it to loopback; it has no authentication.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::http::body::{self, Body};
use crate::listener::Shutdown;
use crate::state::Snapshot;

/// What the admin endpoints read.
pub struct AdminState {
    pub state: Arc<ArcSwap<Snapshot>>,
    /// Set once every listener is bound and every filter chain loaded.
    pub ready: AtomicBool,
    /// For the filters' own metrics.
    pub filter_host: std::sync::OnceLock<Arc<crate::filter::FilterHost>>,
}

/// Serves the admin endpoints until shutdown.
pub async fn serve(listener: TcpListener, admin: Arc<AdminState>, mut shutdown: Shutdown) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
            () = shutdown.started() => return,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(handle(&admin, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(admin: &AdminState, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/ready" => {
            if admin.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into())
            }
        }
        "/config" => {
            let snapshot = admin.state.load();
            let mut config = serde_json::to_value(&*snapshot.config).unwrap_or_default();
            redact(&mut config);
            json(serde_json::to_string_pretty(&config).unwrap_or_default())
        }
        "/filters" => {
            let snapshot = admin.state.load_full();
            json(serde_json::to_string_pretty(&snapshot.filter_status().await).unwrap_or_default())
        }
        "/metrics" => {
            let filter_metrics = admin
                .filter_host
                .get()
                .map(|h| h.metrics())
                .unwrap_or_default();
            let mut resp = Response::new(body::full(crate::metrics::encode(&filter_metrics)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Filter configurations may hold secrets (API keys, tokens): shown as
/// their size only.
fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let is_filter = map.contains_key("path") && map.contains_key("isolation");
            for (key, v) in map.iter_mut() {
                if is_filter && (key == "config" || key == "vm_config") {
                    if let Some(s) = v.as_str() {
                        *v = format!("<redacted, {} bytes>", s.len()).into();
                    }
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn text(status: StatusCode, s: String) -> Response<Body> {
    crate::http::error::text_response(status, s)
}

fn json(s: String) -> Response<Body> {
    let mut resp = Response::new(body::full(s));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_configurations_are_redacted_and_the_rest_kept() {
        let mut config = serde_json::json!({
            "listener": [{
                "name": "web",
                "filter": [{"name": "auth", "path": "a.wasm", "isolation": "shared", "config": "{\"tokens\":[\"s3cret\"]}"}],
                "route": [{"cluster": "c", "config": "not a filter"}],
            }]
        });
        redact(&mut config);
        let text = config.to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<redacted, 21 bytes>"), "{text}");
        assert!(text.contains("not a filter"));
    }
}
