//! Hostile and careless clients at the edge: every wait is bounded, and
//! every request is accounted for however it ends.

use std::time::{Duration, Instant};

use gateway_tests::{Gateway, Upstream, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(up: &Upstream, http: &str) -> String {
    gateway_tests::web_to(up.addr, http)
}

/// Reads what the gateway sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway never closed the connection");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_body_that_never_comes_is_408_and_the_connection_closes() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, "body_read_timeout = \"300ms\"")).await;
    let mut stream = gateway.raw("web").await;
    let started = Instant::now();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        gateway.log_count_reaches("request_timeout", 1, WAIT).await,
        "the access log names the timeout"
    );
}

#[tokio::test]
async fn a_body_that_trickles_is_cut_at_the_request_deadline() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        "body_read_timeout = \"5s\"\nrequest_read_timeout = \"700ms\"",
    ))
    .await;
    let mut stream = gateway.raw("web").await;
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .expect("write");
    // One byte every 100 ms never trips the 5 s idle timeout; the whole
    // request still must arrive within 700 ms. Bounded: 100 bytes at most.
    let started = Instant::now();
    let mut answer = String::new();
    for _ in 0..100 {
        if stream.write_all(b"x").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_reset_http2_stream_is_logged_and_releases_its_connection() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, "idle_timeout = \"500ms\"")).await;
    let mut client = gateway.http2("web").await;
    // The request waits on a slow upstream; the client gives up on it,
    // which resets the stream.
    let abandoned = {
        let mut client = client.clone();
        tokio::spawn(async move { client.get("/slow/3000").await })
    };
    assert!(
        up.wait_for_requests(1).await,
        "the upstream saw the request"
    );
    abandoned.abort();
    // Waited for asynchronously: the client's connection task must run to
    // send the reset.
    assert!(
        gateway.log_count_reaches("status=499", 1, WAIT).await,
        "the abandoned request is logged: {:?}",
        gateway.logs()
    );
    // Its connection's count of requests in flight went back to zero: the
    // idle timeout closes the connection.
    assert!(
        client.wait_closed(WAIT).await,
        "the connection was never idle-closed"
    );
}

#[tokio::test]
async fn an_http1_client_gone_while_its_request_waits_is_logged_and_abandoned() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, "")).await;
    // Without a body, and with one the gateway read (and waited for) first.
    let requests: [&[&[u8]]; 2] = [
        &[b"GET /slow/60000 HTTP/1.1\r\nHost: x\r\n\r\n"],
        &[
            b"POST /slow/60000 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
            b"hello",
        ],
    ];
    for (n, writes) in requests.into_iter().enumerate() {
        let mut stream = gateway.raw("web").await;
        stream.set_nodelay(true).expect("nodelay");
        for bytes in writes {
            stream.write_all(bytes).await.expect("write");
        }
        assert!(
            up.wait_for_requests(n + 1).await,
            "the upstream saw request {n}"
        );
        // The client closes its connection while the upstream takes its time.
        drop(stream);
        // Noticed at once, long before the upstream would answer: the
        // exchange ends as abandoned.
        assert!(
            gateway
                .log_count_reaches("status=499", n + 1, Duration::from_secs(10))
                .await,
            "abandoned request {n} is logged: {:?}",
            gateway.logs()
        );
    }
}

#[tokio::test]
async fn an_http10_upstream_answers_the_client_in_http11() {
    // An upstream that speaks HTTP/1.0 (raw, one answer per connection).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(WAIT, conn.read(&mut buf)).await;
            let _ = conn
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    });
    let text = format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "old"
        [[cluster]]
        name = "old"
        endpoints = ["{addr}"]
        "#
    );
    let gateway = Gateway::start(&text).await;
    let mut stream = gateway.raw("web").await;
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}
