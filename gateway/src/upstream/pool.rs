//! Keep-alive connections to one endpoint. A connection goes back to the
//! pool once the response on it has been read to the end; a connection the
//! upstream closed is dropped at checkout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::http::body::Body;

/// A connection ready to carry one request. HTTP/1.1 only for now; an
/// HTTP/2 sender (shared by many requests) slots in as another variant.
pub enum Sender {
    Http1(http1::SendRequest<Body>),
}

impl Sender {
    fn is_usable(&self) -> bool {
        match self {
            Sender::Http1(s) => s.is_ready() && !s.is_closed(),
        }
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections of one endpoint.
pub struct EndpointPool {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl EndpointPool {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently used idle connection that is still open.
    pub fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout && entry.sender.is_usable() {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Returns a connection that finished its exchange.
    pub fn checkin(&self, sender: Sender) {
        if !sender.is_usable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Drops connections idle for longer than the idle timeout.
    pub fn reap(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|e| e.since.elapsed() < self.idle_timeout && e.sender.is_usable());
    }
}

/// Opens a new HTTP/1.1 connection to `address` within `timeout`.
pub async fn connect(address: &str, timeout: Duration) -> std::io::Result<Sender> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(Sender::Http1(sender))
}
