//! TLS for tests: a private CA issuing server and client certificates
//! (rcgen), TLS clients (tokio-rustls) speaking HTTP/1.1 or HTTP/2 as ALPN
//! decides, and a TLS upstream that answers with its name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::Reply;

/// A certificate and its key, PEM, plus the leaf in DER to compare with
/// what a handshake presented.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl Issued {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir` atomically (write
    /// then rename), returning their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let (cert, key) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        write_atomic(&key, self.key_pem.as_bytes());
        write_atomic(&cert, self.cert_pem.as_bytes());
        (cert, key)
    }
}

/// Replaces `path` with `bytes` by renaming a temp file over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename into place");
}

/// A private certificate authority.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca: Issued,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        };
        Pki {
            issuer: Issuer::new(params, key),
            ca,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Issued {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        self.sign(params)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, cn: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    /// A root store trusting this CA.
    pub fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.der.clone()))
            .expect("add CA");
        roots
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn key_of(issued: &Issued) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(issued.key_der.clone().into())
}

/// How a test client connects.
#[derive(Clone, Default)]
pub struct ClientOptions {
    pub server_name: String,
    pub alpn: Vec<&'static str>,
    pub client_cert: Option<Issued>,
    /// Write the first flight in pieces of this many bytes.
    pub chop: Option<usize>,
}

/// Connects to `addr` and runs a TLS handshake trusting `roots`.
pub async fn connect(
    addr: SocketAddr,
    roots: rustls::RootCertStore,
    options: &ClientOptions,
) -> std::io::Result<TlsStream<Chopped>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match &options.client_cert {
        Some(c) => builder
            .with_client_auth_cert(vec![CertificateDer::from(c.der.clone())], key_of(c))
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let stream = Chopped {
        inner: stream,
        chop: options.chop,
        yielded: false,
    };
    let name = ServerName::try_from(options.server_name.clone()).expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
}

/// The leaf certificate the server presented.
pub fn peer_leaf<S>(stream: &TlsStream<S>) -> Vec<u8> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}

/// Sends one GET over `stream` with HTTP/2 if ALPN chose `h2`, else
/// HTTP/1.1; the reply and the version used.
pub async fn get<S>(
    stream: TlsStream<S>,
    host: &str,
    path: &str,
) -> Result<(Reply, Version), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut tx, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        let req = Request::get(format!("https://{host}{path}")).version(Version::HTTP_2);
        tx.send_request(req.body(Full::new(Bytes::new())).expect("request"))
            .await?
    } else {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        let req = Request::get(path).header("host", host);
        tx.send_request(req.body(Full::new(Bytes::new())).expect("request"))
            .await?
    };
    let version = response.version();
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        },
        version,
    ))
}

/// A TCP stream that can write its first bytes in small pieces, yielding
/// between them, so the peer sees a first flight split across reads.
pub struct Chopped {
    inner: TcpStream,
    chop: Option<usize>,
    yielded: bool,
}

impl AsyncRead for Chopped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Chopped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let Some(chop) = self.chop else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        let n = buf.len().min(chop);
        Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TLS acceptor serving `cert`, offering `alpn`.
pub fn acceptor(cert: &Issued, alpn: &[&str]) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der.clone())], key_of(cert))
        .expect("server cert");
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// What a [`TlsUpstream`] saw of one request: HTTP version and SNI.
pub type Seen = (Version, Option<String>);

/// An HTTPS upstream: answers every request with its name and records
/// the HTTP version and SNI of each.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsUpstream {
    pub async fn start(name: &str, cert: &Issued, alpn: &[&str]) -> TlsUpstream {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert.der.clone())], key_of(cert))
            .expect("server cert");
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (name, log) = (Arc::<str>::from(name), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, name, log) = (acceptor.clone(), name.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            log.lock().expect("lock").push((req.version(), sni.clone()));
                            let body = Full::new(Bytes::from(name.to_string()));
                            async move { Ok::<_, Infallible>(Response::new(body)) }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsUpstream { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
