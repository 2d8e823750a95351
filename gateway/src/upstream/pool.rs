//! Keep-alive connections to one endpoint, kept per worker: a connection
//! is only ever used by the worker that opened it. An HTTP/1.1 connection
//! goes back to its worker's pool once the response on it has been read
//! to the end; a connection the upstream closed is dropped at checkout.
//! HTTP/2 connections stay in the pool while in use, shared by up to
//! `h2_max_concurrent_streams` requests each (see `h2`).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::breaker::Permit;
use super::h2::{self, H2Conns, H2Stream};
use super::http1::{Http1Conn, Stream};
use super::tls::UpstreamTls;
use crate::config::UpstreamProtocol;
use crate::http::body::Body;
use crate::worker::PerWorker;

/// A connection ready to carry a request: HTTP/1.1 carries one at a
/// time, driven by the request's task; HTTP/2 (`h2`, `h2c`, or `h2`
/// chosen by ALPN) is shared by many.
pub enum Sender {
    Http1(Http1Conn),
    Http2(H2Stream),
}

impl Sender {
    fn is_usable(&mut self) -> bool {
        match self {
            Sender::Http1(c) => c.is_reusable(),
            Sender::Http2(_) => false,
        }
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections of one endpoint, one list per worker (the lock is
/// only ever contended by the reaper).
pub struct EndpointPool {
    idle: PerWorker<Mutex<Vec<Idle>>>,
    h2: PerWorker<Mutex<H2Conns>>,
    /// Set once an HTTP/2 connection joined: until then checkout goes
    /// straight to the HTTP/1.1 list (the common case costs one load).
    has_h2: AtomicBool,
    /// Per worker: an HTTP/2 connect under way, which requests arriving
    /// meanwhile wait for and share instead of each opening their own.
    connecting: PerWorker<Mutex<Option<Arc<tokio::sync::Notify>>>>,
    max_idle: usize,
    idle_timeout: Duration,
    max_streams: u32,
}

impl EndpointPool {
    pub fn new(
        max_idle: usize,
        idle_timeout: Duration,
        max_streams: NonZeroU32,
        protocol: UpstreamProtocol,
    ) -> Self {
        let h2 = matches!(protocol, UpstreamProtocol::H2 | UpstreamProtocol::H2c);
        Self {
            idle: PerWorker::default(),
            h2: PerWorker::default(),
            has_h2: AtomicBool::new(h2),
            connecting: PerWorker::default(),
            max_idle,
            idle_timeout,
            max_streams: max_streams.get(),
        }
    }

    /// A stream on one of the calling worker's HTTP/2 connections with
    /// room, else its most recently used idle HTTP/1.1 connection that is
    /// still open.
    pub fn checkout(&self) -> Option<Sender> {
        if self.has_h2.load(Ordering::Relaxed) {
            let stream = self
                .h2
                .get()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .checkout(self.max_streams);
            if let Some(stream) = stream {
                return Some(Sender::Http2(stream));
            }
        }
        let mut idle = self.idle.get().lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout && entry.sender.is_usable() {
                return Some(entry.sender);
            }
        }
        None
    }

    /// A pooled connection, as [`EndpointPool::checkout`]; when there is
    /// none and the endpoint speaks HTTP/2, first waits for a connect
    /// another request of this worker has under way (its connection will
    /// likely have room), and otherwise returns a guard saying this request
    /// connects: hold it until the new connection is shared. After one
    /// wait a request connects on its own, so a connect that failed (or a
    /// connection already full) never makes requests connect one by one.
    pub async fn checkout_or_connect(&self) -> (Option<Sender>, Option<Connecting<'_>>) {
        if let Some(sender) = self.checkout() {
            return (Some(sender), None);
        }
        if !self.has_h2.load(Ordering::Relaxed) {
            return (None, None);
        }
        let slot = self.connecting.get();
        let under_way = {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(notify) => notify.clone(),
                None => {
                    *slot = Some(Arc::new(tokio::sync::Notify::new()));
                    return (None, Some(Connecting { pool: self }));
                }
            }
        };
        let done = under_way.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        // The connect may have ended between the lock and `enable`.
        let still = slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|n| Arc::ptr_eq(n, &under_way));
        if still {
            done.await;
        }
        (self.checkout(), None)
    }

