//! Retries as clients and upstreams see them: which failures are tried
//! again and where, which requests may be sent twice, the retry budget,
//! and the stale pooled connection. Circuit breakers: `overload.rs`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::{check_config, Fault, FaultyUpstream, Gateway, Http1Client, Scrape};
use http::{Method, Request};
use http_body_util::Full;

/// A gateway with one route to cluster `c` over `upstreams`; `route` and
/// `cluster` are extra lines (tables included) for each.
fn config(upstreams: &[&FaultyUpstream], route: &str, cluster: &str) -> String {
    let endpoints: Vec<String> = upstreams
        .iter()
        .map(|u| format!("\"{}\"", u.addr))
        .collect();
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [access_log]
        enabled = false

        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "c"
        {route}

        [[cluster]]
        name = "c"
        endpoints = [{}]
        {cluster}
        "#,
        endpoints.join(", ")
    )
}

async fn scrape(gateway: &Gateway) -> Scrape {
    Scrape::take(gateway.admin.expect("admin listener")).await
}

fn with_body(method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body))
        .expect("request")
}

#[tokio::test]
async fn a_503_is_retried_on_another_endpoint_and_the_client_gets_its_answer() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(503));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = [\"gateway_error\"]",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..6 {
        let reply = client.get("/x").await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "b"));
    }
    assert!(a.count() >= 1, "round robin sent some first tries to a");
    assert_eq!(b.count(), 6);
    let metrics = scrape(&gateway).await;
    let retries = metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="status"}"#);
    assert_eq!(retries, a.count() as f64, "{}", metrics.text());
}

#[tokio::test]
async fn chosen_statuses_are_retried_and_others_are_not() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(429));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = []\nstatuses = [429]",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..4 {
        assert_eq!(client.get("/x").await.text(), "b");
    }
    assert!(a.count() >= 1);
    // 503 is not in the list: it reaches the client as the upstream sent it.
    a.set(Fault::Status(503));
    let before = (a.count(), b.count());
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(client.get("/y").await.status.as_u16());
    }
    let to_a = a.count() - before.0;
    assert!(to_a >= 1);
    assert_eq!(seen.iter().filter(|s| **s == 503).count(), to_a);
    assert_eq!(to_a + b.count() - before.1, 4, "nothing was retried");
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
    let metrics = scrape(&gateway).await;
    let retried =
        metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="connect_failure"}"#);
    assert!(retried >= 1.0, "{}", metrics.text());
}

#[tokio::test]
async fn a_try_never_goes_to_an_endpoint_already_tried() {
    let ups = [
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
        FaultyUpstream::start("c").await,
    ];
    for up in &ups {
        up.set(Fault::Status(503));
    }
    let text = config(
        &[&ups[0], &ups[1], &ups[2]],
        "",
        "[cluster.retry]\nattempts = 3\nretry_on = [\"gateway_error\"]\nbackoff_base = \"1ms\"",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..5 {
        // The last try's answer is the client's.
        assert_eq!(client.get("/x").await.status, 503);
    }
    let counts: Vec<usize> = ups.iter().map(FaultyUpstream::count).collect();
    assert_eq!(
        counts,
        vec![5, 5, 5],
        "each request tried each endpoint once"
    );
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
    let mut stream = tokio::net::TcpStream::connect(gateway.addr("web"))
        .await
        .expect("connect");
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

#[tokio::test]
async fn a_per_try_timeout_moves_a_slow_request_to_another_endpoint() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Slow(Duration::from_secs(20)));
    let text = config(
        &[&a, &b],
        "timeout = \"10s\"\n[listener.route.retry]\nper_try_timeout = \"300ms\"",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..4 {
        let started = Instant::now();
        let reply = client.get("/x").await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "b"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(a.count() >= 1);
    let metrics = scrape(&gateway).await;
    let timeouts = metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="timeout"}"#);
    assert_eq!(timeouts, a.count() as f64, "{}", metrics.text());
}

#[tokio::test]
async fn a_spent_retry_budget_lets_the_failure_through_and_is_counted() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(503));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = [\"gateway_error\"]",
        "[cluster.retry_budget]\npercent = 0\nmin_concurrent = 0",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    let mut answered_503 = 0;
    for _ in 0..6 {
        if client.get("/x").await.status == 503 {
            answered_503 += 1;
        }
    }
    assert!(answered_503 >= 1, "round robin sent some requests to a");
    assert_eq!(answered_503, a.count());
    assert_eq!(a.count() + b.count(), 6, "nothing was retried");
    let metrics = scrape(&gateway).await;
    assert_eq!(
        metrics.value(r#"gateway_cluster_retry_budget_exhausted_total{cluster="c"}"#),
        answered_503 as f64,
        "{}",
        metrics.text()
    );
}

#[tokio::test]
async fn a_stale_pooled_connection_is_replaced_even_without_retries() {
    let up = FaultyUpstream::start("up").await;
    // The upstream closes a kept-alive connection when the next request
    // arrives on it, as a server whose idle timeout just passed.
    up.set(Fault::CloseReused);
    let text = config(&[&up], "", "[cluster.retry]\nattempts = 1");
    let gateway = Gateway::start(&text).await;
    let mut client: Http1Client = gateway.http1("web").await;
    for _ in 0..3 {
        assert_eq!(client.get("/x").await.status, 200);
    }
    // Requests 2 and 3 each met a stale connection, then a new one.
    assert_eq!(up.count(), 5);
    let metrics = scrape(&gateway).await;
    let stale =
        metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="stale_connection"}"#);
    assert_eq!(stale, 2.0, "{}", metrics.text());
}

#[test]
fn bad_retry_and_breaker_settings_name_file_line_and_key() {
    let up = ["127.0.0.1:1"];
    let base = format!(
        "[[listener]]\nname = \"web\"\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[cluster]]\nname = \"c\"\nendpoints = [\"{}\"]\n",
        up[0]
    );
    for (extra, key, message) in [
        (
            "[cluster.retry]\nattempts = 0\n",
            "attempts",
            "attempts must be from 1 to 10",
        ),
        (
            "[cluster.retry]\nretry_on = [\"often\"]\n",
            "retry_on",
            "unknown variant `often`",
        ),
        (
            "[cluster.retry]\nstatuses = [999]\n",
            "statuses",
            "999 is not an HTTP status",
        ),
        (
            "[cluster.retry_budget]\npercent = 150\n",
            "percent",
            "from 0 to 100",
        ),
        (
            "[cluster.circuit_breaker]\nmax_pending = 0\n",
            "max_pending",
            "at least 1",
        ),
    ] {
        let text = format!("{base}{extra}");
        let (output, path, _dir) = check_config(&text);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{extra}: accepted");
        assert!(err.contains(message), "{extra}: {err}");
        assert!(err.contains(key), "{extra}: {err}");
        assert!(
            err.contains(&format!("{}:9:", path.display())),
            "{extra}: {err}"
        );
    }
}
