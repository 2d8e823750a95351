//! Keep-alive connections to one endpoint, kept per worker: a connection
//! is only ever used by the worker that opened it. An HTTP/1.1 connection
//! goes back to its worker's pool once the response on it has been read
//! to the end; a connection the upstream closed is dropped at checkout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::http1::{Http1Conn, Stream};
use super::tls::UpstreamTls;
use crate::http::body::Body;
use crate::worker::PerWorker;

/// A connection ready to carry a request: HTTP/1.1 carries one at a
/// time, driven by the request's task; HTTP/2 (negotiated by ALPN over
/// TLS) is shared by many.
pub enum Sender {
    Http1(Http1Conn),
    Http2(http2::SendRequest<Body>),
}

impl Sender {
    fn is_usable(&mut self) -> bool {
        match self {
            Sender::Http1(c) => c.is_reusable(),
            Sender::Http2(s) => s.is_ready() && !s.is_closed(),
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
    max_idle: usize,
    idle_timeout: Duration,
}

impl EndpointPool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: PerWorker::default(),
            max_idle,
            idle_timeout,
        }
    }

    /// The calling worker's most recently used idle connection that is
    /// still open.
    pub fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.get().lock().unwrap_or_else(|p| p.into_inner());
        while let Some(mut entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout && entry.sender.is_usable() {
                // An HTTP/2 connection stays in the pool for other requests.
                if let Sender::Http2(tx) = &entry.sender {
                    let shared = Sender::Http2(tx.clone());
                    idle.push(Idle {
                        since: Instant::now(),
                        ..entry
                    });
                    return Some(shared);
                }
                return Some(entry.sender);
            }
        }
        None
    }

    /// Returns a connection that finished its exchange to the calling
    /// worker's list.
    pub fn checkin(&self, sender: Sender) {
        let mut idle = self.idle.get().lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
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
    }
}

/// Opens a new connection to `address` within `timeout` (TCP connect and
/// TLS handshake): HTTP/1.1, or HTTP/2 when TLS negotiated `h2`.
pub async fn connect(
    address: &str,
    timeout: Duration,
    tls: Option<&UpstreamTls>,
) -> std::io::Result<Sender> {
    let started = tokio::time::Instant::now();
    let stream = connect_tcp(address, timeout).await?;
    let Some(tls) = tls else {
        return Ok(Sender::Http1(Http1Conn::new(Stream::Tcp(stream))));
    };
    let stream = handshake_by(tls, stream, address, started + timeout).await?;
    if super::tls::negotiated_h2(&stream) {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream h2 connection ended with an error");
            }
        });
        return Ok(Sender::Http2(sender));
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
