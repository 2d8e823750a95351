//! A real upstream server for tests. It answers every path with its own
//! name and records what it received; a few paths behave specially:
//!
//! - `/slow/<ms>`: answers after `ms` milliseconds;
//! - `/download/<bytes>`: streams that many bytes (`text/plain`);
//! - `/json/<bytes>`: a JSON document of about that many bytes,
//!   `{"user":"ann","secret":"hunter2","pad":"xx..."}`;
//! - `/upload`: reads the request body and answers with its length;
//! - `/ws`: accepts an `Upgrade` and echoes bytes on the raw connection;
//! - `/check`: 200 when `Authorization: Bearer good`, else 403.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    /// Which of this upstream's connections carried it (0, 1, ...).
    pub connection: usize,
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// The number of requests received, for waiting on it.
    count: tokio::sync::watch::Receiver<usize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

type Body = BoxBody<Bytes, Infallible>;

impl Upstream {
    /// Starts an upstream called `name` on 127.0.0.1:0.
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("upstream address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = tokio::sync::watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c, n) = (
            received.clone(),
            connections.clone(),
            Arc::<str>::from(name),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let connection = c.fetch_add(1, Ordering::SeqCst);
                let (r, n, t) = (r.clone(), n.clone(), count_tx.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (r, n, t) = (r.clone(), n.clone(), t.clone());
                        async move { Ok::<_, Infallible>(handle(req, &n, connection, &r, &t).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            name: name.to_string(),
            addr,
            received,
            count,
            connections,
            task,
        }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received lock").clone()
    }

    /// Waits until at least `n` requests have arrived; false after
    /// [`crate::WAIT`].
    pub async fn wait_for_requests(&self, n: usize) -> bool {
        let mut count = self.count.clone();
        tokio::time::timeout(crate::WAIT, count.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    mut req: Request<Incoming>,
    name: &str,
    connection: usize,
    log: &Mutex<Vec<Received>>,
    count: &tokio::sync::watch::Sender<usize>,
) -> Response<Body> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    log.lock().expect("received lock").push(Received {
        method: req.method().clone(),
        path: path.clone(),
        version: req.version(),
        headers: req.headers().clone(),
        connection,
    });
    count.send_modify(|c| *c += 1);
    // The command is the first known word among the path's segments, so
    // routes may add a prefix (`/app/slow/100`).
    let segments: Vec<&str> = req.uri().path().split('/').collect();
    let at = segments
        .iter()
        .position(|s| matches!(*s, "slow" | "download" | "json" | "upload" | "ws" | "check"))
        .unwrap_or(0);
    let (first, arg) = (segments[at], segments.get(at + 1).copied().unwrap_or(""));
    match first {
        "slow" => {
            let ms = arg.parse().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, name)
        }
        "download" => {
            let total: usize = arg.parse().unwrap_or(0);
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let chunks = total.div_ceil(chunk.len());
            let frames = stream::iter((0..chunks).map(move |i| {
                let len = chunk.len().min(total - i * chunk.len());
                Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
            }));
            Response::builder()
                .header("content-length", total)
                .header("content-type", "text/plain")
                .header("x-upstream", name)
                .body(StreamBody::new(frames).boxed())
                .expect("response")
        }
        "json" => {
            let size: usize = arg.parse().unwrap_or(0);
            let head = r#"{"user":"ann","secret":"hunter2","pad":""#;
            let pad = "x".repeat(size.saturating_sub(head.len() + 2));
            let body = format!("{head}{pad}\"}}");
            Response::builder()
                .header("content-type", "application/json")
                .header("content-length", body.len())
                .header("x-upstream", name)
                .body(Full::new(Bytes::from(body)).boxed())
                .expect("response")
        }
        "upload" => {
            let mut body = req.into_body();
            let mut total = 0usize;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => total += frame.data_ref().map_or(0, |d| d.len()),
                    Err(_) => return text(StatusCode::BAD_REQUEST, "body failed"),
                }
            }
            text(StatusCode::OK, &total.to_string())
        }
        "ws" if req.headers().contains_key("upgrade") => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .body(Full::new(Bytes::new()).boxed())
                .expect("response")
        }
        // An authorization service: 200 for `Bearer good`, else 403.
        "check" => {
            let good = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v == "Bearer good");
            if good {
                text(StatusCode::OK, "allowed")
            } else {
                text(StatusCode::FORBIDDEN, "denied")
            }
        }
        _ => text(StatusCode::OK, name),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("x-upstream", body)
        .header("x-upstream-hop", "connection-bound")
        .header("connection", "x-upstream-hop")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("response")
}
