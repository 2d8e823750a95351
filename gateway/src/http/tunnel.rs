//! An upgraded connection (WebSocket and the like): bytes copied both ways
//! until either side closes or neither has sent anything for the idle
//! limit. The tunnel keeps its downstream connection counted against the
//! listener's `max_connections`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The client's side of an upgraded connection.
pub enum Downstream {
    /// hyper owns the connection and hands it over.
    Hyper(OnUpgrade),
    /// The listener hands its socket over (cleartext HTTP/1.1).
    Handed(oneshot::Receiver<Box<dyn Io>>),
}

/// Where an upgraded connection goes when hyper does not own it for its
/// whole life: the exchange that forwards the upgrade registers, and the
/// listener hands the connection over once hyper has sent the `101`.
#[derive(Default)]
pub struct Handoff {
    waiting: Mutex<Option<oneshot::Sender<Box<dyn Io>>>>,
}

impl Handoff {
    /// The connection, once the response to the current request upgraded it.
    pub fn expect(&self) -> oneshot::Receiver<Box<dyn Io>> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            *waiting = Some(tx);
        }
        rx
    }

    /// The waiting exchange's end, if one still waits for the connection
    /// (one look per busy period; nothing is built when none waits).
    pub fn waiting(&self) -> Option<oneshot::Sender<Box<dyn Io>>> {
        let tx = self.waiting.lock().ok()?.take()?;
        (!tx.is_closed()).then_some(tx)
    }
}

impl Downstream {
    async fn connection(self) -> Result<Box<dyn Io>, String> {
        match self {
            Downstream::Hyper(upgrade) => match upgrade.await {
                Ok(upgraded) => Ok(Box::new(TokioIo::new(upgraded))),
                Err(e) => Err(e.to_string()),
            },
            Downstream::Handed(handed) => handed
                .await
                .map_err(|_| "the connection was not handed over".into()),
        }
    }
}

/// Either end of a tunnel.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Runs the tunnel to its end.
pub async fn tunnel(
    downstream: Downstream,
    upstream: OnUpgrade,
    idle_limit: Duration,
    permit: Arc<dyn std::any::Any + Send + Sync>,
) {
    let upstream = async { upstream.await.map_err(|e| e.to_string()) };
    let (down, up) = match tokio::try_join!(downstream.connection(), upstream) {
        Ok((down, up)) => (down, Box::new(TokioIo::new(up)) as Box<dyn Io>),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let clock = Arc::new(Clock {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let mut down = Side::new(down, clock.clone());
    let mut up = Side::new(up, clock.clone());
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut down, &mut up) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "upgraded tunnel ended with an error");
            }
        }
        () = clock.idle_for(idle_limit), if !idle_limit.is_zero() => {
            crate::metrics::timeout("tunnel_idle");
            tracing::debug!(limit = ?idle_limit, "upgraded tunnel closed: idle");
        }
    }
    drop(permit);
}

/// When either side last moved a byte.
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
}

impl Clock {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Returns once nothing has moved for `limit`. Wakes once per `limit`
    /// at most, not once per byte.
    async fn idle_for(&self, limit: Duration) {
        let mut deadline = self.start + limit;
        loop {
            tokio::time::sleep_until(deadline).await;
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            if last + limit <= Instant::now() {
                return;
            }
            deadline = last + limit;
        }
    }
}

/// One end of the tunnel; a read that brings bytes marks activity.
struct Side {
    io: Box<dyn Io>,
    clock: Arc<Clock>,
}

impl Side {
    fn new(io: Box<dyn Io>, clock: Arc<Clock>) -> Self {
        Self { io, clock }
    }
}

impl AsyncRead for Side {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.touch();
        }
        r
    }
}

impl AsyncWrite for Side {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
