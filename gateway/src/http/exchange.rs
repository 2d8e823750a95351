//! One request as one object: the exchange owns its state from the parsed
//! head to the last log line, and its phases run here, in order:
//!
//! 1. `start`: accounting begins (id, access record, in-flight count);
//! 2. `authority`: one authority for routing, filters and the upstream;
//! 3. listener and folder filters, request phase;
//! 4. route chosen (table, or a filter's `gateway.upstream`), route filters;
//! 5. `upstream`: the cluster's circuit breaker, then the tries (endpoint,
//!    pooled connection, the exchange with it) under the retry policy;
//! 6. `respond`: response filters, innermost chain first;
//! 7. `finish`: access line, metrics, filter contexts finished, the
//!    connection's in-flight count released. `Drop` runs it too, so a
//!    reset or abandoned request is always accounted for.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;

use super::access_log::{AccessRecord, LoggedBody};
use super::body::{self, Body};
use super::error::ProxyError;
use super::forward::{self, Forwarded};
use super::head::{HeadFields, Host, X_REQUEST_ID};
use super::request_body::{BodyProgress, RequestBody};
use super::route::{host_without_port, RouteAction};
use super::service::ConnService;
use crate::filter::{ChainRun, FilterChain, RequestMeta};
use crate::state::{ListenerRuntime, Snapshot};
use crate::upstream::breaker::Permit;
use crate::upstream::retry::RetryPolicy;

/// Where a request is going, once the route is known.
struct Target {
    cluster: Arc<str>,
    timeout: Option<std::time::Duration>,
    /// The route's retry policy; `None`: the cluster's.
    retry: Option<Arc<RetryPolicy>>,
}

/// The filter chains a request ran, in order: the listener's, then the
/// route's. Never more than two, so kept in the exchange itself rather
/// than in a vector allocated for every request.
#[derive(Default)]
struct Runs([Option<ChainRun>; 2]);

impl Runs {
    fn push(&mut self, run: ChainRun) {
        match &mut self.0 {
            [slot @ None, _] | [Some(_), slot @ None] => *slot = Some(run),
            // Only the listener's and the route's chains run: a third is
            // a bug. Dropped, its run still finishes its filter contexts.
            [Some(_), Some(_)] => {
                debug_assert!(false, "a third filter chain ran for one request");
                drop(run)
            }
        }
    }

    /// Innermost (the route's) first, as the response phase runs them.
    fn iter_rev(&self) -> impl Iterator<Item = &ChainRun> {
        self.0.iter().rev().flatten()
    }

    fn iter_rev_mut(&mut self) -> impl Iterator<Item = &mut ChainRun> {
        self.0.iter_mut().rev().flatten()
    }

    /// Takes the runs out, in the order they ran.
    fn take(&mut self) -> impl Iterator<Item = ChainRun> {
        std::mem::take(&mut self.0).into_iter().flatten()
    }
}

/// One request in flight.
pub(crate) struct Exchange {
    conn: ConnService,
    snapshot: Arc<Snapshot>,
    pub(crate) record: AccessRecord,
    runs: Runs,
    /// The request's span when tracing is on.
    trace: Option<crate::trace::RequestTrace>,
    /// Bytes of the response body sent, and whether it was sent whole.
    pub(crate) bytes_out: u64,
    pub(crate) completed: bool,
    finished: bool,
    /// Counts the request against its cluster's `max_requests` until the
    /// exchange is over (its response body included).
    admitted: Option<Permit>,
    /// A gRPC request: the gateway's own answers are gRPC errors.
    grpc: bool,
    /// The head's `Host` fields, read once at the start, until `prepare`.
    host: Host,
}

