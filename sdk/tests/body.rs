//! Per-message body buffering through `gateway_sdk::testing`: a filter
//! streams what it does not ask for, buffers what it does up to its limit,
//! and its over-limit policy (pass through or reject) holds.
#![allow(clippy::unwrap_used)]

use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
use gateway_sdk::{Body, Decision, Filter, OverLimit, Request, Response, ResponseDecision};
use serde::Deserialize;
use std::rc::Rc;

#[derive(Deserialize)]
struct Config {
    limit: usize,
    reject: bool,
}

/// Uppercases JSON responses and signed request bodies; leaves the rest.
struct JsonUpper {
    config: Rc<Config>,
}

impl JsonUpper {
    fn over_limit(&self) -> OverLimit {
        if self.config.reject {
            OverLimit::Reject
        } else {
            OverLimit::PassThrough
        }
    }
}

impl Filter for JsonUpper {
    type Config = Config;

    fn new(config: &Rc<Config>) -> Self {
        JsonUpper {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        if request.header("x-signed").is_some() {
            request.buffer_body(self.config.limit, self.over_limit());
        }
        Decision::Continue
    }

    fn on_request_body(&mut self, _: &mut Request, body: &mut Body) -> Decision<Self> {
        gateway_sdk::info!("signed body of {} bytes", body.len());
        Decision::Continue
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        let json = response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        if json {
            response.buffer_body(self.config.limit, self.over_limit());
        }
        ResponseDecision::Continue
    }

    fn on_response_body(&mut self, _: &mut Response, body: &mut Body) -> ResponseDecision {
        let upper = body.bytes().to_ascii_uppercase();
        body.replace(upper);
        ResponseDecision::Continue
    }
}

const PASS: &str = r#"{"limit": 1024, "reject": false}"#;
const REJECT: &str = r#"{"limit": 1024, "reject": true}"#;

fn download(bytes: usize) -> TestResponse {
    TestResponse::new(200)
        .header("content-type", "text/plain")
        .header("content-length", &bytes.to_string())
        .body(vec![b'a'; bytes])
        .chunk_size(16 * 1024)
}

#[test]
fn a_response_nobody_asked_for_streams_untouched() {
    let mut test = FilterTest::<JsonUpper>::new(REJECT).unwrap();
    let mut exchange = test.request(TestRequest::get("/big.txt"));
    exchange.respond(download(2 << 20));
    assert!(!exchange.response_body_held());
    assert_eq!(exchange.response_status(), Some(200));
    assert_eq!(exchange.response_body(), vec![b'a'; 2 << 20]);
    assert_eq!(
        exchange.response_header("content-length").as_deref(),
        Some("2097152")
    );
}

#[test]
fn a_response_the_filter_asked_for_is_rewritten_whole() {
    let mut test = FilterTest::<JsonUpper>::new(REJECT).unwrap();
    let mut exchange = test.request(TestRequest::get("/a.json"));
    exchange.respond(
        TestResponse::new(200)
            .header("content-type", "application/json")
            .header("content-length", "13")
            .body(r#"{"name":"ann"}"#)
            .chunk_size(4),
    );
    assert!(exchange.response_body_held());
    assert_eq!(exchange.response_body(), br#"{"NAME":"ANN"}"#);
    // The body may change size: the stale length is gone.
    assert_eq!(exchange.response_header("content-length"), None);
}

#[test]
fn over_the_limit_a_response_passes_through_unchanged() {
    let mut test = FilterTest::<JsonUpper>::new(PASS).unwrap();
    let mut exchange = test.request(TestRequest::get("/huge.json"));
    let body = vec![b'x'; 4000];
    exchange.respond(
        TestResponse::new(200)
            .header("content-type", "application/json")
            .body(body.clone())
            .chunk_size(512),
    );
    assert_eq!(exchange.response_status(), Some(200));
    assert_eq!(exchange.response_body(), body, "lowercase: not rewritten");
}

#[test]
fn over_the_limit_a_response_is_rejected_with_502() {
    let mut test = FilterTest::<JsonUpper>::new(REJECT).unwrap();
    let mut exchange = test.request(TestRequest::get("/huge.json"));
    exchange.respond(
        TestResponse::new(200)
            .header("content-type", "application/json")
            .body(vec![b'x'; 4000])
            .chunk_size(512),
    );
    assert_eq!(exchange.response_status(), Some(502));
}

#[test]
fn request_bodies_follow_the_same_choice() {
    let mut test = FilterTest::<JsonUpper>::new(REJECT).unwrap();
    let plain = test.request(
        TestRequest::post("/")
            .body(vec![b'p'; 5000])
            .chunk_size(100),
    );
    assert!(plain.is_continue());
    assert!(!plain.request_body_held());
    assert_eq!(plain.request_body().len(), 5000);

    let signed = test.request(
        TestRequest::post("/")
            .header("x-signed", "1")
            .body("hello")
            .chunk_size(2),
    );
    assert!(signed.request_body_held());
    assert!(test.logged("signed body of 5 bytes"));

    let too_big = test.request(
        TestRequest::post("/")
            .header("x-signed", "1")
            .body(vec![b's'; 5000])
            .chunk_size(100),
    );
    assert_eq!(too_big.local_response().unwrap().status, 413);

    let mut pass = FilterTest::<JsonUpper>::new(PASS).unwrap();
    let through = pass.request(
        TestRequest::post("/")
            .header("x-signed", "1")
            .body(vec![b's'; 5000])
            .chunk_size(100),
    );
    assert!(through.is_continue());
    assert_eq!(through.request_body(), vec![b's'; 5000]);
    assert!(!pass.logged("signed body"), "no hook past the limit");
}
