//! The admin listener: accepts operator connections (capped, with a header deadline) and serves them.
//!
//! What it answers is in [`router`]; who may ask is in [`auth`]. It never
//! runs on the request path: it only reads the snapshot, the metrics and
//! flags that the request path does not wait on.

mod auth;
mod clusters;
mod html;
pub mod logging;
mod overview;
mod page;
mod rates;
mod router;
mod services;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::AdminConfig;
use crate::filter::FilterHost;
use crate::listener::Shutdown;
use crate::state::Snapshot;

/// What the admin endpoints read and the two switches they flip.
pub struct AdminState {
    pub state: Arc<ArcSwap<Snapshot>>,
    /// Set once every listener is bound and every filter chain loaded.
    pub ready: AtomicBool,
    /// Set by `POST /drain`: `/ready` answers 503 so load balancers stop
    /// sending, while traffic that still arrives is served.
    pub draining: AtomicBool,
    /// For the filters' own metrics.
    pub filter_host: std::sync::OnceLock<Arc<FilterHost>>,
    /// The services, for `/services`.
    pub services: std::sync::OnceLock<Arc<crate::service::ServiceSet>>,
    /// `[admin]` as it was at start (the admin listener is not rebound on
    /// reload).
    config: AdminConfig,
    /// Requests must carry it (see [`auth`]); `None` when not configured.
    token: Option<String>,
    rates: rates::RateWindow,
    started: (Instant, SystemTime),
    /// Each running listener's bound address (port 0 resolved).
    bound: ArcSwap<BTreeMap<String, SocketAddr>>,
}

impl AdminState {
    /// Admin state for the configuration in `state`; reads the token file.
    pub fn new(
        state: Arc<ArcSwap<Snapshot>>,
        filter_host: Option<Arc<FilterHost>>,
    ) -> anyhow::Result<Self> {
        let config = state.load().config.admin.clone().unwrap_or_default();
        let token = config
            .load_token()
            .context("admin: cannot read the token file")?;
        Ok(Self {
            state,
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            filter_host: filter_host.map(Into::into).unwrap_or_default(),
            services: std::sync::OnceLock::new(),
            config,
            token,
            rates: rates::RateWindow::default(),
            started: (Instant::now(), SystemTime::now()),
            bound: ArcSwap::default(),
        })
    }

    /// Records where the listeners are bound, after start and each reload.
    pub fn listeners_bound(&self, addresses: BTreeMap<String, SocketAddr>) {
        self.bound.store(Arc::new(addresses));
    }
}

/// Serves the admin endpoints until shutdown. At most
/// `max_connections` connections are served at once (the rest wait in the
/// listen backlog, as with HAProxy's `maxconn`); each must send its
/// request head within `header_read_timeout`, which also closes idle
/// keep-alive connections, so a few silent clients cannot lock
/// operators out for long.
pub async fn serve(listener: TcpListener, admin: Arc<AdminState>, mut shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(admin.config.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(admin.config.header_read_timeout);
    tokio::spawn(rates::sample(admin.clone(), shutdown.clone()));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            () = shutdown.started() => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
            () = shutdown.started() => return,
        };
        let admin = admin.clone();
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(router::handle(&admin, req).await) }
            }),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let _ = connection.await;
        });
    }
}