impl Exchange {
    /// Phase 1: the head is parsed; from here on the request is counted.
    pub(crate) fn start(conn: &ConnService, req: &Request<Incoming>, head: HeadFields) -> Exchange {
        conn.activity.request_started();
        let snapshot = conn.service.state.load_full();
        // The client's id if it sent a sane one, else a new one.
        let id = head.request_id.unwrap_or_else(|| snapshot.ids.next());
        let trace = crate::trace::RequestTrace::start(req, &conn.service.listener, &id);
        let record = AccessRecord {
            listener: conn.service.listener.clone(),
            id,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            started: Instant::now(),
            status: 0,
            route: None,
            cluster: None,
            endpoint: None,
            error: None,
            bytes_in: None,
            conn: conn.conn.clone(),
            upstream_connect: None,
            upstream_header: None,
            filter: None,
            trace_id: None,
        };
        Exchange {
            conn: conn.clone(),
            snapshot,
            record,
            runs: Runs::default(),
            trace,
            bytes_out: 0,
            completed: false,
            finished: false,
            admitted: None,
            // From here on, a gRPC request gets its answers in gRPC form.
            grpc: head.grpc,
            host: head.host,
        }
    }

    /// Phases 2 to 6. Every failure becomes a response.
    ///
    /// The phases share one request, borrowed: here it is read into that
    /// request before the future is made, and the futures below take
    /// `&mut Request` rather than the request itself. Passed by value,
    /// each `async fn` on the way would keep its own copy of the request
    /// in its state (its argument and the local it becomes), and the
    /// request's future, a few kilobytes, would be copied into its box
    /// and the cache with them.
    ///
    /// The exchange is the future's own, and at the end it goes into the
    /// response's body, which finishes it: one future for the whole
    /// request, not a future of the phases held in another that hands the
    /// exchange over (its kilobyte and a half was copied from one to the
    /// other).
    pub(crate) fn serve(
        mut self: Box<Self>,
        req: Request<Incoming>,
        http1: bool,
    ) -> impl std::future::Future<Output = Result<Response<LoggedBody>, Infallible>> + Send {
        let mut prepared = self.prepare(req);
        async move {
            let result = match prepared {
                Err(error) => Err(error),
                Ok((ref mut req, ref authority)) => self.proxy(req, authority.as_ref()).await,
            };
            let response = self.conclude(result);
            if http1 && !crate::upstream::keep_alive(response.headers(), false) {
                self.conn.activity.close_after_response();
            }
            let (parts, body) = response.into_parts();
            Ok(Response::from_parts(parts, LoggedBody::new(body, self)))
        }
    }

    /// The response for the outcome of phases 2 to 6.
    fn conclude(&mut self, result: Result<Response<Body>, ProxyError>) -> Response<Body> {
        let response = match result {
            // A body the client stopped sending fails whatever read it.
            Ok(_) | Err(_) if self.body_timed_out() => {
                let error = ProxyError::RequestTimeout;
                self.record.error = Some(error.kind());
                self.error_response(&error)
            }
            Ok(response) => response,
            Err(error) => {
                self.record.error = Some(error.kind());
                tracing::debug!(id = ?self.record.id, %error, "request failed");
                self.error_response(&error)
            }
        };
        self.record.status = super::grpc::logged_status(&response).as_u16();
        response
    }

    /// The answer for a failure, in gRPC form to a gRPC request.
    fn error_response(&self, error: &ProxyError) -> Response<Body> {
        if self.grpc {
            super::grpc::error_response(error)
        } else {
            error.to_response()
        }
    }

