//! The SDK's dispatch paths (callouts, bodies, config rejection, fail-closed)
//! driven through `gateway_sdk::testing`, as a filter author would.
#![allow(clippy::unwrap_used)]

use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
use gateway_sdk::{Body, CalloutRequest, Decision, Filter, Request, Response, ResponseDecision};
use serde::Deserialize;
use std::rc::Rc;

#[derive(Deserialize)]
struct ExtAuthConfig {
    cluster: String,
}

/// External authorization: ask `cluster`, pass on 200 with the user stamped in.
struct ExtAuth {
    config: Rc<ExtAuthConfig>,
    user: Option<String>,
}

impl Filter for ExtAuth {
    type Config = ExtAuthConfig;

    fn new(config: &Rc<ExtAuthConfig>) -> Self {
        ExtAuth {
            config: config.clone(),
            user: None,
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let token = request.header("authorization").unwrap_or_default();
        CalloutRequest::get(&self.config.cluster, "/check")
            .header("authorization", &token)
            .then(|filter: &mut ExtAuth, request, answer| {
                if !answer.is_success() {
                    return Decision::respond(403, "denied");
                }
                let user = answer.header("x-user").unwrap_or("anonymous").to_string();
                request.set_header("x-user", &user);
                filter.user = Some(user);
                Decision::Continue
            })
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        if let Some(user) = &self.user {
            response.set_header("x-served-user", user);
        }
        ResponseDecision::Continue
    }
}

#[test]
fn callout_allows_and_state_survives_to_the_response() {
    let mut test = FilterTest::<ExtAuth>::new(r#"{"cluster": "authz"}"#).unwrap();
    let mut exchange = test.request(TestRequest::get("/").header("authorization", "Bearer t"));
    assert!(exchange.is_paused());
    let callout = &exchange.callouts()[0];
    assert_eq!(callout.cluster, "authz");
    assert_eq!(callout.header(":path"), Some("/check"));
    assert_eq!(callout.header("authorization"), Some("Bearer t"));

    exchange.answer_callout(TestResponse::new(200).header("x-user", "ann"));
    assert!(exchange.is_continue());
    assert_eq!(exchange.request_header("x-user").as_deref(), Some("ann"));
    exchange.respond(TestResponse::new(200));
    assert_eq!(
        exchange.response_header("x-served-user").as_deref(),
        Some("ann")
    );
}

#[test]
fn callout_denial_and_failure_answer_locally() {
    let mut test = FilterTest::<ExtAuth>::new(r#"{"cluster": "authz"}"#).unwrap();
    let mut denied = test.request(TestRequest::get("/"));
    let mut failed = test.request(TestRequest::get("/"));
    denied.answer_callout(TestResponse::new(401));
    failed.fail_callout();
    assert_eq!(denied.local_response().unwrap().status, 403);
    assert_eq!(failed.local_response().unwrap().status, 403);
}

#[test]
fn missing_required_config_rejects_the_load() {
    let error = FilterTest::<ExtAuth>::new("").err().unwrap();
    assert!(error.contains("cluster"), "{error}");
    let error = FilterTest::<ExtAuth>::new("cluster = ").err().unwrap();
    assert!(error.contains("TOML"), "{error}");
}

/// Uppercases response bodies and echoes request bodies' length.
struct Upper;

impl Filter for Upper {
    type Config = ();
    const REQUEST_BODY_LIMIT: Option<usize> = Some(16);
    const RESPONSE_BODY_LIMIT: Option<usize> = Some(1024);

    fn new(_: &Rc<()>) -> Self {
        Upper
    }

    fn on_request_body(&mut self, request: &mut Request, body: &mut Body) -> Decision<Self> {
        // Too late for headers: hosts sent them on already.
        request.set_header("x-body-length", &body.len().to_string());
        body.replace(body.bytes().to_ascii_lowercase());
        Decision::Continue
    }

    fn on_response_body(&mut self, _: &mut Response, body: &mut Body) -> ResponseDecision {
        let upper = body.text().unwrap_or_default().to_uppercase();
        body.replace(upper);
        ResponseDecision::Continue
    }
}

#[test]
fn bodies_are_buffered_and_rewritten() {
    let mut test = FilterTest::<Upper>::new("").unwrap();
    let mut exchange = test.request(TestRequest::post("/").body("HeLLo"));
    assert!(exchange.is_continue());
    assert_eq!(exchange.request_body(), b"hello");
    assert_eq!(exchange.request_header("x-body-length"), None);
    exchange.respond(
        TestResponse::new(200)
            .header("content-length", "5")
            .body("hello"),
    );
    assert_eq!(exchange.response_body(), b"HELLO");
    assert_eq!(exchange.response_header("content-length"), None);
}

#[test]
fn oversized_request_body_gets_413() {
    let mut test = FilterTest::<Upper>::new("").unwrap();
    let exchange = test.request(TestRequest::post("/").body(vec![b'x'; 17]));
    assert_eq!(exchange.local_response().unwrap().status, 413);
}

#[test]
fn logs_and_metrics_reach_the_host() {
    struct Noisy;
    impl Filter for Noisy {
        type Config = ();
        fn new(_: &Rc<()>) -> Self {
            Noisy
        }
        fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
            gateway_sdk::info!("saw {}", request.path());
            gateway_sdk::metrics::Counter::new("seen").increment(2);
            gateway_sdk::metrics::Gauge::new("last_len").set(request.path().len() as u64);
            Decision::Continue
        }
    }
    let mut test = FilterTest::<Noisy>::new("").unwrap();
    drop(test.request(TestRequest::get("/a?b=c")));
    drop(test.request(TestRequest::get("/abc")));
    assert!(test.logged("saw /a"));
    assert_eq!(test.metric("seen"), Some(4));
    assert_eq!(test.metric("last_len"), Some(4));
}

#[derive(Deserialize)]
struct TickConfig {
    period_ms: u64,
}

/// Counts ticks in shared data and stamps the count on responses.
struct Ticks;

impl Filter for Ticks {
    type Config = TickConfig;

    fn tick_period(config: &TickConfig) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(config.period_ms))
    }

