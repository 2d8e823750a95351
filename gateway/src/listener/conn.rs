//! Serving one connection with hyper, either protocol: the builder with
//! a listener's limits, TCP keepalive, and the connection-wide clocks
//! (idle, send, shutdown) around hyper's connection.

use std::time::Duration;

use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;

use super::send_timeout::SendTimeout;
use super::streams::{ConnExec, WithStreams};
use super::Shutdown;
use crate::config::HttpLimitsConfig;
use crate::http::service::ConnService;

/// Builds the connection builder with the listener's limits.
pub(super) fn builder(limits: &HttpLimitsConfig) -> auto::Builder<ConnExec> {
    let mut builder = auto::Builder::new(ConnExec);
    // No header timer for hyper's HTTP/1.1: the connection's clock in
    // `drive` bounds the wait for a request head, with no timer per request.
    builder
        .http1()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192));
    if let Some(n) = header_limit(limits) {
        builder.http1().max_headers(n);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .initial_stream_window_size(limits.h2_stream_window)
        .initial_connection_window_size(limits.h2_connection_window)
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(Some(limits.h2_keepalive_interval).filter(|d| !d.is_zero()))
        .keep_alive_timeout(limits.h2_keepalive_timeout);
    builder
}

/// The header-count limit to give hyper's HTTP/1.1 parser, if it is not
/// hyper's own default (100). Given explicitly, hyper sizes its parse
/// buffers at run time for every request head; left at the default, they
/// are fixed arrays on the stack. Either way more fields are refused alike.
pub(super) fn header_limit(limits: &HttpLimitsConfig) -> Option<usize> {
    const HYPER_DEFAULT: usize = 100;
    (limits.max_headers != HYPER_DEFAULT).then_some(limits.max_headers)
}

/// Turns on TCP keepalive probes after `idle` without traffic (0: off).
pub(super) fn set_tcp_keepalive(stream: &tokio::net::TcpStream, idle: Duration) {
    if idle.is_zero() {
        return;
    }
    let probes = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval((idle / 4).max(Duration::from_secs(1)));
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&probes) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// The connection-wide clocks of a listener.
#[derive(Clone, Copy)]
pub(super) struct ConnTimeouts {
    pub idle: Duration,
    pub send: Duration,
    /// For a request head (HTTP/1.1; the first bytes of a cleartext one).
    pub header: Duration,
}

impl ConnTimeouts {
    pub(super) fn of(limits: &HttpLimitsConfig) -> Self {
        Self {
            idle: limits.idle_timeout,
            send: limits.send_timeout,
            header: limits.header_read_timeout,
        }
    }
}

/// Serves one connection until it closes, is idle too long or the gateway
/// shuts down (then in-flight requests finish; HTTP/2 gets GOAWAY). The
/// connection stays counted against `max_connections` while the service
/// (its permit) lives: past an upgrade, in the tunnel. `protocol`: what
/// the client asked for in the TLS handshake (ALPN).
pub(super) async fn serve_connection<I>(
    builder: &auto::Builder<ConnExec>,
    io: I,
    service: ConnService,
    timeouts: ConnTimeouts,
    shutdown: Shutdown,
    protocol: Protocol,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    crate::metrics::connection_opened();
    drive(
        builder,
        SendTimeout::new(io, timeouts.send),
        service,
        timeouts,
        shutdown,
        protocol,
    )
    .await;
    crate::metrics::connection_closed();
}

/// The protocol a connection speaks, as far as it is known before hyper
/// reads its first bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    /// HTTP/2: a preface read, or `h2` agreed in the TLS handshake.
    Http2,
    /// Anything else is served as HTTP/1.1 unless it opens with the
    /// HTTP/2 preface (hyper's `auto` tells them apart; such a connection,
    /// HTTP/2 over TLS without ALPN, keeps the HTTP/1.1 clock).
    Http1,
}

/// Runs hyper's connection (either protocol) over `io` to its end.
///
/// One clock bounds the connection's idle time. On HTTP/1.1 it is also the
/// header timeout (hyper runs no timer per request head): its limit is the
/// shorter of the two, and when it runs out with no request in flight the
/// connection ends there, as hyper's own header timer ended it (hyper
/// ignores a graceful shutdown until its first request has been read).
pub(super) async fn drive<I>(
    builder: &auto::Builder<ConnExec>,
    io: I,
    service: ConnService,
    timeouts: ConnTimeouts,
    mut shutdown: Shutdown,
    protocol: Protocol,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = service.activity.clone();
    let limit = match protocol {
        Protocol::Http2 => timeouts.idle,
        Protocol::Http1 => timeouts.idle.min(timeouts.header),
    };
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut conn = WithStreams::new(conn.as_mut());
    let mut closing = false;
    let idle = tokio::time::sleep(limit);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = &mut idle, if !closing => match activity.idle_check(limit) {
                None if protocol == Protocol::Http1 => break,
                None => {
                    closing = true;
                    conn.with_conn(|conn| conn.as_mut().graceful_shutdown());
                }
                Some(left) => idle.as_mut().reset(tokio::time::Instant::now() + left),
            },
            () = shutdown.started(), if !closing => {
                closing = true;
                conn.with_conn(|conn| conn.as_mut().graceful_shutdown());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn accepted_connections_get_tcp_keepalive_probes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        let sock = socket2::SockRef::from(&accepted);
        assert!(!sock.keepalive().expect("read option"));
        set_tcp_keepalive(&accepted, Duration::from_secs(45));
        assert!(sock.keepalive().expect("read option"));
        assert_eq!(
            sock.keepalive_time().expect("read option"),
            Duration::from_secs(45)
        );
        // Zero leaves a connection as it was.
        let _other = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (second, _) = listener.accept().await.expect("accept");
        set_tcp_keepalive(&second, Duration::ZERO);
        assert!(!socket2::SockRef::from(&second)
            .keepalive()
            .expect("read option"));
    }
}
