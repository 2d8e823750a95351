//! Filters written against the official proxy-wasm Rust SDK run unchanged:
//! each test loads a real `.wasm` built from `tests/wasm/` and checks that
//! its SDK calls mean here what they mean on Envoy.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use gateway_tests::{wasm, Gateway, Upstream};
use http::Request;
use http_body_util::Full;

/// One `[[listener.filter]]` block.
fn filter(name: &str, crate_name: &str, config: Option<&str>) -> String {
    let mut block = format!(
        "[[listener.filter]]\nname = \"{name}\"\npath = \"{}\"\n",
        wasm::path(crate_name).display()
    );
    if let Some(config) = config {
        block.push_str(&format!("config = '{config}'\n"));
    }
    block
}

/// A listener `web` with `filters`, everything routed to `up`, and a
/// cluster `authz` on `authz` (or `up` when absent).
fn config(up: &Upstream, authz: Option<&Upstream>, filters: &str) -> String {
    format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
{filters}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"

        [[cluster]]
        name = "up"
        endpoints = ["{}"]

        [[cluster]]
        name = "authz"
        endpoints = ["{}"]
        "#,
        up.addr,
        authz.unwrap_or(up).addr
    )
}

fn get_with(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

#[tokio::test]
async fn a_filter_answers_a_path_locally() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        None,
        &filter("local", "tw-local-response", None),
    ))
    .await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/local").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "hello from wasm");
    assert_eq!(reply.header("x-wasm-local"), Some("1"));
    assert!(
        up.received().is_empty(),
        "the upstream must not see a locally answered request"
    );
    assert_eq!(client.get("/other").await.text(), "up");
    assert_eq!(up.received().len(), 1);
}

#[tokio::test]
async fn request_and_response_headers_are_changed_as_configured() {
    let up = Upstream::start("up").await;
    let chain = filter(
        "headers",
        "tw-header-mutation",
        Some(
            r#"{"request_header": ["x-from-config", "yes"], "response_header": ["x-out", "stamped"]}"#,
        ),
    );
    let gateway = Gateway::start(&config(&up, None, &chain)).await;
    for mut client in [None, Some(gateway.http2("web").await)] {
        let req = get_with("/h", &[("x-remove-me", "1"), ("x-keep", "1")]);
        let reply = match client.as_mut() {
            Some(h2) => h2.send(req).await,
            None => gateway.http1("web").await.send(req).await,
        };
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-out"), Some("stamped"));
        let seen = up.received().pop().expect("upstream saw the request");
        assert_eq!(
            seen.headers.get("x-from-config").map(|v| v.as_bytes()),
            Some(&b"yes"[..])
        );
        assert!(!seen.headers.contains_key("x-remove-me"));
        assert!(seen.headers.contains_key("x-keep"));
    }
}

#[tokio::test]
async fn an_http_callout_allows_or_denies() {
    let (up, authz) = (Upstream::start("up").await, Upstream::start("authz").await);
    let chain = filter(
        "ext-authz",
        "tw-callout-auth",
        Some(r#"{"cluster": "authz", "path": "/check"}"#),
    );
    let gateway = Gateway::start(&config(&up, Some(&authz), &chain)).await;
    let mut client = gateway.http1("web").await;

    let allowed = client
        .send(get_with("/private", &[("authorization", "Bearer good")]))
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.text(), "up");
    let seen = up
        .received()
        .pop()
        .expect("allowed request reached the upstream");
    assert_eq!(seen.headers["x-auth-checked"], "1");

    let denied = client
        .send(get_with("/private", &[("authorization", "Bearer bad")]))
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.text(), "denied by callout");
    assert_eq!(
        up.received().len(),
        1,
        "the denied request never reached the upstream"
    );
    let checks = authz.received();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[1].headers["x-original-path"], "/private");
}

#[tokio::test]
async fn a_whole_response_body_is_buffered_and_rewritten() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        None,
        &filter("upper", "tw-body-rewrite", None),
    ))
    .await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/download/300000").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-body-rewritten"), Some("upper"));
    assert_eq!(reply.body.len(), 300_000);
    assert!(reply.body.iter().all(|&b| b == b'X'), "body not uppercased");
    // The connection is still good for the next exchange.
    assert_eq!(client.get("/small").await.text(), "UP");
}

