//! The upstream tries of one request under its retry policy: each try on
//! an endpoint the earlier ones did not use (while there is one), within
//! the per-try timeout and, all together, the request timeout; another try
//! only for a failure the policy names, a body that can be sent again and
//! a retry the cluster's budget allows, after a jittered back-off. A
//! pooled connection found stale is replaced at once, not counted as a try.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::request::Parts;
use http::{Request, Response};
use tokio::time::Instant;

use super::body::{self, Body};
use super::error::ProxyError;
use super::replay::ReplayBody;
use crate::trace::{RequestTrace, UpstreamAttempt};
use crate::upstream::retry::{Failure, RetryPolicy};
use crate::upstream::{request_of, AddedFields, Cluster, UpstreamError};

/// What the tries came to.
pub(crate) struct Outcome {
    pub result: Result<Response<Body>, ProxyError>,
    /// The endpoint of the last try that reached one.
    pub endpoint: Option<Arc<str>>,
    /// The last try's time to a connection, and from sending to the
    /// response head (when one came), for the access log.
    pub connect: Option<Duration>,
    pub header: Option<Duration>,
}

/// Sends `req`, with the fields `added` (X-Forwarded-*), to `cluster`
/// under `policy` (`key`: the hash of its `ring_hash` key, see
/// `upstream::request_key`); `timeout` bounds all tries together, until a
/// response head. A body that can be held is read
/// first, bounded by the listener's body timeouts (a slow client is the
/// client's fault, 408, not the upstream's).
///
/// Not an `async fn`, for the reason `Exchange::serve` gives: the request's
/// head is split off here and kept once, in this future, for every try.
pub(crate) fn forward<'a>(
    cluster: &'a Arc<Cluster>,
    policy: &'a RetryPolicy,
    req: Request<Body>,
    added: AddedFields,
    key: Option<u64>,
    timeout: Duration,
    trace: Option<&'a mut RequestTrace>,
) -> impl std::future::Future<Output = Outcome> + Send + 'a {
    let (parts, body) = req.into_parts();
    let limit = if policy.holds_body(&parts.method) {
        policy.buffer_limit
    } else {
        0
    };
    async move {
        let Ok(mut body) = ReplayBody::prepare(body, limit).await else {
            return Outcome {
                result: Err(ProxyError::BadRequest("the request body failed")),
                endpoint: None,
                connect: None,
                header: None,
            };
        };
        let mut tries = Tries {
            cluster,
            policy,
            added: &added,
            key,
            deadline: Instant::now() + timeout,
            tried: [0; MAX_TRIES],
            tried_len: 0,
            endpoint: None,
            count: 0,
            trace,
            connect: None,
            header: None,
        };
        let result = tries.run(&parts, &mut body).await;
        Outcome {
            result,
            endpoint: tries.endpoint,
            connect: tries.connect,
            header: tries.header,
        }
    }
}

/// The most tries a policy allows (`attempts` is validated to 1..=10).
const MAX_TRIES: usize = 10;

struct Tries<'a> {
    cluster: &'a Arc<Cluster>,
    policy: &'a RetryPolicy,
    /// The fields the gateway adds to the head (X-Forwarded-*).
    added: &'a AddedFields,
    /// The hash of the request's `ring_hash` key.
    key: Option<u64>,
    deadline: Instant,
    /// Endpoints used so far, in order (no allocation per request).
    tried: [usize; MAX_TRIES],
    tried_len: usize,
    endpoint: Option<Arc<str>>,
    count: u32,
    /// The request's trace: each send gets its own span and `traceparent`.
    trace: Option<&'a mut RequestTrace>,
    connect: Option<Duration>,
    header: Option<Duration>,
}

/// How a try ended when it did not end the request.
enum Tried {
    Failed(Failure, UpstreamError),
    TimedOut,
    Answered(Response<Body>),
}

