//! The admin listener: health, readiness, the config in force and metrics.
//! Bind it to loopback; it has no authentication.

pub mod metrics;

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
                async move { Ok::<_, Infallible>(handle(&admin, req)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(admin: &AdminState, req: Request<Incoming>) -> Response<Body> {
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
            json(serde_json::to_string_pretty(&*snapshot.config).unwrap_or_default())
        }
        "/metrics" => {
            let mut resp = Response::new(body::full(metrics::encode()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, s: String) -> Response<Body> {
    crate::http::error::text_response(status, s)
}

fn json(s: String) -> Response<Body> {
    let mut resp = Response::new(body::full(s));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}
