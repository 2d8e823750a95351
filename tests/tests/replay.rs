//! Retries and what may be sent twice: a request the upstream may have
//! acted on (a reset POST) or whose body already streamed is never sent
//! again; a held body is sent again whole; a failed connect (nothing sent)
//! is always retried.

use std::time::Duration;

use bytes::Bytes;
use gateway_tests::{one_route_config as config, Fault, FaultyUpstream, Gateway, Scrape};
use http::{Method, Request};
use http_body_util::Full;

fn with_body(method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body))
        .expect("request")
}

#[tokio::test]
async fn a_failed_connect_is_retried_even_for_a_post_with_a_streamed_body() {
    // A port nothing listens on: connects to it are refused.
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("address")
    };
    let up = FaultyUpstream::start("up").await;
    let text = config(&[&up], "", "eject_after_failures = 0").replacen(
        &format!("endpoints = [\"{}\"]", up.addr),
        &format!("endpoints = [\"{dead}\", \"{}\"]", up.addr),
        1,
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    // POST is never sent twice, and its 256 KiB body streams; but nothing
    // was sent to an endpoint that refused the connection.
    let body = Bytes::from(vec![b'p'; 256 * 1024]);
    for _ in 0..4 {
        let reply = client
            .send(with_body(Method::POST, "/p", body.clone()))
            .await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "up"));
    }
    let got = up.got();
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|g| g.body == body));
    let metrics = Scrape::of(&gateway).await;
    let retried =
        metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="connect_failure"}"#);
    assert!(retried >= 1.0, "{}", metrics.text());
}

#[tokio::test]
async fn a_reset_is_retried_for_get_and_for_post_only_when_the_policy_allows() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Reset);
    let gateway = Gateway::start(&config(&[&a, &b], "", "")).await;
    let mut client = gateway.http1("web").await;
    // The default policy retries resets of idempotent requests.
    for _ in 0..4 {
        assert_eq!(client.get("/get").await.text(), "b");
    }
    // A POST that reached an upstream is not sent again: the upstream may
    // have acted on it.
    let mut refused = 0;
    for i in 0..4 {
        let post = with_body(Method::POST, "/post", Bytes::from(format!("order {i}")));
        match client.send(post).await.status.as_u16() {
            200 => {}
            502 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let posts_to =
        |up: &FaultyUpstream| up.got().iter().filter(|g| g.method == Method::POST).count();
    assert!(posts_to(&a) >= 1, "round robin sent some POSTs to a");
    assert_eq!(refused, posts_to(&a), "every POST a reset was answered 502");
    assert_eq!(
        posts_to(&a) + posts_to(&b),
        4,
        "no POST reached two upstreams"
    );

    // With `non_idempotent = true`, a POST whose body is held is retried.
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nnon_idempotent = true",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for i in 0..4 {
        let post = with_body(Method::POST, "/again", Bytes::from(format!("retry {i}")));
        assert_eq!(client.send(post).await.text(), "b");
    }
}

#[tokio::test]
async fn a_held_body_is_sent_again_whole_and_a_streamed_one_never_twice() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(503));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = [\"gateway_error\"]\nbuffer_limit = \"1KiB\"",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;

    // Under the buffer limit: held, so a 503 is tried again elsewhere.
    let small = Bytes::from(vec![b's'; 512]);
    for _ in 0..4 {
        let reply = client
            .send(with_body(Method::PUT, "/small", small.clone()))
            .await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "b"));
    }
    let got_small = |up: &FaultyUpstream| {
        let got: Vec<_> = up
            .got()
            .into_iter()
            .filter(|g| g.path == "/small")
            .collect();
        assert!(
            got.iter().all(|g| g.body == small),
            "a body arrived cut or changed"
        );
        got.len()
    };
    assert!(got_small(&a) >= 1);
    assert_eq!(got_small(&b), 4);

    // Over it: the body streams upstream, and a request whose body has
    // begun streaming is never retried.
    let large = Bytes::from(vec![b'l'; 64 * 1024]);
    let mut answered_503 = 0;
    for _ in 0..4 {
        let reply = client
            .send(with_body(Method::PUT, "/large", large.clone()))
            .await;
        match reply.status.as_u16() {
            200 => assert_eq!(reply.text(), "b"),
            503 => answered_503 += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let got_large = |up: &FaultyUpstream| {
        let got: Vec<_> = up
            .got()
            .into_iter()
            .filter(|g| g.path == "/large")
            .collect();
        assert!(
            got.iter().all(|g| g.body == large),
            "a body arrived cut or changed"
        );
        got.len()
    };
    assert!(got_large(&a) >= 1, "round robin sent some first tries to a");
    assert_eq!(answered_503, got_large(&a));
    assert_eq!(
        got_large(&a) + got_large(&b),
        4,
        "each large PUT reached one upstream"
    );
}

#[tokio::test]
async fn a_held_body_is_read_before_the_upstream_timeout_starts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = FaultyUpstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], "timeout = \"300ms\"", "")).await;
    let mut stream = gateway.raw("web").await;
    stream
        .write_all(b"PUT /slow-client HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        .await
        .expect("write head");
    // A slow client (800 ms for the body) is not the upstream's fault: the
    // 300 ms route timeout starts once the held body is in.
    for byte in b"12345678" {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(&[*byte]).await.expect("write body");
    }
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(gateway_tests::WAIT, stream.read(&mut answer))
        .await
        .expect("an answer")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let got = up.got();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].body[..], b"12345678");
}
