//! Transfers that stop moving are cut: a client that never reads, an
//! upstream that stops sending its body, an idle tunnel, an HTTP/2 client
//! that stops answering PINGs. A tunnel keeps its connection counted.

use std::time::{Duration, Instant};

use gateway_tests::{Gateway, Http1Client, Upstream, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn config(upstream: &str, http: &str, cluster: &str) -> String {
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        {http}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{upstream}"]
        {cluster}
        "#
    )
}

/// The value of `gateway_timeouts_total{kind="KIND"}`, 0 when absent.
async fn timeouts(gateway: &Gateway, kind: &str) -> u64 {
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let text = admin.get("/metrics").await.text();
    let needle = format!("gateway_timeouts_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls the counter until it reaches `n`; false if it does not within WAIT.
async fn timeouts_reach(gateway: &Gateway, kind: &str, n: u64) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if timeouts(gateway, kind).await >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Reads until the gateway closes; None if it does not within WAIT.
async fn read_to_close(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await {
        Ok(_) => Some(out),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_at_send_timeout() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up.addr.to_string(),
        "[listener.http]\nsend_timeout = \"300ms\"",
        "",
    ))
    .await;
    let mut stream = gateway.raw("web").await;
    // 64 MB: far more than the socket buffers on both sides hold.
    let size = 64 * 1024 * 1024;
    stream
        .write_all(format!("GET /download/{size} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    // The client does not read; the gateway gives up on it.
    assert!(
        timeouts_reach(&gateway, "client_send", 1).await,
        "send_timeout never fired"
    );
    // What was buffered drains, then the connection ends short of the body.
    let got = read_to_close(&mut stream)
        .await
        .expect("the gateway closed the connection");
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &got[..got.len().min(64)]
    );
    assert!(got.len() < size, "the whole body arrived: {}", got.len());
}

#[tokio::test]
async fn an_upstream_that_stops_sending_its_body_is_cut() {
    // An upstream that sends a head announcing 1000 bytes, 10 of them, and
    // then nothing while holding the connection open.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let (held_tx, mut held) = tokio::sync::mpsc::channel::<TcpStream>(4);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                .await;
            if held_tx.send(conn).await.is_err() {
                return;
            }
        }
    });
    let gateway = Gateway::start(&config(
        &upstream.to_string(),
        "",
        "response_idle_timeout = \"300ms\"",
    ))
    .await;
    let mut stream = gateway.raw("web").await;
    let started = Instant::now();
    stream
        .write_all(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let got = read_to_close(&mut stream)
        .await
        .expect("the gateway cut the response");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("0123456789"),
        "the client got what was sent: {text}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(timeouts_reach(&gateway, "upstream_body_idle", 1).await);
    // The stalled upstream connection is still open on its side: the cut
    // came from the gateway's clock, not from the upstream.
    assert!(held.try_recv().is_ok());
}

/// Upgrades a connection to the upstream's echo tunnel; returns it after
/// the 101 head.
async fn open_tunnel(gateway: &Gateway) -> TcpStream {
    let mut stream = gateway.raw("web").await;
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        tokio::time::timeout(WAIT, stream.read_exact(&mut byte))
            .await
            .expect("head in time")
            .expect("read head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_a_busy_one_is_not() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up.addr.to_string(),
        "[listener.http]\ntunnel_idle_timeout = \"500ms\"",
        "",
    ))
    .await;
    // Busy: an echo every 100 ms for 1.5 s (three idle limits) keeps it open.
    let mut busy = open_tunnel(&gateway).await;
    for i in 0..15u8 {
        busy.write_all(&[i]).await.expect("tunnel open");
        let mut echo = [0u8; 1];
        tokio::time::timeout(WAIT, busy.read_exact(&mut echo))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(echo[0], i);
        if i < 14 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Idle from the last echo on: closed by the gateway.
    let started = Instant::now();
    let rest = read_to_close(&mut busy)
        .await
        .expect("the idle tunnel was closed");
    assert!(rest.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert!(timeouts_reach(&gateway, "tunnel_idle", 1).await);
}

#[tokio::test]
async fn a_tunnel_counts_against_max_connections() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up.addr.to_string(), "max_connections = 1", "")).await;
    let tunnel = open_tunnel(&gateway).await;
    // The one connection slot is the tunnel's: a second client is not served.
    let mut second = gateway.raw("web").await;
    second
        .write_all(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), second.read(&mut byte))
            .await
            .is_err(),
        "served while the tunnel held the only slot"
    );
    // The tunnel ends: the slot frees and the waiting client is served.
    drop(tunnel);
    let answer = read_to_close(&mut second)
        .await
        .expect("served after the tunnel closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn an_http2_client_that_stops_answering_pings_is_disconnected() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up.addr.to_string(),
        "[listener.http]\nh2_keepalive_interval = \"200ms\"\nh2_keepalive_timeout = \"300ms\"",
        "",
    ))
    .await;
    let mut stream = gateway.raw("web").await;
    // The preface and an empty SETTINGS frame; then silence: no SETTINGS
    // ack, no PING ack.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    let started = Instant::now();
    let mut frames = Vec::new();
    let got = read_to_close(&mut stream)
        .await
        .expect("the gateway hung up on a silent client");
    let mut rest = &got[..];
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        frames.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert!(
        frames.contains(&0x6),
        "a PING was sent: frame types {frames:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
