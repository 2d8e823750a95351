//! The article's demo, as `examples/demo.sh` runs it, on free ports: the
//! real `examples/demo.toml`, the real seed sidecars and the bundled
//! `auth` and `router` filters built from `filters/`.

use std::path::Path;

use bytes::Bytes;
use gateway_tests::{wasm, Gateway, Upstream};
use http::Request;
use http_body_util::Full;

fn authorized(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("authorization", "Basic x")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

async fn demo() -> (Gateway, Upstream, Upstream) {
    let (a, b) = (
        Upstream::start("pong from a").await,
        Upstream::start("pong from b").await,
    );
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let text = std::fs::read_to_string(examples.join("demo.toml")).expect("demo.toml");
    let text = text
        .replace("127.0.0.1:8000", "127.0.0.1:0")
        .replace("127.0.0.1:8001", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("127.0.0.1:8080", &a.addr.to_string())
        .replace("127.0.0.1:8181", &b.addr.to_string());
    let dir = tempfile::tempdir().expect("dir");
    let seed = dir.path().join("seed");
    std::fs::create_dir(&seed).expect("mkdir");
    for sidecar in ["10-auth.toml", "20-router.toml"] {
        std::fs::copy(examples.join("seed").join(sidecar), seed.join(sidecar)).expect("sidecar");
    }
    std::fs::copy(wasm::path("filter-auth"), seed.join("10-auth.wasm")).expect("auth module");
    std::fs::copy(wasm::path("filter-router"), seed.join("20-router.wasm")).expect("router module");
    (Gateway::start_in(dir, &text).await, a, b)
}

#[tokio::test]
async fn the_articles_scenario() {
    let (gateway, a, b) = demo().await;
    let mut client = gateway.http1("web").await;

    // curl -H 'Authorization: Basic x' localhost:8000/ping -> 200 pong
    let reply = client.send(authorized("/ping")).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().starts_with("pong from "), "{}", reply.text());

    // curl localhost:8000/ping -> 401, and no upstream saw the request
    let seen_before = a.received().len() + b.received().len();
    let reply = client.get("/ping").await;
    assert_eq!(reply.status, 401);
    // The filter's prepared answer, whole, and the same on every denial.
    for reply in [reply, client.get("/ping").await] {
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.header("www-authenticate"),
            Some("Basic realm=\"gateway\"")
        );
        assert_eq!(reply.header("content-type"), Some("text/plain"));
        assert_eq!(reply.text(), "unauthorized\n");
    }
    assert_eq!(a.received().len() + b.received().len(), seen_before);

    // curl -H 'Authorization: Basic x' localhost:8000/other -> 404
    let reply = client.send(authorized("/other")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "not found\n");
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(a.received().len() + b.received().len(), seen_before);

    // Repeated /ping on one keep-alive connection alternates.
    let answers: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(client.send(authorized("/ping")).await.text());
        }
        v
    };
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "{answers:?}");
    }

    // The same through the L4 listener: one connection stays on one
    // upstream (L4 balances per connection), and the next connection goes
    // to the other one. L4 does not run the filters: no 401 there.
    let mut firsts = Vec::new();
    for _ in 0..2 {
        let mut l4 = gateway.http1("l4").await;
        let answers: Vec<String> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(l4.get("/ping").await.text());
            }
            v
        };
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "one L4 connection, one upstream: {answers:?}"
        );
        firsts.push(answers[0].clone());
    }
    assert_ne!(firsts[0], firsts[1], "successive L4 connections alternate");
}

#[tokio::test]
async fn the_admin_listener_reports_health_filters_config_and_metrics() {
    let (gateway, _a, _b) = demo().await;
    let mut web = gateway.http1("web").await;
    assert_eq!(web.get("/ping").await.status, 401);
    assert_eq!(web.send(authorized("/ping")).await.status, 200);

    let mut admin =
        gateway_tests::Http1Client::connect(gateway.admin.expect("admin address")).await;
    assert_eq!(admin.get("/healthz").await.status, 200);
    assert_eq!(admin.get("/ready").await.status, 200);

    let filters: serde_json::Value =
        serde_json::from_slice(&admin.get("/filters").await.body).expect("json");
    let listed = &filters["chains"][0]["folder"]["filters"];
    let names: Vec<&str> = listed
        .as_array()
        .expect("filters")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["10-auth", "20-router"]);
    assert!(listed
        .as_array()
        .expect("filters")
        .iter()
        .all(|f| f["state"] == "loaded" && f["generation"].as_u64().is_some()));

    let config = admin.get("/config").await.text();
    assert!(config.contains("\"filters_dir\""), "{config}");

    let metrics = admin.get("/metrics").await.text();
    for needle in [
        "gateway_requests_total{listener=\"web\"",
        "status=\"401\"",
        "gateway_request_duration_seconds_bucket",
        "gateway_filter_calls_total{filter=\"10-auth\",result=\"ok\"}",
        "gateway_filter_counter_total{filter=\"10-auth\",name=\"auth_denied\"} 1",
        "gateway_active_connections",
    ] {
        assert!(
            metrics.contains(needle),
            "metrics lack {needle}:\n{metrics}"
        );
    }
}
