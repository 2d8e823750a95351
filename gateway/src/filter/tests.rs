//! Chain runs on real `http` requests through hand-written WAT filters.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::BodyExt;

use super::{FilterChain, FilterHost, RequestMeta};
use crate::config::filter::{FailurePolicy, FilterConfig, FilterHostConfig, Isolation};
use crate::http::body::{full, Body};
use crate::upstream::callout::{CalloutClient, CalloutError, CalloutResponse};

/// Answers callouts to cluster `auth` with 200 and `x-user: alice`.
struct Callouts;

impl CalloutClient for Callouts {
    fn call(
        &self,
        cluster: &str,
        request: http::Request<Bytes>,
        _t: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let known = cluster == "auth" && request.uri().path() == "/check";
        let cluster = cluster.to_string();
        Box::pin(async move {
            if !known {
                return Err(CalloutError::UnknownCluster(cluster));
            }
            let mut headers = http::HeaderMap::new();
            headers.insert("x-user", http::HeaderValue::from_static("alice"));
            Ok(CalloutResponse {
                status: http::StatusCode::OK,
                headers,
                body: Bytes::from_static(b"ok"),
                trailers: Default::default(),
            })
        })
    }
    fn has_cluster(&self, cluster: &str) -> bool {
        cluster == "auth"
    }
}

pub(crate) fn test_host() -> Arc<FilterHost> {
    let cfg = FilterHostConfig {
        cache_dir: None,
        max_instances: 64,
        epoch_tick: Duration::from_millis(5),
        ..FilterHostConfig::default()
    };
    FilterHost::new(&cfg, Arc::new(Callouts)).expect("filter host starts")
}