    fn body_timed_out(&self) -> bool {
        self.record
            .bytes_in
            .as_ref()
            .is_some_and(|p| p.timed_out.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Phase 2: the request the phases share, with its one authority.
    fn prepare(
        &mut self,
        req: Request<Incoming>,
    ) -> Result<(Request<Body>, Option<Authority>), ProxyError> {
        let (mut parts, incoming) = req.into_parts();
        if self.conn.service.limits.normalize_path {
            normalize_path(&mut parts.uri)?;
        }
        let authority = authority(&parts, std::mem::take(&mut self.host))?;
        parts.headers.insert(X_REQUEST_ID, self.record.id.clone());
        let body = if incoming.is_end_stream() {
            body::empty()
        } else {
            let progress = Arc::new(BodyProgress::default());
            self.record.bytes_in = Some(progress.clone());
            let limits = &self.conn.service.limits;
            let deadline =
                tokio::time::Instant::from_std(self.record.started) + limits.request_read_timeout;
            body::boxed(RequestBody::new(
                body::boxed(incoming),
                progress,
                limits.body_read_timeout,
                deadline,
            ))
        };
        Ok((Request::from_parts(parts, body), authority))
    }

    /// Phases 3 to 6 on the prepared request.
    async fn proxy(
        &mut self,
        req: &mut Request<Body>,
        authority: Option<&Authority>,
    ) -> Result<Response<Body>, ProxyError> {
        let snapshot = self.snapshot.clone();
        let listener = snapshot
            .listener(&self.conn.service.listener)
            .ok_or(ProxyError::NoRoute)?;

        // Phase 3: listener filters see the request before any route is
        // chosen, so they can answer it or steer it.
        let mut chosen = None;
        let folder_chain = listener.folder.as_ref().map(|f| f.chain());
        for chain in std::iter::once(&listener.filters).chain(folder_chain.as_deref()) {
            match self.request_filters(chain, req).await {
                Ok(steered) => chosen = steered.or(chosen),
                Err(local) => return Ok(self.respond(local).await),
            }
        }

        // Phase 4: the route, and its own filters. A listener filter that
        // chose the cluster does not skip them.
        let target = match self
            .route(listener, req, authority.map(Authority::as_str), chosen)
            .await?
        {
            Routed::Forward(target) => target,
            Routed::Answered(resp) => return Ok(self.respond(resp).await),
        };
        let resp = self.upstream(req, target, authority).await?;
        Ok(self.respond(resp).await)
    }

    /// Phase 4: the first matching route; its filters may answer or
    /// steer. The cluster is the one a route filter chose, else the one a
    /// listener filter chose (`chosen`), else the route's own.
    async fn route(
        &mut self,
        listener: &ListenerRuntime,
        req: &mut Request<Body>,
        authority: Option<&str>,
        chosen: Option<Arc<str>>,
    ) -> Result<Routed, ProxyError> {
        let host = match req.uri().host() {
            _ if !listener.routes.routes_by_host() => None,
            Some(h) => Some(h),
            None => authority.map(host_without_port),
        };
        let Some(route) = listener.routes.find(req.method(), host, req.uri().path()) else {
            let cluster = chosen.ok_or(ProxyError::NoRoute)?;
            self.record.route = Some(filter_route());
            let target = Target {
                cluster,
                timeout: None,
                retry: None,
            };
            return Ok(Routed::Forward(target));
        };
        self.record.route = Some(route.name.clone());
        let steered = match self.request_filters(&route.filters, req).await {
            Ok(passed) => passed,
            Err(local) => return Ok(Routed::Answered(local)),
        };
        let cluster = match (steered.or(chosen), &route.action) {
            (Some(cluster), _) => cluster,
            (None, RouteAction::Forward { cluster }) => cluster.clone(),
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
                return Ok(Routed::Answered(resp));
            }
        };
        Ok(Routed::Forward(Target {
            cluster,
            timeout: route.timeout,
            retry: route.retry.clone(),
        }))
    }

    /// Runs the request phase of `chain` (if it has filters): the request
    /// to go on with and the cluster a filter chose, or the filter's own
    /// answer. The run is kept for the response phase.
    async fn request_filters(
        &mut self,
        chain: &FilterChain,
        req: &mut Request<Body>,
    ) -> Result<Option<Arc<str>>, Response<Body>> {
        // Most routes have no filters of their own: no metadata is built
        // for an empty chain.
        if chain.is_empty() {
            return Ok(None);
        }
        let Some(mut run) = chain.start(self.meta()) else {
            return Ok(None);
        };
        run.set_trace(self.trace.as_ref());
        let result = run.filter_request(req).await;
        let steered = run.upstream_override();
        if result.is_err() {
            self.record.filter = run.answered_by();
        }
        self.runs.push(run);
        result.map(|()| steered)
    }

    /// Phase 5: the upstream exchange.
    async fn upstream(
        &mut self,
        req: &mut Request<Body>,
        target: Target,
        authority: Option<&Authority>,
    ) -> Result<Response<Body>, ProxyError> {
        let cluster = self
            .snapshot
            .clusters
            .get(&target.cluster)
            .ok_or_else(|| ProxyError::UnknownCluster(target.cluster.to_string()))?
            .clone();
        self.record.cluster = Some(cluster.name_arc().clone());
        self.admitted = Some(cluster.breaker.request()?);
        let upgrade = forward::upgrade_protocol(req);
        let downstream_upgrade = upgrade.is_some().then(|| self.conn.downstream_upgrade(req));
        let host = authority.and_then(Authority::to_value);
        let forwarded = Forwarded {
            client: &self.conn.conn.forwarded_for,
            scheme: self.conn.conn.scheme,
            host: host.as_ref(),
        };
        let added = forward::to_upstream(req, &forwarded, upgrade);
        let mut timeout = target.timeout.unwrap_or(cluster.config.request_timeout);
        // `grpc-timeout` bounds the whole call, response body included.
        let grpc_deadline = self
            .grpc
            .then(|| super::grpc::timeout(req.headers()))
            .flatten()
            .map(|t| {
                timeout = timeout.min(t);
                tokio::time::Instant::now() + t
            });
        let key = crate::upstream::request_key(&cluster.config, req.headers(), &added, || {
            self.runs
                .iter_rev()
                .find_map(|run| run.property(crate::upstream::HASH_KEY_PROPERTY))
        });

        if let Some(downstream) = downstream_upgrade {
            added.insert_into(req.headers_mut());
            let mut attempt = crate::trace::UpstreamAttempt::start(
                self.trace.as_mut(),
                &target.cluster,
                req.headers_mut(),
            );
            let (endpoint, mut resp) =
                tokio::time::timeout(timeout, Box::pin(cluster.upgrade(std::mem::take(req), key)))
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout {
                        cluster: target.cluster.to_string(),
                        endpoint: String::new(),
                    })??;
            attempt.endpoint(&endpoint);
            attempt.response(resp.status().as_u16());
            self.record.endpoint = Some(endpoint);
            let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
            if upgraded {
                let upstream = hyper::upgrade::on(&mut resp);
                tokio::spawn(super::tunnel::tunnel(
                    downstream,
                    upstream,
                    self.conn.service.limits.tunnel_idle_timeout,
                    self.conn.permit.clone(),
                ));
            }
            forward::from_upstream(&mut resp, upgraded);
            return Ok(resp.map(body::boxed));
        }

        let policy = target.retry.as_ref().unwrap_or(&cluster.retry);
        // Boxed: the tries' state (retries, connects, the HTTP/1.1
        // exchange) is the largest part of a request's future, and every
        // future above it would otherwise carry (and copy) it.
        let tries = Box::pin(super::attempts::forward(
            &cluster,
            policy,
            std::mem::take(req),
            added,
            key,
            timeout,
            self.trace.as_mut(),
        ));
        let outcome = tries.await;
        self.record.endpoint = outcome.endpoint;
        self.record.upstream_connect = outcome.connect;
        self.record.upstream_header = outcome.header;
        let mut resp = outcome.result?;
        forward::from_upstream(&mut resp, false);
        if self.grpc {
            resp.extensions_mut().insert(super::grpc::FromUpstream);
        }
        if let Some(deadline) = grpc_deadline {
            resp = super::grpc::with_deadline(resp, deadline);
        }
        Ok(resp)
    }

