//! The one trait a filter author implements, and what its hooks return.

use crate::body::Body;
use crate::callout::Callout;
use crate::hooks::Hooks;
use crate::http::{Request, Response};
use crate::trailers::Trailers;
use serde::de::DeserializeOwned;
use std::rc::Rc;

/// An HTTP filter. One value is created per request (with [`Filter::new`]) and
/// lives until the request is done, so fields are per-request state.
///
/// Every hook has a default that lets the request through untouched; implement
/// only the ones you need.
pub trait Filter: Sized + 'static {
    /// The filter's configuration, parsed once when the filter is loaded
    /// (see [`crate::config`] for the accepted formats). A configuration that
    /// does not parse rejects the load; requests never see a parse error.
    /// Use `()` for a filter without configuration.
    type Config: DeserializeOwned + 'static;

    /// The hooks this filter implements. The gateway calls into the filter
    /// only for these (a filter declaring [`Hooks::REQUEST`] costs nothing
    /// per response body chunk); hooks left out do not run on any host.
    /// Default: [`Hooks::ALL`]. For example
    /// `const HOOKS: Hooks = Hooks::REQUEST.and(Hooks::COMPLETE);`
    ///
    /// A filter declaring [`Hooks::REQUEST`] alone is dropped as soon as
    /// `on_request` has decided without a callout, not at the end of the
    /// request: nothing of it is kept while the upstream answers (one that
    /// called out is kept to the end). Work that belongs at the end of
    /// the request goes in [`Filter::on_complete`] ([`Hooks::COMPLETE`]).
    const HOOKS: Hooks = Hooks::ALL;

    /// Buffers every request body up to this many bytes (413 beyond), as if
    /// `on_request` called [`Request::buffer_body`] with
    /// [`crate::OverLimit::Reject`] each time. `None` (the default) streams.
    /// Prefer choosing per request with [`Request::buffer_body`].
    const REQUEST_BODY_LIMIT: Option<usize> = None;

    /// Buffers every response body up to this many bytes (502 beyond), as if
    /// `on_response` called [`Response::buffer_body`] with
    /// [`crate::OverLimit::Reject`] each time. `None` (the default) streams.
    /// Prefer choosing per response with [`Response::buffer_body`]: a filter
    /// that rewrites JSON should not hold every download in memory.
    const RESPONSE_BODY_LIMIT: Option<usize> = None;

    /// Checks a parsed configuration once, at load time, beyond what its type
    /// already enforces. `Err` rejects the load with that message logged.
    /// Default: accept.
    fn validate_config(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Asks the host for a timer when the filter is loaded; [`Filter::on_tick`]
    /// then runs every period. Default: no timer.
    fn tick_period(config: &Self::Config) -> Option<std::time::Duration> {
        let _ = config;
        None
    }

    /// Runs every [`Filter::tick_period`], outside any request (for example to
    /// refresh data in [`crate::shared`]). Default: nothing.
    fn on_tick(config: &Self::Config) {
        let _ = config;
    }

    /// Creates the per-request filter. Runs when the host opens the request's
    /// context, before any hook.
    fn new(config: &Rc<Self::Config>) -> Self;

    /// Runs when the request headers arrived, before any upstream is chosen.
    /// Default: [`Decision::Continue`].
    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let _ = request;
        Decision::Continue
    }

    /// Runs once with the whole request body when `on_request` asked for it
    /// ([`Request::buffer_body`]), the request has a body, and the body stayed
    /// within the limit. Change headers in `on_request`, not here: hosts send
    /// the headers on before the body, so changes made here may be lost.
    /// Default: [`Decision::Continue`].
    fn on_request_body(&mut self, request: &mut Request, body: &mut Body) -> Decision<Self> {
        let _ = (request, body);
        Decision::Continue
    }

    /// Runs when the upstream's response headers arrived (not for responses
    /// this filter answered itself). Default: [`ResponseDecision::Continue`].
    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        let _ = response;
        ResponseDecision::Continue
    }

    /// Runs once with the whole response body when `on_response` asked for
    /// it ([`Response::buffer_body`]), the response has a body, and the body
    /// stayed within the limit. Change headers in `on_response`, not here:
    /// hosts send the headers on before the body, so changes made here may be
    /// lost.
    /// Default: [`ResponseDecision::Continue`].
    fn on_response_body(&mut self, response: &mut Response, body: &mut Body) -> ResponseDecision {
        let _ = (response, body);
        ResponseDecision::Continue
    }

    /// Runs when the request's trailers arrived, after its body (gRPC and
    /// other HTTP/2 clients may send them; most requests have none). Changes
    /// reach the upstream. A body buffered with [`Request::buffer_body`] is
    /// complete at this point: [`Filter::on_request_body`] runs just before.
    /// Default: nothing.
    fn on_request_trailers(&mut self, trailers: &mut Trailers) {
        let _ = trailers;
    }

    /// Runs when the response's trailers arrived, after its body (gRPC's
    /// `grpc-status` and `grpc-message` are trailers). Changes reach the
    /// client; the status and headers have already left, so this hook can
    /// change trailers only. A body buffered with [`Response::buffer_body`]
    /// is complete here: [`Filter::on_response_body`] runs just before.
    /// Default: nothing.
    fn on_response_trailers(&mut self, trailers: &mut Trailers) {
        let _ = trailers;
    }

    /// Runs once when the request is complete (the access-log moment), whatever
    /// happened to it. Default: nothing.
    fn on_complete(&mut self) {}
}

