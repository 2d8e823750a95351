//! What a filter declares costs nothing elsewhere: hooks left out of
//! `Filter::HOOKS` do not run, and log lines below the host's level are not
//! formatted.
#![allow(clippy::unwrap_used)]

use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
use gateway_sdk::{Decision, Filter, Hooks, LogLevel, Request, Response, ResponseDecision};
use std::cell::Cell;
use std::rc::Rc;

thread_local! {
    static FORMATTED: Cell<u32> = const { Cell::new(0) };
}

/// Counts how often it is formatted.
struct Costly;

impl std::fmt::Display for Costly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        FORMATTED.with(|n| n.set(n.get() + 1));
        f.write_str("costly")
    }
}

/// Stamps both directions; declares the response hook when `RESPONSE`.
struct Stamp<const RESPONSE: bool>;

impl<const RESPONSE: bool> Filter for Stamp<RESPONSE> {
    type Config = ();
    const HOOKS: Hooks = if RESPONSE {
        Hooks::REQUEST.and(Hooks::RESPONSE)
    } else {
        Hooks::REQUEST
    };

    fn new(_: &Rc<()>) -> Self {
        Stamp
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        gateway_sdk::debug!("request seen: {}", Costly);
        request.set_header("x-request", "stamped");
        Decision::Continue
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        response.set_header("x-response", "stamped");
        ResponseDecision::Continue
    }
}

/// The response header `x-response` after one exchange through `F`.
fn response_stamp<F: Filter<Config = ()>>() -> Option<String> {
    let mut test = FilterTest::<F>::new("").unwrap();
    let mut exchange = test.request(TestRequest::get("/"));
    assert_eq!(
        exchange.request_header("x-request").as_deref(),
        Some("stamped")
    );
    exchange.respond(TestResponse::new(200));
    exchange.response_header("x-response")
}

#[test]
fn a_hook_left_out_of_the_declaration_does_not_run() {
    assert_eq!(response_stamp::<Stamp<true>>().as_deref(), Some("stamped"));
    assert_eq!(response_stamp::<Stamp<false>>(), None);
}

#[test]
fn a_log_line_below_the_hosts_level_is_not_formatted() {
    let mut test = FilterTest::<Stamp<false>>::new("").unwrap();
    test.set_log_level(LogLevel::Info);
    FORMATTED.with(|n| n.set(0));
    assert!(test.request(TestRequest::get("/")).is_continue());
    assert_eq!(FORMATTED.with(Cell::get), 0);
    assert!(!test.logged("request seen"));

    test.set_log_level(LogLevel::Debug);
    assert!(test.request(TestRequest::get("/")).is_continue());
    assert_eq!(FORMATTED.with(Cell::get), 1);
    assert!(test.logged("request seen: costly"));
}
