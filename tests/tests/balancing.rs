//! L7 balancing is per request, not per connection: the heart of the
//! article the project started from.

use std::collections::HashMap;

use gateway_tests::{Gateway, Upstream};

fn config(a: &Upstream, b: &Upstream, policy: &str) -> String {
    format!(
        r#"
        [access_log]
        enabled = false

        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"

        [[listener.route]]
        path_prefix = "/"
        cluster = "ping_pong"

        [[cluster]]
        name = "ping_pong"
        endpoints = ["{}", "{}"]
        balance = "{policy}"
        "#,
        a.addr, b.addr
    )
}

#[tokio::test]
async fn one_keepalive_connection_alternates_between_endpoints() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gateway = Gateway::start(&config(&a, &b, "round_robin")).await;
    let mut client = gateway.http1("web").await;
    let mut answers = Vec::new();
    for _ in 0..10 {
        let reply = client.get("/ping").await;
        assert_eq!(reply.status, 200);
        answers.push(reply.text());
    }
    for pair in answers.windows(2) {
        assert_ne!(pair[0], pair[1], "answers must alternate: {answers:?}");
    }
    assert_eq!(a.received().len(), 5);
    assert_eq!(b.received().len(), 5);
    // Sequential requests reuse the pooled upstream connection.
    assert_eq!(a.connections(), 1, "upstream a saw {} connections", a.connections());
    assert_eq!(b.connections(), 1, "upstream b saw {} connections", b.connections());
}

#[tokio::test]
async fn concurrent_h2_streams_spread_over_endpoints() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gateway = Gateway::start(&config(&a, &b, "round_robin")).await;
    let client = gateway.http2("web").await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move { client.get(&format!("/ping/{i}")).await }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, 200);
        *counts.entry(reply.text()).or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&50), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&50), "{counts:?}");
    // Upstreams see HTTP/1.1, translated from HTTP/2.
    assert!(a.received().iter().all(|r| r.version == http::Version::HTTP_11));
    // Far fewer upstream connections than requests.
    assert!(a.connections() + b.connections() <= 100);
}

#[tokio::test]
async fn least_request_and_random_use_both_endpoints() {
    for policy in ["least_request", "random"] {
        let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
        let gateway = Gateway::start(&config(&a, &b, policy)).await;
        let client = gateway.http2("web").await;
        let mut tasks = Vec::new();
        for _ in 0..60 {
            let mut client = client.clone();
            tasks.push(tokio::spawn(async move { client.get("/slow/20").await }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task").status, 200);
        }
        let (na, nb) = (a.received().len(), b.received().len());
        assert_eq!(na + nb, 60);
        assert!(na > 0 && nb > 0, "{policy}: a={na} b={nb}");
    }
}
