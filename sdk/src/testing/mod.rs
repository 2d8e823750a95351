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
//! [`FilterTest::request`] is one request through it, as an [`Exchange`] that
//! can be continued (callout answers, the upstream response) and inspected.
//! Several exchanges may be open at once, as requests interleave in a host.

mod host;

use crate::abi::{action, StreamType};
use crate::filter::{Filter, LocalResponse};
use crate::host::LogLevel;
use crate::runtime::Runtime;
use host::{find, MockHost};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

pub use host::SentCallout;

const ROOT_CONTEXT: u32 = 1;

/// A filter loaded into an in-memory host.
pub struct FilterTest<F: Filter> {
    runtime: Rc<Runtime<F>>,
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
        host.current.set(ROOT_CONTEXT);
        runtime.on_context_create(ROOT_CONTEXT, 0);
        runtime.on_vm_start(ROOT_CONTEXT, 0);
        if !runtime.on_configure(ROOT_CONTEXT, config.len()) {
            let logs = host
                .state
                .borrow()
                .logs
                .iter()
                .map(|(_, l)| l.clone())
                .collect::<Vec<_>>();
            return Err(logs.join("\n"));
        }
        Ok(FilterTest {
            runtime: Rc::new(runtime),
            host,
            next_context: ROOT_CONTEXT + 1,
        })
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
        self.host
            .now_nanos
            .set(self.host.now_nanos.get().saturating_add(nanos));
    }

    /// The timer period the filter asked for at load, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        self.host
            .tick_millis
            .get()
            .map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// Fires the filter's timer once ([`Filter::on_tick`]).
    pub fn tick(&mut self) {
        crate::host::install(self.host.clone());
        self.host.current.set(ROOT_CONTEXT);
        self.runtime.on_tick(ROOT_CONTEXT);
    }

    /// Every line logged so far, oldest first.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.host.state.borrow().logs.clone()
    }

    /// True if some log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.host
            .state
            .borrow()
            .logs
            .iter()
            .any(|(_, line)| line.contains(text))
    }

    /// A shared-data value.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.host.shared.borrow().clone();
        let value = store.borrow().get(key).map(|(v, _)| v.clone());
        value
    }

    /// The current value of a metric (counter total, last gauge/histogram value).
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.host
            .state
            .borrow()
            .metrics
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(_, _, v)| *v)
    }

    /// Sends a request through the filter: request headers, then the body if
    /// the request has one and the filter let the headers through.
    pub fn request(&mut self, request: TestRequest) -> Exchange<F> {
        crate::host::install(self.host.clone());
        let context = self.next_context;
        self.next_context += 1;
        let mut headers = vec![
            (":method".to_string(), request.method),
            (":path".to_string(), request.path),
            (":authority".to_string(), request.authority),
            (":scheme".to_string(), "http".to_string()),
        ];
        headers.extend(request.headers);
        let mut stream = host::StreamState {
            request_headers: headers,
            request_body: request.body.clone().unwrap_or_default(),
            ..Default::default()
        };
        stream.properties.insert(
            vec!["source".into(), "address".into()],
            request.client_address.into_bytes(),
        );
        self.host.state.borrow_mut().streams.insert(context, stream);

        let exchange = Exchange {
            runtime: self.runtime.clone(),
            host: self.host.clone(),
            context,
            paused: Cell::new(false),
        };
        exchange.enter();
        self.runtime.on_context_create(context, ROOT_CONTEXT);
        let has_body = request.body.is_some();
        let action = self.runtime.on_request_headers(context, 4, !has_body);
        exchange.paused.set(action == action::PAUSE);
        if let (Some(body), false) = (request.body, exchange.paused.get()) {
            exchange.enter();
            let action = self.runtime.on_request_body(context, body.len(), true);
            exchange.paused.set(action == action::PAUSE);
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
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
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
        TestResponse {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
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
pub struct Exchange<F: Filter> {
    runtime: Rc<Runtime<F>>,
    host: Rc<MockHost>,
    context: u32,
    paused: Cell<bool>,
}

impl<F: Filter> Exchange<F> {
    /// Points the host at this request's context, as a real host does before
    /// each callback.
    fn enter(&self) {
        crate::host::install(self.host.clone());
        self.host.current.set(self.context);
    }

    fn stream(&self) -> std::cell::RefMut<'_, host::StreamState> {
        self.enter();
        self.host.stream()
    }

    /// The response the filter answered with, if it answered locally.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.stream().local_response.clone()
    }

    /// True if the request goes on upstream: not answered, not held.
    pub fn is_continue(&self) -> bool {
        self.local_response().is_none() && !self.paused.get()
    }

    /// True if the filter holds the request (waiting for a callout).
    pub fn is_paused(&self) -> bool {
        self.local_response().is_none() && self.paused.get()
    }

    /// A request header as the upstream would see it.
    pub fn request_header(&self, name: &str) -> Option<String> {
        find(&self.stream().request_headers, name).map(str::to_string)
    }

    /// All request headers as the upstream would see them.
    pub fn request_headers(&self) -> Vec<(String, String)> {
        self.stream().request_headers.clone()
    }

    /// The request body as the upstream would see it.
    pub fn request_body(&self) -> Vec<u8> {
        self.stream().request_body.clone()
    }

    /// The cluster the filter chose (`gateway.upstream` property), if any.
    pub fn upstream(&self) -> Option<String> {
        let key = vec!["gateway".to_string(), "upstream".to_string()];
        self.stream()
            .properties
            .get(&key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Callouts the filter sent during this request.
    pub fn callouts(&self) -> Vec<SentCallout> {
        self.stream().callouts.clone()
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
        let Some(token) = self.stream().callouts.last().map(|c| c.token) else {
            panic!("the filter sent no callout");
        };
        let (count, size) = (headers.len(), body.len());
        {
            let mut stream = self.stream();
            stream.callout_headers = headers;
            stream.callout_body = body;
            stream.continued.clear();
        }
        // Hosts deliver callout answers on the root context; the SDK must
        // switch to the request's context itself.
        self.host.current.set(ROOT_CONTEXT);
        self.runtime.on_http_call_response(token, count, size);
        let resumed = self.stream().continued.contains(&StreamType::Request);
        self.paused.set(!resumed);
        self
    }

    /// Sends an upstream response back through the filter.
    pub fn respond(&mut self, response: TestResponse) -> &mut Self {
        {
            let mut stream = self.stream();
            stream.response_headers = response.header_list();
            stream.response_body = response.body.clone().unwrap_or_default();
        }
        let has_body = response.body.is_some();
        self.enter();
        let action = self.runtime.on_response_headers(self.context, 1, !has_body);
        if let (Some(body), true) = (response.body, action == action::CONTINUE) {
            self.enter();
            self.runtime
                .on_response_body(self.context, body.len(), true);
        }
        self
    }

    /// The response status the client would see (a local response wins).
    pub fn response_status(&self) -> Option<u16> {
        if let Some(local) = self.local_response() {
            return Some(local.status);
        }
        find(&self.stream().response_headers, ":status")?
            .parse()
            .ok()
    }

    /// A response header the client would see (from the upstream response).
    pub fn response_header(&self, name: &str) -> Option<String> {
        find(&self.stream().response_headers, name).map(str::to_string)
    }

    /// The response body the client would see (from the upstream response).
    pub fn response_body(&self) -> Vec<u8> {
        self.stream().response_body.clone()
    }
}

impl<F: Filter> Drop for Exchange<F> {
    fn drop(&mut self) {
        self.enter();
        self.runtime.on_log(self.context);
        self.runtime.on_done(self.context);
        self.runtime.on_delete(self.context);
    }
}
