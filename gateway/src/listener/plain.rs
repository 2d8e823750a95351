//! The `http` listener: its accept loop and its connections, HTTP/2 with
//! prior knowledge or HTTP/1.1, told apart by their first bytes. An
//! HTTP/1.1 connection holds hyper's connection, and its read and write
//! buffers, only while it is busy: between requests only the socket is
//! kept (nginx frees its buffers between requests the same way), so
//! thousands of idle keep-alive connections cost little memory. A
//! connection that sends request after request keeps one hyper connection
//! until it goes quiet ([`LINGER`]) instead of building one per request.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::accept::{accept_loop, Gate};
use super::conn::{drive, set_tcp_keepalive, ConnTimeouts, Protocol};
use super::prefixed::Prefixed;
use super::send_timeout::SendTimeout;
use super::shared_stream::{PeerWatch, SharedStream};
use super::streams::ConnExec;
use super::{ConnActivity, Shutdown};
use crate::config::HttpLimitsConfig;
use crate::http::service::{ConnInfo, ConnService, HttpService};

/// A cleartext connection's I/O, as hyper and a tunnel see it.
type PlainIo = Prefixed<SendTimeout<TokioIo<SharedStream>>>;

/// What opens every HTTP/2 connection.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connection builders of one listener.
struct Builders {
    auto: auto::Builder<ConnExec>,
    h1: http1::Builder,
}

/// Accepts connections on `listener` until shutdown, serving each with
/// `service`.
pub async fn serve_http(
    listener: TcpListener,
    service: Arc<HttpService>,
    limits: HttpLimitsConfig,
    gate: Arc<Gate>,
    shutdown: Shutdown,
) {
    let builders = builders(&limits);
    let local = listener.local_addr().ok();
    let name = service.listener.clone();
    accept_loop(
        listener,
        &name,
        gate,
        shutdown,
        |stream, peer, permit, shutdown| {
            set_tcp_keepalive(&stream, limits.tcp_keepalive);
            let conn = ConnService {
                service: service.clone(),
                conn: Arc::new(ConnInfo::plain(
                    peer,
                    stream.local_addr().ok().or(local).unwrap_or(peer),
                )),
                activity: Arc::new(ConnActivity::new()),
                permit: Arc::new(permit),
                handoff: Some(Arc::default()),
            };
            let timeouts = ConnTimeouts::of(&limits);
            tokio::spawn(serve_plain(
                builders.clone(),
                stream,
                conn,
                timeouts,
                shutdown,
            ));
        },
    )
    .await;
}

/// Serves one cleartext connection until it closes, idles out or the
/// gateway shuts down. This future is the connection's task for its whole
/// life, so what it holds across an idle wait is what an idle connection
/// costs: hyper's connection (HTTP/1.1, per busy period) and the HTTP/2
/// connection are boxed, and the HTTP/1.1 loop borrows what this owns.
#[allow(clippy::manual_async_fn)] // see the block's comment
fn serve_plain(
    builders: Arc<Builders>,
    mut stream: TcpStream,
    service: ConnService,
    timeouts: ConnTimeouts,
    mut shutdown: Shutdown,
) -> impl Future<Output = ()> {
    // A block rather than an `async fn`, which would keep a second copy of
    // its arguments in the future.
    async move {
        crate::metrics::connection_opened();
        // A new connection must send its first bytes within the header
        // timeout; the connection's clock (`Clock`) bounds the rest of its
        // first head.
        let first = tokio::select! {
            first = tokio::time::timeout(timeouts.header, first_bytes(&mut stream)) => first.ok().flatten(),
            () = shutdown.started() => None,
        };
        if let Some((prefix, h2)) = first {
            if h2 {
                let io = SendTimeout::new(TokioIo::new(stream), timeouts.send);
                let io = Prefixed::new(io, prefix);
                Box::pin(drive(
                    &builders.auto,
                    io,
                    service,
                    timeouts,
                    shutdown,
                    Protocol::Http2,
                ))
                .await;
            } else {
                // Between requests the connection waits under the same bound
                // as when hyper held it for its whole life: the header clock,
                // or the idle one if shorter.
                let limit = timeouts.idle.min(timeouts.header);
                let io = SendTimeout::new(TokioIo::new(SharedStream::new(stream)), timeouts.send);
                serve_h1(&builders.h1, io, prefix, &service, limit, &mut shutdown).await;
            }
        }
        crate::metrics::connection_closed();
    }
}

/// Reads until the bytes either are the HTTP/2 preface (true) or cannot
/// be (false). `None`: the client closed first.
async fn first_bytes(stream: &mut TcpStream) -> Option<(Bytes, bool)> {
    let mut buf = [0u8; PREFACE.len()];
    let mut len = 0;
    loop {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => len += n,
        }
        if !PREFACE.starts_with(&buf[..len]) {
            return Some((Bytes::copy_from_slice(&buf[..len]), false));
        }
        if len == PREFACE.len() {
            return Some((Bytes::from_static(PREFACE), true));
        }
    }
}

