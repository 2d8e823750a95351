//! The per-request path: filters, route, forward, response filters,
//! access log. Every failure becomes a response here; the HTTP edge never
//! errors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{header, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::access_log::{AccessRecord, CountedBody, LoggedBody};
use super::body::{self, Body};
use super::error::ProxyError;
use super::forward::{self, Forwarded};
use super::route::{host_without_port, RouteAction};
use crate::filter::{ChainRun, FilterChain, RequestMeta};
use crate::listener::ConnActivity;
use crate::state::Snapshot;

/// What the service knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub scheme: &'static str,
    pub tls_version: Option<String>,
    /// A client certificate was presented and verified (mTLS).
    pub mtls: bool,
    /// The verified client certificate's subject, RFC 4514 style.
    pub peer_subject: Option<String>,
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
}

/// The HTTP service of one listener, shared by its connections.
pub struct HttpService {
    pub listener: Arc<str>,
    pub state: Arc<ArcSwap<Snapshot>>,
}

/// Per-connection handle on the service.
#[derive(Clone)]
pub struct ConnService {
    pub service: Arc<HttpService>,
    pub conn: Arc<ConnInfo>,
    pub activity: Arc<ConnActivity>,
}

/// Where a request is going, once the route is known.
struct Target {
    cluster: String,
    timeout: Option<std::time::Duration>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<LoggedBody>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl ConnService {
    async fn handle(&self, req: Request<Incoming>) -> Response<LoggedBody> {
        self.activity.request_started();
        let snapshot = self.service.state.load_full();
        let bytes_in = Arc::new(AtomicU64::new(0));
        let mut record = AccessRecord {
            listener: self.service.listener.clone(),
            id: request_id(&req, &snapshot),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            version: req.version(),
            client: self.conn.peer,
            started: Instant::now(),
            status: 0,
            route: None,
            cluster: None,
            endpoint: None,
            error: None,
            bytes_in: bytes_in.clone(),
            enabled: snapshot.access_log,
        };
        let mut runs = Vec::new();
        let response = match self
            .proxy(req, &snapshot, &mut record, &mut runs, bytes_in)
            .await
        {
            Ok(response) => response,
            Err(error) => {
                record.error = Some(error.kind());
                tracing::debug!(id = %record.id, %error, "request failed");
                error.to_response()
            }
        };
        record.status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        Response::from_parts(
            parts,
            LoggedBody::new(body, record, runs, self.activity.clone()),
        )
    }

    async fn proxy(
        &self,
        req: Request<Incoming>,
        snapshot: &Snapshot,
        record: &mut AccessRecord,
        runs: &mut Vec<ChainRun>,
        bytes_in: Arc<AtomicU64>,
    ) -> Result<Response<Body>, ProxyError> {
        let listener = snapshot
            .listener(&self.service.listener)
            .ok_or(ProxyError::NoRoute)?;
        let (mut parts, incoming) = req.into_parts();
        let authority = authority(&parts)?;
        if let Ok(v) = HeaderValue::from_str(&record.id) {
            parts.headers.insert("x-request-id", v);
        }
        let body = body::boxed(CountedBody::new(body::boxed(incoming), bytes_in));
        let mut req = Request::from_parts(parts, body);

        // Listener filters see the request before any route is chosen, so
        // they can answer it or steer it.
        let mut chosen = None;
        let folder_chain = listener.folder.as_ref().map(|f| f.chain());
        for chain in std::iter::once(&listener.filters).chain(folder_chain.as_deref()) {
            let (filtered, steered) = match self.request_filters(chain, req, record, runs).await {
                Ok(passed) => passed,
                Err(local) => return self.respond(local, runs).await,
            };
            req = filtered;
            chosen = steered.or(chosen);
        }

        let target = match chosen {
            Some(cluster) => {
                record.route = Some("filter".into());
                Target {
                    cluster,
                    timeout: None,
                }
            }
            None => {
                let host = req
                    .uri()
                    .authority()
                    .map(|a| a.host().to_owned())
                    .or_else(|| {
                        authority
                            .as_deref()
                            .map(|a| host_without_port(a).to_owned())
                    });
                let route = listener
                    .routes
                    .find(req.method(), host.as_deref(), req.uri().path())
                    .ok_or(ProxyError::NoRoute)?;
                record.route = Some(route.name.clone());
                let (filtered, steered) = match self
                    .request_filters(&route.filters, req, record, runs)
                    .await
                {
                    Ok(passed) => passed,
                    Err(local) => return self.respond(local, runs).await,
                };
                req = filtered;
                match (steered, &route.action) {
                    (Some(cluster), _) => Target {
                        cluster,
                        timeout: route.timeout,
                    },
                    (
                        None,
                        RouteAction::Direct {
                            status,
                            body,
                            content_type,
                        },
                    ) => {
                        let mut resp = Response::new(body::full(body.clone()));
                        *resp.status_mut() = *status;
                        resp.headers_mut()
                            .insert(header::CONTENT_TYPE, content_type.clone());
                        return self.respond(resp, runs).await;
                    }
                    (None, RouteAction::Forward { cluster }) => Target {
                        cluster: cluster.clone(),
                        timeout: route.timeout,
                    },
                }
            }
        };
        self.forward(req, snapshot, target, authority, record, runs)
            .await
    }

    /// Runs the request phase of `chain` (if it has filters): the request
    /// to go on with and the cluster a filter chose, or the filter's own
    /// answer. The run is kept in `runs` for the response phase.
    async fn request_filters(
        &self,
        chain: &FilterChain,
        req: Request<Body>,
        record: &AccessRecord,
        runs: &mut Vec<ChainRun>,
    ) -> Result<(Request<Body>, Option<String>), Response<Body>> {
        let Some(mut run) = chain.start(self.meta(record)) else {
            return Ok((req, None));
        };
        let result = run.on_request(req).await;
        let steered = run.upstream_override();
        runs.push(run);
        result.map(|req| (req, steered))
    }

    async fn forward(
        &self,
        mut req: Request<Body>,
        snapshot: &Snapshot,
        target: Target,
        authority: Option<String>,
        record: &mut AccessRecord,
        runs: &mut [ChainRun],
    ) -> Result<Response<Body>, ProxyError> {
        record.cluster = Some(target.cluster.clone());
        let cluster = snapshot
            .clusters
            .get(&target.cluster)
            .ok_or_else(|| ProxyError::UnknownCluster(target.cluster.clone()))?;
        let upgrade = forward::upgrade_protocol(&req);
        let downstream_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let forwarded = Forwarded {
            client: self.conn.peer,
            scheme: self.conn.scheme,
            host: authority.as_deref(),
        };
        forward::to_upstream(&mut req, &forwarded, upgrade);
        let timeout = target.timeout.unwrap_or(cluster.config.request_timeout);
        let timed_out = |endpoint: Option<&Arc<str>>| ProxyError::UpstreamTimeout {
            cluster: target.cluster.clone(),
            endpoint: endpoint.map_or_else(String::new, |e| e.to_string()),
        };

        if let Some(downstream) = downstream_upgrade {
            let (endpoint, mut resp) = tokio::time::timeout(timeout, cluster.upgrade(req))
                .await
                .map_err(|_| timed_out(None))??;
            record.endpoint = Some(endpoint);
            let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            if upgraded {
                let upstream = hyper::upgrade::on(&mut resp);
                tokio::spawn(tunnel(downstream, upstream));
            }
            forward::from_upstream(&mut resp, upgraded);
            return self.respond(resp.map(body::boxed), runs).await;
        }

        let conn = cluster.connect().await?;
        let endpoint = conn.endpoint().clone();
        let mut resp = match tokio::time::timeout(timeout, conn.send(req)).await {
            Ok(result) => result?,
            Err(_) => return Err(timed_out(Some(&endpoint))),
        };
        record.endpoint = Some(endpoint);
        forward::from_upstream(&mut resp, false);
        self.respond(resp, runs).await
    }

    /// Runs the response phase of the chains, innermost (route) first.
    async fn respond(
        &self,
        mut resp: Response<Body>,
        runs: &mut [ChainRun],
    ) -> Result<Response<Body>, ProxyError> {
        for run in runs.iter_mut().rev() {
            resp = run.on_response(resp).await;
        }
        Ok(resp)
    }

    fn meta(&self, record: &AccessRecord) -> RequestMeta {
        RequestMeta {
            id: record.id.clone(),
            source: self.conn.peer,
            destination: self.conn.local,
            scheme: self.conn.scheme,
            tls_version: self.conn.tls_version.clone(),
            mtls: self.conn.mtls,
            peer_subject: self.conn.peer_subject.clone(),
            sni: self.conn.sni.clone(),
        }
    }
}

/// The authority of the request: from the URI (HTTP/2, absolute form) or
/// the Host header. HTTP/1.1 without Host is malformed (RFC 9112 §3.2).
fn authority(parts: &http::request::Parts) -> Result<Option<String>, ProxyError> {
    if let Some(a) = parts.uri.authority() {
        return Ok(Some(a.as_str().to_owned()));
    }
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadRequest("more than one Host header")),
        (Some(h), None) => h
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ProxyError::BadRequest("invalid Host header")),
        (None, _) if parts.version == Version::HTTP_11 => {
            Err(ProxyError::BadRequest("missing Host header"))
        }
        (None, _) => Ok(None),
    }
}

/// The client's `x-request-id` if it sent a sane one, else a new one.
fn request_id(req: &Request<Incoming>, snapshot: &Snapshot) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| snapshot.ids.next())
}

/// Copies bytes both ways between an upgraded downstream and upstream.
async fn tunnel(downstream: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(downstream, upstream) {
        Ok((down, up)) => {
            let mut down = hyper_util::rt::TokioIo::new(down);
            let mut up = hyper_util::rt::TokioIo::new(up);
            if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                tracing::debug!(error = %e, "upgraded tunnel ended with an error");
            }
        }
        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
    }
}
