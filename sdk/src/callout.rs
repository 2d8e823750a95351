//! HTTP callouts: ask another cluster, then decide (`proxy_http_call`).

use crate::filter::Decision;
use crate::http::Request;
use std::time::Duration;

/// A callout waiting to be sent: where, what, and what to do with the answer.
/// Made by [`CalloutRequest::then`], returned as [`Decision::Callout`].
pub struct Callout<F> {
    pub(crate) request: CalloutRequest,
    pub(crate) then: Continuation<F>,
}

pub(crate) type Continuation<F> =
    Box<dyn FnOnce(&mut F, &mut Request, CalloutResponse) -> Decision<F>>;

/// The request sent to a cluster by a callout. Built like
/// `CalloutRequest::get("authz", "/check").header("x-user", "ann")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalloutRequest {
    /// The cluster (as named in the gateway's configuration) to call.
    pub cluster: String,
    /// Headers, pseudo-headers (`:method`, `:path`, `:authority`) included.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// How long the host waits for the answer.
    pub timeout: Duration,
}

impl CalloutRequest {
    /// A request with `method` to `path` on `cluster`; the authority defaults
    /// to the cluster name and the timeout to 5 seconds.
    pub fn new(cluster: &str, method: &str, path: &str) -> Self {
        CalloutRequest {
            cluster: cluster.to_string(),
            headers: vec![
                (":method".into(), method.into()),
                (":path".into(), path.into()),
                (":authority".into(), cluster.into()),
            ],
            body: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A `GET` to `path` on `cluster`.
    pub fn get(cluster: &str, path: &str) -> Self {
        Self::new(cluster, "GET", path)
    }

    /// A `POST` to `path` on `cluster`.
    pub fn post(cluster: &str, path: &str) -> Self {
        Self::new(cluster, "POST", path)
    }

    /// Sets a header (replacing one of the same name, pseudo-headers included).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends the callout and holds the request; `then` runs with the answer
    /// (or a failed [`CalloutResponse`]) and decides what happens next. The
    /// filter value travels along, so per-request state set in `then` is
    /// there in the response hooks.
    ///
    /// ```
    /// use gateway_sdk::{CalloutRequest, Decision, Filter, Request};
    /// # use std::rc::Rc;
    /// struct ExtAuth;
    /// impl Filter for ExtAuth {
    ///     type Config = ();
    ///     fn new(_: &Rc<()>) -> Self { ExtAuth }
    ///     fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
    ///         let token = request.header("authorization").unwrap_or_default();
    ///         CalloutRequest::get("authz", "/check")
    ///             .header("authorization", &token)
    ///             .then(|_this, request, answer| match answer.status() {
    ///                 Some(200) => {
    ///                     request.set_header("x-user", answer.header("x-user").unwrap_or(""));
    ///                     Decision::Continue
    ///                 }
    ///                 _ => Decision::respond(403, "denied"),
    ///             })
    ///     }
    /// }
    /// ```
    pub fn then<F>(
        self,
        then: impl FnOnce(&mut F, &mut Request, CalloutResponse) -> Decision<F> + 'static,
    ) -> Decision<F> {
        Decision::Callout(Callout {
            request: self,
            then: Box::new(then),
        })
    }
}

/// The answer to a callout, or its failure (no status: unreachable cluster,
/// timeout, reset, or the host refused to send it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalloutResponse {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl CalloutResponse {
    pub(crate) fn new(headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse().ok());
        CalloutResponse {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn failed() -> Self {
        CalloutResponse::default()
    }

    /// The status code; `None` when the callout failed.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// True for a 2xx answer.
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    /// The first value of a header of the answer.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers of the answer.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body of the answer.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

type Detached = Box<dyn FnOnce(CalloutResponse)>;

thread_local! {
    /// Callouts sent outside any request: token -> what to do with the answer.
    static DETACHED: std::cell::RefCell<std::collections::HashMap<u32, Detached>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Sends `request` without holding a request; `on_answer` runs with the
/// answer. False if the host refused to send it.
pub(crate) fn send_detached(
    request: CalloutRequest,
    on_answer: impl FnOnce(CalloutResponse) + 'static,
) -> bool {
    let timeout = u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX);
    let sent = crate::host::with(|h| {
        h.http_call(&request.cluster, &request.headers, &request.body, timeout)
    });
    match sent {
        Ok(token) => {
            DETACHED.with(|d| d.borrow_mut().insert(token, Box::new(on_answer)));
            true
        }
        Err(_) => false,
    }
}

/// The continuation of a detached callout, taken once.
pub(crate) fn take_detached(token: u32) -> Option<Detached> {
    DETACHED.with(|d| d.borrow_mut().remove(&token))
}
