//! The gRPC upstream of the tests (service `test.Echo`, by hand on
//! tonic's server side; messages are raw bytes):
//! - `Unary`: answers `<name>:<message>`; metadata `x-sleep-ms` delays the
//!   answer;
//! - `ServerStream`: the message is a count `n`; sends `0..n`, then holds
//!   the call open with `x-hold` until [`GrpcUpstream::release`], and ends
//!   with status FAILED_PRECONDITION "stopped at n" with `x-fail`;
//! - `ClientStream`: answers the messages joined by `+`;
//! - `Bidi`: answers each message upper-cased, as it comes.
//!
//! Other paths are plain HTTP: `/trailers` answers with the request's
//! body and its trailers returned as response trailers `echo-<name>`;
//! anything else answers `plain:<name>`, with the request's `:scheme` in
//! `x-scheme` and its `x-forwarded-*` fields echoed as `echo-x-forwarded-*`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, Request, Response};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tonic::{Code, Status};

use super::RawCodec;
use crate::tls::Issued;

type Messages = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpBody = UnsyncBoxBody<Bytes, BoxError>;

fn full(text: String) -> HttpBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The methods, as tonic's service traits want them: a tower service
/// from a tonic request to a tonic response.
macro_rules! method {
    ($name:ident, $req:ty, $resp:ty, |$self_:ident, $r:ident| $body:block) => {
        struct $name(Shared);
        impl tower_service::Service<tonic::Request<$req>> for $name {
            type Response = tonic::Response<$resp>;
            type Error = Status;
            type Future = BoxFuture<'static, Result<tonic::Response<$resp>, Status>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, $r: tonic::Request<$req>) -> Self::Future {
                let $self_ = self.0.clone();
                Box::pin(async move { $body })
            }
        }
    };
}

method!(Unary, Bytes, Bytes, |shared, r| {
    if let Some(ms) = metadata(&r, "x-sleep-ms").and_then(|m| m.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let text = String::from_utf8_lossy(r.get_ref()).into_owned();
    Ok(tonic::Response::new(Bytes::from(format!(
        "{}:{text}",
        shared.name
    ))))
});

method!(ServerStream, Bytes, Messages, |shared, r| {
    Ok(tonic::Response::new(count_to(r, shared.release)))
});

method!(
    ClientStream,
    tonic::Streaming<Bytes>,
    Bytes,
    |_shared, r| {
        let mut parts = Vec::new();
        let mut incoming = r.into_inner();
        while let Some(m) = incoming.next().await {
            parts.push(String::from_utf8_lossy(&m?).into_owned());
        }
        Ok(tonic::Response::new(Bytes::from(parts.join("+"))))
    }
);

method!(Bidi, tonic::Streaming<Bytes>, Messages, |_shared, r| {
    let out: Messages = Box::pin(
        r.into_inner()
            .map(|m| m.map(|m| Bytes::from(String::from_utf8_lossy(&m).to_uppercase()))),
    );
    Ok(tonic::Response::new(out))
});

/// A running gRPC upstream; stops when dropped or killed.
pub struct GrpcUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    te_trailers: Arc<AtomicUsize>,
    release: tokio::sync::watch::Sender<bool>,
    kill: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Shared {
    name: Arc<str>,
    te_trailers: Arc<AtomicUsize>,
    release: tokio::sync::watch::Receiver<bool>,
}

impl GrpcUpstream {
    /// Starts upstream `name` on 127.0.0.1:0: HTTP/2 in cleartext (prior
    /// knowledge), or over TLS with `cert` (ALPN `h2`).
    pub async fn start(name: &str, cert: Option<&Issued>) -> GrpcUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let acceptor = cert.map(|c| crate::tls::acceptor(c, &["h2"]));
        let connections = Arc::new(AtomicUsize::new(0));
        let (release, release_rx) = tokio::sync::watch::channel(false);
        let (kill, kill_rx) = tokio::sync::watch::channel(false);
        let te_trailers = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            name: Arc::from(name),
            te_trailers: te_trailers.clone(),
            release: release_rx,
        };
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (shared, acceptor, mut kill) =
                    (shared.clone(), acceptor.clone(), kill_rx.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(route(shared, req).await) }
                    });
                    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    let served = async {
                        match acceptor {
                            Some(acceptor) => {
                                let Ok(tls) = acceptor.accept(stream).await else {
                                    return;
                                };
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                            None => {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    };
                    // Killing drops the connection mid-stream, as a crash would.
                    tokio::select! {
                        () = served => {}
                        _ = kill.wait_for(|k| *k) => {}
                    }
                });
            }
        });
        GrpcUpstream {
            addr,
            connections,
            te_trailers,
            release,
            kill,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests that arrived with `TE: trailers`.
    pub fn te_trailers_seen(&self) -> usize {
        self.te_trailers.load(Ordering::SeqCst)
    }

    /// Lets calls held by `x-hold` finish.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }

    /// Stops accepting and drops every connection at once.
    pub fn kill(&self) {
        self.task.abort();
        let _ = self.kill.send(true);
    }
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.kill();
    }
}

