//! The running listeners, kept in step with the configuration: a reload
//! starts added listeners, stops removed ones and re-binds changed ones.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::Gateway;
use crate::config::{Config, ListenerConfig, Protocol};
use crate::http::service::HttpService;
use crate::listener::{serve_http, serve_https};

struct Running {
    /// The config it was started with, serialized, to notice changes.
    fingerprint: String,
    address: SocketAddr,
    /// Dropping or sending `true` stops it; its connections drain.
    stop: crate::listener::ListenerStop,
    /// The accept loops, one per worker; they end (closing the sockets)
    /// soon after `stop`.
    accept: Vec<tokio::task::JoinHandle<()>>,
}

/// Listeners by name.
#[derive(Default)]
pub struct ListenerSet {
    running: HashMap<String, Running>,
}

impl ListenerSet {
    /// Brings the running listeners in line with `config`. At start-up
    /// (`strict`) a listener that cannot bind is an error; on reload it is
    /// logged and the others carry on.
    pub async fn apply(
        &mut self,
        gateway: &Arc<Gateway>,
        config: &Config,
        strict: bool,
    ) -> anyhow::Result<()> {
        let wanted: HashMap<&str, &ListenerConfig> = config
            .listeners
            .iter()
            .map(|l| (l.name.as_str(), l))
            .collect();
        // Stop what was removed or changed first, so a changed listener can
        // re-bind its address.
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let keep = match (wanted.get(name.as_str()), self.running.get(&name)) {
                (Some(cfg), Some(running)) => fingerprint(cfg) == running.fingerprint,
                _ => false,
            };
            if !keep {
                if let Some(running) = self.running.remove(&name) {
                    running.stop.begin();
                    for accept in running.accept {
                        let _ = accept.await;
                    }
                    tracing::info!(listener = %name, address = %running.address, "listener stopped; its connections drain");
                }
            }
        }
        for listener in &config.listeners {
            if self.running.contains_key(&listener.name) {
                continue;
            }
            match start(gateway, listener).await {
                Ok(running) => {
                    self.running.insert(listener.name.clone(), running);
                }
                Err(e) if !strict => tracing::error!(listener = %listener.name, "{e:#}"),
                Err(e) => return Err(e),
            }
        }
        gateway.admin.listeners_bound(self.addresses());
        if let Some(path) = &gateway.address_file {
            super::write_address_file(path, &self.addresses(), gateway.admin_address)?;
        }
        Ok(())
    }

    pub fn addresses(&self) -> BTreeMap<String, SocketAddr> {
        self.running
            .iter()
            .map(|(n, r)| (n.clone(), r.address))
            .collect()
    }
}

fn fingerprint(listener: &ListenerConfig) -> String {
    // Routes and filters are served from the snapshot and change without
    // touching the socket; everything else needs a restart of the listener.
    serde_json::json!({
        "protocol": listener.protocol,
        "address": listener.address,
        "max_connections": listener.max_connections,
        "http": listener.http,
        "cluster": listener.cluster.as_ref().map(|c| c.get_ref()),
        "tls": listener.tls,
        "tcp": listener.tcp,
        "sni": listener.sni,
    })
    .to_string()
}

/// Binds `listener` once per worker (`SO_REUSEPORT`: the kernel spreads
/// connections over the workers' sockets) and starts each worker's
/// accept loop on that worker.
async fn start(gateway: &Arc<Gateway>, listener: &ListenerConfig) -> anyhow::Result<Running> {
    let sockets = crate::listener::bind_per_worker(listener.address, gateway.workers.len())
        .with_context(|| {
            format!(
                "listener `{}`: cannot bind {}",
                listener.name, listener.address
            )
        })?;
    let address = sockets[0].local_addr()?;
    let (shutdown, stop) = gateway.shutdown.child();
    let service = Arc::new(HttpService {
        listener: Arc::from(listener.name.as_str()),
        state: gateway.state.clone(),
        limits: listener.http.clone(),
    });
    // Shared by every worker: the certificate store and its watcher, the
    // L4 proxy, the connection limit.
    let tls = match listener.protocol {
        Protocol::Https => Some(
            crate::listener::tls::prepare(listener, shutdown.clone())
                .with_context(|| format!("listener `{}`", listener.name))?,
        ),
        _ => None,
    };
    let proxy = Arc::new(crate::l4::TcpProxy {
        listener: Arc::from(listener.name.as_str()),
        config: listener.clone(),
        state: gateway.state.clone(),
    });
    let gate = crate::listener::Gate::new(listener.max_connections, sockets.len());
    let mut accept = Vec::with_capacity(sockets.len());
    for (socket, worker) in sockets.into_iter().zip(&gateway.workers) {
        let (service, shutdown, gate) = (service.clone(), shutdown.clone(), gate.clone());
        let (limits, tls, proxy, protocol) = (
            listener.http.clone(),
            tls.clone(),
            proxy.clone(),
            listener.protocol,
        );
        accept.push(worker.spawn(async move {
            let socket = match TcpListener::from_std(socket) {
                Ok(socket) => socket,
                Err(e) => {
                    tracing::error!(listener = &*service.listener, error = %e, "cannot register the listening socket");
                    return;
                }
            };
            match (protocol, tls) {
                (Protocol::Https, Some(tls)) => {
                    serve_https(socket, service, tls, limits, gate, shutdown).await
                }
                (Protocol::Tcp, _) => crate::l4::serve_tcp(socket, proxy, gate, shutdown).await,
                _ => serve_http(socket, service, limits, gate, shutdown).await,
            }
        }));
    }
    tracing::info!(listener = %listener.name, protocol = ?listener.protocol, %address,
        workers = accept.len(), "listening");
    Ok(Running {
        fingerprint: fingerprint(listener),
        address,
        stop,
        accept,
    })
}
