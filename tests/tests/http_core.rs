//! Routing, the error-to-status mapping, forwarding headers, upgrades and
//! request limits, through the real binary.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_tests::{Gateway, Upstream};
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A listener `web` with `routes` and clusters `up` (the given upstreams)
/// and `empty` (no endpoints).
fn config(upstreams: &[&Upstream], routes: &str, cluster_extra: &str) -> String {
    let addrs: Vec<SocketAddr> = upstreams.iter().map(|u| u.addr).collect();
    config_at(&addrs, routes, cluster_extra)
}

/// [`config`] with cluster `up` at `addrs`.
fn config_at(addrs: &[SocketAddr], routes: &str, cluster_extra: &str) -> String {
    let endpoints: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [listener.http]
        max_header_bytes = 8192
        {routes}

        [[cluster]]
        name = "up"
        endpoints = [{}]
        {cluster_extra}

        [[cluster]]
        name = "empty"
        endpoints = []
        "#,
        endpoints.join(", ")
    )
}

const ROUTES: &str = r#"
    [[listener.route]]
    path = "/direct"
    [listener.route.direct]
    status = 418
    body = "short and stout"

    [[listener.route]]
    path_prefix = "/nothing"
    cluster = "empty"

    [[listener.route]]
    path_prefix = "/app/"
    method = "GET"
    cluster = "up"

    [[listener.route]]
    path_prefix = "/"
    host = "only.example"
    cluster = "up"

    [[listener.route]]
    path_prefix = "/"
    host = "*.wild.example"
    cluster = "up"
"#;

/// A port with nothing listening on it.
async fn dead_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test]
async fn routes_match_on_path_method_and_host_and_unmatched_is_404() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], ROUTES, "")).await;
    let mut client = gateway.http1("web").await;

    assert_eq!(client.get("/app/x").await.text(), "up");
    let reply = client.get("/elsewhere").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "no route\n");
    let post = Request::post("/app/x")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(client.send(post).await.status, 404);
    let by_host = Request::get("/anything")
        .header("host", "only.example:80")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(client.send(by_host).await.text(), "up");
    for (host, status) in [("a.b.WILD.example", 200), ("wild.example", 404)] {
        let req = Request::get("/anything")
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .expect("req");
        assert_eq!(client.send(req).await.status, status, "{host}");
    }

    // Prefixes match whole segments: `/nothing` (its cluster has no
    // endpoint: 503) takes `/nothing/x` but not `/nothingmore`.
    assert_eq!(client.get("/nothing/x").await.status, 503);
    assert_eq!(client.get("/nothingmore").await.status, 404);

    let direct = client.get("/direct").await;
    assert_eq!(direct.status, 418);
    assert_eq!(direct.text(), "short and stout");
    assert_eq!(
        up.received().len(),
        3,
        "only the three routed requests reach the upstream"
    );
}

#[tokio::test]
async fn no_endpoint_is_503_and_dead_upstream_is_502() {
    let dead = dead_port().await;
    let text = config(&[], ROUTES, "").replace("endpoints = [],\n", "");
    let text = text.replacen("endpoints = []", &format!("endpoints = [\"{dead}\"]"), 1);
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/nothing").await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.text().contains("no healthy upstream"),
        "{}",
        reply.text()
    );
    let reply = client.get("/app/x").await;
    assert_eq!(reply.status, 502);
    assert!(
        gateway.wait_for_log("upstream_connect_failure", Duration::from_secs(5)),
        "the access log names the failure"
    );
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], ROUTES, "request_timeout = \"200ms\"")).await;
    let mut client = gateway.http1("web").await;
    let started = std::time::Instant::now();
    let reply = client.get("/app/slow/5000").await;
    assert_eq!(reply.status, 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The connection stays usable.
    assert_eq!(client.get("/app/ok").await.status, 200);
}

#[tokio::test]
async fn failed_connect_is_retried_on_the_other_endpoint() {
    let up = Upstream::start("up").await;
    let dead = dead_port().await;
    let text = config(&[&up], ROUTES, "").replacen(
        &format!("endpoints = [\"{}\"]", up.addr),
        &format!("endpoints = [\"{dead}\", \"{}\"]", up.addr),
        1,
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..4 {
        let reply = client.get("/app/x").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.text(), "up");
    }
    assert_eq!(up.received().len(), 4);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarded_headers_appended() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], ROUTES, "")).await;
    let mut client = gateway.http1("web").await;
    let req = Request::get("/app/headers")
        .header("host", "front.example:8000")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9v")
        .header("te", "trailers")
        .header("x-forwarded-for", "192.0.2.1")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let reply = client.send(req).await;
    assert_eq!(reply.status, 200);
    // Hop-by-hop response headers from the upstream are stripped too.
    assert!(reply.header("x-upstream-hop").is_none());

    let seen = up.received().pop().expect("upstream saw the request");
    let h = &seen.headers;
    for gone in ["x-private", "keep-alive", "proxy-authorization", "te"] {
        assert!(!h.contains_key(gone), "{gone} must not be forwarded");
    }
    assert_eq!(h["x-end-to-end"], "kept");
    assert_eq!(h["host"], "front.example:8000");
    assert_eq!(h["x-forwarded-for"], "192.0.2.1, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "front.example:8000");
    assert!(h.contains_key("x-request-id"));
}

