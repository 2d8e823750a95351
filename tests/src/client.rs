//! Small clients that hold one connection, so tests control keep-alive
//! and multiplexing exactly.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    async fn read(resp: http::Response<hyper::body::Incoming>) -> Reply {
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("read response body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// One HTTP/1.1 keep-alive connection.
pub struct Http1Client {
    sender: http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    /// Ends when the connection closes.
    connection: tokio::task::JoinHandle<()>,
}

impl Http1Client {
    pub async fn connect(addr: SocketAddr) -> Http1Client {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("http1 handshake");
        let connection = tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Http1Client {
            sender,
            addr,
            connection,
        }
    }

    /// Sends a request built by the caller (Host is added if missing).
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Reply {
        if !req.headers().contains_key(http::header::HOST) {
            let host = http::HeaderValue::from_str(&self.addr.to_string()).expect("host");
            req.headers_mut().insert(http::header::HOST, host);
        }
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("send request");
        Reply::read(resp).await
    }

    /// The raw response, body unread (for streaming and upgrades).
    pub async fn send_streaming(
        &mut self,
        mut req: Request<Full<Bytes>>,
    ) -> http::Response<hyper::body::Incoming> {
        if !req.headers().contains_key(http::header::HOST) {
            let host = http::HeaderValue::from_str(&self.addr.to_string()).expect("host");
            req.headers_mut().insert(http::header::HOST, host);
        }
        self.sender.ready().await.expect("connection ready");
        self.sender.send_request(req).await.expect("send request")
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(get(path)).await
    }

    /// Waits until the connection closes; false if still open after
    /// `timeout`.
    pub async fn wait_closed(&mut self, timeout: std::time::Duration) -> bool {
        tokio::time::timeout(timeout, &mut self.connection)
            .await
            .is_ok()
    }

    /// Whether the gateway has closed this connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// One HTTP/2 connection (prior knowledge); clones share it.
#[derive(Clone)]
pub struct Http2Client {
    sender: http2::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    /// Turns true when the connection has ended.
    closed: tokio::sync::watch::Receiver<bool>,
}

impl Http2Client {
    pub async fn connect(addr: SocketAddr) -> Http2Client {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the gateway");
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("http2 handshake");
        let (ended, closed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = ended.send(true);
        });
        Http2Client {
            sender,
            addr,
            closed,
        }
    }

    /// Waits until the gateway closes the connection; false after `timeout`.
    pub async fn wait_closed(&mut self, timeout: std::time::Duration) -> bool {
        let mut closed = self.closed.clone();
        let ended = tokio::time::timeout(timeout, closed.wait_for(|c| *c)).await;
        ended.is_ok()
    }

    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Reply {
        if req.uri().authority().is_none() {
            let uri = format!("http://{}{}", self.addr, req.uri());
            *req.uri_mut() = uri.parse().expect("uri");
        }
        *req.version_mut() = http::Version::HTTP_2;
        self.sender.ready().await.expect("connection ready");
        let resp = self.sender.send_request(req).await.expect("send request");
        Reply::read(resp).await
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send(get(path)).await
    }
}

/// A GET request for `path`.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("request")
}
