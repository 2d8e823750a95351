//! What a guest can make the host allocate is bounded, over-limit calls get
//! a status (never a trap of the host), and a trap outside any request
//! (tick, queue) discards the instance so the next request gets a fresh one.

use super::*;

#[tokio::test]
async fn log_writes_copy_at_most_one_line_whatever_the_iovecs() {
    let host = test_host();
    let d = Data::new(&[]);
    // 8 calls, each with 1024 iovecs spanning the whole memory (1 GiB in all).
    let body = r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $i i32)
             (loop $fill
               (i32.store (i32.add (i32.const 16384) (i32.shl (local.get $i) (i32.const 3))) (i32.const 0))
               (i32.store (i32.add (i32.const 16388) (i32.shl (local.get $i) (i32.const 3))) (i32.const 131072))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $fill (i32.lt_u (local.get $i) (i32.const 1024))))
             (local.set $i (i32.const 0))
             (loop $write
               (if (call $fd_write (i32.const 1) (i32.const 16384) (i32.const 1024) (i32.const 1200)) (then unreachable))
               ;; everything is reported written, so the guest does not retry
               (if (i32.ne (i32.load (i32.const 1200)) (i32.const 134217728)) (then unreachable))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $write (i32.lt_u (local.get $i) (i32.const 8))))
             (i32.const 0))"#;
    let chain = chain_with(&host, &abi(&d, body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    // Copying it all would overrun the 100 ms deadline; one line per call does not.
    assert!(run.on_request(request(&[])).await.is_ok());
}

#[tokio::test]
async fn header_growth_is_bounded_per_map() {
    let host = test_host();
    let d = Data::new(&["x-big", "x-n", "v"]);
    let body = format!(
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $i i32)
             (memory.fill (i32.const 24576) (i32.const 97) (i32.const 102400))
             ;; two values of 100 KiB fit, a third goes over 256 KiB
             (if (call $add_header (i32.const 0) {big} (i32.const 24576) (i32.const 102400)) (then unreachable))
             (if (call $add_header (i32.const 0) {big} (i32.const 24576) (i32.const 102400)) (then unreachable))
             (if (i32.ne (call $add_header (i32.const 0) {big} (i32.const 24576) (i32.const 102400)) (i32.const 10)) (then unreachable))
             (if (i32.ne (call $replace_header (i32.const 0) {n} (i32.const 24576) (i32.const 102400)) (i32.const 10)) (then unreachable))
             ;; the count of headers is bounded too
             (drop (call $remove_header (i32.const 0) {big}))
             (block $full
               (loop $add
                 (br_if $full (call $add_header (i32.const 0) {n} {v}))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br_if $add (i32.lt_u (local.get $i) (i32.const 2000)))))
             (if (i32.ge_u (local.get $i) (i32.const 1024)) (then unreachable))
             (i32.const 0))"#,
        big = d.at("x-big"),
        n = d.at("x-n"),
        v = d.at("v"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |_| {}).await;
    let mut run = chain.start(meta()).expect("run");
    let req = run.on_request(request(&[])).await.expect("forwarded");
    let added = req.headers().get_all("x-n").iter().count();
    assert!((1000..1024).contains(&added), "{added} headers added");
}

#[tokio::test]
async fn a_body_never_grows_past_the_buffer_limit() {
    let host = test_host();
    let d = Data::new(&[]);
    let body = r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
             ;; 100 bytes appended to a body limited to 64: refused
             (if (i32.ne (call $set_buffer (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100)) (i32.const 10))
               (then unreachable))
             ;; within the limit: fine
             (if (call $set_buffer (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 64))
               (then unreachable))
             (i32.const 0))"#;
    let chain = chain_with(&host, &abi(&d, body), |c| {
        c.body_buffer_limit = bytesize::ByteSize::b(64);
    })
    .await;
    let mut run = chain.start(meta()).expect("run");
    let req = http::Request::builder()
        .uri("/")
        .body(full("hello"))
        .expect("request");
    let req = run.on_request(req).await.expect("forwarded");
    assert_eq!(body_text(req.into_body()).await.len(), 64);
}

/// A guest whose `proxy_on_tick` or `proxy_on_queue_ready` traps after
/// counting itself in a metric.
fn trapping_root_callbacks() -> String {
    let d = Data::new(&["q", "t", "ticks", "ready"]);
    let body = format!(
        r#"(global $queue (mut i32) (i32.const 0))
           (global $ticks (mut i32) (i32.const 0))
           (global $ready (mut i32) (i32.const 0))
           (func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $register_queue {q} (i32.const 1040)))
             (global.set $queue (i32.load (i32.const 1040)))
             (drop (call $define_metric (i32.const 0) {ticks} (i32.const 1044)))
             (global.set $ticks (i32.load (i32.const 1044)))
             (drop (call $define_metric (i32.const 0) {ready} (i32.const 1048)))
             (global.set $ready (i32.load (i32.const 1048)))
             (i32.const 1))
           (func (export "proxy_on_tick") (param i32)
             (drop (call $increment_metric (global.get $ticks) (i64.const 1)))
             unreachable)
           (func (export "proxy_on_queue_ready") (param i32 i32)
             (drop (call $increment_metric (global.get $ready) (i64.const 1)))
             unreachable)
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             ;; header `q` feeds the queue, header `t` starts the ticker
             (if (i32.eqz (call $get_header (i32.const 0) {q} (i32.const 1100) (i32.const 1104)))
               (then (drop (call $enqueue (global.get $queue) {q}))))
             (if (i32.eqz (call $get_header (i32.const 0) {t} (i32.const 1100) (i32.const 1104)))
               (then (drop (call $set_tick (i32.const 5)))))
             (i32.const 0))"#,
        q = d.at("q"),
        t = d.at("t"),
        ticks = d.at("ticks"),
        ready = d.at("ready"),
    );
    abi(&d, &body)
}