/// An upstream that answers every request head it reads with `response`
/// (requests without bodies), and counts the connections it accepts.
async fn scripted_upstream(response: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        if conn.write_all(response).await.is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_connection_options_are_obeyed_and_not_forwarded() {
    // (the upstream's answer, the connections two requests in a row take)
    let cases: [(&'static [u8], usize); 3] = [
        (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\
              X-Kept: 1\r\nContent-Length: 2\r\n\r\nok",
            1,
        ),
        (
            b"HTTP/1.1 200 OK\r\nX-Kept: 1\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok",
            2,
        ),
        // An HTTP/1.0 answer stays open only when it says so.
        (
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nX-Kept: 1\r\nconnection: keep-alive\r\n\r\nok",
            1,
        ),
    ];
    for (response, connections) in cases {
        let (addr, accepted) = scripted_upstream(response).await;
        let gateway = Gateway::start(&config_at(&[addr], ROUTES, "")).await;
        let mut client = gateway.http1("web").await;
        for _ in 0..2 {
            let reply = client.get("/app/x").await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.text(), "ok");
            assert_eq!(reply.header("x-kept"), Some("1"), "{:?}", reply.headers);
            for gone in ["connection", "keep-alive"] {
                assert!(reply.header(gone).is_none(), "{gone}: {:?}", reply.headers);
            }
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            connections,
            "{}",
            String::from_utf8_lossy(response)
        );
    }
}

#[tokio::test]
async fn h2_request_reaches_h11_upstream_with_authority_as_host() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], ROUTES, "")).await;
    let mut client = gateway.http2("web").await;
    let reply = client.get("/app/h2?q=1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "up");
    let seen = up.received().pop().expect("request");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.path, "/app/h2?q=1");
    assert_eq!(seen.headers["host"], gateway.addr("web").to_string());
}

#[tokio::test]
async fn websocket_style_upgrade_is_tunnelled() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], ROUTES, "")).await;
    let mut stream = gateway.raw("web").await;
    stream
        .write_all(
            b"GET /app/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        stream.read_exact(&mut byte).await.expect("read head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    stream
        .write_all(b"hello through the tunnel")
        .await
        .expect("write");
    let mut echoed = [0u8; 24];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(&echoed, b"hello through the tunnel");
}

/// Sends raw bytes and returns the response head.
async fn raw(gateway: &Gateway, request: &[u8]) -> String {
    let mut stream = gateway.raw("web").await;
    stream.write_all(request).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn oversized_headers_are_431_and_malformed_requests_400() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&[&up], ROUTES, "")).await;
    let big = format!(
        "GET /app/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert!(raw(&gateway, big.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
    let no_host = raw(&gateway, b"GET /app/x HTTP/1.1\r\n\r\n").await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
    let garbage = raw(&gateway, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(up.received().is_empty());
}

/// A request head for the gateway's own `/direct` answer (418), with
/// `fields` header fields, Host among them.
fn head_with_fields(fields: usize) -> String {
    let mut head = String::from("GET /direct HTTP/1.1\r\nHost: x\r\n");
    for i in 1..fields {
        head.push_str(&format!("X-F{i}: v\r\n"));
    }
    head + "\r\n"
}

#[tokio::test]
async fn more_header_fields_than_the_limit_are_431_at_the_default_and_a_set_limit() {
    let up = Upstream::start("up").await;
    // The default limit, 100 fields.
    let gateway = Gateway::start(&config(&[&up], ROUTES, "")).await;
    let at = raw(&gateway, head_with_fields(100).as_bytes()).await;
    assert!(at.starts_with("HTTP/1.1 418"), "{at}");
    let over = raw(&gateway, head_with_fields(101).as_bytes()).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over}");
    drop(gateway);

    // A limit set in the configuration.
    let text = config(&[&up], ROUTES, "").replace(
        "max_header_bytes = 8192",
        "max_header_bytes = 8192\nmax_headers = 10",
    );
    let gateway = Gateway::start(&text).await;
    let at = raw(&gateway, head_with_fields(10).as_bytes()).await;
    assert!(at.starts_with("HTTP/1.1 418"), "{at}");
    let over = raw(&gateway, head_with_fields(11).as_bytes()).await;
    assert!(over.starts_with("HTTP/1.1 431"), "{over}");
    assert!(up.received().is_empty());
}

/// [`config`] with `idle_timeout = "300ms"`.
fn idle_after_300ms(up: &Upstream) -> String {
    config(&[up], ROUTES, "").replace(
        "max_header_bytes = 8192",
        "max_header_bytes = 8192\nidle_timeout = \"300ms\"",
    )
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed_busy_ones_are_not() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&idle_after_300ms(&up)).await;
    let mut client = gateway.http1("web").await;
    // A request longer than the idle timeout is not cut off...
    assert_eq!(client.get("/app/slow/600").await.status, 200);
    // ...but the connection is closed once it sits idle.
    let started = std::time::Instant::now();
    assert!(
        client.wait_closed(Duration::from_secs(5)).await,
        "idle connection still open"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn idle_http2_connections_are_closed_after_their_streams_finish() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&idle_after_300ms(&up)).await;
    let mut client = gateway.http2("web").await;
    // Streams longer than the idle timeout, side by side, all answer...
    let slow = (0..3).map(|_| {
        let mut client = client.clone();
        async move { client.get("/app/slow/600").await.status }
    });
    for status in futures_util::future::join_all(slow).await {
        assert_eq!(status, 200);
    }
    assert_eq!(up.received().len(), 3);
    // ...and the connection, idle, is then told to go away and closed.
    let started = std::time::Instant::now();
    assert!(
        client.wait_closed(Duration::from_secs(5)).await,
        "idle HTTP/2 connection still open"
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}
