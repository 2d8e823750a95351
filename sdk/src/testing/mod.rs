//! Run a filter natively, in `cargo test`, against an in-memory host.
//!
//! ```
//! use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
//! # use gateway_sdk::{Decision, Filter, Request};
//! # struct Deny;
//! # impl Filter for Deny {
//! #     type Config = ();
//! #     fn new(_: &std::rc::Rc<()>) -> Self { Deny }
//! #     fn on_request(&mut self, r: &mut Request) -> Decision<Self> {
//! #         if r.header("authorization").is_none() { return Decision::respond(401, "no"); }
//! #         r.set_upstream("backend");
//! #         Decision::Continue
//! #     }
//! # }
//! let mut test = FilterTest::<Deny>::new("").expect("config accepted");
//!
//! let denied = test.request(TestRequest::get("/"));
//! assert_eq!(denied.local_response().unwrap().status, 401);
//!
//! let mut allowed = test.request(TestRequest::get("/").header("authorization", "Basic x"));
//! assert!(allowed.is_continue());
//! assert_eq!(allowed.upstream().as_deref(), Some("backend"));
//! allowed.respond(TestResponse::new(200).body("hi"));
//! assert_eq!(allowed.response_status(), Some(200));
//! ```
//!
//! One [`FilterTest`] is one loaded filter (configured once); each
//! [`FilterTest::request`] is one request through it. Requests run one at a
//! time: starting a new one resets the per-request state of the host.

mod host;

use crate::abi::{action, StreamType};
use crate::filter::{Filter, LocalResponse};
use crate::host::LogLevel;
use crate::runtime::Runtime;
use host::{find, MockHost};
use std::rc::Rc;
use std::time::Duration;

pub use host::SentCallout;

const ROOT_CONTEXT: u32 = 1;

/// A filter loaded into an in-memory host.
pub struct FilterTest<F: Filter> {
    runtime: Runtime<F>,
    host: Rc<MockHost>,
    next_context: u32,
}

impl<F: Filter> FilterTest<F> {
    /// Loads the filter with this plugin configuration (JSON, TOML or empty).
    /// `Err` carries the log lines when the configuration is rejected.
    pub fn new(config: &str) -> Result<Self, String> {
        let host = Rc::new(MockHost::new());
        crate::host::install(host.clone());
        host.state.borrow_mut().plugin_config = config.as_bytes().to_vec();
        let runtime = Runtime::<F>::new();
        runtime.on_context_create(ROOT_CONTEXT, 0);
        runtime.on_vm_start(ROOT_CONTEXT, 0);
        if !runtime.on_configure(ROOT_CONTEXT, config.len()) {
            return Err(host.state.borrow().logs.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n"));
        }
        Ok(FilterTest { runtime, host, next_context: ROOT_CONTEXT + 1 })
    }

    /// Makes this test see the same shared data as `other`, as two instances
    /// (or two filters) in one gateway do.
    pub fn share_data_with<G: Filter>(&mut self, other: &FilterTest<G>) {
        let store = other.host.shared.borrow().clone();
        *self.host.shared.borrow_mut() = store;
    }

    /// Moves the host's clock forward.
    pub fn advance_time(&mut self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.host.now_nanos.set(self.host.now_nanos.get().saturating_add(nanos));
    }

    /// Every line logged so far, oldest first.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.host.state.borrow().logs.clone()
    }

    /// True if some log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.host.state.borrow().logs.iter().any(|(_, line)| line.contains(text))
    }

    /// A shared-data value.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.host.shared.borrow().clone();
        let value = store.borrow().get(key).map(|(v, _)| v.clone());
        value
    }

    /// The current value of a metric (counter total, last gauge/histogram value).
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.host.state.borrow().metrics.iter().find(|(_, n, _)| n == name).map(|(_, _, v)| *v)
    }

    /// Sends a request through the filter: request headers, then the body if
    /// the request has one and the filter let the headers through.
    pub fn request(&mut self, request: TestRequest) -> Exchange<'_, F> {
        crate::host::install(self.host.clone());
        let context = self.next_context;
        self.next_context += 1;
        {
            let mut state = self.host.state.borrow_mut();
            let logs = std::mem::take(&mut state.logs);
            let metrics = std::mem::take(&mut state.metrics);
            *state = host::State { logs, metrics, ..Default::default() };
            state.plugin_config = Vec::new();
            let mut headers = vec![
                (":method".to_string(), request.method),
                (":path".to_string(), request.path),
                (":authority".to_string(), request.authority),
                (":scheme".to_string(), "http".to_string()),
            ];
            headers.extend(request.headers);
            state.request_headers = headers;
            state.request_body = request.body.clone().unwrap_or_default();
            state.properties.insert(
                vec!["source".into(), "address".into()],
                request.client_address.into_bytes(),
            );
        }
        self.runtime.on_context_create(context, ROOT_CONTEXT);
        let has_body = request.body.is_some();
        let action = self.runtime.on_request_headers(context, 4, !has_body);
        let mut exchange = Exchange { test: self, context, paused: action == action::PAUSE };
        if let (Some(body), false) = (request.body, exchange.paused) {
            let action = exchange.test.runtime.on_request_body(context, body.len(), true);
            exchange.paused = action == action::PAUSE;
        }
        exchange
    }
}

