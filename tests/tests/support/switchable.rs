//! An upstream whose answers the test switches: the status of `/healthz`
//! (what health checks see) and of every other path (what traffic sees).

// Each test file uses some of these helpers.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A running switchable upstream; stops accepting when dropped.
pub struct Switchable {
    pub addr: SocketAddr,
    health: Arc<AtomicU16>,
    status: Arc<AtomicU16>,
    checks: Arc<AtomicUsize>,
    /// `METHOD host` of the last health check.
    last_check: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Switchable {
    /// Starts on 127.0.0.1:0, answering 200 to everything.
    pub async fn start(name: &'static str) -> Switchable {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let health = Arc::new(AtomicU16::new(200));
        let status = Arc::new(AtomicU16::new(200));
        let checks = Arc::new(AtomicUsize::new(0));
        let last_check = Arc::new(Mutex::new(String::new()));
        let (h, s, c, l) = (
            health.clone(),
            status.clone(),
            checks.clone(),
            last_check.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, s, c, l) = (h.clone(), s.clone(), c.clone(), l.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: http::Request<_>| {
                        let code = if req.uri().path() == "/healthz" {
                            let host = req.headers().get("host").and_then(|v| v.to_str().ok());
                            *l.lock().expect("lock") =
                                format!("{} {}", req.method(), host.unwrap_or("-"));
                            c.fetch_add(1, Ordering::SeqCst);
                            h.load(Ordering::SeqCst)
                        } else {
                            s.load(Ordering::SeqCst)
                        };
                        let mut resp =
                            Response::new(Full::new(Bytes::from_static(name.as_bytes())));
                        *resp.status_mut() = StatusCode::from_u16(code).expect("status");
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Switchable {
            addr,
            health,
            status,
            checks,
            last_check,
            task,
        }
    }

    /// The status health checks get from `/healthz`.
    pub fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    /// The status every other request gets.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// `METHOD host` of the last health check received.
    pub fn last_check(&self) -> String {
        self.last_check.lock().expect("lock").clone()
    }

    /// Health checks received.
    pub fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

impl Drop for Switchable {
    fn drop(&mut self) {
        self.task.abort();
    }
}
