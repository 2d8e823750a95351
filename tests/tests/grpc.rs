//! HTTP/2 and gRPC upstreams: a real tonic client and server through the
//! gateway, over h2c and TLS; trailers both ways; the gateway's own
//! answers to gRPC requests as gRPC statuses; deadlines; a dying upstream.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::grpc::{self, method, GrpcUpstream, RawCodec};
use gateway_tests::tls::Pki;
use gateway_tests::{check_config, wasm, Gateway, WAIT};
use http_body_util::BodyExt;
use tonic::Code;

/// One http listener routing `/test.Echo/` and `/plain`, `/trailers` to
/// cluster `c` (`cluster` is its extra keys), `/down/` to a dead port.
async fn gateway(upstream: &GrpcUpstream, cluster: &str, listener_extra: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
        [runtime]
        workers = 1

        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        {listener_extra}

        [[listener.route]]
        path_prefix = "/test.Echo/"
        cluster = "c"

        [[listener.route]]
        path_prefix = "/down/"
        cluster = "down"

        [[listener.route]]
        path = "/plain"
        cluster = "c"

        [[listener.route]]
        path = "/trailers"
        cluster = "c"

        [[cluster]]
        name = "c"
        endpoints = ["{}"]
        protocol = "h2c"
        {cluster}

        [[cluster]]
        name = "down"
        endpoints = ["127.0.0.1:1"]
        protocol = "h2c"
        "#,
        upstream.addr
    ))
    .await
}

fn request(message: &str) -> tonic::Request<Bytes> {
    tonic::Request::new(Bytes::from(message.to_owned()))
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every message of a server stream, then its end (`Ok`, or the status's
/// code and message).
async fn drain(stream: &mut tonic::Streaming<Bytes>) -> (Vec<String>, Result<(), (Code, String)>) {
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("stream stalled")
        {
            Ok(Some(m)) => got.push(text(&m)),
            Ok(None) => return (got, Ok(())),
            Err(status) => return (got, Err((status.code(), status.message().to_owned()))),
        }
    }
}

/// The four kinds of call, checked on one client.
async fn every_kind_of_call(client: &mut grpc::Client, name: &str) {
    client.ready().await.expect("ready");
    let unary = client
        .unary(request("hi"), method("Unary"), RawCodec)
        .await
        .expect("unary");
    assert_eq!(text(unary.get_ref()), format!("{name}:hi"));

    client.ready().await.expect("ready");
    let mut stream = client
        .server_streaming(request("3"), method("ServerStream"), RawCodec)
        .await
        .expect("server streaming")
        .into_inner();
    assert_eq!(
        drain(&mut stream).await,
        (vec!["0".into(), "1".into(), "2".into()], Ok(()))
    );

    client.ready().await.expect("ready");
    let parts = futures_util::stream::iter(["a", "b", "c"].map(Bytes::from));
    let joined = client
        .client_streaming(tonic::Request::new(parts), method("ClientStream"), RawCodec)
        .await
        .expect("client streaming");
    assert_eq!(text(joined.get_ref()), "a+b+c");

    // Bidirectional: each answer arrives before the next message is sent.
    client.ready().await.expect("ready");
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let outgoing =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut answers = client
        .streaming(tonic::Request::new(outgoing), method("Bidi"), RawCodec)
        .await
        .expect("bidi")
        .into_inner();
    for word in ["one", "two", "three"] {
        tx.send(Bytes::from(word)).await.expect("send");
        let answer = tokio::time::timeout(WAIT, answers.message())
            .await
            .expect("answer in time");
        assert_eq!(
            answer.expect("no error").map(|b| text(&b)),
            Some(word.to_uppercase())
        );
    }
    drop(tx);
    assert_eq!(drain(&mut answers).await, (Vec::new(), Ok(())));
}

#[tokio::test]
async fn unary_and_streaming_calls_pass_over_h2c() {
    let upstream = GrpcUpstream::start("u1", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;
    every_kind_of_call(&mut client, "u1").await;
    // Many calls, one worker: one multiplexed upstream connection.
    let calls = (0..20).map(|i| {
        let mut c = client.clone();
        async move {
            c.ready().await.expect("ready");
            c.unary(request(&i.to_string()), method("Unary"), RawCodec)
                .await
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        answer.expect("concurrent unary");
    }
    assert_eq!(upstream.connections(), 1);
    // gRPC needs `TE: trailers` on the way; every call carried it.
    assert_eq!(upstream.te_trailers_seen(), 24);
}

#[test]
fn a_protocol_at_odds_with_tls_is_refused_with_file_line_and_key() {
    for (protocol, tls, why) in [
        ("h2", "", "needs [cluster.tls]"),
        ("h2c", "[cluster.tls]\nsni = \"x\"", "cleartext HTTP/2"),
    ] {
        let text = format!(
            "[[listener]]\nname = \"web\"\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
             [[listener.route]]\npath_prefix = \"/\"\ncluster = \"c\"\n\
             [[cluster]]\nname = \"c\"\nendpoints = [\"127.0.0.1:1\"]\nprotocol = \"{protocol}\"\n{tls}\n"
        );
        let (output, path, _dir) = check_config(&text);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
        let at = format!("(key `cluster[0].protocol`) at {}:11:", path.display());
        assert!(stderr.contains(&at), "{stderr}");
    }
    let text = "[[cluster]]\nname = \"c\"\nh2_max_concurrent_streams = 0\n";
    let (output, path, _dir) = check_config(text);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("h2_max_concurrent_streams"), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3:", path.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn unary_and_streaming_calls_pass_over_tls_both_sides() {
    let pki = Pki::new("ca");
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca.cert_pem).expect("CA");
    pki.server(&["gateway.test"]).write(dir.path(), "site");
    let upstream_cert = pki.server(&["upstream.test"]);
    let upstream = GrpcUpstream::start("tls", Some(&upstream_cert)).await;
    let gateway = Gateway::start_in(
        dir,
        &format!(
            r#"
            [[listener]]
            name = "tls"
            protocol = "https"
            address = "127.0.0.1:0"
            [[listener.tls.certificate]]
            cert = "site.crt"
            key = "site.key"
            [[listener.route]]
            path_prefix = "/"
            cluster = "c"

            [[cluster]]
            name = "c"
            endpoints = ["{}"]
            protocol = "h2"
            [cluster.tls]
            ca = "ca.pem"
            sni = "upstream.test"
            "#,
            upstream.addr
        ),
    )
    .await;
    let mut client = grpc::tls_client(gateway.addr("tls"), pki.roots(), "gateway.test").await;
    every_kind_of_call(&mut client, "tls").await;
}

#[tokio::test]
async fn status_and_trailers_from_the_upstream_arrive_intact() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = grpc::client(gateway.addr("web")).await;
    client.ready().await.expect("ready");
    let mut failing = request("2");
    failing
        .metadata_mut()
        .insert("x-fail", "1".parse().expect("value"));
    let mut stream = client
        .server_streaming(failing, method("ServerStream"), RawCodec)
        .await
        .expect("call")
        .into_inner();
    let (got, end) = drain(&mut stream).await;
    assert_eq!(got, ["0", "1"]);
    assert_eq!(end, Err((Code::FailedPrecondition, "stopped at 2".into())));
}

#[tokio::test]
async fn request_trailers_reach_an_h2c_upstream_and_response_trailers_come_back() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let stream = tokio::net::TcpStream::connect(gateway.addr("web"))
        .await
        .expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("handshake");
    tokio::spawn(conn);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().expect("value"));
    let frames = vec![
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from("payload"))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    let request = http::Request::post(format!("http://{}/trailers", gateway.addr("web")))
        .header("te", "trailers")
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
        .expect("request");
    let response = tx.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["echo-x-checksum"], "abc");
    assert_eq!(collected.to_bytes(), "payload");
}

