//! Hostcalls answer as the reference host (proxy-wasm-cpp-host with
//! Envoy's context) does: zero-length reads, missing values, unavailable
//! maps, stream types, metrics, shared data. One guest runs every check;
//! the first that differs is named in `x-conformance`.

use super::*;

/// `$expect(got, want)`: the first mismatch's number (from 1) is kept;
/// the answer header is `@` when none, else `@` + that number.
const EXPECT: &str = r#"
  (global $fail (mut i32) (i32.const 0))
  (global $check (mut i32) (i32.const 0))
  (func $expect (param $got i32) (param $want i32)
    (global.set $check (i32.add (global.get $check) (i32.const 1)))
    (if (i32.and (i32.eqz (global.get $fail)) (i32.ne (local.get $got) (local.get $want)))
      (then (global.set $fail (global.get $check)))))
"#;

#[tokio::test]
async fn hostcalls_answer_as_the_reference_host() {
    let host = test_host();
    let d = Data::new(&[
        "x-missing",
        "x",
        "v",
        "request\0useragent",
        "connection\0tls_version",
        "my\0prop",
        "request\0path",
        "k",
        "hits",
        "lat",
        "auth",
        "x-conformance",
    ]);
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
        r#"{EXPECT}
           (data (i32.const 3072) "{hw}")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $a i32)
             ;; 1-2: a read of nothing (no plugin configuration) is OK without
             ;; the allocator and without touching the out-pointers
             (local.set $a (global.get $allocs))
             (call $expect (call $get_buffer (i32.const 7) (i32.const 0) (i32.const -1) (i32.const 6553600) (i32.const -4)) (i32.const 0))
             (call $expect (i32.sub (global.get $allocs) (local.get $a)) (i32.const 0))
             ;; 3-4: its status is OK with size 0
             (i32.store (i32.const 1100) (i32.const 99))
             (call $expect (call $buffer_status (i32.const 7) (i32.const 1100) (i32.const 1104)) (i32.const 0))
             (call $expect (i32.load (i32.const 1100)) (i32.const 0))
             ;; 5: a missing header is NOT_FOUND
             (call $expect (call $get_header (i32.const 0) {missing} (i32.const 1100) (i32.const 1104)) (i32.const 1))
             ;; 6: a map not available here (no callout answer) is BAD_ARGUMENT
             (call $expect (call $get_header (i32.const 6) {x} (i32.const 1100) (i32.const 1104)) (i32.const 2))
             ;; 7-8: ...but its pairs read as empty, OK
             (i32.store (i32.const 1104) (i32.const 99))
             (call $expect (call $get_pairs (i32.const 6) (i32.const 1100) (i32.const 1104)) (i32.const 0))
             (call $expect (i32.load (i32.const 1104)) (i32.const 0))
             ;; 9: callout answers are read-only
             (call $expect (call $add_header (i32.const 6) {x} {v}) (i32.const 2))
             ;; 10: an unknown map type is BAD_ARGUMENT
             (call $expect (call $get_header (i32.const 8) {x} (i32.const 1100) (i32.const 1104)) (i32.const 2))
             ;; 11-12: an absent property is NOT_FOUND (no user-agent; no TLS)
             (call $expect (call $get_prop {ua} (i32.const 1100) (i32.const 1104)) (i32.const 1))
             (call $expect (call $get_prop {tls} (i32.const 1100) (i32.const 1104)) (i32.const 1))
             ;; 13-15: a property of the filter's own reads back
             (call $expect (call $set_prop {prop} {v}) (i32.const 0))
             (call $expect (call $get_prop {prop} (i32.const 1100) (i32.const 1104)) (i32.const 0))
             (call $expect (i32.load (i32.const 1104)) (i32.const 1))
             ;; 16-18: setting one of the gateway's own properties is OK (as
             ;; in Envoy) but reads keep the gateway's value
             (call $expect (call $set_prop {path} {v}) (i32.const 0))
             (call $expect (call $get_prop {path} (i32.const 1100) (i32.const 1104)) (i32.const 0))
             (call $expect (i32.load (i32.const 1104)) (i32.const 9))
             ;; 19-21: stream types: downstream OK, upstream unimplemented; closing them OK
             (call $expect (call $continue (i32.const 2)) (i32.const 0))
             (call $expect (call $continue (i32.const 3)) (i32.const 12))
             (call $expect (call $close (i32.const 3)) (i32.const 0))
             ;; 22: proxy_done with nothing pending is NOT_FOUND
             (call $expect (call $done) (i32.const 1))
             ;; 23: a CAS on a key not yet there is ignored
             (call $expect (call $set_shared {k} {v} (i32.const 99)) (i32.const 0))
             ;; 24: the size of a map not available is BAD_ARGUMENT
             (call $expect (call $map_size (i32.const 6) (i32.const 1100)) (i32.const 2))
             ;; 25: configuration is read-only
             (call $expect (call $set_buffer (i32.const 6) (i32.const 0) (i32.const 0) {v}) (i32.const 2))
             ;; 26-27: a counter cannot be incremented by 0
             (call $expect (call $define_metric (i32.const 0) {hits} (i32.const 1108)) (i32.const 0))
             (call $expect (call $increment_metric (i32.load (i32.const 1108)) (i64.const 0)) (i32.const 2))
             ;; 28-29: record adds to a counter
             (call $expect (call $record_metric (i32.load (i32.const 1108)) (i64.const 5)) (i32.const 0))
             (drop (call $get_metric (i32.load (i32.const 1108)) (i32.const 1120)))
             (call $expect (i32.load (i32.const 1120)) (i32.const 5))
             ;; 30-31: a histogram cannot be read back
             (call $expect (call $define_metric (i32.const 2) {lat} (i32.const 1112)) (i32.const 0))
             (call $expect (call $get_metric (i32.load (i32.const 1112)) (i32.const 1120)) (i32.const 2))
             ;; 32: a negative callout timeout is BAD_ARGUMENT
             (call $expect (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 1116)) (i32.const 2))
             ;; 33-34: buffers that do not exist here are NOT_FOUND, unknown ones BAD_ARGUMENT
             (call $expect (call $get_buffer (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 1100) (i32.const 1104)) (i32.const 1))
             (call $expect (call $get_buffer (i32.const 9) (i32.const 0) (i32.const 1) (i32.const 1100) (i32.const 1104)) (i32.const 2))
             (i32.store8 (i32.const 2000) (i32.add (i32.const 64) (global.get $fail)))
             (drop (call $add_header (i32.const 0) {xc} (i32.const 2000) (i32.const 1)))
             (i32.const 0))"#,
        missing = d.at("x-missing"),
        x = d.at("x"),
        v = d.at("v"),
        ua = d.at("request\0useragent"),
        tls = d.at("connection\0tls_version"),
        prop = d.at("my\0prop"),
        path = d.at("request\0path"),
        k = d.at("k"),
        hits = d.at("hits"),
        lat = d.at("lat"),
        auth = d.at("auth"),
        hl = call_headers.len(),
        xc = d.at("x-conformance"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(request(&[])).await.expect("forwarded");
    let mark = req
        .headers()
        .get("x-conformance")
        .map(|v| v.as_bytes()[0])
        .expect("the guest ran every check");
    assert_eq!(
        mark,
        b'@',
        "check {} differs from the reference host",
        mark - b'@'
    );
}

#[tokio::test]
async fn a_callout_answer_arrives_on_the_root_context() {
    let host = test_host();
    let d = Data::new(&["auth", "x-root"]);
    let call_headers = crate::filter::abi::encode_pairs(
        [
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/check"),
            (b":authority", b"auth"),
        ]
        .into_iter(),
    );
    let hw: String = call_headers.iter().map(|b| format!("\\{b:02x}")).collect();
    // The answer's context id is written as one digit into `x-root`.
    let body = format!(
        r#"(data (i32.const 3072) "{hw}")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1032))
               (then unreachable))
             {remember}
             (i32.const 1))
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             (i32.store8 (i32.const 2000) (i32.add (i32.const 48) (local.get 0)))
             {recall}
             (drop (call $add_header (i32.const 0) {xroot} (i32.const 2000) (i32.const 1)))
             (drop (call $continue (i32.const 0))))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
        xroot = d.at("x-root"),
        remember = REMEMBER_CALLER,
        recall = RECALL_CALLER,
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = tokio::time::timeout(Duration::from_secs(5), run.on_request(request(&[])))
        .await
        .expect("in time")
        .expect("forwarded");
    assert_eq!(
        req.headers().get("x-root").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
}
