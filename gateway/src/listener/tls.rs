//! The `https` listener: TLS termination with rustls (TLS 1.2 and 1.3,
//! ALPN `h2` and `http/1.1`), certificates chosen by SNI and reloaded from
//! disk when they change, optional client certificates (mTLS). The HTTP
//! inside is served exactly as on the `http` listener.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::accept::{accept_loop, Gate};
use super::certs::{subject, watch_certificates, CertStore};
use super::conn::{builder, serve_connection, set_tcp_keepalive, ConnTimeouts, Protocol};
use super::{ConnActivity, Shutdown};
use crate::config::{pem, ClientAuth, HttpLimitsConfig, ListenerTlsConfig};
use crate::http::service::{ConnInfo, ConnService, HttpService};

/// The rustls server configuration of a listener, resolving certificates
/// from `store`.
pub fn server_config(
    tls: &ListenerTlsConfig,
    store: Arc<CertStore>,
) -> anyhow::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let roots = Arc::new(pem::root_store(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let verifier = match tls.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
/// What every worker's accept loop of one `https` listener shares.
#[derive(Clone)]
pub struct TlsListener {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

/// Accepts TLS connections on `listener` until shutdown, serving the HTTP
/// inside each with `service`.
pub async fn serve_https(
    listener: TcpListener,
    service: Arc<HttpService>,
    tls: TlsListener,
    limits: HttpLimitsConfig,
    gate: Arc<Gate>,
    shutdown: Shutdown,
) {
    let builder = Arc::new(builder(&limits));
    let name = service.listener.clone();
    let TlsListener {
        acceptor,
        handshake_timeout,
    } = tls;
    accept_loop(listener, &name, gate, shutdown, |stream, peer, permit, shutdown| {
        set_tcp_keepalive(&stream, limits.tcp_keepalive);
        let local = stream.local_addr().unwrap_or(peer);
        let (acceptor, service, builder) = (acceptor.clone(), service.clone(), builder.clone());
        let timeouts = ConnTimeouts::of(&limits);
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(listener = &*service.listener, client = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(listener = &*service.listener, client = %peer, timeout = ?handshake_timeout, "TLS handshake timed out");
                    return;
                }
            };
            let session = tls.get_ref().1;
            let peer_subject = session
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| subject(c));
            tracing::debug!(listener = &*service.listener, client = %peer, version = ?session.protocol_version(),
                sni = ?session.server_name(), alpn = ?session.alpn_protocol().map(String::from_utf8_lossy),
                client_subject = ?peer_subject, "TLS handshake done");
            let protocol = match session.alpn_protocol() {
                Some(b"h2") => Protocol::Http2,
                _ => Protocol::Http1,
            };
            let conn = ConnService {
                service,
                conn: Arc::new(ConnInfo {
                    peer,
                    local,
                    scheme: "https",
                    tls_version: session
                        .protocol_version()
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                    // rustls hands out the client's certificates only once
                    // its verifier accepted them: presence is verification,
                    // whether or not the subject could be parsed.
                    mtls: session.peer_certificates().is_some_and(|c| !c.is_empty()),
                    peer_subject,
                    sni: session.server_name().map(str::to_owned),
                    forwarded_for: crate::http::service::forwarded_for(peer),
                }),
                activity: Arc::new(ConnActivity::new()),
                permit: Arc::new(permit),
                handoff: None,
            };
            serve_connection(&builder, TokioIo::new(tls), conn, timeouts, shutdown, protocol).await;
        });
    })
    .await;
}

/// Loads the certificates of the `https` listener `config` and starts
/// watching them (on the calling runtime). Errors name the bad file.
pub fn prepare(
    config: &crate::config::ListenerConfig,
    shutdown: Shutdown,
) -> anyhow::Result<TlsListener> {
    let tls = config
        .tls
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("an https listener needs [listener.tls]"))?;
    let store = Arc::new(CertStore::load(&tls.certificates)?);
    let acceptor = TlsAcceptor::from(Arc::new(server_config(tls, store.clone())?));
    tokio::spawn(watch_certificates(
        store,
        tls.certificates.clone(),
        tls.reload_interval,
        shutdown,
    ));
    Ok(TlsListener {
        acceptor,
        handshake_timeout: tls.handshake_timeout,
    })
}
