//! TLS from the gateway to a cluster's endpoints: a private CA, an SNI
//! override and ALPN (HTTP/2 when the endpoint picks `h2`, or always with
//! `protocol = "h2"`).

use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{pem, UpstreamProtocol, UpstreamTlsConfig};

/// The client side of TLS for one cluster.
pub struct UpstreamTls {
    connector: TlsConnector,
    sni: Option<ServerName<'static>>,
}

impl UpstreamTls {
    /// The client side for `config`; the cluster's `protocol` decides what
    /// ALPN offers (`h2` alone, `http/1.1` alone, or `alpn` for `auto`).
    pub fn new(
        config: &UpstreamTlsConfig,
        protocol: UpstreamProtocol,
    ) -> anyhow::Result<UpstreamTls> {
        let roots = match &config.ca {
            Some(ca) => Arc::new(pem::root_store(ca)?),
            None => system_roots()?,
        };
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        client.alpn_protocols = match protocol {
            UpstreamProtocol::H2 | UpstreamProtocol::H2c => vec![b"h2".to_vec()],
            UpstreamProtocol::Http1 => vec![b"http/1.1".to_vec()],
            UpstreamProtocol::Auto | UpstreamProtocol::Redis => {
                config.alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
            }
        };
        let sni = match &config.sni {
            Some(name) => Some(ServerName::try_from(name.clone())?),
            None => None,
        };
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(client)),
            sni,
        })
    }

    /// Runs the handshake on `stream` to the endpoint `address`
    /// (`host:port`); the name verified is the SNI override or the host.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        address: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = match &self.sni {
            Some(name) => name.clone(),
            None => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                ServerName::try_from(host.to_string())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
            }
        };
        self.connector.connect(name, stream).await
    }
}

/// Whether the endpoint chose HTTP/2 by ALPN.
pub fn negotiated_h2(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// The roots the operating system trusts (`/etc/ssl/certs` and the like),
/// read once per process and shared by every cluster, as Go's
/// `SystemCertPool` is: reading and parsing the store takes milliseconds
/// and a copy of it, so a thousand TLS clusters would otherwise take
/// seconds to start and a hundred megabytes to hold.
fn system_roots() -> anyhow::Result<Arc<rustls::RootCertStore>> {
    // Only a store that was read is kept: after a failure (no
    // certificates installed yet), the next cluster built tries again.
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(roots.clone());
    }
    let roots = Arc::new(read_system_roots()?);
    Ok(ROOTS.get_or_init(|| roots).clone())
}

fn read_system_roots() -> anyhow::Result<rustls::RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!("reading the system's trusted certificates: {error}");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    anyhow::ensure!(added > 0, "no usable trusted certificate in the system store ({ignored} ignored); set [cluster.tls] ca");
    Ok(roots)
}