#[tokio::test]
async fn a_body_grown_by_a_filter_that_leaves_content_length_is_framed_by_its_real_length() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        None,
        &filter("append", "tw-body-rewrite", Some("append:+tail")),
    ))
    .await;
    for mut client in [None, Some(gateway.http2("web").await)] {
        // The upstream answers an upload with the length it received.
        let upload = Request::post("/upload")
            .header("content-length", "5")
            .body(Full::new(Bytes::from_static(b"hello")))
            .expect("request");
        let reply = match client.as_mut() {
            Some(h2) => h2.send(upload).await,
            None => gateway.http1("web").await.send(upload).await,
        };
        assert_eq!(reply.status, 200);
        // 5 + "+tail" arrived upstream; the answer grew by "+tail" too.
        assert_eq!(reply.text(), "10+tail");
        // A streamed answer, larger than one read.
        let reply = match client.as_mut() {
            Some(h2) => h2.get("/download/300000").await,
            None => gateway.http1("web").await.get("/download/300000").await,
        };
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), 300_005);
        assert!(reply.body.ends_with(b"+tail"));
        if let Some(length) = reply.header("content-length") {
            assert_eq!(length, "300005");
        }
    }
    // On HTTP/1.1 the keep-alive connection stays in step.
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/download/10").await.body.len(), 15);
    assert_eq!(client.get("/small").await.text(), "up+tail");
}

#[tokio::test]
async fn shared_data_counts_requests_across_instances() {
    let up = Upstream::start("up").await;
    let chain = filter("counter", "tw-shared-counter", None) + "instances = 4\n";
    let gateway = Gateway::start(&config(&up, None, &chain)).await;
    let client = gateway.http2("web").await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move { client.get("/slow/10").await }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        let reply = task.await.expect("task");
        let count: u32 = reply
            .header("x-request-count")
            .and_then(|v| v.parse().ok())
            .expect("count header");
        assert!(seen.insert(count), "count {count} given twice");
    }
    assert_eq!(seen, (1..=40).collect::<HashSet<u32>>());
}

#[tokio::test]
async fn a_tick_timer_fires_while_the_filter_is_loaded() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        None,
        &filter("ticks", "tw-tick-counter", Some("20")),
    ))
    .await;
    let mut client = gateway.http1("web").await;
    let first: u64 = client
        .get("/a")
        .await
        .header("x-tick-count")
        .and_then(|v| v.parse().ok())
        .expect("tick count");
    // The upstream holds this request 400 ms: ticks keep coming meanwhile.
    let later: u64 = client
        .get("/slow/400")
        .await
        .header("x-tick-count")
        .and_then(|v| v.parse().ok())
        .expect("tick count");
    assert!(later >= first + 5, "ticks: {first} then {later}");
}

#[tokio::test]
async fn a_filter_whose_configure_fails_or_lacks_the_abi_is_rejected_with_a_reason() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let no_abi = wasm::wat_to(
        r#"(module (memory (export "memory") 1))"#,
        &dir.path().join("no-abi.wasm"),
    );
    let chain = format!(
        "{}failure = \"open\"\n[[listener.filter]]\nname = \"no-abi\"\npath = \"{}\"\nfailure = \"closed\"\n",
        filter("bad-config", "tw-tick-counter", Some("not a number")),
        no_abi.display()
    );
    let gateway = Gateway::start_in(dir, &config(&up, None, &chain)).await;
    let logs = gateway.logs().join("\n");
    assert!(logs.contains("bad-config"), "{logs}");
    assert!(
        logs.contains("proxy_abi_version"),
        "the reason names the missing ABI marker: {logs}"
    );
    // The open one is skipped; the closed one answers 503 naming itself.
    let reply = gateway.http1("web").await.get("/x").await;
    assert_eq!(reply.status, 503);
    assert!(reply.text().contains("no-abi"), "{}", reply.text());
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn a_chain_of_three_serves_a_thousand_requests_in_flight_in_both_isolation_modes() {
    for isolation in ["shared", "request"] {
        let up = Upstream::start("up").await;
        let mode = format!("isolation = \"{isolation}\"\n");
        let chain = [
            filter("headers", "tw-header-mutation", None) + &mode,
            filter("local", "tw-local-response", None) + &mode,
            filter("counter", "tw-shared-counter", None) + &mode,
        ]
        .concat();
        // Request isolation needs an instance per filter per request in
        // flight: 3 x 1,000 pool slots.
        let text = format!(
            "[wasm]\nmax_instances = 3100\n{}",
            config(&up, None, &chain)
        )
        .replace(
            "address = \"127.0.0.1:0\"",
            "address = \"127.0.0.1:0\"\n[listener.http]\nh2_max_concurrent_streams = 1000",
        )
        .replace(
            // A thousand connects at once can overflow an accept backlog;
            // the kernel retries a dropped SYN after a second.
            &format!("endpoints = [\"{}\"]", up.addr),
            &format!("endpoints = [\"{}\"]\nconnect_timeout = \"5s\"", up.addr),
        );
        let gateway = Gateway::start(&text).await;
        // HTTP/2: 1,000 concurrent streams on one connection.
        let client = gateway.http2("web").await;
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move {
                client.get(&format!("/slow/50?i={i}")).await
            }));
        }
        let mut counts = HashSet::new();
        for task in tasks {
            let reply = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("in time")
                .expect("task");
            assert_eq!(reply.status, 200, "{isolation}: {}", reply.text());
            assert_eq!(reply.header("x-wasm-response"), Some("added"));
            counts.insert(reply.header("x-request-count").map(str::to_owned));
        }
        assert_eq!(
            counts.len(),
            1000,
            "{isolation}: every request counted once"
        );
        assert!(up
            .received()
            .iter()
            .all(|r| r.headers.contains_key("x-wasm-request")));
        // HTTP/1.1: 1,000 connections, one request each, all in flight.
        let addr = gateway.addr("web");
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            tasks.push(tokio::spawn(async move {
                let mut client = gateway_tests::Http1Client::connect(addr).await;
                client.get("/slow/50").await
            }));
        }
        for task in tasks {
            let reply = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("in time")
                .expect("task");
            assert_eq!(reply.status, 200, "{isolation}: {}", reply.text());
        }
        assert_eq!(up.received().len(), 2000);
    }
}