    /// Phase 6: the response phase of the chains, innermost (route) first.
    /// A plain fn returning its future, as `run`: the response is kept
    /// once, where the block captured it.
    #[allow(clippy::manual_async_fn)] // an `async fn` would keep two copies
    fn respond(
        &mut self,
        mut resp: Response<Body>,
    ) -> impl std::future::Future<Output = Response<Body>> + Send + '_ {
        async move {
            for run in self.runs.iter_rev_mut() {
                run.filter_response(&mut resp).await;
                if self.record.filter.is_none() {
                    self.record.filter = run.answered_by();
                }
            }
            if self.grpc
                && resp
                    .extensions()
                    .get::<super::grpc::FromUpstream>()
                    .is_none()
            {
                resp = super::grpc::local_answer(resp);
            }
            resp
        }
    }

    fn meta(&self) -> RequestMeta {
        let conn = &self.conn.conn;
        RequestMeta {
            id: self.record.id.clone(),
            source: conn.peer,
            destination: conn.local,
            scheme: conn.scheme,
            tls_version: conn.tls_version.clone(),
            mtls: conn.mtls,
            peer_subject: conn.peer_subject.clone(),
            sni: conn.sni.clone(),
        }
    }

    /// Phase 7, once: the access line, metrics, the filters' contexts
    /// finished, the connection's request count released.
    pub(crate) fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if self.record.status == 0 {
            // The client went away before an answer (a reset stream, a
            // closed connection): nginx's 499.
            self.record.status = 499;
            self.record.error.get_or_insert("downstream_closed");
        }
        if let Some(trace) = &self.trace {
            let r = &self.record;
            trace.finish(r.status, r.route.as_deref(), r.cluster.as_deref(), r.error);
            self.record.trace_id = Some(trace.trace_id());
        }
        // One clock read for the request's duration and the connection's
        // last activity.
        let now = Instant::now();
        self.record.emit(
            now,
            self.snapshot.access_log,
            self.bytes_out,
            self.completed,
        );
        for mut run in self.runs.take() {
            run.set_response_code(self.record.status);
            run.finish();
        }
        self.admitted = None;
        self.conn.activity.request_done(now);
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.finish();
    }
}