impl<'a> Tries<'a> {
    async fn run(
        &mut self,
        parts: &Parts,
        body: &mut ReplayBody,
    ) -> Result<Response<Body>, ProxyError> {
        let replays = self.policy.replays(&parts.method);
        // The retry in flight, counted against the cluster's budget.
        let mut _retry = None;
        loop {
            self.count += 1;
            // A streamed body cannot be sent twice, so cutting its try
            // short would only fail it (or a slow client's upload) early.
            let try_deadline = match self.policy.per_try_timeout {
                Some(t) if body.is_held() => (Instant::now() + t).min(self.deadline),
                _ => self.deadline,
            };
            let tried = match tokio::time::timeout_at(try_deadline, self.one(parts, body)).await {
                Ok(Ok(resp)) if !self.policy.retries_status(resp.status()) => return Ok(resp),
                Ok(Ok(resp)) => Tried::Answered(resp),
                Ok(Err(e)) => match failure_of(&e) {
                    Some(failure) => Tried::Failed(failure, e),
                    None => return Err(e.into()),
                },
                Err(_) if try_deadline >= self.deadline => return Err(self.timed_out()),
                Err(_) => Tried::TimedOut,
            };
            let failure = match &tried {
                Tried::Failed(f, _) => *f,
                Tried::TimedOut => Failure::Timeout,
                Tried::Answered(resp) => Failure::Status(resp.status()),
            };
            // Nothing was sent after a failed connect; anything else was,
            // and only a held body of a method the policy replays goes again.
            let sendable = match failure {
                Failure::ConnectFailure => body.can_send(),
                _ => replays && body.is_held(),
            };
            let retry =
                (self.count < self.policy.attempts && self.policy.retries(failure) && sendable)
                    .then(|| {
                        let requests = self.cluster.breaker.requests_in_flight();
                        self.cluster.budget.try_retry(requests)
                    })
                    .flatten();
            let Some(permit) = retry else {
                return match tried {
                    Tried::Failed(_, e) => Err(e.into()),
                    Tried::TimedOut => Err(self.timed_out()),
                    Tried::Answered(resp) => Ok(resp),
                };
            };
            _retry = Some(permit);
            self.cluster.breaker.traffic.retried(failure.reason());
            // An answer being retried is dropped (and its connection
            // with it, unless it was already read whole).
            drop(tried);
            let pause = self.policy.backoff(self.count);
            if Instant::now() + pause >= self.deadline {
                return Err(self.timed_out());
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// One try: an endpoint, a connection, the request, the response head.
    async fn one(
        &mut self,
        parts: &Parts,
        body: &mut ReplayBody,
    ) -> Result<Response<Body>, UpstreamError> {
        let index = self
            .cluster
            .choose(&self.tried[..self.tried_len], self.key)?;
        if let Some(slot) = self.tried.get_mut(self.tried_len) {
            *slot = index;
            self.tried_len += 1;
        }
        let connecting = Instant::now();
        // The connection is moved into the send's future within these
        // blocks, so this future does not keep a slot for it as well.
        let sending = {
            let conn = self.cluster.connect_to(index).await?;
            let connected = Instant::now();
            self.connect = Some(connected - connecting);
            self.endpoint = Some(conn.endpoint().clone());
            // `run` only tries again while the body can still be sent.
            let first = body.next().unwrap_or_else(body::empty);
            self.send(conn, parts, first, connected)
        };
        match sending.await {
            // The pooled connection had been closed by the upstream while
            // idle: the request never reached it. Again on a new one.
            Err(UpstreamError::Http1 { stale: true, .. }) if body.is_held() => {
                self.cluster.breaker.traffic.retried("stale_connection");
                let again = {
                    let conn = self.cluster.connect_fresh(index).await?;
                    let body = body.next().unwrap_or_else(body::empty);
                    self.send(conn, parts, body, Instant::now())
                };
                again.await
            }
            other => other,
        }
    }

    /// Sends `head` and `body` on `conn` under a span of its own (when the
    /// request is traced). The head is borrowed, not copied: a traced try
    /// copies it to carry its own `traceparent`; either is written before
    /// the future is made, which holds neither. `sent`: the time the
    /// response head is waited for from (the connection's, just taken).
    fn send<'s>(
        &'s mut self,
        conn: crate::upstream::Connection,
        head: &Parts,
        body: Body,
        sent: Instant,
    ) -> impl std::future::Future<Output = Result<Response<Body>, UpstreamError>> + Send + use<'s, 'a>
    {
        let mut traced = None;
        let mut attempt = match self.trace.as_deref_mut() {
            None => UpstreamAttempt::untraced(),
            Some(trace) => {
                let (mut copy, ()) = request_of(head, ()).into_parts();
                let attempt =
                    UpstreamAttempt::start(Some(trace), self.cluster.name(), &mut copy.headers);
                traced = Some(copy);
                attempt
            }
        };
        attempt.endpoint(conn.endpoint());
        let sending = conn.send(traced.as_ref().unwrap_or(head), self.added, body);
        // A map, not an `async` block: awaiting `sending` from a block
        // would copy it into a second slot of the block's state.
        sending.map(move |result| {
            if let Ok(resp) = &result {
                self.header = Some(sent.elapsed());
                attempt.response(resp.status().as_u16());
            }
            result
        })
    }

    fn timed_out(&self) -> ProxyError {
        ProxyError::UpstreamTimeout {
            cluster: self.cluster.name().to_string(),
            endpoint: self
                .endpoint
                .as_ref()
                .map_or_else(String::new, |e| e.to_string()),
        }
    }
}

/// The kind of a failed try, or `None` when no retry could help (no
/// endpoint left, the cluster overloaded).
fn failure_of(error: &UpstreamError) -> Option<Failure> {
    match error {
        UpstreamError::Connect { .. } => Some(Failure::ConnectFailure),
        UpstreamError::Http1 { .. } | UpstreamError::Protocol { .. } => Some(Failure::Reset),
        UpstreamError::NoHealthyEndpoint { .. } | UpstreamError::Overloaded { .. } => None,
    }
}