/// How one hyper connection over the socket ended.
enum Ended {
    /// We stopped it between two requests: the socket goes on.
    Between,
    /// The connection is over (closed by either side, shutdown, idle).
    Closed,
}

/// HTTP/1.1: a hyper connection per busy period, the bare socket between.
/// The idle clock and the shutdown signal live as long as the connection:
/// nothing is armed or registered per request. The clock is also the
/// header timeout: it runs whenever no request is in flight, so a head
/// that has not fully arrived within the limit closes the connection, as
/// hyper's own per-request header timer would.
#[allow(clippy::manual_async_fn)]
fn serve_h1<'a>(
    builder: &'a http1::Builder,
    mut io: SendTimeout<TokioIo<SharedStream>>,
    mut pending: Bytes,
    service: &'a ConnService,
    limit: Duration,
    shutdown: &'a mut Shutdown,
) -> impl Future<Output = ()> + 'a {
    // A block, as in `serve_plain`.
    async move {
        let activity = &*service.activity;
        // Watched while a request is in flight (see `busy`).
        let mut peer = PeerWatch::new(io.get_ref().inner());
        let mut clock = Clock {
            idle: pin!(tokio::time::sleep(limit)),
            limit,
            stop: pin!(shutdown.started()),
            armed: Armed::default(),
        };
        // When the connection was last parked.
        let mut parked_at: Option<Instant> = None;
        loop {
            if pending.is_empty() && !wait_for_request(&io, activity, &mut clock).await {
                return;
            }
            let linger = parked_at.is_some_and(|at| at.elapsed() < LINGER);
            let (started, _) = activity.counts();
            // hyper's connection and the loop that drives it live in one
            // allocation made per busy period: between requests the task holds
            // only the socket and its clock.
            let period = Box::pin(async {
                let mut conn =
                    builder.serve_connection(Prefixed::new(io, pending), service.clone());
                let ended = busy(&mut conn, &mut peer, activity, started, &mut clock, linger).await;
                ended.map(|ended| (ended, conn.into_parts()))
            });
            let Some((ended, parts)) = period.await else {
                return;
            };
            let (inner, rest) = parts.io.into_parts();
            pending = joined(parts.read_buf, rest);
            if let Some(tunnel) = service.handoff.as_ref().and_then(|h| h.waiting()) {
                let _ = tunnel.send(Box::new(TokioIo::new(Prefixed::new(inner, pending))));
                return;
            }
            io = inner;
            parked_at = Some(Instant::now());
            if matches!(ended, Ended::Closed) || activity.closing() {
                let _ = std::future::poll_fn(|cx| {
                    hyper::rt::Write::poll_shutdown(Pin::new(&mut io), cx)
                })
                .await;
                return;
            }
        }
    }
}

/// A connection's idle clock and its shutdown signal.
struct Clock<'a, S> {
    idle: Pin<&'a mut tokio::time::Sleep>,
    limit: Duration,
    stop: Pin<&'a mut S>,
    /// The idle clock was polled since it was last set, so it holds this
    /// connection's waker (see [`Armed`]).
    armed: Armed,
}

/// A timer polled pending since it was last set: it holds the waker of
/// the connection's task and wakes it when it fires. Until it has fired
/// (`is_elapsed`, one atomic load) polling it again would only register
/// the same task again, and the connection's driver is polled at least
/// twice per request.
#[derive(Default)]
struct Armed(bool);

impl Armed {
    /// Polls `timer` unless it is armed and has not fired.
    fn poll(
        &mut self,
        timer: Pin<&mut tokio::time::Sleep>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        if self.0 && !timer.is_elapsed() {
            return Poll::Pending;
        }
        let polled = timer.poll(cx);
        self.0 = polled.is_pending();
        polled
    }
}

/// Why a connection's clock says it should close.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The gateway is shutting down: finish what is in flight.
    Shutdown,
    /// Nothing in flight and no full request head for the limit.
    TimedOut,
}

impl<S: Future<Output = ()>> Clock<'_, S> {
    /// Ready once the connection should close: shutdown began, or it has
    /// been idle for its limit (the clock is re-armed when it fires early).
    fn poll_close(
        &mut self,
        cx: &mut std::task::Context<'_>,
        activity: &ConnActivity,
    ) -> Poll<Close> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Close::Shutdown);
        }
        while self.armed.poll(self.idle.as_mut(), cx).is_ready() {
            match activity.idle_check(self.limit) {
                None => return Poll::Ready(Close::TimedOut),
                Some(left) => self.idle.as_mut().reset(Instant::now() + left),
            }
        }
        Poll::Pending
    }
}

