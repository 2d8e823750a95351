//! An upstream whose faults a test switches at runtime: it answers, answers
//! with a chosen status, turns slow, resets connections, or is killed and
//! restarted on the same port. It counts what it received, bodies included.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// What the upstream does with the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answers 200 with its name.
    None,
    /// Answers with this status.
    Status(u16),
    /// Answers 200 after this long.
    Slow(Duration),
    /// Closes the connection without an answer.
    Reset,
    /// Closes the connection without an answer when the request is not
    /// the first on it (a server closing idle keep-alive connections).
    CloseReused,
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: Method,
    pub path: String,
    pub body: Bytes,
}

#[derive(Debug)]
struct Shared {
    name: String,
    fault: Mutex<Fault>,
    got: Mutex<Vec<Got>>,
    count: tokio::sync::watch::Sender<usize>,
}

/// A running upstream; stops when dropped.
pub struct FaultyUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop and every connection: aborting them is a kill.
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl FaultyUpstream {
    /// Starts an upstream called `name` on 127.0.0.1:0, without faults.
    pub async fn start(name: &str) -> FaultyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            fault: Mutex::new(Fault::None),
            got: Mutex::new(Vec::new()),
            count: tokio::sync::watch::channel(0).0,
        });
        let upstream = FaultyUpstream {
            addr: listener.local_addr().expect("upstream address"),
            shared,
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        upstream.serve(listener);
        upstream
    }

    fn serve(&self, listener: TcpListener) {
        let (shared, tasks) = (self.shared.clone(), self.tasks.clone());
        let accept = async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let served = Arc::new(AtomicUsize::new(0));
                let service = hyper::service::service_fn(move |req| {
                    let (shared, served) = (shared.clone(), served.clone());
                    async move { handle(req, &shared, served.fetch_add(1, Ordering::SeqCst)).await }
                });
                let connection = async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                };
                tasks.lock().expect("tasks").spawn(connection);
            }
        };
        self.tasks.lock().expect("tasks").spawn(accept);
    }

    /// Switches what the upstream does from the next request on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().expect("fault") = fault;
    }

    /// Stops listening and closes every connection, as a crashed process.
    pub fn kill(&self) {
        self.tasks.lock().expect("tasks").abort_all();
    }

    /// Listens again on the same address after [`FaultyUpstream::kill`].
    pub async fn restart(&self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("bind the same address again");
        self.serve(listener);
    }

    /// Every request received so far.
    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().expect("got").clone()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Waits until at least `n` requests have arrived; false after
    /// [`crate::WAIT`].
    pub async fn wait_for(&self, n: usize) -> bool {
        let mut count = self.shared.count.subscribe();
        tokio::time::timeout(crate::WAIT, count.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// A gateway config with an admin listener, no access log, and one route
/// (`/`, listener `web`) to cluster `c` over `upstreams`; `route` and
/// `cluster` are extra lines (tables included) for each.
pub fn one_route_config(upstreams: &[&FaultyUpstream], route: &str, cluster: &str) -> String {
    let endpoints: Vec<String> = upstreams
        .iter()
        .map(|u| format!("\"{}\"", u.addr))
        .collect();
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [access_log]
        enabled = false

        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "c"
        {route}

        [[cluster]]
        name = "c"
        endpoints = [{}]
        {cluster}
        "#,
        endpoints.join(", ")
    )
}

impl Drop for FaultyUpstream {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    on_connection: usize,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    shared.got.lock().expect("got").push(Got {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        body,
    });
    shared.count.send_modify(|c| *c += 1);
    let fault = *shared.fault.lock().expect("fault");
    let status = match fault {
        Fault::None => StatusCode::OK,
        Fault::Status(s) => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Fault::Slow(pause) => {
            tokio::time::sleep(pause).await;
            StatusCode::OK
        }
        // An error from the service makes hyper close the connection
        // without writing anything.
        Fault::Reset => return Err(std::io::Error::other("reset")),
        Fault::CloseReused if on_connection > 0 => {
            return Err(std::io::Error::other("closed while idle"))
        }
        Fault::CloseReused => StatusCode::OK,
    };
    Ok(Response::builder()
        .status(status)
        .header("x-upstream", shared.name.as_str())
        .body(Full::new(Bytes::from(shared.name.clone())))
        .expect("response"))
}