#[tokio::test]
async fn plain_http_reaches_an_h2c_upstream() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/plain").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "plain:u");
    assert_eq!(reply.header("x-scheme"), Some("http"), "h2c is cleartext");
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn streams_beyond_the_limit_open_another_connection() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "h2_max_concurrent_streams = 2", "").await;
    let client = grpc::client(gateway.addr("web")).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = client.clone();
        c.ready().await.expect("ready");
        let mut r = request("1");
        r.metadata_mut()
            .insert("x-hold", "1".parse().expect("value"));
        let mut stream = c
            .server_streaming(r, method("ServerStream"), RawCodec)
            .await
            .expect("call")
            .into_inner();
        // The first message proves the stream is open upstream.
        let first = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("in time");
        assert_eq!(first.expect("ok").map(|b| text(&b)), Some("0".into()));
        held.push(stream);
    }
    assert_eq!(upstream.connections(), 2, "4 streams at 2 per connection");
    upstream.release();
    for mut stream in held {
        assert_eq!(drain(&mut stream).await, (Vec::new(), Ok(())));
    }
}

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
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "cannot connect to upstream in cluster down"
    );
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
async fn filters_read_and_change_trailers_both_ways() {
    let upstream = GrpcUpstream::start("u", None).await;
    let filter = format!(
        "[[listener.filter]]\nname = \"trailers\"\npath = \"{}\"\n",
        wasm::path("tw-trailers").display()
    );
    let gateway = gateway(&upstream, "", &filter).await;

    // Response trailers of a gRPC call: the filter read grpc-status.
    let mut client = grpc::client(gateway.addr("web")).await;
    client.ready().await.expect("ready");
    let mut failing = request("1");
    failing
        .metadata_mut()
        .insert("x-fail", "1".parse().expect("value"));
    let mut stream = client
        .server_streaming(failing, method("ServerStream"), RawCodec)
        .await
        .expect("call")
        .into_inner();
    assert_eq!(
        stream.message().await.expect("first").map(|b| text(&b)),
        Some("0".into())
    );
    let status = stream.message().await.expect_err("failed precondition");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let seen = status
        .metadata()
        .get("x-filter-grpc-status")
        .map(|v| v.to_str().unwrap_or(""));
    assert_eq!(seen, Some("9"));

    // Request trailers: the filter added one the upstream echoes back;
    // the upstream's secret trailer is removed on the way out.
    let stream = tokio::net::TcpStream::connect(gateway.addr("web"))
        .await
        .expect("connect");
    let (mut tx, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("handshake");
    tokio::spawn(conn);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", "abc".parse().expect("value"));
    trailers.insert("secret", "s3cret".parse().expect("value"));
    let frames = vec![
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from("payload"))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    let request = http::Request::post(format!("http://{}/trailers", gateway.addr("web")))
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
        .expect("request");
    let response = tx.send_request(request).await.expect("response");
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["echo-x-checksum"], "abc");
    assert_eq!(trailers["echo-x-filter-saw"], "abc");
    // The upstream echoed `secret` too; the filter removed that trailer.
    assert!(!trailers.contains_key("echo-secret"));
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
