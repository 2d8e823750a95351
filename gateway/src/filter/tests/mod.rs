//! Chain runs on real `http` requests through hand-written WAT filters:
//! the harness here, the cases by theme in the files beside it.

mod conformance;
mod hostile;
mod lifecycle;
mod limits;
mod shared;
mod traffic;

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
        id: http::HeaderValue::from_static("req-1"),
        source: "10.0.0.1:40000".parse().expect("addr"),
        destination: "10.0.0.2:8080".parse().expect("addr"),
        scheme: "http",
        tls_version: None,
        mtls: false,
        peer_subject: None,
        sni: None,
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
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
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
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_status" (func $buffer_status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_size" (func $map_size (param i32 i32) (result i32)))
  (import "env" "proxy_close_stream" (func $close (param i32) (result i32)))
  (import "env" "proxy_done" (func $done (result i32)))
  (import "env" "proxy_get_metric" (func $get_metric (param i32 i32) (result i32)))
  (import "env" "proxy_record_metric" (func $record_metric (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  ;; how many times the host called the allocator
  (global $allocs (mut i32) (i32.const 0))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
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

/// Pauses every request on a callout to `auth`; on the answer adds
/// `x-auth-user: <x-user of the answer>` and resumes.
fn callout_filter() -> String {
    let d = Data::new(&["auth", "x-user", "x-auth-user"]);
    let call_headers = crate::filter::abi::encode_pairs(
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
             {remember}
             ;; unimplemented hostcalls answer UNIMPLEMENTED (12)
             (if (i32.ne (call $grpc_call (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1036)) (i32.const 12))
               (then unreachable))
             (i32.const 1))
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             {recall}
             (if (i32.eqz (call $get_header (i32.const 6) {xuser} (i32.const 1024) (i32.const 1028)))
               (then (drop (call $add_header (i32.const 0) {xauth} (i32.load (i32.const 1024)) (i32.load (i32.const 1028))))))
             (drop (call $continue (i32.const 0))))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
        xuser = d.at("x-user"),
        xauth = d.at("x-auth-user"),
        remember = REMEMBER_CALLER,
        recall = RECALL_CALLER,
    );
    abi(&d, &body)
}

/// After `proxy_http_call` (token at 1032): remembers the calling context
/// by token, as SDKs do: the answer arrives on the root context.
pub(crate) const REMEMBER_CALLER: &str = "(i32.store (i32.add (i32.const 8192) (i32.shl (i32.and (i32.load (i32.const 1032)) (i32.const 255)) (i32.const 2))) (local.get 0))";
/// In `proxy_on_http_call_response`: makes the calling context effective.
pub(crate) const RECALL_CALLER: &str = "(if (call $set_effective (i32.load (i32.add (i32.const 8192) (i32.shl (i32.and (local.get 1) (i32.const 255)) (i32.const 2))))) (then unreachable))";