#[tokio::test]
async fn a_restart_takes_compiled_code_from_the_cache() {
    let up = Upstream::start("up").await;
    let cache = tempfile::tempdir().expect("cache dir");
    let text = format!(
        "[wasm]\ncache_dir = \"{}\"\n{}",
        cache.path().display(),
        config(&up, None, &filter("local", "tw-local-response", None))
    );
    let cold = Gateway::start(&text).await;
    assert!(cold.logs().iter().any(|l| l.contains("module compiled")));
    drop(cold);
    let warm = Gateway::start(&text).await;
    let logs = warm.logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("taken from the compile cache")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("module compiled")),
        "a warm start must not recompile"
    );
    assert_eq!(
        warm.http1("web").await.get("/local").await.text(),
        "hello from wasm"
    );
}

/// A module that answers every request itself, alternating two answers
/// that differ in their fields and bodies: `x-answer: first` with `no`,
/// then `x-answer: second-one` with `content-type: text/plain` and
/// `denied`, and so on.
fn alternating_answers() -> String {
    format!(
        r#"(module
  (import "env" "proxy_send_local_response"
    (func $respond (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (data (i32.const 100) "\01\00\00\00\08\00\00\00\05\00\00\00x-answer\00first\00")
  (data (i32.const 200) "\02\00\00\00\08\00\00\00\0a\00\00\00\0c\00\00\00\0a\00\00\00x-answer\00second-one\00content-type\00text/plain\00")
  (data (i32.const 300) "no")
  (data (i32.const 310) "denied")
  {exports}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $respond (i32.const 401) (i32.const 0) (i32.const 0)
      (select (i32.const 310) (i32.const 300) (global.get $n))
      (select (i32.const 6) (i32.const 2) (global.get $n))
      (select (i32.const 200) (i32.const 100) (global.get $n))
      (select (i32.const 64) (i32.const 27) (global.get $n))
      (i32.const -1)))
    (global.set $n (i32.xor (global.get $n) (i32.const 1)))
    (i32.const 1)))"#,
        exports = wasm::WAT_BUMP_HOST_EXPORTS,
    )
}

/// An instance keeps its last answer's fields and body to share them when
/// the next answer is the same: a different one never comes from them.
#[tokio::test]
async fn each_local_answer_carries_its_own_fields_and_body() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let module = wasm::wat_to(&alternating_answers(), &dir.path().join("answers.wasm"));
    let block = format!(
        "[[listener.filter]]\nname = \"answers\"\npath = \"{}\"\n",
        module.display()
    );
    let gateway = Gateway::start(&config(&up, None, &block)).await;
    let mut client = gateway.http1("web").await;
    for round in 0..3 {
        let first = client.get("/").await;
        assert_eq!(first.status, 401, "round {round}");
        assert_eq!(first.header("x-answer"), Some("first"), "round {round}");
        assert_eq!(first.header("content-type"), None, "round {round}");
        assert_eq!(first.text(), "no", "round {round}");
        let second = client.get("/").await;
        assert_eq!(second.status, 401, "round {round}");
        assert_eq!(
            second.header("x-answer"),
            Some("second-one"),
            "round {round}"
        );
        assert_eq!(
            second.header("content-type"),
            Some("text/plain"),
            "round {round}"
        );
        assert_eq!(second.text(), "denied", "round {round}");
    }
    assert!(up.received().is_empty(), "every request was answered");
}
