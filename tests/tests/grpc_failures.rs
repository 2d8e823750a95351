//! What a gRPC client gets when things go wrong: the gateway's own
//! answers as gRPC statuses (no route, no upstream, a filter's 401, a
//! malformed request), deadlines from `grpc-timeout`, an upstream killed
//! mid-stream, a stream cut for silence.

use std::time::{Duration, Instant};

use gateway_tests::grpc::{self, drain, gateway, method, request, text, GrpcUpstream, RawCodec};
use gateway_tests::{wasm, WAIT};
use tonic::Code;

#[tokio::test]
async fn gateway_failures_reach_grpc_clients_as_grpc_statuses() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;

    client.ready().await.expect("ready");
    let path = "/other.Svc/Call".parse().expect("path");
    let status = client
        .unary(request("x"), path, RawCodec)
        .await
        .expect_err("no route");
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(status.message(), "no route");
    assert!(gateway.log_count_reaches("status=404", 1, WAIT).await);

    client.ready().await.expect("ready");
    let path = "/down/Call".parse().expect("path");
    let status = client
        .unary(request("x"), path, RawCodec)
        .await
        .expect_err("down");
    // The connect fails (and, retried, finds the endpoint ejected).
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().ends_with("in cluster down"),
        "{}",
        status.message()
    );

    // That failure ejected the cluster's only endpoint: no healthy one.
    client.ready().await.expect("ready");
    let path = "/down/Call".parse().expect("path");
    let status = client
        .unary(request("x"), path, RawCodec)
        .await
        .expect_err("none healthy");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("healthy"), "{}", status.message());
    assert!(status.message().contains("down"), "{}", status.message());
}

#[tokio::test]
async fn a_filter_rejecting_by_metadata_gives_unauthenticated() {
    let upstream = GrpcUpstream::start("u", None).await;
    let filter = format!(
        r#"
        [[listener.filter]]
        name = "auth"
        path = "{}"
        config = '{{"schemes": ["Bearer"], "tokens": ["letmein"]}}'
        "#,
        wasm::path("filter-auth").display()
    );
    let gateway = gateway(&upstream, "", &filter).await;
    let mut client = grpc::client(gateway.addr("web")).await;

    client.ready().await.expect("ready");
    let status = client
        .unary(request("x"), method("Unary"), RawCodec)
        .await
        .expect_err("rejected");
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "unauthorized");
    // The access log keeps the HTTP status the answer stands for.
    assert!(gateway.log_count_reaches("status=401", 1, WAIT).await);

    client.ready().await.expect("ready");
    let mut allowed = request("x");
    allowed
        .metadata_mut()
        .insert("authorization", "Bearer letmein".parse().expect("value"));
    let answer = client
        .unary(allowed, method("Unary"), RawCodec)
        .await
        .expect("allowed");
    assert_eq!(text(answer.get_ref()), "u:x");
}

#[tokio::test]
async fn grpc_timeout_bounds_the_call_before_and_during_the_answer() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;

    // No answer within the deadline: DEADLINE_EXCEEDED from the gateway.
    client.ready().await.expect("ready");
    let mut slow = request("x");
    slow.metadata_mut()
        .insert("x-sleep-ms", "5000".parse().expect("value"));
    slow.set_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let status = client
        .unary(slow, method("Unary"), RawCodec)
        .await
        .expect_err("deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // A stream still open at the deadline ends with DEADLINE_EXCEEDED.
    client.ready().await.expect("ready");
    let mut held = request("1");
    held.metadata_mut()
        .insert("x-hold", "1".parse().expect("value"));
    held.set_timeout(Duration::from_millis(300));
    let mut stream = client
        .server_streaming(held, method("ServerStream"), RawCodec)
        .await
        .expect("call")
        .into_inner();
    let (got, end) = drain(&mut stream).await;
    assert_eq!(got, ["0"]);
    assert_eq!(end.expect_err("deadline").0, Code::DeadlineExceeded);
}