/// What to do with a request, returned by the request-phase hooks.
pub enum Decision<F> {
    /// Let the request go on (to the next filter, then upstream).
    Continue,
    /// Answer the client now; no upstream sees the request.
    Respond(LocalResponse),
    /// Answer the client now with a response encoded once
    /// ([`LocalResponse::prepare`]); no upstream sees the request.
    RespondPrepared(PreparedResponse),
    /// Hold the request, ask a cluster, and decide when the answer arrives.
    /// Build it with [`crate::CalloutRequest::then`].
    Callout(Callout<F>),
}

impl<F> Decision<F> {
    /// Answers locally with `status` and a plain-text `body`.
    pub fn respond(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Decision::Respond(LocalResponse::new(status).body(body))
    }

    /// True for [`Decision::Continue`].
    pub fn is_continue(&self) -> bool {
        matches!(self, Decision::Continue)
    }
}

impl<F> From<LocalResponse> for Decision<F> {
    fn from(response: LocalResponse) -> Self {
        Decision::Respond(response)
    }
}

impl<F> From<&PreparedResponse> for Decision<F> {
    fn from(response: &PreparedResponse) -> Self {
        Decision::RespondPrepared(response.clone())
    }
}

impl From<LocalResponse> for ResponseDecision {
    fn from(response: LocalResponse) -> Self {
        ResponseDecision::Respond(response)
    }
}

impl From<&PreparedResponse> for ResponseDecision {
    fn from(response: &PreparedResponse) -> Self {
        ResponseDecision::RespondPrepared(response.clone())
    }
}

/// What to do with a response, returned by the response-phase hooks.
#[derive(Debug)]
pub enum ResponseDecision {
    /// Send the (possibly changed) response on to the client.
    Continue,
    /// Replace the upstream's response with this one.
    Respond(LocalResponse),
    /// Replace the upstream's response with one encoded once
    /// ([`LocalResponse::prepare`]).
    RespondPrepared(PreparedResponse),
}

/// A response produced by the filter itself (`proxy_send_local_response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
}

impl LocalResponse {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A response with `status` and `value` as a JSON body
    /// (`content-type: application/json`). For example a 401 as APIs send it:
    ///
    /// ```
    /// # use gateway_sdk::{Decision, LocalResponse};
    /// # struct F;
    /// # fn deny() -> Decision<F> {
    /// LocalResponse::json(401, &serde_json::json!({"error": "invalid_token"}))
    ///     .header("www-authenticate", "Bearer")
    ///     .into()
    /// # }
    /// ```
    ///
    /// A value that cannot be serialized (a map with non-string keys) gives a
    /// 500 saying so. Needs the SDK's `json` feature (on by default).
    #[cfg(feature = "json")]
    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => LocalResponse::new(status)
                .header("content-type", "application/json")
                .body(body),
            Err(error) => {
                LocalResponse::new(500).body(format!("response not serializable: {error}\n"))
            }
        }
    }

    /// This response encoded once, for an answer a filter gives again and
    /// again (a 401 challenge, a 429, a maintenance page). Sending a
    /// [`LocalResponse`] builds its header strings and body and encodes
    /// them for the host on every request; sending a [`PreparedResponse`]
    /// hands the host the bytes encoded here, with no allocation. Prepare
    /// it once, when the configuration is read or on first use, and keep
    /// it:
    ///
    /// ```
    /// # use gateway_sdk::{Decision, LocalResponse, PreparedResponse};
    /// # struct F { denied: PreparedResponse }
    /// # fn deny(f: &F) -> Decision<F> {
    /// let denied = LocalResponse::new(401)
    ///     .header("www-authenticate", "Bearer")
    ///     .body("unauthorized\n")
    ///     .prepare();
    /// // per request:
    /// (&f.denied).into()
    /// # }
    /// ```
    ///
    /// The client sees exactly what sending this `LocalResponse` would
    /// give it.
    pub fn prepare(&self) -> PreparedResponse {
        PreparedResponse(Rc::new(Prepared {
            status: self.status,
            headers: crate::abi::encode_map(&self.headers),
            body: self.body.clone(),
        }))
    }
}

/// A [`LocalResponse`] encoded once for the host ([`LocalResponse::prepare`]);
/// cloning it shares the encoding. Return it from a hook as
/// `(&prepared).into()`.
#[derive(Clone)]
pub struct PreparedResponse(Rc<Prepared>);

struct Prepared {
    status: u16,
    /// The headers in the ABI's map encoding.
    headers: Vec<u8>,
    body: Vec<u8>,
}

impl PreparedResponse {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The status, the encoded headers and the body, as the host takes them.
    pub(crate) fn parts(&self) -> (u16, &[u8], &[u8]) {
        (self.0.status, &self.0.headers, &self.0.body)
    }
}

impl std::fmt::Debug for PreparedResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedResponse")
            .field("status", &self.0.status)
            .field("headers", &crate::abi::decode_map(&self.0.headers))
            .field("body_len", &self.0.body.len())
            .finish()
    }
}