/// A request to send through a filter under test.
#[derive(Clone, Debug)]
pub struct TestRequest {
    method: String,
    path: String,
    authority: String,
    headers: Vec<(String, String)>,
    client_address: String,
    body: Option<Vec<u8>>,
}

impl TestRequest {
    /// A request with `method` for `path` (query included), authority
    /// `example.com`, from client `127.0.0.1:40000`.
    pub fn new(method: &str, path: &str) -> Self {
        TestRequest {
            method: method.to_string(),
            path: path.to_string(),
            authority: "example.com".to_string(),
            headers: Vec::new(),
            client_address: "127.0.0.1:40000".to_string(),
            body: None,
        }
    }

    /// A `GET`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A `POST`.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the authority (`:authority`).
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_string();
        self
    }

    /// Sets the client address (`ip:port`) seen in `source.address`.
    pub fn client_address(mut self, address: &str) -> Self {
        self.client_address = address.to_string();
        self
    }

    /// Gives the request a body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// An upstream response (or callout answer) to feed to a filter under test.
#[derive(Clone, Debug)]
pub struct TestResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl TestResponse {
    /// A response with `status` and no body.
    pub fn new(status: u16) -> Self {
        TestResponse { status, headers: Vec::new(), body: None }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Gives the response a body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    fn header_list(&self) -> Vec<(String, String)> {
        let mut headers = vec![(":status".to_string(), self.status.to_string())];
        headers.extend(self.headers.iter().cloned());
        headers
    }
}

/// One request in flight through the filter, and what the filter did to it.
pub struct Exchange<'a, F: Filter> {
    test: &'a mut FilterTest<F>,
    context: u32,
    paused: bool,
}

impl<F: Filter> Exchange<'_, F> {
    fn state(&self) -> std::cell::Ref<'_, host::State> {
        self.test.host.state.borrow()
    }

    /// The response the filter answered with, if it answered locally.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.state().local_response.clone()
    }

    /// True if the request goes on upstream: not answered, not held.
    pub fn is_continue(&self) -> bool {
        self.local_response().is_none() && !self.paused
    }

    /// True if the filter holds the request (waiting for a callout).
    pub fn is_paused(&self) -> bool {
        self.local_response().is_none() && self.paused
    }

    /// A request header as the upstream would see it.
    pub fn request_header(&self, name: &str) -> Option<String> {
        find(&self.state().request_headers, name).map(str::to_string)
    }

    /// All request headers as the upstream would see them.
    pub fn request_headers(&self) -> Vec<(String, String)> {
        self.state().request_headers.clone()
    }

    /// The request body as the upstream would see it.
    pub fn request_body(&self) -> Vec<u8> {
        self.state().request_body.clone()
    }

    /// The cluster the filter chose (`gateway.upstream` property), if any.
    pub fn upstream(&self) -> Option<String> {
        let key = vec!["gateway".to_string(), "upstream".to_string()];
        self.state().properties.get(&key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Callouts the filter sent during this request.
    pub fn callouts(&self) -> Vec<SentCallout> {
        self.state().callouts.clone()
    }

    /// Delivers the answer to the most recent callout.
    pub fn answer_callout(&mut self, answer: TestResponse) -> &mut Self {
        self.deliver_callout(answer.header_list(), answer.body.unwrap_or_default())
    }

    /// Makes the most recent callout fail (timeout, unreachable cluster).
    pub fn fail_callout(&mut self) -> &mut Self {
        self.deliver_callout(Vec::new(), Vec::new())
    }

    fn deliver_callout(&mut self, headers: Vec<(String, String)>, body: Vec<u8>) -> &mut Self {
        let Some(token) = self.state().callouts.last().map(|c| c.token) else {
            panic!("the filter sent no callout");
        };
        let (count, size) = (headers.len(), body.len());
        {
            let mut state = self.test.host.state.borrow_mut();
            state.callout_headers = headers;
            state.callout_body = body;
            state.continued.clear();
        }
        self.test.runtime.on_http_call_response(token, count, size);
        let resumed = self.state().continued.contains(&StreamType::Request);
        self.paused = !resumed;
        self
    }

    /// Sends an upstream response back through the filter.
    pub fn respond(&mut self, response: TestResponse) -> &mut Self {
        {
            let mut state = self.test.host.state.borrow_mut();
            state.response_headers = response.header_list();
            state.response_body = response.body.clone().unwrap_or_default();
        }
        let has_body = response.body.is_some();
        let runtime = &self.test.runtime;
        let action = runtime.on_response_headers(self.context, 1, !has_body);
        if let (Some(body), true) = (response.body, action == action::CONTINUE) {
            runtime.on_response_body(self.context, body.len(), true);
        }
        self
    }

    /// The response status the client would see (a local response wins).
    pub fn response_status(&self) -> Option<u16> {
        if let Some(local) = self.local_response() {
            return Some(local.status);
        }
        find(&self.state().response_headers, ":status")?.parse().ok()
    }

    /// A response header the client would see (from the upstream response).
    pub fn response_header(&self, name: &str) -> Option<String> {
        find(&self.state().response_headers, name).map(str::to_string)
    }

    /// The response body the client would see (from the upstream response).
    pub fn response_body(&self) -> Vec<u8> {
        self.state().response_body.clone()
    }
}

impl<F: Filter> Drop for Exchange<'_, F> {
    fn drop(&mut self) {
        self.test.runtime.on_log(self.context);
        self.test.runtime.on_done(self.context);
        self.test.runtime.on_delete(self.context);
    }
}