    /// A new connection joins the pool: an HTTP/2 one at once (it is shared
    /// while in use), an HTTP/1.1 one when its exchange is over (`checkin`).
    /// Either holds its circuit-breaker `permit` for as long as it lives.
    pub fn share(&self, mut sender: Sender, permit: Permit) -> Sender {
        match &mut sender {
            Sender::Http1(conn) => conn.hold(permit),
            Sender::Http2(stream) => {
                self.has_h2.store(true, Ordering::Relaxed);
                self.h2
                    .get()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .share(stream, permit);
            }
        }
        sender
    }

    /// Returns an HTTP/1.1 connection that finished its exchange to the
    /// calling worker's list.
    pub fn checkin(&self, sender: Sender) {
        let mut idle = self.idle.get().lock().unwrap_or_else(|p| p.into_inner());
        if matches!(sender, Sender::Http1(_)) && idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops connections idle for longer than the idle timeout, on every
    /// worker. (Whether the upstream closed one is checked at checkout, on
    /// its own worker.)
    pub fn reap(&self) {
        for idle in self.idle.iter() {
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|e| e.since.elapsed() < self.idle_timeout);
        }
        for h2 in self.h2.iter() {
            h2.lock()
                .unwrap_or_else(|p| p.into_inner())
                .reap(self.idle_timeout);
        }
    }
}

/// A request of this worker is opening an HTTP/2 connection to the
/// endpoint; dropping it (connected, failed or abandoned) wakes those
/// waiting in [`EndpointPool::checkout_or_connect`].
pub struct Connecting<'a> {
    pool: &'a EndpointPool,
}

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        let notify = self
            .pool
            .connecting
            .get()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

/// Opens a new connection to `address` within `timeout` (TCP connect and
/// TLS handshake) speaking `protocol`: HTTP/2 for `h2` and `h2c`, and for
/// `auto` when TLS negotiated `h2`; HTTP/1.1 otherwise.
pub async fn connect(
    address: &str,
    timeout: Duration,
    tls: Option<&UpstreamTls>,
    protocol: UpstreamProtocol,
) -> std::io::Result<Sender> {
    let started = tokio::time::Instant::now();
    let stream = connect_tcp(address, timeout).await?;
    let Some(tls) = tls else {
        if protocol == UpstreamProtocol::H2c {
            return h2::handshake(stream, false).await.map(Sender::Http2);
        }
        return Ok(Sender::Http1(Http1Conn::new(Stream::Tcp(stream))));
    };
    let stream = handshake_by(tls, stream, address, started + timeout).await?;
    let h2 = match protocol {
        UpstreamProtocol::H2 | UpstreamProtocol::H2c => true,
        UpstreamProtocol::Auto => super::tls::negotiated_h2(&stream),
        // Redis clusters are reached through their own client.
        UpstreamProtocol::Http1 | UpstreamProtocol::Redis => false,
    };
    if h2 {
        return h2::handshake(stream, true).await.map(Sender::Http2);
    }
    Ok(Sender::Http1(Http1Conn::new(Stream::Tls(Box::new(stream)))))
}

/// A connection for one upgrade (WebSocket and the like): hyper's client,
/// which hands over the upgraded stream. Never pooled.
pub async fn connect_upgrade(
    address: &str,
    timeout: Duration,
    tls: Option<&UpstreamTls>,
) -> std::io::Result<http1::SendRequest<Body>> {
    let started = tokio::time::Instant::now();
    let stream = connect_tcp(address, timeout).await?;
    match tls {
        None => handshake_http1(stream).await,
        Some(tls) => {
            let stream = handshake_by(tls, stream, address, started + timeout).await?;
            handshake_http1(stream).await
        }
    }
}

/// The TLS handshake on `stream`, within what is left of the connect
/// timeout (`deadline`).
async fn handshake_by(
    tls: &UpstreamTls,
    stream: TcpStream,
    address: &str,
    deadline: tokio::time::Instant,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tokio::time::timeout_at(deadline, tls.handshake(stream, address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A TCP connection to `address` within `timeout`, with Nagle off (HTTP
/// and L4 forwarding both write small messages they want sent now).
pub async fn connect_tcp(address: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    // A host name connects to its last good resolution (upstream/dns.rs).
    let resolved = super::dns::resolved(address);
    let connect = async {
        match &resolved {
            Some(addresses) => TcpStream::connect(&addresses[..]).await,
            None => TcpStream::connect(address).await,
        }
    };
    let stream = tokio::time::timeout(timeout, connect).await.map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect timed out after {timeout:?}"),
        )
    })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn handshake_http1<S>(stream: S) -> std::io::Result<http1::SendRequest<Body>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}