fn metadata<T>(request: &tonic::Request<T>, key: &str) -> Option<String> {
    request
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn route(shared: Shared, req: Request<Incoming>) -> Response<HttpBody> {
    let mut grpc = tonic::server::Grpc::new(RawCodec);
    let path = req.uri().path().to_owned();
    if req.headers().get("te").is_some_and(|v| v == "trailers") {
        shared.te_trailers.fetch_add(1, Ordering::SeqCst);
    }
    let name = shared.name.clone();
    let boxed =
        |r: Response<tonic::body::Body>| r.map(|b| b.map_err(BoxError::from).boxed_unsync());
    match path.as_str() {
        "/test.Echo/Unary" => boxed(grpc.unary(Unary(shared), req).await),
        "/test.Echo/ServerStream" => boxed(grpc.server_streaming(ServerStream(shared), req).await),
        "/test.Echo/ClientStream" => boxed(grpc.client_streaming(ClientStream(shared), req).await),
        "/test.Echo/Bidi" => boxed(grpc.streaming(Bidi(shared), req).await),
        "/trailers" => echo_trailers(req).await,
        _ => {
            let scheme = req.uri().scheme_str().unwrap_or("none").to_owned();
            let mut plain = Response::new(full(format!("plain:{name}")));
            if let Ok(v) = http::HeaderValue::from_str(&scheme) {
                plain.headers_mut().insert("x-scheme", v);
            }
            for (name, value) in req.headers() {
                if name.as_str().starts_with("x-forwarded-") {
                    if let Ok(echo) = format!("echo-{name}").parse::<http::HeaderName>() {
                        plain.headers_mut().append(echo, value.clone());
                    }
                }
            }
            plain
        }
    }
}

/// `ServerStream`: `0..n`, optionally held, optionally failing at the end.
fn count_to(r: tonic::Request<Bytes>, mut release: tokio::sync::watch::Receiver<bool>) -> Messages {
    let n: usize = String::from_utf8_lossy(r.get_ref()).parse().unwrap_or(0);
    let hold = metadata(&r, "x-hold").is_some();
    let fail = metadata(&r, "x-fail").is_some();
    let numbers = futures_util::stream::iter((0..n).map(|i| Ok(Bytes::from(i.to_string()))));
    let end = futures_util::stream::once(async move {
        if hold {
            let _ = release.wait_for(|r| *r).await;
        }
        if fail {
            Some(Err(Status::new(
                Code::FailedPrecondition,
                format!("stopped at {n}"),
            )))
        } else {
            None
        }
    })
    .filter_map(|x| async move { x });
    Box::pin(numbers.chain(end))
}

/// `/trailers`: the body back, and each request trailer as `echo-<name>`.
async fn echo_trailers(req: Request<Incoming>) -> Response<HttpBody> {
    let collected = match req.into_body().collect().await {
        Ok(c) => c,
        Err(_) => return Response::new(full("body failed".into())),
    };
    let mut echoed = HeaderMap::new();
    for (name, value) in collected.trailers().into_iter().flatten() {
        if let Ok(n) = HeaderName::from_bytes(format!("echo-{name}").as_bytes()) {
            echoed.insert(n, value.clone());
        }
    }
    let frames = vec![
        Ok::<_, BoxError>(Frame::data(collected.to_bytes())),
        Ok(Frame::trailers(echoed)),
    ];
    Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync())
}
