//! The `https` listener: TLS termination with rustls (TLS 1.2 and 1.3,
//! ALPN `h2` and `http/1.1`), certificates chosen by SNI and reloaded from
//! disk when they change, optional client certificates (mTLS). The HTTP
//! inside is served exactly as on the `http` listener.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioIo;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::http::{builder, serve_connection};
use super::{ConnActivity, Shutdown};
use crate::config::{
    name_matches, pem, CertificateConfig, ClientAuth, HttpLimitsConfig, ListenerTlsConfig,
};
use crate::http::service::{ConnInfo, ConnService, HttpService};

/// One certificate as loaded, with the file contents it came from (to
/// notice changes).
struct Loaded {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
    files: (Vec<u8>, Vec<u8>),
}

/// The certificates of one listener, swapped whole on reload.
#[derive(Debug)]
pub struct CertStore {
    certs: ArcSwap<Vec<Arc<Loaded>>>,
}

// rustls wants resolvers to be `Debug`; the key material stays out of it.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("names", &self.names)
            .finish()
    }
}

impl CertStore {
    /// Loads every certificate; any failure is an error naming the file.
    pub fn load(configs: &[CertificateConfig]) -> anyhow::Result<CertStore> {
        let certs = configs
            .iter()
            .map(|c| load_one(c, None).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(CertStore {
            certs: ArcSwap::from_pointee(certs),
        })
    }

    fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(name) = server_name.map(str::to_ascii_lowercase) {
            let exact = certs.iter().find(|c| {
                c.names
                    .iter()
                    .any(|p| !p.starts_with("*.") && name_matches(p, &name))
            });
            let wild = || {
                certs.iter().find(|c| {
                    c.names
                        .iter()
                        .any(|p| p.starts_with("*.") && name_matches(p, &name))
                })
            };
            if let Some(c) = exact.or_else(wild) {
                return Some(c.key.clone());
            }
        }
        certs.first().map(|c| c.key.clone())
    }

    /// Re-reads the files of `configs`; a changed pair that loads replaces
    /// the old one, a changed pair that fails is logged and skipped.
    /// `failed` remembers bad contents so each is reported once.
    fn reload(&self, configs: &[CertificateConfig], failed: &mut [Option<(Vec<u8>, Vec<u8>)>]) {
        let current = self.certs.load_full();
        let mut next: Vec<Arc<Loaded>> = current.iter().cloned().collect();
        let mut reloaded = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let (Ok(cert), Ok(key)) = (std::fs::read(&config.cert), std::fs::read(&config.key))
            else {
                continue; // mid-rotation or removed: keep serving the old one
            };
            let files = (cert, key);
            if files == current[i].files || failed[i].as_ref() == Some(&files) {
                continue;
            }
            match load_one(config, Some(files.clone())) {
                Ok(loaded) => {
                    reloaded.push((config.cert.display().to_string(), loaded.names.clone()));
                    next[i] = Arc::new(loaded);
                    failed[i] = None;
                }
                Err(e) => {
                    tracing::warn!(cert = %config.cert.display(), error = %e, "certificate reload failed; keeping the previous one");
                    failed[i] = Some(files);
                }
            }
        }
        if !reloaded.is_empty() {
            self.certs.store(Arc::new(next));
        }
        // Logged once in force, so whoever waits for the line gets the new one.
        for (cert, names) in reloaded {
            tracing::info!(cert, ?names, "certificate reloaded");
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

fn load_one(
    config: &CertificateConfig,
    files: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<Loaded> {
    let files = match files {
        Some(f) => f,
        None => (read(&config.cert)?, read(&config.key)?),
    };
    let key = pem::certified_key_from(&config.cert, &files.0, &config.key, &files.1)?;
    let names = if config.names.is_empty() {
        dns_names(key.cert.first().map(|c| c.as_ref()).unwrap_or_default())
    } else {
        config
            .names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect()
    };
    Ok(Loaded { names, key, files })
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The DNS names in a certificate's subject alternative names.
fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The subject of a certificate, RFC 4514 style (`CN=client,O=Example`).
fn subject(der: &[u8]) -> Option<String> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.subject().to_string())
}

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

/// Checks the certificate files every `interval` and reloads what changed.
pub async fn watch_certificates(
    store: Arc<CertStore>,
    configs: Vec<CertificateConfig>,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    let mut failed = vec![None; configs.len()];
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.started() => return,
        }
        // File reads are small but blocking: keep them off the workers.
        let (s, c, f) = (store.clone(), configs.clone(), std::mem::take(&mut failed));
        failed = match tokio::task::spawn_blocking(move || {
            let mut f = f;
            s.reload(&c, &mut f);
            f
        })
        .await
        {
            Ok(f) => f,
            Err(_) => vec![None; configs.len()],
        };
    }
}

/// Accepts TLS connections on `listener` until shutdown, serving the HTTP
/// inside each with `service`.
pub async fn serve_https(
    listener: TcpListener,
    service: Arc<HttpService>,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    limits: HttpLimitsConfig,
    max_connections: usize,
    mut shutdown: Shutdown,
) {
    let builder = Arc::new(builder(&limits));
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => return },
            () = shutdown.started() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = &*service.listener, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.started() => return,
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let (acceptor, service, builder, shutdown) = (
            acceptor.clone(),
            service.clone(),
            builder.clone(),
            shutdown.clone(),
        );
        let idle_timeout = limits.idle_timeout;
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
                    mtls: peer_subject.is_some(),
                    peer_subject,
                    sni: session.server_name().map(str::to_owned),
                }),
                activity: Arc::new(ConnActivity::new()),
            };
            serve_connection(&builder, TokioIo::new(tls), conn, idle_timeout, shutdown).await;
            drop(permit);
        });
    }
}

/// Loads the certificates of the `https` listener `config`, starts
/// watching them and serves `socket`. Errors name the bad file.
pub fn start(
    socket: TcpListener,
    config: &crate::config::ListenerConfig,
    service: Arc<HttpService>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
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
        shutdown.clone(),
    ));
    tokio::spawn(serve_https(
        socket,
        service,
        acceptor,
        tls.handshake_timeout,
        config.http.clone(),
        config.max_connections,
        shutdown,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_dns_names_are_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["a.example".to_string(), "*.b.example".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(dns_names(cert.der()), ["a.example", "*.b.example"]);
        let subject = subject(cert.der()).expect("subject");
        assert!(
            subject.contains("CN=alice") && subject.contains("O=Example"),
            "{subject}"
        );
    }
}
