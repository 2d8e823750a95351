//! Circuit breakers as clients see them: beyond `max_requests`,
//! `max_connections` or `max_pending`, an immediate 503 naming the limit,
//! nothing sent upstream, and the refusal counted.

use std::time::{Duration, Instant};

use gateway_tests::{Fault, FaultyUpstream, Gateway, Scrape};

/// The admin (for metrics) and one HTTP listener; routes follow.
const ADMIN_AND_LISTENER: &str = r#"
    [admin]
    address = "127.0.0.1:0"
    [access_log]
    enabled = false
    [[listener]]
    name = "web"
    protocol = "http"
    address = "127.0.0.1:0"
"#;

#[tokio::test]
async fn beyond_a_circuit_breaker_limit_the_answer_is_an_immediate_503_naming_it() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Slow(Duration::from_secs(30)));
    b.set(Fault::Slow(Duration::from_secs(30)));
    // Cluster `c` takes two requests at once; cluster `narrow` one
    // connection.
    let text = format!(
        r#"{ADMIN_AND_LISTENER}
        [[listener.route]]
        path_prefix = "/narrow"
        cluster = "narrow"
        timeout = "60s"
        [[listener.route]]
        path_prefix = "/"
        cluster = "c"
        timeout = "60s"

        [[cluster]]
        name = "c"
        endpoints = ["{}"]
        [cluster.circuit_breaker]
        max_requests = 2

        [[cluster]]
        name = "narrow"
        endpoints = ["{}"]
        [cluster.circuit_breaker]
        max_connections = 1
        "#,
        a.addr, b.addr
    );
    let gateway = Gateway::start(&text).await;

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut client = gateway.http1("web").await;
        held.push(tokio::spawn(async move { client.get("/slow").await }));
    }
    assert!(a.wait_for(2).await, "two requests reached the upstream");
    let mut client = gateway.http1("web").await;
    let started = Instant::now();
    let reply = client.get("/slow").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-gateway-overloaded"), Some("max_requests"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        a.count(),
        2,
        "the refused request never reached the upstream"
    );

    let mut narrow = gateway.http1("web").await;
    held.push(tokio::spawn(
        async move { narrow.get("/narrow/slow").await },
    ));
    assert!(b.wait_for(1).await);
    let reply = client.get("/narrow/slow").await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.header("x-gateway-overloaded"),
        Some("max_connections")
    );
    assert_eq!(b.count(), 1);

    let metrics = Scrape::of(&gateway).await;
    for (cluster, limit) in [("c", "max_requests"), ("narrow", "max_connections")] {
        let series =
            format!(r#"gateway_cluster_overloaded_total{{cluster="{cluster}",reason="{limit}"}}"#);
        assert_eq!(metrics.value(&series), 1.0, "{series}\n{}", metrics.text());
    }
    assert_eq!(
        metrics.value(r#"gateway_cluster_requests_active{cluster="c"}"#),
        2.0
    );
    for task in held {
        task.abort();
    }
}

#[tokio::test]
async fn beyond_max_pending_a_request_waiting_for_a_connection_is_refused() {
    // An endpoint that accepts connections and never answers the TLS
    // handshake: a connection to it stays pending until connect_timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("address");
    let (accepted_tx, mut accepted) = tokio::sync::watch::channel(0usize);
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
            accepted_tx.send_replace(held.len());
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    gateway_tests::tls::Pki::new("stall ca")
        .ca
        .write(dir.path(), "ca");
    let text = format!(
        r#"{ADMIN_AND_LISTENER}
        [[listener.route]]
        path_prefix = "/"
        cluster = "stall"
        [[cluster]]
        name = "stall"
        endpoints = ["{addr}"]
        connect_timeout = "20s"
        request_timeout = "30s"
        [cluster.tls]
        ca = "ca.crt"
        [cluster.circuit_breaker]
        max_pending = 1
        "#
    );
    let gateway = Gateway::start_in(dir, &text).await;
    let mut first = gateway.http1("web").await;
    let waiting = tokio::spawn(async move { first.get("/x").await });
    let reached = tokio::time::timeout(gateway_tests::WAIT, accepted.wait_for(|n| *n >= 1))
        .await
        .is_ok_and(|r| r.is_ok());
    assert!(reached, "the first request's connection was accepted");

    let mut second = gateway.http1("web").await;
    let started = Instant::now();
    let reply = second.get("/x").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-gateway-overloaded"), Some("max_pending"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(*accepted.borrow(), 1, "no second connection was attempted");
    let metrics = Scrape::of(&gateway).await;
    assert_eq!(
        metrics.value(r#"gateway_cluster_overloaded_total{cluster="stall",reason="max_pending"}"#),
        1.0,
        "{}",
        metrics.text()
    );
    assert_eq!(
        metrics.value(r#"gateway_cluster_pending{cluster="stall"}"#),
        1.0
    );
    waiting.abort();
    holder.abort();
}