fn write_module(text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("gateway-filter-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // wasmtime compiles the text format too; the name must end in .wasm.
    let path = dir.join(format!("m{}.wasm", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, text).expect("write module");
    path
}

async fn chain_with(
    host: &Arc<FilterHost>,
    text: &str,
    tweak: impl FnOnce(&mut FilterConfig),
) -> FilterChain {
    let mut cfg = FilterConfig::new("f", write_module(text));
    tweak(&mut cfg);
    FilterChain::load(host, &[cfg]).await
}

fn meta() -> RequestMeta {
    RequestMeta {
        id: "req-1".into(),
        source: "10.0.0.1:40000".parse().expect("addr"),
        destination: "10.0.0.2:8080".parse().expect("addr"),
        scheme: "http",
        tls_version: None,
    }
}

fn request(headers: &[(&str, &str)]) -> http::Request<Body> {
    let mut b = http::Request::builder()
        .uri("/ping?x=1")
        .header("host", "example.com");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(full("")).expect("request")
}

async fn body_text(body: Body) -> String {
    let bytes = body.collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Strings placed in the module's data segment; `at` gives (ptr, len).
struct Data(Vec<(&'static str, u32)>);

impl Data {
    fn new(strings: &[&'static str]) -> Data {
        let mut at = 256;
        Data(
            strings
                .iter()
                .map(|s| {
                    let p = at;
                    at += s.len() as u32 + 8;
                    (*s, p)
                })
                .collect(),
        )
    }
    fn at(&self, s: &str) -> String {
        let (s, p) = self
            .0
            .iter()
            .find(|(x, _)| *x == s)
            .expect("string declared");
        format!("(i32.const {p}) (i32.const {})", s.len())
    }
    fn segments(&self) -> String {
        self.0
            .iter()
            .map(|(s, p)| format!("(data (i32.const {p}) \"{}\")", s.replace('\0', "\\00")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub(crate) const PRELUDE: &str = r#"
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove_header (param i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set_prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (import "env" "proxy_grpc_call" (func $grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $register_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $enqueue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $dequeue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment_metric (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 120000)) (then (global.set $heap (i32.const 65536))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
"#;

fn module(data: &Data, marker: &str, body: &str) -> String {
    format!(
        "(module {PRELUDE}\n{}\n(func (export \"{marker}\"))\n{body})",
        data.segments()
    )
}

fn abi(data: &Data, body: &str) -> String {
    module(data, "proxy_abi_version_0_2_1", body)
}

#[tokio::test]
async fn rejects_modules_without_the_abi_marker_and_fails_closed() {
    let host = test_host();
    let chain = chain_with(
        &host,
        &module(&Data::new(&[]), "not_an_abi_marker", ""),
        |_| {},
    )
    .await;
    let status = chain.status();
    assert_eq!(status[0].state, "failed");
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("proxy_abi_version"),
        "{status:?}"
    );
    let mut run = chain.start(meta()).expect("non-empty chain");
    let resp = run
        .on_request(request(&[]))
        .await
        .expect_err("fails closed");
    assert_eq!(resp.status(), 503);
    assert!(body_text(resp.into_body()).await.contains("`f`"));

    // Failing open skips the unavailable filter.
    let chain = chain_with(&host, &module(&Data::new(&[]), "nope", ""), |c| {
        c.failure = FailurePolicy::Open
    })
    .await;
    assert!(chain
        .start(meta())
        .expect("run")
        .on_request(request(&[]))
        .await
        .is_ok());
}

#[tokio::test]
async fn rejects_a_configuration_the_filter_refuses() {
    let host = test_host();
    let text = abi(
        &Data::new(&[]),
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    let chain = chain_with(&host, &text, |_| {}).await;
    let status = chain.status();
    assert_eq!(status[0].state, "failed");
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("proxy_on_configure"),
        "{status:?}"
    );
    // Accepted configuration: loads.
    let text = abi(
        &Data::new(&[]),
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))"#,
    );
    assert_eq!(
        chain_with(&host, &text, |_| {}).await.status()[0].state,
        "loaded"
    );
}

fn header_filter() -> String {
    let d = Data::new(&[
        "x-in",
        "x-seen",
        "x-drop",
        ":path",
        "/rewritten",
        "x-resp",
        "yes",
    ]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_header (i32.const 0) {xin} (i32.const 1024) (i32.const 1028)))
               (then (drop (call $add_header (i32.const 0) {xseen} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             (drop (call $remove_header (i32.const 0) {xdrop}))
             (drop (call $replace_header (i32.const 0) {path} {newpath}))
             (i32.const 0))
           (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
             (drop (call $add_header (i32.const 2) {xresp} {yes}))
             (i32.const 0))"#,
        xin = d.at("x-in"),
        xseen = d.at("x-seen"),
        xdrop = d.at("x-drop"),
        path = d.at(":path"),
        newpath = d.at("/rewritten"),
        xresp = d.at("x-resp"),
        yes = d.at("yes"),
    );
    abi(&d, &body)
}

async fn headers_round_trip(isolation: Isolation) {
    let host = test_host();
    let chain = chain_with(&host, &header_filter(), |c| c.isolation = isolation).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    for _ in 0..3 {
        let mut run = chain.start(meta()).expect("run");
        let req = run
            .on_request(request(&[("x-in", "hello"), ("x-drop", "1")]))
            .await
            .expect("forwarded");
        assert_eq!(
            req.headers().get("x-seen").map(|v| v.as_bytes()),
            Some(&b"hello"[..])
        );
        assert!(req.headers().get("x-drop").is_none());
        assert_eq!(req.uri().path(), "/rewritten");
        assert_eq!(
            req.headers().get("host").map(|v| v.as_bytes()),
            Some(&b"example.com"[..])
        );
        let resp = run.on_response(http::Response::new(full("body"))).await;
        assert_eq!(
            resp.headers().get("x-resp").map(|v| v.as_bytes()),
            Some(&b"yes"[..])
        );
        run.finish();
    }
}

#[tokio::test]
async fn headers_get_add_remove_replace_shared() {
    headers_round_trip(Isolation::Shared).await;
}

#[tokio::test]
async fn headers_get_add_remove_replace_per_request() {
    headers_round_trip(Isolation::Request).await;
}

#[tokio::test]
async fn local_response_without_authorization() {
    let host = test_host();
    let d = Data::new(&["authorization", "denied", "details"]);
    // Headers for the answer, in the map wire format: www-authenticate: Basic
    let wire = super::abi::encode_pairs([(&b"www-authenticate"[..], &b"Basic"[..])].into_iter());
    let wire_wat: String = wire.iter().map(|b| format!("\\{b:02x}")).collect();
    let body = format!(
        r#"(data (i32.const 2048) "{wire_wat}")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $get_header (i32.const 0) {auth} (i32.const 1024) (i32.const 1028))
               (then
                 (drop (call $local (i32.const 401) {details} {denied} (i32.const 2048) (i32.const {len}) (i32.const -1)))
                 (return (i32.const 1))))
             (i32.const 0))"#,
        auth = d.at("authorization"),
        details = d.at("details"),
        denied = d.at("denied"),
        len = wire.len(),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let resp = run
        .on_request(request(&[]))
        .await
        .expect_err("answered locally");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Basic"[..])
    );
    assert_eq!(body_text(resp.into_body()).await, "denied");
    let mut run = chain.start(meta()).expect("run");
    assert!(run
        .on_request(request(&[("authorization", "x")]))
        .await
        .is_ok());
}

#[tokio::test]
async fn properties_read_and_upstream_override() {
    let host = test_host();
    let d = Data::new(&[
        "request\0url_path",
        "x-url-path",
        "source\0port",
        "x-port",
        "eight",
        "gateway\0upstream",
        "ping_pong",
    ]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_prop {url} (i32.const 1024) (i32.const 1028)))
               (then (drop (call $add_header (i32.const 0) {xurl} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             ;; ports are 8-byte little-endian integers
             (if (i32.eqz (call $get_prop {port} (i32.const 1024) (i32.const 1028)))
               (then (if (i32.and (i32.eq (i32.load (i32.const 1028)) (i32.const 8))
                                  (i32.eq (i32.load (i32.load (i32.const 1024))) (i32.const 40000)))
                 (then (drop (call $add_header (i32.const 0) {xport} {eight}))))))
             (drop (call $set_prop {up} {pp}))
             (i32.const 0))"#,
        url = d.at("request\0url_path"),
        xurl = d.at("x-url-path"),
        port = d.at("source\0port"),
        xport = d.at("x-port"),
        eight = d.at("eight"),
        up = d.at("gateway\0upstream"),
        pp = d.at("ping_pong"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(request(&[])).await.expect("forwarded");
    assert_eq!(
        req.headers().get("x-url-path").map(|v| v.as_bytes()),
        Some(&b"/ping"[..])
    );
    assert_eq!(
        req.headers().get("x-port").map(|v| v.as_bytes()),
        Some(&b"eight"[..])
    );
    assert_eq!(run.upstream_override().as_deref(), Some("ping_pong"));
}

/// Pauses every request on a callout to `auth`; on the answer adds
/// `x-auth-user: <x-user of the answer>` and resumes.
fn callout_filter() -> String {
    let d = Data::new(&["auth", "x-user", "x-auth-user"]);
    let call_headers = super::abi::encode_pairs(
        [
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/check"),
            (b":authority", b"auth"),
        ]
        .into_iter(),
    );
    let hw: String = call_headers.iter().map(|b| format!("\\{b:02x}")).collect();
    let body = format!(
        r#"(data (i32.const 3072) "{hw}")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1032))
               (then unreachable))
             ;; unimplemented hostcalls answer UNIMPLEMENTED (12)
             (if (i32.ne (call $grpc_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1036)) (i32.const 12))
               (then unreachable))
             (i32.const 1))
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             (if (i32.eqz (call $get_header (i32.const 6) {xuser} (i32.const 1024) (i32.const 1028)))
               (then (drop (call $add_header (i32.const 0) {xauth} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             (drop (call $continue (i32.const 0))))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
        xuser = d.at("x-user"),
        xauth = d.at("x-auth-user"),
    );
    abi(&d, &body)
}

#[tokio::test]
async fn http_call_pauses_then_resumes_with_the_answer() {
    let host = test_host();
    let chain = chain_with(&host, &callout_filter(), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = tokio::time::timeout(Duration::from_secs(5), run.on_request(request(&[])))
        .await
        .expect("resumes in time")
        .expect("forwarded");
    assert_eq!(
        req.headers().get("x-auth-user").map(|v| v.as_bytes()),
        Some(&b"alice"[..])
    );
}

// === hostile guests ===

async fn hostile(text: &str, failure: FailurePolicy) -> (FilterChain, Duration) {
    let host = test_host();
    let chain = chain_with(&host, text, |c| {
        c.failure = failure;
        c.instances = 1;
        c.memory_limit = bytesize::ByteSize::mib(8);
    })
    .await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let mut run = chain.start(meta()).expect("run");
    let started = Instant::now();
    let outcome = run.on_request(request(&[("x-attack", "1")])).await;
    let took = started.elapsed();
    match failure {
        FailurePolicy::Closed => {
            let resp = outcome.expect_err("fails closed");
            assert_eq!(resp.status(), 503);
            assert!(body_text(resp.into_body()).await.contains("`f`"));
        }
        FailurePolicy::Open => assert!(outcome.is_ok(), "fails open"),
    }
    drop(run);
    // The next request runs on a fresh instance.
    let mut run = chain.start(meta()).expect("run");
    assert!(
        run.on_request(request(&[])).await.is_ok(),
        "a fresh instance serves the next request"
    );
    (chain, took)
}

#[tokio::test]
async fn infinite_loop_hits_the_deadline() {
    let (_, took) = hostile(
        include_str!("../../../tests/wasm/hostile/loop.wat"),
        FailurePolicy::Closed,
    )
    .await;
    assert!(
        took < Duration::from_millis(200),
        "deadline 100ms, took {took:?}"
    );
    assert!(
        took >= Duration::from_millis(90),
        "stopped before the deadline: {took:?}"
    );
    hostile(
        include_str!("../../../tests/wasm/hostile/loop.wat"),
        FailurePolicy::Open,
    )
    .await;
}

#[tokio::test]
async fn unbounded_memory_growth_is_capped() {
    hostile(
        include_str!("../../../tests/wasm/hostile/memory_grow.wat"),
        FailurePolicy::Closed,
    )
    .await;
}

#[tokio::test]
async fn deep_recursion_is_contained() {
    hostile(
        include_str!("../../../tests/wasm/hostile/recursion.wat"),
        FailurePolicy::Closed,
    )
    .await;
}

#[tokio::test]
async fn unreachable_trap_is_contained() {
    hostile(
        include_str!("../../../tests/wasm/hostile/unreachable.wat"),
        FailurePolicy::Open,
    )
    .await;
}

#[tokio::test]
async fn bad_pointers_get_invalid_memory_access() {
    let host = test_host();
    let chain = chain_with(
        &host,
        include_str!("../../../tests/wasm/hostile/bad_pointers.wat"),
        |_| {},
    )
    .await;
    let mut run = chain.start(meta()).expect("run");
    let req = run
        .on_request(request(&[]))
        .await
        .expect("every bad call got status 6");
    assert_eq!(
        req.headers().get("x-bad-pointers").map(|v| v.as_bytes()),
        Some(&b"ok"[..])
    );
}

#[tokio::test]
async fn a_filter_that_keeps_failing_is_backed_off() {
    let host = test_host();
    let chain = chain_with(
        &host,
        include_str!("../../../tests/wasm/hostile/unreachable.wat"),
        |c| c.instances = 1,
    )
    .await;
    for _ in 0..3 {
        let mut run = chain.start(meta()).expect("run");
        assert!(run.on_request(request(&[("x-attack", "1")])).await.is_err());
    }
    assert_eq!(chain.status()[0].state, "backed-off");
    // While backed off, even harmless requests get the failure policy.
    let mut run = chain.start(meta()).expect("run");
    assert_eq!(
        run.on_request(request(&[]))
            .await
            .expect_err("backed off")
            .status(),
        503
    );
}

/// Every hostcall the official Rust SDK 0.2.x imports, with its wasm
/// signature (`usize`/`bool`/pointers are i32, u64/i64 are i64), the ABI
/// 0.2.0 leftovers and the WASI subset: all must link.
const SDK_IMPORTS: &[(&str, &str, &str, &str)] = &[
    ("env", "proxy_log", "i32 i32 i32", "i32"),
    ("env", "proxy_get_log_level", "i32", "i32"),
    ("env", "proxy_get_current_time_nanoseconds", "i32", "i32"),
    ("env", "proxy_set_tick_period_milliseconds", "i32", "i32"),
    (
        "env",
        "proxy_get_buffer_bytes",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_set_buffer_bytes",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_get_buffer_status", "i32 i32 i32", "i32"),
    ("env", "proxy_get_header_map_pairs", "i32 i32 i32", "i32"),
    ("env", "proxy_set_header_map_pairs", "i32 i32 i32", "i32"),
    (
        "env",
        "proxy_get_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_remove_header_map_value", "i32 i32 i32", "i32"),
    (
        "env",
        "proxy_replace_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_add_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_get_header_map_size", "i32 i32", "i32"),
    ("env", "proxy_get_property", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_set_property", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_get_shared_data", "i32 i32 i32 i32 i32", "i32"),
    ("env", "proxy_set_shared_data", "i32 i32 i32 i32 i32", "i32"),
    ("env", "proxy_register_shared_queue", "i32 i32 i32", "i32"),
    (
        "env",
        "proxy_resolve_shared_queue",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_dequeue_shared_queue", "i32 i32 i32", "i32"),
    ("env", "proxy_enqueue_shared_queue", "i32 i32 i32", "i32"),
    ("env", "proxy_continue_stream", "i32", "i32"),
    ("env", "proxy_close_stream", "i32", "i32"),
    ("env", "proxy_continue_request", "", "i32"),
    ("env", "proxy_continue_response", "", "i32"),
    ("env", "proxy_clear_route_cache", "", "i32"),
    (
        "env",
        "proxy_send_local_response",
        "i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_http_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_dispatch_http_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_grpc_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_grpc_stream",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_grpc_send", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_grpc_cancel", "i32", "i32"),
    ("env", "proxy_grpc_close", "i32", "i32"),
    ("env", "proxy_get_status", "i32 i32 i32", "i32"),
    ("env", "proxy_set_effective_context", "i32", "i32"),
    (
        "env",
        "proxy_call_foreign_function",
        "i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_done", "", "i32"),
    ("env", "proxy_define_metric", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_get_metric", "i32 i32", "i32"),
    ("env", "proxy_record_metric", "i32 i64", "i32"),
    ("env", "proxy_increment_metric", "i32 i64", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_write",
        "i32 i32 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "fd_read",
        "i32 i32 i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_close", "i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_seek",
        "i32 i64 i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "clock_time_get",
        "i32 i64 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "random_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "environ_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "environ_sizes_get",
        "i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "args_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "args_sizes_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "proc_exit", "i32", ""),
    ("wasi_snapshot_preview1", "sched_yield", "", "i32"),
    ("wasi_unstable", "fd_write", "i32 i32 i32 i32", "i32"),
    ("wasi_unstable", "proc_exit", "i32", ""),
    // Unknown to this host: linked as a stub answering UNIMPLEMENTED.
    ("env", "proxy_some_future_hostcall", "i32", "i32"),
];

#[tokio::test]
async fn every_sdk_import_links_and_unknown_ones_are_stubbed() {
    let host = test_host();
    let imports: String = SDK_IMPORTS
        .iter()
        .enumerate()
        .map(|(i, (m, n, p, r))| {
            let params = if p.is_empty() {
                String::new()
            } else {
                format!("(param {p})")
            };
            let result = if r.is_empty() {
                String::new()
            } else {
                format!("(result {r})")
            };
            format!("(import \"{m}\" \"{n}\" (func $i{i} {params} {result}))\n")
        })
        .collect();
    let last = SDK_IMPORTS.len() - 1;
    let text = format!(
        r#"(module {imports}
          (memory (export "memory") 1)
          (func (export "malloc") (param i32) (result i32) (i32.const 1024))
          (func (export "proxy_abi_version_0_2_0"))
          (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
            ;; the unknown hostcall answers UNIMPLEMENTED (12)
            (i32.eq (call $i{last} (i32.const 0)) (i32.const 12))))"#
    );
    let chain = chain_with(&host, &text, |_| {}).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
}

#[tokio::test]
async fn buffering_filter_over_the_limit_gets_413() {
    let host = test_host();
    // Pauses on every body chunk until the end of the stream.
    let text = abi(
        &Data::new(&[]),
        r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
             (i32.eqz (local.get 2)))"#,
    );
    let chain = chain_with(&host, &text, |c| {
        c.body_buffer_limit = bytesize::ByteSize::b(8)
    })
    .await;
    let stream = futures_util::stream::iter(
        ["0123", "4567", "89ab"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let body = crate::http::body::boxed(http_body_util::StreamBody::new(stream));
    let req = http::Request::builder()
        .uri("/")
        .body(body)
        .expect("request");
    let mut run = chain.start(meta()).expect("run");
    assert_eq!(
        run.on_request(req)
            .await
            .expect_err("over the limit")
            .status(),
        413
    );

    // Under the limit, the whole body arrives, in one piece.
    let stream = futures_util::stream::iter(
        ["01", "23"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let body = crate::http::body::boxed(http_body_util::StreamBody::new(stream));
    let req = http::Request::builder()
        .uri("/")
        .body(body)
        .expect("request");
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(req).await.expect("forwarded");
    assert_eq!(body_text(req.into_body()).await, "0123");
}

#[tokio::test]
async fn shared_data_queues_ticks_and_metrics() {
    let host = test_host();
    let d = Data::new(&["q", "ticks", "msgs", "k", "v", "x-shared"]);
    let body = format!(
        r#"(global $queue (mut i32) (i32.const 0))
           (global $ticks (mut i32) (i32.const 0))
           (global $msgs (mut i32) (i32.const 0))
           (func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $register_queue {q} (i32.const 1040)))
             (global.set $queue (i32.load (i32.const 1040)))
             (drop (call $define_metric (i32.const 0) {ticks} (i32.const 1044)))
             (global.set $ticks (i32.load (i32.const 1044)))
             (drop (call $define_metric (i32.const 0) {msgs} (i32.const 1048)))
             (global.set $msgs (i32.load (i32.const 1048)))
             (drop (call $set_tick (i32.const 10)))
             (i32.const 1))
           (func (export "proxy_on_tick") (param i32)
             (drop (call $increment_metric (global.get $ticks) (i64.const 1))))
           (func (export "proxy_on_queue_ready") (param i32 i32)
             (if (i32.eqz (call $dequeue (local.get 1) (i32.const 1024) (i32.const 1028)))
               (then (drop (call $increment_metric (global.get $msgs) (i64.const 1))))))
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_shared {k} (i32.const 1024) (i32.const 1028) (i32.const 1052)))
               (then (drop (call $add_header (i32.const 0) {xshared} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             (drop (call $set_shared {k} {v} (i32.const 0)))
             (drop (call $enqueue (global.get $queue) {v}))
             (i32.const 0))"#,
        q = d.at("q"),
        ticks = d.at("ticks"),
        msgs = d.at("msgs"),
        k = d.at("k"),
        v = d.at("v"),
        xshared = d.at("x-shared"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| c.instances = 2).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let mut run = chain.start(meta()).expect("run");
    let first = run.on_request(request(&[])).await.expect("forwarded");
    assert!(first.headers().get("x-shared").is_none());
    // The second request lands on the other instance: the data is shared.
    let mut run = chain.start(meta()).expect("run");
    let second = run.on_request(request(&[])).await.expect("forwarded");
    assert_eq!(
        second.headers().get("x-shared").map(|v| v.as_bytes()),
        Some(&b"v"[..])
    );

    let metric = |name: &str| {
        host.metrics()
            .iter()
            .find(|m| m.name == name)
            .map_or(0, |m| m.value)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    // Bounded poll: ticks come every 10ms, queue messages at once.
    while (metric("ticks") < 2 || metric("msgs") < 2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        metric("ticks") >= 2,
        "proxy_on_tick ran: {:?}",
        host.metrics()
    );
    assert_eq!(
        metric("msgs"),
        2,
        "proxy_on_queue_ready dequeued both messages"
    );
}

#[tokio::test]
async fn a_failing_instance_leaves_requests_on_other_instances_alone() {
    let host = test_host();
    let d = Data::new(&["x-attack", "x-resp", "yes"]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_header (i32.const 0) {attack} (i32.const 1024) (i32.const 1028))) (then unreachable))
             (i32.const 0))
           (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
             (drop (call $add_header (i32.const 2) {xresp} {yes}))
             (i32.const 0))"#,
        attack = d.at("x-attack"),
        xresp = d.at("x-resp"),
        yes = d.at("yes"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| c.instances = 2).await;
    // `calm` is bound to one instance, `attack` (next) to the other.
    let mut calm = chain.start(meta()).expect("run");
    assert!(calm.on_request(request(&[])).await.is_ok());
    let mut attack = chain.start(meta()).expect("run");
    assert_eq!(
        attack
            .on_request(request(&[("x-attack", "1")]))
            .await
            .expect_err("trapped")
            .status(),
        503
    );
    // The calm request's instance was untouched: its response phase runs.
    let resp = calm.on_response(http::Response::new(full("fine"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("x-resp").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    // The attacked request's instance is gone for good.
    assert_eq!(
        attack
            .on_response(http::Response::new(full("x")))
            .await
            .status(),
        200,
        "skipped: no context"
    );
    calm.finish();
    attack.finish();
}

#[tokio::test]
async fn proc_exit_discards_the_instance() {
    let host = test_host();
    let d = Data::new(&["x-exit"]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_header (i32.const 0) {x} (i32.const 1024) (i32.const 1028)))
               (then (call $proc_exit (i32.const 3))))
             (i32.const 0))"#,
        x = d.at("x-exit"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| c.instances = 1).await;
    let mut run = chain.start(meta()).expect("run");
    assert_eq!(
        run.on_request(request(&[("x-exit", "1")]))
            .await
            .expect_err("exited")
            .status(),
        503
    );
    assert!(
        chain.status()[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("proc_exit"),
        "{:?}",
        chain.status()
    );
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[])).await.is_ok());
}

#[tokio::test]
async fn compiled_code_is_cached_in_the_gateways_own_directory() {
    let cache = std::env::temp_dir().join(format!("gateway-filter-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let cfg = FilterHostConfig {
        cache_dir: Some(cache.clone()),
        max_instances: 16,
        ..FilterHostConfig::default()
    };
    let host = FilterHost::new(&cfg, Arc::new(Callouts)).expect("host");
    let text = header_filter();
    let path = write_module(&text);
    let filters = [FilterConfig::new("cached", &path)];
    assert_eq!(
        FilterChain::load(&host, &filters).await.status()[0].state,
        "loaded"
    );
    let entries = || {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(entries(), 1, "one compiled entry in the cache");
    // Loading again comes from the cache and still works.
    let chain = FilterChain::load(&host, &filters).await;
    let mut run = chain.start(meta()).expect("run");
    let req = run
        .on_request(request(&[("x-in", "cached")]))
        .await
        .expect("forwarded");
    assert_eq!(
        req.headers().get("x-seen").map(|v| v.as_bytes()),
        Some(&b"cached"[..])
    );
    assert_eq!(entries(), 1);
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test]
async fn a_full_instance_pool_answers_per_policy_without_backing_off() {
    let cfg = FilterHostConfig {
        cache_dir: None,
        max_instances: 2,
        ..FilterHostConfig::default()
    };
    let host = FilterHost::new(&cfg, Arc::new(Callouts)).expect("host");
    let chain = chain_with(&host, &header_filter(), |c| {
        c.isolation = Isolation::Request
    })
    .await;
    // Two requests in flight hold both slots; the third finds none.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut run = chain.start(meta()).expect("run");
        assert!(run.on_request(request(&[])).await.is_ok());
        held.push(run);
    }
    for _ in 0..4 {
        let mut run = chain.start(meta()).expect("run");
        assert_eq!(
            run.on_request(request(&[]))
                .await
                .expect_err("no slot")
                .status(),
            503
        );
    }
    assert_eq!(
        chain.status()[0].state,
        "loaded",
        "load is not a filter failure"
    );
    drop(held);
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[])).await.is_ok(), "slots freed");
}

/// The core runs chains inside hyper services: everything must be `Send`.
#[allow(dead_code)]
fn chain_types_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FilterChain>();
    send_sync::<FilterHost>();
    let chain = FilterChain::empty();
    if let Some(mut run) = chain.start(meta()) {
        send(&run.on_request(request(&[])));
        send(&run.on_response(http::Response::new(full(""))));
        send(&run);
    }
}

/// Answers `auth` callouts only once the test lets them through.
struct GatedCallouts(Arc<tokio::sync::Semaphore>);

impl CalloutClient for GatedCallouts {
    fn call(
        &self,
        c: &str,
        r: http::Request<Bytes>,
        t: Duration,
    ) -> BoxFuture<'static, Result<CalloutResponse, CalloutError>> {
        let gate = self.0.clone();
        let answer = Callouts.call(c, r, t);
        Box::pin(async move {
            let _permit = gate
                .acquire()
                .await
                .map_err(|e| CalloutError::Failed(e.to_string()))?;
            answer.await
        })
    }
    fn has_cluster(&self, c: &str) -> bool {
        Callouts.has_cluster(c)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_requests_interleave_on_one_shared_instance() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let cfg = FilterHostConfig {
        cache_dir: None,
        max_instances: 16,
        ..FilterHostConfig::default()
    };
    let host = FilterHost::new(&cfg, Arc::new(GatedCallouts(gate.clone()))).expect("host");
    let chain = chain_with(&host, &callout_filter(), |c| c.instances = 1).await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let chain = chain.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = chain.start(meta()).expect("run");
            let req = run.on_request(request(&[])).await.expect("forwarded");
            run.finish();
            req.headers()
                .get("x-auth-user")
                .map(|v| v.as_bytes().to_vec())
        }));
    }
    // None can finish before its callout is answered.
    tokio::task::yield_now().await;
    assert!(tasks.iter().all(|t| !t.is_finished()));
    gate.add_permits(3);
    for t in tasks {
        let header = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(header.as_deref(), Some(&b"alice"[..]));
    }
}

#[tokio::test]
async fn a_pause_at_the_end_of_the_body_waits_for_the_callout() {
    let host = test_host();
    let d = Data::new(&["auth", "authorized"]);
    let call_headers = super::abi::encode_pairs(
        [
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/check"),
            (b":authority", b"auth"),
        ]
        .into_iter(),
    );
    let hw: String = call_headers.iter().map(|b| format!("\\{b:02x}")).collect();
    // Waits for the whole body, checks it with a callout, then replaces it.
    let body = format!(
        r#"(data (i32.const 3072) "{hw}")
           (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
             (if (i32.eqz (local.get 2)) (then (return (i32.const 1))))
             (if (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1032))
               (then unreachable))
             (i32.const 1))
           (import_placeholder)
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             (drop (call $set_buffer (i32.const 0) (i32.const 0) (i32.const -1) {authorized}))
             (drop (call $continue (i32.const 0))))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
        authorized = d.at("authorized"),
    )
    .replace("(import_placeholder)", "");
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let stream = futures_util::stream::iter(
        ["se", "cret"]
            .map(|s| Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))),
    );
    let req = http::Request::builder()
        .uri("/")
        .body(crate::http::body::boxed(http_body_util::StreamBody::new(
            stream,
        )))
        .expect("request");
    let mut run = chain.start(meta()).expect("run");
    let req = tokio::time::timeout(Duration::from_secs(5), run.on_request(req))
        .await
        .expect("in time")
        .expect("forwarded");
    assert_eq!(body_text(req.into_body()).await, "authorized");
}