/// Waits, holding no buffer, until the client sends. False: the
/// connection idled out, closed or the gateway is shutting down.
async fn wait_for_request<S: Future<Output = ()>>(
    io: &SendTimeout<TokioIo<SharedStream>>,
    activity: &ConnActivity,
    clock: &mut Clock<'_, S>,
) -> bool {
    let stream = io.get_ref().inner().stream();
    std::future::poll_fn(|cx| {
        if let Poll::Ready(ready) = stream.poll_read_ready(cx) {
            return Poll::Ready(ready.is_ok());
        }
        clock.poll_close(cx, activity).map(|_| false)
    })
    .await
}

/// A connection that sends its next request within this of being parked
/// has shown it sends back to back (a load generator, a load balancer's
/// pool): from then on it keeps hyper's connection (and its buffers)
/// between requests, and is parked only once it has been quiet for this
/// long. That is checked on a clock that fires once per period, not armed
/// per request, so it is parked between one and two periods after its
/// last answer. Any other connection is parked as soon as it has answered
/// everything it read, so thousands of connections that each made a
/// request and went quiet hold no buffers, even for a moment.
const LINGER: Duration = Duration::from_millis(50);

/// Drives one hyper connection until it ends. Once every request it read
/// is answered (and, when it `linger`s, no other has started for
/// [`LINGER`]), it is asked to stop between two requests; idle time and
/// shutdown close it as on any listener. `None`: it failed.
async fn busy<S: Future<Output = ()>>(
    conn: &mut http1::Connection<PlainIo, ConnService>,
    peer: &mut PeerWatch,
    activity: &ConnActivity,
    started: u64,
    clock: &mut Clock<'_, S>,
    linger: bool,
) -> Option<Ended> {
    let mut asked = false;
    let mut closing = false;
    // Requests started as of the linger clock's last tick.
    let mut seen = started;
    let mut tick = pin!(linger.then(|| tokio::time::sleep(LINGER)));
    let mut tick_armed = Armed::default();
    // The client went away while a request was in flight.
    let mut gone = false;
    let result = std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = conn.poll_without_shutdown(cx) {
            return Poll::Ready(result);
        }
        let (now_started, in_flight) = activity.counts();
        // hyper does not read while it waits for an answer (`half_close`,
        // see `shared_stream`): a client gone in the meantime ends the
        // connection here, and with it the request's exchange, as hyper
        // would have.
        if in_flight > 0 && peer.poll_gone(now_started, cx).is_ready() {
            gone = true;
            return Poll::Ready(Ok(()));
        }
        if asked || closing {
            return Poll::Pending;
        }
        let answered = in_flight == 0 && now_started != started;
        if answered && !linger {
            asked = true;
        } else if let Poll::Ready(close) = clock.poll_close(cx, activity) {
            closing = true;
            if close == Close::TimedOut {
                // No request in flight, and no full head within the
                // limit (a connection hyper has not yet seen a request
                // on would ignore a graceful shutdown): it ends here.
                return Poll::Ready(Ok(()));
            }
        } else if let Some(mut tick) = tick.as_mut().as_pin_mut() {
            if tick_armed.poll(tick.as_mut(), cx).is_pending() {
                return Poll::Pending;
            }
            if answered && now_started == seen {
                asked = true;
            } else {
                seen = now_started;
                tick.as_mut().reset(Instant::now() + LINGER);
                continue;
            }
        } else {
            return Poll::Pending;
        }
        Pin::new(&mut *conn).graceful_shutdown();
    })
    .await;
    match result {
        Ok(()) if gone => {
            tracing::debug!("the client closed its connection with a request in flight");
            None
        }
        Ok(()) if asked && !closing => Some(Ended::Between),
        Ok(()) => Some(Ended::Closed),
        Err(e) => {
            tracing::debug!(error = %e, "connection ended with an error");
            None
        }
    }
}

/// Bytes read but not yet parsed, from hyper's buffer and our prefix.
/// Nothing left holds no buffer (an empty slice of hyper's read buffer
/// would keep all of it).
fn joined(read: Bytes, rest: Bytes) -> Bytes {
    match (read.is_empty(), rest.is_empty()) {
        (true, true) => Bytes::new(),
        (false, true) => read,
        (true, false) => rest,
        (false, false) => {
            let mut both = BytesMut::with_capacity(read.len() + rest.len());
            both.extend_from_slice(&read);
            both.extend_from_slice(&rest);
            both.freeze()
        }
    }
}

/// The `http` listener's builders.
fn builders(limits: &HttpLimitsConfig) -> Arc<Builders> {
    let mut h1 = http1::Builder::new();
    // No timer for hyper: the connection's own clock (`Clock`) bounds the
    // wait for a request head, so no timer is made per request.
    h1.keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // One buffer, one send(): small responses (most of a gateway's)
        // cost less than a writev() of head and body.
        .writev(false)
        // No reads while a request waits for its answer: the connection's
        // loop watches for the client going away instead (`busy`).
        .half_close(true);
    if let Some(n) = super::conn::header_limit(limits) {
        h1.max_headers(n);
    }
    Arc::new(Builders {
        auto: super::conn::builder(limits),
        h1,
    })
}
