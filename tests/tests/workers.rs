//! Connections are shared evenly by the workers: the kernel spreads them
//! over the workers' sockets by a hash, and a worker that accepts one while
//! it serves two or more of that listener's than another hands it over. Handed connections
//! are served like any other (HTTP/1.1, HTTP/2, L4) and leave the count
//! when they close.

use gateway_tests::{Gateway, Http1Client, Http2Client, Upstream, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn config(up: &Upstream, echo: std::net::SocketAddr) -> String {
    format!(
        r#"
        [runtime]
        workers = 2
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[listener]]
        name = "l4"
        protocol = "tcp"
        address = "127.0.0.1:0"
        cluster = "echo"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        [[cluster]]
        name = "echo"
        endpoints = ["{echo}"]
        "#,
        up.addr
    )
}

/// `gateway_worker_connections` of each worker.
async fn per_worker(gateway: &Gateway) -> Vec<u64> {
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let text = admin.get("/metrics").await.text();
    (0..2)
        .map(|i| {
            let needle = format!("gateway_worker_connections{{worker=\"{i}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&needle))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no count for worker {i}:\n{text}"))
        })
        .collect()
}

/// An upstream that echoes what each connection sends.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn connections_are_shared_evenly_by_the_workers() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, echo_server().await)).await;

    // 40 HTTP/1.1 connections, each opened once the last one was served
    // (so each is counted where it went before the next arrives). By the
    // kernel's hash alone, the two workers would differ by more than two
    // most of the time.
    let mut h1 = Vec::new();
    for i in 0..40 {
        let mut client = gateway.http1("web").await;
        assert_eq!(
            client.get(&format!("/c/{i}")).await.status,
            200,
            "connection {i}"
        );
        h1.push(client);
    }
    let counts = per_worker(&gateway).await;
    assert_eq!(counts.iter().sum::<u64>(), 40, "{counts:?}");
    assert!(counts[0].abs_diff(counts[1]) <= 2, "uneven: {counts:?}");

    // Every connection still serves further requests where it went.
    for (i, client) in h1.iter_mut().enumerate() {
        assert_eq!(client.get(&format!("/again/{i}")).await.status, 200);
    }

    // HTTP/2 and L4 connections are balanced the same way, and served.
    let mut h2 = Vec::new();
    for i in 0..6 {
        let mut client = Http2Client::connect(gateway.addr("web")).await;
        assert_eq!(client.get(&format!("/h2/{i}")).await.status, 200);
        h2.push(client);
    }
    let mut tcp = Vec::new();
    for i in 0..6u8 {
        let mut s = TcpStream::connect(gateway.addr("l4"))
            .await
            .expect("connect");
        s.write_all(&[b'a' + i]).await.expect("write");
        let mut back = [0u8; 1];
        tokio::time::timeout(WAIT, s.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(back[0], b'a' + i);
        tcp.push(s);
    }
    // Each listener balances its own connections: within two per
    // listener, four over both.
    let counts = per_worker(&gateway).await;
    assert_eq!(counts.iter().sum::<u64>(), 52, "{counts:?}");
    assert!(counts[0].abs_diff(counts[1]) <= 4, "uneven: {counts:?}");
    assert_eq!(up.received().len(), 86);

    // Closed connections leave the count, wherever they were served.
    drop((h1, h2, tcp));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let counts = per_worker(&gateway).await;
        if counts == [0, 0] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still counted: {counts:?}"
        );
        tokio::task::yield_now().await;
    }
}
