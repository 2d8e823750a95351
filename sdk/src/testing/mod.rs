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
//! The host behaves as proxy-wasm hosts do where it matters to a filter:
//! bodies arrive in chunks ([`TestRequest::chunk_size`]) and are held only
//! while the filter asks, and headers leave before the body, so header
//! changes made in a body hook are not seen by the upstream or client.
//!
//! One [`FilterTest`] is one loaded filter (configured once); each
//! [`FilterTest::request`] is one request through it, as an [`Exchange`] that
//! can be continued (callout answers, the upstream response) and inspected.
//! Several exchanges may be open at once, as requests interleave in a host.

mod body;
mod exchange;
mod host;
mod message;
#[cfg(feature = "json")]
mod redis;
mod service;

use crate::abi::action;
use crate::filter::Filter;
use crate::host::LogLevel;
use crate::runtime::Runtime;
use host::MockHost;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

pub use exchange::Exchange;
pub use host::SentCallout;
pub use message::{TestRequest, TestResponse};
#[cfg(feature = "json")]
pub use redis::redis_command;
pub use service::ServiceTest;

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
        Self::load(config, None)
    }

    /// Loads the filter as [`FilterTest::new`] does, in a host whose
    /// configuration has these clusters (what [`crate::clusters::names`]
    /// returns, at load time and during requests).
    pub fn with_clusters(config: &str, clusters: &[&str]) -> Result<Self, String> {
        Self::load(
            config,
            Some(clusters.iter().map(|c| c.to_string()).collect()),
        )
    }

    fn load(config: &str, clusters: Option<Vec<String>>) -> Result<Self, String> {
        let host = Rc::new(MockHost::new());
        host.state.borrow_mut().clusters = clusters;
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

    /// Restarts the generator behind [`crate::random`] from `seed`: the same
    /// seed gives the same numbers.
    pub fn seed_random(&mut self, seed: u64) {
        self.host.random_state.set(seed);
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

    /// Sets the lowest level the host keeps (default: every level), as the
    /// gateway's log filter does: the log macros do not even format a line
    /// below it.
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.host.log_level.set(level);
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
        let has_trailers = !request.trailers.is_empty();
        let action = self
            .runtime
            .on_request_headers(context, 4, !has_body && !has_trailers);
        exchange.paused.set(action == action::PAUSE);
        if let (Some(body), false) = (request.body, exchange.paused.get()) {
            // Hosts send the headers on before the body: changes made in
            // the body hook do not reach the upstream.
            let sent = self.host.stream_of(context).request_headers.clone();
            exchange.enter();
            let runtime = &self.runtime;
            let paused = body::feed(
                &self.host,
                body::Side::Request,
                &body,
                request.chunk,
                has_trailers,
                |size, eos| runtime.on_request_body(context, size, eos),
            );
            exchange.paused.set(paused);
            self.host.stream_of(context).request_headers = sent;
        }
        if has_trailers && exchange.is_continue() {
            self.host.stream_of(context).request_trailers = request.trailers;
            exchange.trailers(body::Side::Request);
        }
        exchange
    }
}
