//! One active health check of one endpoint: a TCP connect (and TLS
//! handshake with `[cluster.tls]`), or an HTTP request (HTTP/1.1, or
//! HTTP/2 when TLS negotiated it) whose status must be one of the
//! expected ones.

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::super::{connect_tcp, Cluster};
use crate::config::{CheckKind, HealthCheckConfig};

/// Runs the check within its timeout; the error says what failed.
pub(super) async fn probe(
    cluster: &Cluster,
    index: usize,
    config: &HealthCheckConfig,
) -> Result<(), String> {
    match tokio::time::timeout(config.timeout, probe_once(cluster, index, config)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("timed out after {:?}", config.timeout)),
    }
}

async fn probe_once(
    cluster: &Cluster,
    index: usize,
    config: &HealthCheckConfig,
) -> Result<(), String> {
    let address = &cluster.endpoints()[index].address;
    let stream = connect_tcp(address, config.timeout)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = match (cluster.config.tls.is_some(), cluster.upstream_tls()) {
        (false, _) => None,
        (true, Some(tls)) => Some(tls),
        (true, None) => return Err("upstream TLS configuration is unusable".into()),
    };
    match tls {
        None => request(stream, address, config).await,
        Some(tls) => {
            let stream = tls
                .handshake(stream, address)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            if config.kind == CheckKind::Http && super::super::tls::negotiated_h2(&stream) {
                return request_h2(stream, address, config).await;
            }
            request(stream, address, config).await
        }
    }
}

/// The HTTP check (nothing more for a TCP check: the connection was made).
async fn request<S>(stream: S, address: &str, config: &HealthCheckConfig) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if config.kind == CheckKind::Tcp {
        return Ok(());
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    // The connection is driven here and dropped with the check.
    let driven = tokio::spawn(conn);
    let host = config.host.as_deref().unwrap_or(address);
    let request = http::Request::builder()
        .method(config.method.as_str())
        .uri(config.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "gateway-health-check")
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad check request: {e}"))?;
    let outcome = sender.send_request(request).await;
    driven.abort();
    judge(config, outcome.map(|r| r.status()))
}

/// The HTTP check on a connection that negotiated HTTP/2 (ALPN `h2`).
async fn request_h2<S>(stream: S, address: &str, config: &HealthCheckConfig) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    let driven = tokio::spawn(conn);
    let host = config.host.as_deref().unwrap_or(address);
    let request = http::Request::builder()
        .method(config.method.as_str())
        .uri(format!("https://{host}{}", config.path))
        .header(http::header::USER_AGENT, "gateway-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("bad check request: {e}"))?;
    let outcome = sender.send_request(request).await;
    driven.abort();
    judge(config, outcome.map(|r| r.status()))
}

/// Whether the answer passes the check.
fn judge(
    config: &HealthCheckConfig,
    outcome: Result<http::StatusCode, hyper::Error>,
) -> Result<(), String> {
    let status = outcome.map_err(|e| format!("HTTP: {e}"))?.as_u16();
    if config.passes(status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}