async fn trap_outside_requests(trigger: &str, metric_name: &str) {
    let host = test_host();
    let chain = chain_with(&host, &trapping_root_callbacks(), |c| c.instances = 1).await;
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[(trigger, "1")])).await.is_ok());
    run.finish();
    let metric = || {
        host.metrics()
            .iter()
            .filter(|m| m.name == metric_name)
            .map(|m| m.value)
            .sum::<i64>()
    };
    // Bounded wait for the root callback to have trapped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric() < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(metric() >= 1, "{:?}", host.metrics());
    // The poisoned instance is gone: the next requests get a fresh one.
    for _ in 0..2 {
        let mut run = chain.start(meta()).expect("run");
        assert!(
            run.on_request(request(&[])).await.is_ok(),
            "a fresh instance serves the next request"
        );
    }
}

#[tokio::test]
async fn a_trap_in_on_tick_discards_the_instance() {
    trap_outside_requests("t", "ticks").await;
}

#[tokio::test]
async fn a_trap_in_on_queue_ready_discards_the_instance() {
    trap_outside_requests("q", "ready").await;
}

#[tokio::test]
async fn a_trap_in_a_root_callout_answer_discards_the_instance() {
    let host = test_host();
    let d = Data::new(&["auth", "answers", "t"]);
    let call_headers = crate::filter::abi::encode_pairs(
        [
            (&b":method"[..], &b"GET"[..]),
            (b":path", b"/check"),
            (b":authority", b"auth"),
        ]
        .into_iter(),
    );
    let hw: String = call_headers.iter().map(|b| format!("\\{b:02x}")).collect();
    // A tick (started by a request with header `t`) makes one callout from
    // the root context; its answer traps.
    let body = format!(
        r#"(data (i32.const 3072) "{hw}")
           (global $answers (mut i32) (i32.const 0))
           (global $called (mut i32) (i32.const 0))
           (func (export "proxy_on_configure") (param i32 i32) (result i32)
             (drop (call $define_metric (i32.const 0) {answers} (i32.const 1044)))
             (global.set $answers (i32.load (i32.const 1044)))
             (i32.const 1))
           (func (export "proxy_on_tick") (param i32)
             (if (global.get $called) (then (return)))
             (global.set $called (i32.const 1))
             (drop (call $set_tick (i32.const 0)))
             (drop (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1032))))
           (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
             (drop (call $increment_metric (global.get $answers) (i64.const 1)))
             unreachable)
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             (if (i32.eqz (call $get_header (i32.const 0) {t} (i32.const 1100) (i32.const 1104)))
               (then (drop (call $set_tick (i32.const 5)))))
             (i32.const 0))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
        answers = d.at("answers"),
        t = d.at("t"),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| c.instances = 1).await;
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[("t", "1")])).await.is_ok());
    run.finish();
    let answers = || {
        host.metrics()
            .iter()
            .filter(|m| m.name == "answers")
            .map(|m| m.value)
            .sum::<i64>()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers() < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(answers() >= 1, "{:?}", host.metrics());
    let mut run = chain.start(meta()).expect("run");
    assert!(
        run.on_request(request(&[])).await.is_ok(),
        "a fresh instance serves the next request"
    );
}

#[tokio::test]
async fn names_and_callout_bodies_are_bounded_before_they_are_copied() {
    let host = test_host();
    let d = Data::new(&["auth"]);
    let call_headers = crate::filter::abi::encode_pairs(
        [
            (&b":method"[..], &b"POST"[..]),
            (b":path", b"/check"),
            (b":authority", b"auth"),
        ]
        .into_iter(),
    );
    let hw: String = call_headers.iter().map(|b| format!("\\{b:02x}")).collect();
    let body = format!(
        r#"(data (i32.const 3072) "{hw}")
           (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
             ;; a callout body over the filter's body_buffer_limit (64 bytes here)
             (if (i32.ne (call $http_call {auth} (i32.const 3072) (i32.const {hl}) (i32.const 0) (i32.const 65) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 1032)) (i32.const 10))
               (then unreachable))
             ;; metric and queue names of a whole memory
             (if (i32.ne (call $define_metric (i32.const 0) (i32.const 0) (i32.const 131072) (i32.const 1040)) (i32.const 2))
               (then unreachable))
             (if (i32.ne (call $register_queue (i32.const 0) (i32.const 131072) (i32.const 1040)) (i32.const 2))
               (then unreachable))
             (i32.const 0))"#,
        auth = d.at("auth"),
        hl = call_headers.len(),
    );
    let chain = chain_with(&host, &abi(&d, &body), |c| {
        c.body_buffer_limit = bytesize::ByteSize::b(64);
    })
    .await;
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[])).await.is_ok());
}
