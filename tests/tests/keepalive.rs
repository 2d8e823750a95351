//! Keep-alive HTTP/1.1 connections over raw sockets: between two requests
//! the gateway keeps only the socket and picks the connection up again when
//! the client sends, so pipelined requests, heads split into many writes,
//! bytes sent behind an upgrade request, `Connection: close`, HTTP/1.0 and
//! a client that never sends must all behave exactly as the RFC says.

use std::time::Duration;

use gateway_tests::{Gateway, Upstream, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(up: &Upstream, http: &str) -> String {
    gateway_tests::web_to(up.addr, http)
}

/// One response read off a raw connection: status, head, body (framed by
/// its `content-length`).
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 16 * 1024, "head too long");
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head[9..12].parse().expect("status");
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tokio::time::timeout(WAIT, stream.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("read body");
    Answer { status, head, body }
}

/// True once the gateway closes the connection (nothing more to read).
async fn closes(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await,
        Ok(Ok(0))
    )
}

/// An upstream, a gateway in front of it and a connection to the gateway.
async fn open(http: &str) -> (Upstream, Gateway, TcpStream) {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, http)).await;
    let stream = gateway.raw("web").await;
    (up, gateway, stream)
}

/// Reads exactly `n` bytes, in bounded time.
async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut out))
        .await
        .expect("bytes in time")
        .expect("read");
    out
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (up, _gateway, mut stream) = open("").await;
    // Three requests in one write, the middle one with a body.
    stream
        .write_all(
            b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
              GET /json/60 HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .expect("write");
    let first = read_answer(&mut stream).await;
    assert_eq!(
        (first.status, &first.body[..]),
        (200, &b"up"[..]),
        "{}",
        first.head
    );
    let upload = read_answer(&mut stream).await;
    assert_eq!(
        (upload.status, &upload.body[..]),
        (200, &b"5"[..]),
        "{}",
        upload.head
    );
    let json = read_answer(&mut stream).await;
    assert_eq!(json.status, 200, "{}", json.head);
    assert!(json.body.starts_with(br#"{"user":"ann""#));
    let paths: Vec<String> = up.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/first", "/upload", "/json/60"]);
    // The connection is still good for more.
    stream
        .write_all(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut stream).await.status, 200);
}

#[tokio::test]
async fn requests_written_byte_by_byte_on_a_reused_connection_are_served() {
    let (up, _gateway, mut stream) = open("").await;
    stream.set_nodelay(true).expect("nodelay");
    for round in 0..3 {
        let request =
            format!("POST /upload/{round} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        for byte in request.as_bytes() {
            stream.write_all(&[*byte]).await.expect("write");
        }
        let answer = read_answer(&mut stream).await;
        assert_eq!(
            (answer.status, &answer.body[..]),
            (200, &b"3"[..]),
            "{}",
            answer.head
        );
    }
    assert_eq!(up.received().len(), 3);
}

#[tokio::test]
async fn connection_close_and_http10_end_the_connection_keep_alive_keeps_it() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, "")).await;
    let addr = gateway.addr("web");

    let mut closing = TcpStream::connect(addr).await.expect("connect");
    closing
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut closing).await.status, 200);
    assert!(
        closes(&mut closing).await,
        "Connection: close kept the connection"
    );

    let mut old = TcpStream::connect(addr).await.expect("connect");
    old.write_all(b"GET /b HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut old).await.status, 200);
    assert!(
        closes(&mut old).await,
        "an HTTP/1.0 request kept the connection"
    );

    let mut kept = TcpStream::connect(addr).await.expect("connect");
    for path in ["/c", "/d"] {
        let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        kept.write_all(request.as_bytes()).await.expect("write");
        let answer = read_answer(&mut kept).await;
        assert_eq!(answer.status, 200, "{}", answer.head);
    }
    let paths: Vec<String> = up.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/a", "/b", "/c", "/d"]);
}

#[tokio::test]
async fn a_connection_waiting_for_a_request_head_is_closed_at_the_header_timeout() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        "header_read_timeout = \"300ms\"\nidle_timeout = \"60s\"",
    ))
    .await;
    let mut silent = gateway.raw("web").await;
    let started = std::time::Instant::now();
    assert!(closes(&mut silent).await, "a silent connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // One that sent half a head is closed too.
    let mut half = gateway.raw("web").await;
    half.write_all(b"GET / HTTP/1.1\r\nHo")
        .await
        .expect("write");
    assert!(closes(&mut half).await, "a half-sent head stayed open");
    // And so is a keep-alive connection that waits longer than that for
    // its next request head, idle_timeout notwithstanding.
    let mut kept = gateway.raw("web").await;
    kept.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut kept).await.status, 200);
    let answered = std::time::Instant::now();
    assert!(
        closes(&mut kept).await,
        "an idle keep-alive connection stayed open"
    );
    assert!(answered.elapsed() >= Duration::from_millis(250));
}

/// Three requests, each sent as soon as the previous answer arrives.
async fn send_back_to_back(stream: &mut TcpStream) {
    for path in ["/a", "/b", "/c"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        assert_eq!(read_answer(stream).await.status, 200);
    }
}

#[tokio::test]
async fn a_connection_sending_back_to_back_is_bounded_like_any_other() {
    // Requests sent as soon as the previous answer arrives keep the
    // connection's HTTP state between them; the header timeout still
    // bounds a head sent halfway and a connection gone quiet.
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        "header_read_timeout = \"300ms\"\nidle_timeout = \"60s\"",
    ))
    .await;
    let mut half = gateway.raw("web").await;
    send_back_to_back(&mut half).await;
    half.write_all(b"GET /d HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let sent = std::time::Instant::now();
    assert!(
        closes(&mut half).await,
        "a half-sent head after back-to-back requests stayed open"
    );
    assert!(sent.elapsed() >= Duration::from_millis(250));

    let mut quiet = gateway.raw("web").await;
    send_back_to_back(&mut quiet).await;
    let answered = std::time::Instant::now();
    assert!(
        closes(&mut quiet).await,
        "a connection gone quiet after back-to-back requests stayed open"
    );
    assert!(answered.elapsed() >= Duration::from_millis(250));
    let paths: Vec<String> = up.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/a", "/b", "/c", "/a", "/b", "/c"]);
}

#[tokio::test]
async fn bytes_sent_behind_an_upgrade_request_reach_the_upstream_after_the_switch() {
    let (_up, _gateway, mut stream) = open("").await;
    // A first request on the connection, then the upgrade with tunnel
    // bytes in the same write.
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_answer(&mut stream).await.status, 200);
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly",
        )
        .await
        .expect("write");
    let switched = read_answer(&mut stream).await;
    assert_eq!(switched.status, 101, "{}", switched.head);
    assert_eq!(read_exactly(&mut stream, 5).await, b"early");
    stream.write_all(b"later").await.expect("write");
    assert_eq!(read_exactly(&mut stream, 5).await, b"later");
}

#[tokio::test]
async fn an_http2_preface_sent_in_pieces_is_still_http2() {
    let (_up, _gateway, mut stream) = open("").await;
    stream.set_nodelay(true).expect("nodelay");
    for piece in [&b"PR"[..], b"I * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n"] {
        stream.write_all(piece).await.expect("write");
    }
    // An empty SETTINGS frame; the server answers with its own SETTINGS.
    stream
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("write");
    let frame = read_exactly(&mut stream, 9).await;
    assert_eq!(frame[3], 4, "not an HTTP/2 SETTINGS frame: {frame:?}");
}
