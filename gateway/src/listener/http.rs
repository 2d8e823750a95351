//! The HTTP listener: HTTP/1.1 and HTTP/2 (prior knowledge) on one port.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::accept::accept_loop;
use super::{ConnActivity, Shutdown};
use crate::config::HttpLimitsConfig;
use crate::http::service::{ConnInfo, ConnService, HttpService};

/// Builds the connection builder with the listener's limits.
pub(super) fn builder(limits: &HttpLimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .initial_stream_window_size(limits.h2_stream_window)
        .initial_connection_window_size(limits.h2_connection_window)
        .max_header_list_size(limits.max_header_bytes as u32);
    builder
}

/// Accepts connections on `listener` until shutdown, serving each with
/// `service`.
pub async fn serve_http(
    listener: TcpListener,
    service: Arc<HttpService>,
    limits: HttpLimitsConfig,
    permits: Arc<Semaphore>,
    shutdown: Shutdown,
) {
    let builder = Arc::new(builder(&limits));
    let local = listener.local_addr().ok();
    let name = service.listener.clone();
    accept_loop(
        listener,
        &name,
        permits,
        shutdown,
        |stream, peer, permit, shutdown| {
            let conn = ConnService {
                service: service.clone(),
                conn: Arc::new(ConnInfo::plain(
                    peer,
                    stream.local_addr().ok().or(local).unwrap_or(peer),
                )),
                activity: Arc::new(ConnActivity::new()),
            };
            let builder = builder.clone();
            let idle_timeout = limits.idle_timeout;
            tokio::spawn(async move {
                serve_connection(&builder, TokioIo::new(stream), conn, idle_timeout, shutdown)
                    .await;
                drop(permit);
            });
        },
    )
    .await;
}

/// Serves one connection until it closes, is idle too long or the gateway
/// shuts down (then in-flight requests finish; HTTP/2 gets GOAWAY).
pub async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: ConnService,
    idle_timeout: Duration,
    mut shutdown: Shutdown,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    crate::metrics::connection_opened();
    let activity = service.activity.clone();
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = &mut idle, if !closing => match activity.idle_check(idle_timeout) {
                None => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some(left) => idle.as_mut().reset(tokio::time::Instant::now() + left),
            },
            () = shutdown.started(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    crate::metrics::connection_closed();
}
