//! HTTP/2 and gRPC upstreams: a real tonic client and server through the
//! gateway, over h2c and TLS, every kind of call, one multiplexed upstream
//! connection and another beyond its stream limit, trailers both ways (and
//! filters working on them), plain HTTP over h2c, and the protocol keys
//! checked. What clients get when things fail: `grpc_failures.rs`.

use bytes::Bytes;
use gateway_tests::grpc::{self, drain, gateway, method, request, text, GrpcUpstream, RawCodec};
use gateway_tests::tls::Pki;
use gateway_tests::{check_config, wasm, Gateway, WAIT};
use tonic::Code;

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

#[tokio::test]
async fn calls_arriving_together_on_a_cold_worker_share_one_connection() {
    let upstream = GrpcUpstream::start("u", None).await;
    let gateway = gateway(&upstream, "", "").await;
    let client = grpc::client(gateway.addr("web")).await;
    let calls = (0..20).map(|i| {
        let mut c = client.clone();
        async move {
            c.ready().await.expect("ready");
            c.unary(request(&i.to_string()), method("Unary"), RawCodec)
                .await
        }
    });
    for answer in futures_util::future::join_all(calls).await {
        answer.expect("unary");
    }
    assert_eq!(upstream.connections(), 1, "the first connect was shared");
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
    let (status, body, trailers) =
        grpc::post_with_trailers(gateway.addr("web"), "payload", &[("x-checksum", "abc")]).await;
    assert_eq!(status, 200);
    assert_eq!(body, "payload");
    assert_eq!(trailers["echo-x-checksum"], "abc");
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
    // X-Forwarded-* reach an HTTP/2 upstream too, the client's list
    // extended, each field once.
    let req = http::Request::get("/plain")
        .header("host", "front.example")
        .header("x-forwarded-for", "192.0.2.1")
        .header("x-forwarded-for", "192.0.2.2")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let reply = client.send(req).await;
    assert_eq!(reply.status, 200);
    let echoed = |name: &str| -> Vec<&str> {
        reply
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    assert_eq!(
        echoed("echo-x-forwarded-for"),
        ["192.0.2.1, 127.0.0.1"],
        "{:?}",
        reply.headers
    );
    assert_eq!(echoed("echo-x-forwarded-proto"), ["http"]);
    assert_eq!(echoed("echo-x-forwarded-host"), ["front.example"]);
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
    let (_, _, trailers) = grpc::post_with_trailers(
        gateway.addr("web"),
        "payload",
        &[("x-checksum", "abc"), ("secret", "s3cret")],
    )
    .await;
    assert_eq!(trailers["echo-x-checksum"], "abc");
    assert_eq!(trailers["echo-x-filter-saw"], "abc");
    // The upstream echoed `secret` too; the filter removed that trailer.
    assert!(!trailers.contains_key("echo-secret"));
}
