//! The small conveniences a newcomer reaches for in the first hour, through
//! `gateway_sdk::testing`: the clock, JSON answers, changing a status,
//! warnings for configuration keys the filter does not know.
#![allow(clippy::unwrap_used)]

use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
use gateway_sdk::{Decision, Filter, LocalResponse, LogLevel, Request, Response, ResponseDecision};
use serde::Deserialize;
use std::rc::Rc;
use std::time::Duration;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    /// Requests are refused after this Unix time.
    expires_at: u64,
    upstream_status: Option<u16>,
}

struct Gate {
    config: Rc<Config>,
}

impl Filter for Gate {
    type Config = Config;

    fn new(config: &Rc<Config>) -> Self {
        Gate {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, _: &mut Request) -> Decision<Self> {
        let now = gateway_sdk::time::unix_seconds();
        if now >= self.config.expires_at {
            return LocalResponse::json(401, &serde_json::json!({"error": "expired", "now": now}))
                .into();
        }
        Decision::Continue
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        if let Some(status) = self.config.upstream_status {
            response.set_status(status);
        }
        ResponseDecision::Continue
    }
}

/// 2026-01-01T00:00:00Z, the testing host's clock at start.
const START: u64 = 1_767_225_600;

#[test]
fn the_clock_is_the_hosts_and_moves_with_the_test() {
    let config = format!("expires_at = {}", START + 60);
    let mut test = FilterTest::<Gate>::new(&config).unwrap();
    assert!(test.request(TestRequest::get("/")).is_continue());
    let since_epoch = gateway_sdk::time::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(since_epoch.as_secs(), START);

    test.advance_time(Duration::from_secs(61));
    let denied = test
        .request(TestRequest::get("/"))
        .local_response()
        .unwrap();
    assert_eq!(denied.status, 401);
    assert!(denied
        .headers
        .contains(&("content-type".into(), "application/json".into())));
    let body: serde_json::Value = serde_json::from_slice(&denied.body).unwrap();
    assert_eq!(body["error"], "expired");
    assert_eq!(body["now"], START + 61);
}

#[test]
#[allow(deprecated)]
fn the_old_clock_path_still_works() {
    let _test = FilterTest::<Gate>::new("").unwrap();
    assert_eq!(gateway_sdk::shared::now(), gateway_sdk::time::now());
}

#[test]
fn set_status_changes_what_the_client_sees() {
    let config = format!(
        r#"{{"expires_at": {}, "upstream_status": 203}}"#,
        START + 60
    );
    let mut test = FilterTest::<Gate>::new(&config).unwrap();
    let mut exchange = test.request(TestRequest::get("/"));
    exchange.respond(TestResponse::new(200));
    assert_eq!(exchange.response_status(), Some(203));
}

#[test]
fn unknown_configuration_keys_are_warned_about_once_at_load() {
    let test = FilterTest::<Gate>::new(r#"{"expires_at": 1, "upstream_stauts": 203}"#).unwrap();
    let warnings: Vec<_> = test
        .logs()
        .into_iter()
        .filter(|(level, _)| *level == LogLevel::Warn)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].1.contains("upstream_stauts"), "{warnings:?}");

    let clean = FilterTest::<Gate>::new("expires_at = 1").unwrap();
    assert!(clean.logs().is_empty(), "{:?}", clean.logs());
}

#[test]
fn deny_unknown_fields_turns_the_warning_into_a_rejection() {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        limit: u32,
    }
    struct StrictFilter;
    impl Filter for StrictFilter {
        type Config = Strict;
        fn new(_: &Rc<Strict>) -> Self {
            StrictFilter
        }
    }
    let error = FilterTest::<StrictFilter>::new("limit = 1\nlimt = 2")
        .err()
        .unwrap();
    assert!(error.contains("limt"), "{error}");
}

/// Keys requests by tenant, for a `ring_hash` cluster.
struct ByTenant;

impl Filter for ByTenant {
    type Config = ();

    fn new(_: &Rc<()>) -> Self {
        ByTenant
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        if let Some(tenant) = request.header("x-tenant") {
            assert!(request.set_hash_key(&tenant));
        }
        Decision::Continue
    }
}

#[test]
fn a_filter_sets_the_consistent_hashing_key() {
    let mut test = FilterTest::<ByTenant>::new("").unwrap();
    let keyed = test.request(TestRequest::get("/").header("x-tenant", "acme"));
    assert_eq!(keyed.hash_key().as_deref(), Some("acme"));
    let unkeyed = test.request(TestRequest::get("/"));
    assert_eq!(unkeyed.hash_key(), None);
}

/// Answers `/denied` with a response prepared once, and replaces every
/// upstream answer with another.
struct Prepared {
    denied: gateway_sdk::PreparedResponse,
    replaced: gateway_sdk::PreparedResponse,
}

fn denied() -> LocalResponse {
    LocalResponse::new(401)
        .header("www-authenticate", "Bearer realm=\"api\"")
        .header("content-type", "text/plain")
        .body("unauthorized\n")
}

fn replaced() -> LocalResponse {
    LocalResponse::new(503).header("retry-after", "5")
}

impl Filter for Prepared {
    type Config = ();

    fn new(_: &Rc<()>) -> Self {
        Prepared {
            denied: denied().prepare(),
            replaced: replaced().prepare(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        if request.path() == "/denied" {
            return (&self.denied).into();
        }
        Decision::Continue
    }

    fn on_response(&mut self, _: &mut Response) -> ResponseDecision {
        (&self.replaced).into()
    }
}

#[test]
fn a_prepared_response_answers_as_the_response_it_was_made_from() {
    let mut test = FilterTest::<Prepared>::new("").unwrap();
    assert_eq!(denied().prepare().status(), 401);
    // Twice: the encoding is shared, not used up.
    for _ in 0..2 {
        let exchange = test.request(TestRequest::get("/denied"));
        assert_eq!(exchange.local_response(), Some(denied()));
    }
    let mut exchange = test.request(TestRequest::get("/other"));
    assert!(exchange.is_continue());
    exchange.respond(TestResponse::new(200));
    assert_eq!(exchange.local_response(), Some(replaced()));
}
