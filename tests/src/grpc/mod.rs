//! gRPC for tests, on `tonic` without generated code or protobuf:
//! messages are raw bytes (a pass-through codec), the client's channel is
//! one hyper HTTP/2 connection, and the upstream ([`GrpcUpstream`]) is put
//! together by hand on tonic's server side. Plus the gateway the gRPC
//! tests share and small helpers for calls.

mod upstream;

use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use futures_util::future::BoxFuture;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

pub use upstream::GrpcUpstream;

use crate::{Gateway, WAIT};

/// Messages as raw bytes: the tests need gRPC framing, not protobuf.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// An HTTP/2 connection to the gateway, as a tonic channel.
#[derive(Clone)]
pub struct Channel {
    tx: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
}

impl tower_service::Service<Request<tonic::body::Body>> for Channel {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<'static, Result<Response<Incoming>, hyper::Error>>;
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.tx.poll_ready(cx)
    }
    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.tx.send_request(req))
    }
}

/// A gRPC client of the gateway's `test.Echo` service.
pub type Client = tonic::client::Grpc<Channel>;

/// A client over cleartext HTTP/2 (prior knowledge) to `addr`.
pub async fn client(addr: SocketAddr) -> Client {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    client_on(stream, &format!("http://{addr}")).await
}

/// A client over TLS (ALPN `h2`) to `addr`, trusting `roots`, asking for
/// `server_name`.
pub async fn tls_client(
    addr: SocketAddr,
    roots: rustls::RootCertStore,
    server_name: &str,
) -> Client {
    let options = crate::tls::ClientOptions {
        server_name: server_name.into(),
        alpn: vec!["h2"],
        ..Default::default()
    };
    let stream = crate::tls::connect(addr, roots, &options)
        .await
        .expect("TLS connect");
    client_on(stream, &format!("https://{server_name}")).await
}

async fn client_on<S>(io: S, origin: &str) -> Client
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    tonic::client::Grpc::with_origin(Channel { tx }, origin.parse().expect("origin"))
}

/// The path of method `name` of `test.Echo`.
pub fn method(name: &str) -> http::uri::PathAndQuery {
    format!("/test.Echo/{name}").parse().expect("path")
}

/// A gateway with one worker and one http listener `web` routing
/// `/test.Echo/`, `/plain` and `/trailers` to cluster `c` (h2c to
/// `upstream`; `cluster_extra` are more of its keys) and `/down/` to a
/// cluster on a port nothing listens on (ejected at its first failed
/// connect); `listener_extra` goes into the listener (filters).
pub async fn gateway(
    upstream: &GrpcUpstream,
    cluster_extra: &str,
    listener_extra: &str,
) -> Gateway {
    Gateway::start(&format!(
        r#"
        [runtime]
        workers = 1

        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        {listener_extra}

        [[listener.route]]
        path_prefix = "/test.Echo/"
        cluster = "c"

        [[listener.route]]
        path_prefix = "/down/"
        cluster = "down"

        [[listener.route]]
        path = "/plain"
        cluster = "c"

        [[listener.route]]
        path = "/trailers"
        cluster = "c"

        [[cluster]]
        name = "c"
        endpoints = ["{}"]
        protocol = "h2c"
        {cluster_extra}

        [[cluster]]
        name = "down"
        endpoints = ["127.0.0.1:1"]
        protocol = "h2c"
        eject_after_failures = 1
        "#,
        upstream.addr
    ))
    .await
}

/// A request carrying `message`.
pub fn request(message: &str) -> tonic::Request<Bytes> {
    tonic::Request::new(Bytes::from(message.to_owned()))
}

/// A message as text.
pub fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every message of a stream, then its end (`Ok`, or the status's code
/// and message); each message must come within [`WAIT`].
pub async fn drain(
    stream: &mut tonic::Streaming<Bytes>,
) -> (Vec<String>, Result<(), (Code, String)>) {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("stream stalled")
        {
            Ok(Some(m)) => got.push(text(&m)),
            Ok(None) => return (got, Ok(())),
            Err(status) => return (got, Err((status.code(), status.message().to_owned()))),
        }
    }
}

/// POSTs `body` and then `trailers` to the upstream's `/trailers` (which
/// echoes each request trailer as `echo-<name>`) over HTTP/2 through the
/// gateway at `addr`: the status, the body and the response trailers.
pub async fn post_with_trailers(
    addr: SocketAddr,
    body: &'static str,
    trailers: &[(&'static str, &'static str)],
) -> (http::StatusCode, Bytes, http::HeaderMap) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut map = http::HeaderMap::new();
    for (name, value) in trailers {
        map.insert(*name, value.parse().expect("trailer value"));
    }
    let frames = vec![
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(body))),
        Ok(hyper::body::Frame::trailers(map)),
    ];
    let request = Request::post(format!("http://{addr}/trailers"))
        .header("te", "trailers")
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
        .expect("request");
    let response = tokio::time::timeout(WAIT, tx.send_request(request))
        .await
        .expect("answer in time")
        .expect("response");
    let status = response.status();
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (status, collected.to_bytes(), trailers)
}