    fn on_tick(_: &TickConfig) {
        let _ = gateway_sdk::shared::update("ticks", |old| {
            let n = old
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            (n.to_string().into_bytes(), ())
        });
    }

    fn new(_: &Rc<TickConfig>) -> Self {
        Ticks
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        let ticks = gateway_sdk::shared::get("ticks")
            .map(|(v, _)| String::from_utf8_lossy(&v).into_owned());
        response.set_header("x-ticks", &ticks.unwrap_or_default());
        ResponseDecision::Continue
    }
}

#[test]
fn timer_ticks_on_the_root() {
    let mut test = FilterTest::<Ticks>::new("period_ms = 50").unwrap();
    assert_eq!(
        test.tick_period(),
        Some(std::time::Duration::from_millis(50))
    );
    test.tick();
    test.tick();
    let mut exchange = test.request(TestRequest::get("/"));
    exchange.respond(TestResponse::new(200));
    assert_eq!(exchange.response_header("x-ticks").as_deref(), Some("2"));
}

thread_local! {
    /// How many `Gate` filters were dropped on this thread.
    static GATES_DROPPED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[derive(Deserialize)]
struct GateConfig {
    call_out: bool,
}

/// A filter with the request hook alone: denies, or asks `authz` first.
struct Gate {
    config: Rc<GateConfig>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        GATES_DROPPED.with(|d| d.set(d.get() + 1));
    }
}

impl Filter for Gate {
    type Config = GateConfig;
    const HOOKS: gateway_sdk::Hooks = gateway_sdk::Hooks::REQUEST;

    fn new(config: &Rc<GateConfig>) -> Self {
        Gate {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, _request: &mut Request) -> Decision<Self> {
        if self.config.call_out {
            return CalloutRequest::get("authz", "/check")
                .then(|_: &mut Gate, _, _| Decision::respond(403, "no\n"));
        }
        Decision::respond(401, "no\n")
    }
}

fn gates_dropped() -> u32 {
    GATES_DROPPED.with(|d| d.get())
}

#[test]
fn a_request_only_filter_is_gone_once_its_hook_decided() {
    let mut test = FilterTest::<Gate>::new(r#"{"call_out": false}"#).unwrap();
    let before = gates_dropped();
    let exchange = test.request(TestRequest::get("/"));
    assert_eq!(exchange.local_response().map(|r| r.status), Some(401));
    // Nothing of the request is kept for a proxy_on_delete to free.
    assert_eq!(gates_dropped(), before + 1);
    drop(exchange);
    assert_eq!(gates_dropped(), before + 1);
}

#[test]
fn a_request_only_filter_waiting_for_a_callout_lives_until_deleted() {
    let mut test = FilterTest::<Gate>::new(r#"{"call_out": true}"#).unwrap();
    let before = gates_dropped();
    let mut exchange = test.request(TestRequest::get("/"));
    assert!(exchange.is_paused());
    assert_eq!(gates_dropped(), before);
    exchange.answer_callout(TestResponse::new(200));
    assert_eq!(exchange.local_response().map(|r| r.status), Some(403));
    assert_eq!(gates_dropped(), before, "kept until proxy_on_delete");
    drop(exchange);
    assert_eq!(gates_dropped(), before + 1);
}