enum Routed {
    Forward(Target),
    Answered(Response<Body>),
}

/// The route name recorded when a listener filter chose the cluster.
fn filter_route() -> Arc<str> {
    static NAME: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| Arc::from("filter")).clone()
}

/// Rewrites the URI's path to its normal form (see `http::path`).
fn normalize_path(uri: &mut http::Uri) -> Result<(), ProxyError> {
    let normal =
        super::path::normalize(uri.path()).map_err(|_| ProxyError::BadRequest("invalid path"))?;
    let std::borrow::Cow::Owned(path) = normal else {
        return Ok(());
    };
    let target = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = std::mem::take(uri).into_parts();
    parts.path_and_query = Some(
        http::uri::PathAndQuery::try_from(target)
            .map_err(|_| ProxyError::BadRequest("invalid path"))?,
    );
    *uri = http::Uri::from_parts(parts).map_err(|_| ProxyError::BadRequest("invalid path"))?;
    Ok(())
}

/// The one authority of the request, which routing, filters and the
/// upstream's `Host` all use: the request-target's when it has one
/// (absolute form, HTTP/2 `:authority`), else the Host header. More than
/// one Host, HTTP/1.1 without Host (RFC 9112 §3.2) and an HTTP/2 `host`
/// that differs from `:authority` (RFC 9113 §8.3.1) are malformed.
fn authority(parts: &http::request::Parts, host: Host) -> Result<Option<Authority>, ProxyError> {
    let host = match host {
        Host::Several => return Err(ProxyError::BadRequest("more than one Host header")),
        Host::One(h) => {
            h.to_str()
                .map_err(|_| ProxyError::BadRequest("invalid Host header"))?;
            Some(h)
        }
        Host::Absent => None,
    };
    if let Some(a) = parts.uri.authority() {
        let differs =
            host.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()));
        if differs && parts.version == http::Version::HTTP_2 {
            return Err(ProxyError::BadRequest("host differs from :authority"));
        }
        return Ok(Some(Authority::Target(a.clone())));
    }
    match host {
        Some(h) => Ok(Some(Authority::Field(h))),
        None if parts.version == http::Version::HTTP_11 => {
            Err(ProxyError::BadRequest("missing Host header"))
        }
        None => Ok(None),
    }
}

/// A request's one authority, sharing the request's own bytes (no copy
/// per request): its Host field, or its request-target's authority.
enum Authority {
    /// Checked visible ASCII when read.
    Field(HeaderValue),
    Target(http::uri::Authority),
}

impl Authority {
    fn as_str(&self) -> &str {
        match self {
            Authority::Field(v) => v.to_str().unwrap_or_default(),
            Authority::Target(a) => a.as_str(),
        }
    }

    /// As the value of a field (X-Forwarded-Host).
    fn to_value(&self) -> Option<HeaderValue> {
        match self {
            Authority::Field(v) => Some(v.clone()),
            Authority::Target(a) => HeaderValue::from_str(a.as_str()).ok(),
        }
    }
}
