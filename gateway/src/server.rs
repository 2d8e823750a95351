//! Starting and stopping: the runtime, listeners, admin, signals and the
//! graceful shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::admin::AdminState;
use crate::config::{Config, Protocol};
use crate::filter::FilterChain;
use crate::http::service::HttpService;
use crate::listener::{serve_http, Shutdown};
use crate::state::Snapshot;

/// Runs the gateway with `config` until SIGTERM or Ctrl-C.
pub fn run(config: Config, address_file: Option<PathBuf>) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.runtime.workers > 0 {
        runtime.worker_threads(config.runtime.workers);
    }
    let runtime = runtime.enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(serve(config, address_file))
}

async fn serve(config: Config, address_file: Option<PathBuf>) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let grace = config.runtime.shutdown_grace;

    // Bind first: a taken port is a start-up error, not a runtime one.
    let mut bound = Vec::new();
    let mut addresses = BTreeMap::new();
    for listener in &config.listeners {
        let socket = TcpListener::bind(listener.address)
            .await
            .with_context(|| format!("listener `{}`: cannot bind {}", listener.name, listener.address))?;
        let local = socket.local_addr()?;
        tracing::info!(listener = %listener.name, protocol = ?listener.protocol, address = %local, "listening");
        addresses.insert(listener.name.clone(), local);
        bound.push((listener.clone(), socket));
    }
    let admin_socket = match &config.admin {
        Some(admin) => {
            let socket = TcpListener::bind(admin.address)
                .await
                .with_context(|| format!("admin: cannot bind {}", admin.address))?;
            tracing::info!(address = %socket.local_addr()?, "admin listening");
            Some(socket)
        }
        None => None,
    };

    let snapshot = Snapshot::build(config.clone(), |_filters| async { FilterChain::empty() }).await;
    let state = Arc::new(ArcSwap::from_pointee(snapshot));
    let (shutdown, trigger) = Shutdown::new();

    let admin = Arc::new(AdminState {
        state: state.clone(),
        ready: Default::default(),
    });
    let admin_address = match admin_socket {
        Some(socket) => {
            let address = socket.local_addr()?;
            tokio::spawn(crate::admin::serve(socket, admin.clone(), shutdown.clone()));
            Some(address)
        }
        None => None,
    };

    for (listener, socket) in bound {
        match listener.protocol {
            Protocol::Http => {
                let service = Arc::new(HttpService {
                    listener: Arc::from(listener.name.as_str()),
                    state: state.clone(),
                });
                tokio::spawn(serve_http(socket, service, listener.http.clone(), listener.max_connections, shutdown.clone()));
            }
            Protocol::Https => {
                let service = Arc::new(HttpService {
                    listener: Arc::from(listener.name.as_str()),
                    state: state.clone(),
                });
                crate::listener::tls::start(socket, &listener, service, shutdown.clone())
                    .with_context(|| format!("listener `{}`", listener.name))?;
            }
            Protocol::Tcp => {
                let proxy = Arc::new(crate::l4::TcpProxy {
                    listener: Arc::from(listener.name.as_str()),
                    config: listener.clone(),
                    state: state.clone(),
                });
                tokio::spawn(crate::l4::serve_tcp(socket, proxy, shutdown.clone()));
            }
        }
    }
    tokio::spawn(reap_idle_connections(state.clone()));
    admin.ready.store(true, Ordering::Release);
    if let Some(path) = &address_file {
        write_address_file(path, &addresses, admin_address)?;
    }
    tracing::info!("gateway ready");

    wait_for_signal().await;
    tracing::info!(grace = ?grace, "shutting down: no new connections, finishing requests in flight");
    drop(shutdown);
    if trigger.shutdown(grace).await {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!("grace period over with connections still open; closing them");
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Closes pooled upstream connections past their idle timeout.
async fn reap_idle_connections(state: Arc<ArcSwap<Snapshot>>) {
    loop {
        let interval = state.load().clusters.reap_interval();
        tokio::time::sleep(interval).await;
        for cluster in state.load().clusters.iter() {
            cluster.reap_idle();
        }
    }
}

/// Writes `{"listeners": {name: address}, "admin": address}` atomically.
fn write_address_file(
    path: &Path,
    listeners: &BTreeMap<String, SocketAddr>,
    admin: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let json = serde_json::json!({ "listeners": listeners, "admin": admin });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json.to_string()).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