#[tokio::test]
async fn an_upstream_killed_mid_stream_gives_an_error_and_the_gateway_serves_on() {
    let upstream = GrpcUpstream::start("doomed", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;
    client.ready().await.expect("ready");
    let mut held = request("1");
    held.metadata_mut()
        .insert("x-hold", "1".parse().expect("value"));
    let mut stream = client
        .server_streaming(held, method("ServerStream"), RawCodec)
        .await
        .expect("call")
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("in time");
    assert_eq!(first.expect("ok").map(|b| text(&b)), Some("0".into()));
    upstream.kill();
    let (got, end) = drain(&mut stream).await;
    assert!(got.is_empty());
    let (code, _) = end.expect_err("the call fails");
    assert_ne!(code, Code::Ok);

    // The gateway itself is fine: the next call gets a clean gRPC error
    // (no upstream left), and plain requests are served.
    client.ready().await.expect("ready");
    let status = client
        .unary(request("x"), method("Unary"), RawCodec)
        .await
        .expect_err("upstream gone");
    assert_eq!(status.code(), Code::Unavailable);
    let mut http = gateway.http1("web").await;
    assert_eq!(http.get("/nowhere").await.status, 404);
}

#[tokio::test]
async fn a_stream_silent_past_response_idle_timeout_is_cut() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "response_idle_timeout = \"300ms\"", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;
    client.ready().await.expect("ready");
    let mut held = request("1");
    held.metadata_mut()
        .insert("x-hold", "1".parse().expect("value"));
    let started = Instant::now();
    let mut stream = client
        .server_streaming(held, method("ServerStream"), RawCodec)
        .await
        .expect("call")
        .into_inner();
    let (got, end) = drain(&mut stream).await;
    assert_eq!(got, ["0"]);
    let (code, _) = end.expect_err("cut");
    assert_ne!(code, Code::Ok);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_malformed_grpc_request_is_answered_in_grpc_form() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;
    client.ready().await.expect("ready");
    // A raw `\` in the path is malformed (400): INTERNAL, as Envoy maps it.
    let path = "/test.Echo/Un%5Cary%zz".parse().expect("path");
    let status = client
        .unary(request("x"), path, RawCodec)
        .await
        .expect_err("bad path");
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().starts_with("bad request"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn http2_connections_count_against_the_circuit_breaker() {
    let upstream = GrpcUpstream::start("u", None).await;
    let limits = "h2_max_concurrent_streams = 1\n[cluster.circuit_breaker]\nmax_connections = 1";
    let gateway = gateway(&upstream, limits, "").await;
    let mut client = grpc::client(gateway.addr("web")).await;

    // One held call fills the only connection the breaker allows.
    client.ready().await.expect("ready");
    let mut held = request("1");
    held.metadata_mut()
        .insert("x-hold", "1".parse().expect("value"));
    let mut stream = client
        .server_streaming(held, method("ServerStream"), RawCodec)
        .await
        .expect("call")
        .into_inner();
    let first = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("in time");
    assert_eq!(first.expect("ok").map(|b| text(&b)), Some("0".into()));

    // A second call would need a second connection: refused at once.
    client.ready().await.expect("ready");
    let status = client
        .unary(request("x"), method("Unary"), RawCodec)
        .await
        .expect_err("overloaded");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status
            .metadata()
            .get("x-gateway-overloaded")
            .map(|v| v.to_str().unwrap_or("")),
        Some("max_connections")
    );
    assert_eq!(upstream.connections(), 1);

    upstream.release();
    assert_eq!(drain(&mut stream).await, (Vec::new(), Ok(())));
}

#[tokio::test]
async fn calls_waiting_on_a_connect_that_fails_do_not_connect_one_by_one() {
    // An endpoint that accepts TCP and never answers the TLS handshake:
    // every connect ends at connect_timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            sockets.push(socket);
        }
    });
    let pki = gateway_tests::tls::Pki::new("ca");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca.cert_pem).expect("CA");
    let gateway = gateway_tests::Gateway::start_in(
        dir,
        &format!(
            r#"
            [runtime]
            workers = 1
            [[listener]]
            name = "web"
            protocol = "http"
            address = "127.0.0.1:0"
            [[listener.route]]
            path_prefix = "/"
            cluster = "c"
            [[cluster]]
            name = "c"
            endpoints = ["{addr}"]
            protocol = "h2"
            connect_timeout = "500ms"
            eject_after_failures = 1000
            [cluster.tls]
            ca = "ca.pem"
            sni = "upstream.test"
            "#
        ),
    )
    .await;
    let client = grpc::client(gateway.addr("web")).await;
    let started = Instant::now();
    let calls = (0..8).map(|_| {
        let mut c = client.clone();
        async move {
            c.ready().await.expect("ready");
            c.unary(request("x"), method("Unary"), RawCodec).await
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.expect_err("no upstream").code(), Code::Unavailable);
    }
    // One by one, 8 calls would take at least 8 connect timeouts (4 s).
    let took = started.elapsed();
    assert!(took < Duration::from_millis(3500), "{took:?}");
    held.abort();
}
