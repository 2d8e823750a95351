//! Trailers through `gateway_sdk::testing`: the hooks run after the body,
//! changes reach the other side, and a buffered body completes at the
//! trailers (a host never says `end_of_stream` on a body trailers follow).
#![allow(clippy::unwrap_used)]

use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
use gateway_sdk::{
    Body, Decision, Filter, OverLimit, Request, Response, ResponseDecision, Trailers,
};
use std::rc::Rc;

struct Grpc {
    body_seen: Option<String>,
}

impl Filter for Grpc {
    type Config = ();

    fn new(_: &Rc<()>) -> Self {
        Grpc { body_seen: None }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        if request.header("x-buffer").is_some() {
            request.buffer_body(1024, OverLimit::Reject);
        }
        Decision::Continue
    }

    fn on_request_body(&mut self, _: &mut Request, body: &mut Body) -> Decision<Self> {
        self.body_seen = body.text().map(str::to_owned);
        body.replace("rewritten");
        Decision::Continue
    }

    fn on_request_trailers(&mut self, trailers: &mut Trailers) {
        if let Some(sum) = trailers.get("x-checksum") {
            trailers.set("x-checksum-seen", &sum);
        }
        if let Some(body) = &self.body_seen {
            trailers.add("x-body-seen", body);
        }
        trailers.remove("x-private");
    }

    fn on_response(&mut self, _: &mut Response) -> ResponseDecision {
        ResponseDecision::Continue
    }

    fn on_response_trailers(&mut self, trailers: &mut Trailers) {
        if trailers.get("grpc-status").as_deref() == Some("13") {
            trailers.set("grpc-message", "internal error");
        }
    }
}

#[test]
fn request_trailers_are_read_and_changed() {
    let mut test = FilterTest::<Grpc>::new("").unwrap();
    let exchange = test.request(
        TestRequest::post("/svc/Call")
            .body("payload")
            .trailer("x-checksum", "abc")
            .trailer("x-private", "1"),
    );
    assert!(exchange.is_continue());
    assert_eq!(
        exchange.request_trailer("x-checksum-seen").as_deref(),
        Some("abc")
    );
    assert_eq!(exchange.request_trailer("x-private"), None);
    assert_eq!(exchange.request_body(), b"payload");
}

#[test]
fn a_buffered_body_completes_at_the_trailers() {
    let mut test = FilterTest::<Grpc>::new("").unwrap();
    let exchange = test.request(
        TestRequest::post("/svc/Call")
            .header("x-buffer", "1")
            .body("payload")
            .chunk_size(3)
            .trailer("x-checksum", "abc"),
    );
    assert!(exchange.is_continue());
    assert_eq!(
        exchange.request_trailer("x-body-seen").as_deref(),
        Some("payload")
    );
    assert_eq!(exchange.request_body(), b"rewritten");
}

#[test]
fn response_trailers_are_read_and_changed() {
    let mut test = FilterTest::<Grpc>::new("").unwrap();
    let mut exchange = test.request(TestRequest::post("/svc/Call").body("x"));
    exchange.respond(
        TestResponse::new(200)
            .header("content-type", "application/grpc")
            .body("frames")
            .trailer("grpc-status", "13")
            .trailer("grpc-message", "boom at 0x7f3a"),
    );
    assert_eq!(
        exchange.response_trailer("grpc-status").as_deref(),
        Some("13")
    );
    assert_eq!(
        exchange.response_trailer("grpc-message").as_deref(),
        Some("internal error")
    );
    assert_eq!(exchange.response_body(), b"frames");

    let mut ok = test.request(TestRequest::post("/svc/Call"));
    ok.respond(TestResponse::new(200).trailer("grpc-status", "0"));
    assert_eq!(
        ok.response_trailers(),
        [("grpc-status".to_string(), "0".to_string())]
    );
}
