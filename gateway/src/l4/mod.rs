//! L4 forwarding: each accepted TCP connection goes to one endpoint of a
//! cluster (balanced per connection), optionally chosen by the server
//! name of a TLS ClientHello read without terminating TLS.

mod sni;
mod splice;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

pub use self::sni::{parse as parse_client_hello, PeekError, Progress};
use self::splice::{splice, SpliceEnd, Transfer};
use crate::config::{name_matches, ListenerConfig};
use crate::listener::accept::accept_loop;
use crate::listener::Shutdown;
use crate::state::Snapshot;
use crate::upstream::connect_tcp;
use crate::upstream::Cluster;

/// What a `tcp` listener needs, fixed at start.
pub struct TcpProxy {
    pub listener: Arc<str>,
    pub config: ListenerConfig,
    pub state: Arc<ArcSwap<Snapshot>>,
}

/// Accepts connections on `socket` until shutdown and forwards each.
pub async fn serve_tcp(
    socket: TcpListener,
    proxy: Arc<TcpProxy>,
    gate: Arc<crate::listener::Gate>,
    shutdown: Shutdown,
) {
    let name = proxy.listener.clone();
    accept_loop(
        socket,
        &name,
        gate,
        shutdown,
        |stream, peer, permit, drain| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                crate::metrics::connection_opened();
                proxy.forward(stream, peer).await;
                crate::metrics::connection_closed();
                drop((permit, drain));
            });
        },
    )
    .await;
}

/// The access-log facts of one connection.
struct Record {
    sni: Option<String>,
    cluster: Option<String>,
    endpoint: Option<Arc<str>>,
    error: Option<String>,
}

impl TcpProxy {
    async fn forward(&self, client: TcpStream, peer: SocketAddr) {
        let started = Instant::now();
        let transfer = Transfer::default();
        let mut record = Record {
            sni: None,
            cluster: None,
            endpoint: None,
            error: None,
        };
        let end = self.run(client, &transfer, &mut record).await;
        if let Err(why) = end {
            let cluster = record.cluster.as_deref().unwrap_or("-");
            // Never forwarded is the gateway's or the upstreams' problem;
            // idle or reset after forwarding is ordinary life.
            if record.endpoint.is_none() {
                tracing::warn!(listener = &*self.listener, client = %peer, cluster, reason = %why, "tcp connection closed");
            } else {
                tracing::info!(listener = &*self.listener, client = %peer, cluster, reason = %why, "tcp connection closed");
            }
            record.error = Some(why);
        }
        if self.state.load().access_log {
            tracing::info!(
                target: "access",
                listener = &*self.listener,
                client = %peer,
                protocol = "tcp",
                sni = record.sni.as_deref().unwrap_or("-"),
                cluster = record.cluster.as_deref().unwrap_or("-"),
                endpoint = record.endpoint.as_deref().unwrap_or("-"),
                error = record.error.as_deref().unwrap_or("-"),
                duration_us = started.elapsed().as_micros() as u64,
                bytes_in = transfer.bytes_in.load(Ordering::Relaxed),
                bytes_out = transfer.bytes_out.load(Ordering::Relaxed),
            );
        }
    }

    /// Picks the cluster, connects (failing over) and splices. `Err`
    /// says why the connection ended early; the client is closed by then.
    async fn run(
        &self,
        mut client: TcpStream,
        transfer: &Transfer,
        record: &mut Record,
    ) -> Result<(), String> {
        let mut peeked = Vec::new();
        let cluster_name = if self.config.sni.is_empty() {
            self.config.cluster.as_ref().map(|c| c.get_ref().clone())
        } else {
            let (name, bytes) =
                sni::peek_server_name(&mut client, self.config.tcp.sni_read_timeout)
                    .await
                    .map_err(|e| format!("no TLS server name: {e}"))?;
            peeked = bytes;
            record.sni = name.clone();
            self.cluster_for(name.as_deref())
        };
        let cluster_name =
            cluster_name.ok_or_else(|| format!("no cluster for server name {:?}", record.sni))?;
        record.cluster = Some(cluster_name.clone());
        let cluster = self
            .state
            .load()
            .clusters
            .get(&cluster_name)
            .cloned()
            .ok_or_else(|| format!("unknown cluster `{cluster_name}`"))?;
        let (mut upstream, lease) = self.connect(&cluster).await?;
        record.endpoint = Some(lease.address.clone());
        if !peeked.is_empty() {
            upstream
                .write_all(&peeked)
                .await
                .map_err(|e| format!("upstream write failed: {e}"))?;
            transfer
                .bytes_in
                .fetch_add(peeked.len() as u64, Ordering::Relaxed);
        }
        let end = splice(client, upstream, self.config.tcp.idle_timeout, transfer).await;
        drop(lease);
        match end {
            SpliceEnd::Done => Ok(()),
            SpliceEnd::Idle => Err(format!("idle for {:?}", self.config.tcp.idle_timeout)),
            SpliceEnd::Failed(e) => Err(format!("transfer failed: {e}")),
        }
    }

    /// The cluster for `server_name`: an exact name first, then the first
    /// matching wildcard, then the listener's default cluster.
    fn cluster_for(&self, server_name: Option<&str>) -> Option<String> {
        if let Some(name) = server_name {
            let exact = self.config.sni.iter().find(|r| {
                r.names
                    .iter()
                    .any(|p| !p.starts_with("*.") && name_matches(p, name))
            });
            let wild = || {
                self.config.sni.iter().find(|r| {
                    r.names
                        .iter()
                        .any(|p| p.starts_with("*.") && name_matches(p, name))
                })
            };
            if let Some(route) = exact.or_else(wild) {
                return Some(route.cluster.get_ref().clone());
            }
        }
        self.config.cluster.as_ref().map(|c| c.get_ref().clone())
    }

    /// Connects to the cluster's endpoints in balancing order until one
    /// answers.
    async fn connect(
        &self,
        cluster: &Arc<Cluster>,
    ) -> Result<(TcpStream, crate::upstream::EndpointLease), String> {
        let timeout = self
            .config
            .tcp
            .connect_timeout
            .unwrap_or(cluster.config.connect_timeout);
        let mut tried = Vec::new();
        let mut last_error = None;
        while let Some(lease) = cluster.lease_endpoint(&tried) {
            tried.push(lease.index);
            match connect_tcp(&lease.address, timeout).await {
                Ok(stream) => {
                    cluster.record_connect(&lease, true);
                    return Ok((stream, lease));
                }
                Err(e) => last_error = Some(format!("{}: {e}", lease.address)),
            }
            cluster.record_connect(&lease, false);
            tracing::debug!(
                cluster = cluster.name(),
                error = last_error.as_deref().unwrap_or("-"),
                "connect failed, trying the next endpoint"
            );
        }
        Err(match last_error {
            Some(e) => format!(
                "no endpoint of cluster `{}` answered (last: {e})",
                cluster.name()
            ),
            None => format!("no healthy endpoint in cluster `{}`", cluster.name()),
        })
    }
}
