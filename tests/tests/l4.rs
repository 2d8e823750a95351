//! L4 (TCP) forwarding: balanced per connection, half-close kept,
//! failover on connect, and TLS passthrough routed by SNI.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_tests::tls::{self, ClientOptions, Pki, TlsUpstream};
use gateway_tests::{check_config, Gateway, Http1Client, Upstream, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn tcp_config(endpoints: &[SocketAddr], extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"
        [[listener]]
        name = "l4"
        protocol = "tcp"
        address = "127.0.0.1:0"
        cluster = "ping_pong"
        {extra}

        [[cluster]]
        name = "ping_pong"
        endpoints = [{}]
        connect_timeout = "2s"
        "#,
        endpoints.join(", ")
    )
}

/// An address nothing listens on (bound, then released).
async fn dead_address() -> SocketAddr {
    let socket = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    socket.local_addr().expect("addr")
}

/// `line` without terminal colour codes.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads until EOF; Err if the peer reset or `WAIT` passed.
async fn read_to_end(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no EOF in time"))??;
    Ok(out)
}

#[tokio::test]
async fn one_connection_stays_on_one_upstream_successive_connections_alternate() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gateway = Gateway::start(&tcp_config(&[a.addr, b.addr], "")).await;
    let mut per_connection = Vec::new();
    for _ in 0..4 {
        let mut client = Http1Client::connect(gateway.addr("l4")).await;
        let mut answers = Vec::new();
        for _ in 0..3 {
            let reply = client.get("/ping").await;
            assert_eq!(reply.status, 200);
            answers.push(reply.text());
        }
        assert!(
            answers.iter().all(|x| *x == answers[0]),
            "one connection, one upstream: {answers:?}"
        );
        per_connection.push(answers[0].clone());
    }
    for pair in per_connection.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "connections must alternate: {per_connection:?}"
        );
    }
    assert_eq!((a.received().len(), b.received().len()), (6, 6));
    assert_eq!((a.connections(), b.connections()), (2, 2));
    assert!(
        gateway.wait_for_log_count("bytes_out", 3, WAIT),
        "an access line per connection"
    );
}

// Multi-threaded: the test blocks on the gateway's log while the runtime
// closes the client connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_sends_new_connections_to_the_less_busy_upstream() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let config = tcp_config(&[a.addr, b.addr], "").replace(
        "connect_timeout",
        "balance = \"least_request\"\nconnect_timeout",
    );
    let gateway = Gateway::start(&config).await;
    // One connection stays open on its upstream...
    let mut held = Http1Client::connect(gateway.addr("l4")).await;
    let busy = held.get("/").await.text();
    // ...so every new connection goes to the other one, once the
    // previous one is over (its access line written).
    for closed in 1..=4 {
        let mut client = Http1Client::connect(gateway.addr("l4")).await;
        assert_ne!(client.get("/").await.text(), busy);
        drop(client);
        assert!(gateway.wait_for_log_count("bytes_out", closed, WAIT));
    }
    assert_eq!(held.get("/").await.text(), busy);
}

#[tokio::test]
async fn half_close_reaches_the_upstream_and_its_reply_still_arrives() {
    // The upstream answers only once it has read to EOF.
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = upstream.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut s, _) = upstream.accept().await.expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.expect("read to EOF");
        s.write_all(
            format!("got {} bytes: {}", got.len(), String::from_utf8_lossy(&got)).as_bytes(),
        )
        .await
        .expect("reply");
        s.shutdown().await.expect("shutdown");
    });
    let gateway = Gateway::start(&tcp_config(&[addr], "")).await;
    let mut client = gateway.raw("l4").await;
    client.write_all(b"hello").await.expect("write");
    client.shutdown().await.expect("half-close");
    let reply = read_to_end(&mut client)
        .await
        .expect("reply after half-close");
    assert_eq!(String::from_utf8_lossy(&reply), "got 5 bytes: hello");
    tokio::time::timeout(WAIT, server)
        .await
        .expect("upstream done")
        .expect("upstream task");
    assert!(gateway.wait_for_log("bytes_out", WAIT));
    let line = gateway
        .logs()
        .into_iter()
        .map(|l| plain(&l))
        .find(|l| l.contains("bytes_out"))
        .expect("access line");
    assert!(
        line.contains("bytes_in=5 bytes_out=18"),
        "access line counts bytes: {line}"
    );
}

#[tokio::test]
async fn a_refused_connect_fails_over_and_no_answer_closes_the_client() {
    let live = Upstream::start("live").await;
    let dead = dead_address().await;
    let gateway = Gateway::start(&tcp_config(&[dead, live.addr], "")).await;
    for _ in 0..4 {
        let mut client = Http1Client::connect(gateway.addr("l4")).await;
        assert_eq!(client.get("/").await.text(), "live");
    }
    drop(gateway);

    let gateway = Gateway::start(&tcp_config(&[dead_address().await], "")).await;
    let mut client = gateway.raw("l4").await;
    let _ = client.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
    let got = read_to_end(&mut client).await.unwrap_or_default();
    assert!(got.is_empty(), "nothing to read from a dead cluster");
    assert!(
        gateway.wait_for_log("no endpoint of cluster `ping_pong` answered", WAIT),
        "{:?}",
        gateway.logs()
    );
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let upstream = Upstream::start("a").await;
    let gateway = Gateway::start(&tcp_config(
        &[upstream.addr],
        "tcp.idle_timeout = \"200ms\"",
    ))
    .await;
    let mut client = gateway.raw("l4").await;
    let started = std::time::Instant::now();
    let got = read_to_end(&mut client)
        .await
        .expect("closed by the gateway");
    assert!(got.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert!(gateway.wait_for_log("idle for", WAIT));
}

/// Two TLS upstreams behind one tcp listener, chosen by SNI.
struct Passthrough {
    pki: Pki,
    a: TlsUpstream,
    b: TlsUpstream,
    gateway: Gateway,
}

async fn passthrough() -> Passthrough {
    let pki = Pki::new("passthrough CA");
    let a = TlsUpstream::start(
        "a",
        &pki.server(&["a.example", "other.example"]),
        &["http/1.1"],
    )
    .await;
    let b = TlsUpstream::start("b", &pki.server(&["*.b.example"]), &["http/1.1"]).await;
    let gateway = Gateway::start(&format!(
        r#"
        [[listener]]
        name = "l4"
        protocol = "tcp"
        address = "127.0.0.1:0"
        cluster = "a"
        tcp.sni_read_timeout = "2s"

        [[listener.sni]]
        names = ["a.example"]
        cluster = "a"

        [[listener.sni]]
        names = ["*.b.example"]
        cluster = "b"

        [[cluster]]
        name = "a"
        endpoints = ["{}"]

        [[cluster]]
        name = "b"
        endpoints = ["{}"]
        "#,
        a.addr, b.addr
    ))
    .await;
    Passthrough { pki, a, b, gateway }
}

async fn ask(p: &Passthrough, name: &str, chop: Option<usize>) -> String {
    let options = ClientOptions {
        server_name: name.into(),
        chop,
        ..Default::default()
    };
    let stream = tls::connect(p.gateway.addr("l4"), p.pki.roots(), &options)
        .await
        .expect("TLS through the gateway");
    let (reply, _) = tls::get(stream, name, "/").await.expect("request");
    reply.text()
}

#[tokio::test]
async fn tls_passthrough_picks_the_cluster_by_server_name() {
    let p = passthrough().await;
    assert_eq!(ask(&p, "a.example", None).await, "a");
    assert_eq!(ask(&p, "x.b.example", None).await, "b");
    assert_eq!(ask(&p, "z.b.example", None).await, "b");
    // Unknown names go to the default cluster.
    assert_eq!(ask(&p, "other.example", None).await, "a");
    // TLS ends at the upstreams, not the gateway: they saw the names.
    let names: Vec<_> = p.b.seen().into_iter().filter_map(|(_, sni)| sni).collect();
    assert_eq!(names, ["x.b.example", "z.b.example"]);
    assert_eq!(p.a.seen().len(), 2);
}

#[tokio::test]
async fn a_client_hello_split_across_writes_is_read_whole() {
    let p = passthrough().await;
    assert_eq!(ask(&p, "x.b.example", Some(7)).await, "b");
    assert_eq!(ask(&p, "a.example", Some(1)).await, "a");
}

#[tokio::test]
async fn a_non_tls_first_flight_is_closed_without_reaching_an_upstream() {
    let p = passthrough().await;
    let mut client = TcpStream::connect(p.gateway.addr("l4"))
        .await
        .expect("connect");
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .await
        .expect("write");
    let got = read_to_end(&mut client).await.unwrap_or_default();
    assert!(got.is_empty(), "no answer to plaintext: {got:?}");
    assert!(
        p.gateway.wait_for_log("not TLS", WAIT),
        "{:?}",
        p.gateway.logs()
    );
    assert!(p.a.seen().is_empty() && p.b.seen().is_empty());
    // The listener still serves TLS afterwards.
    assert_eq!(ask(&p, "a.example", None).await, "a");
}

#[test]
fn tls_and_sni_keys_are_checked() {
    let cases = [
        (
            "[[listener]]\nname = \"l\"\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n[[listener.sni]]\nnames = [\"a\"]\ncluster = \"nope\"\n",
            "unknown cluster `nope` (key `listener[0].sni[0].cluster`) at",
        ),
        (
            "[[listener]]\nname = \"l\"\nprotocol = \"https\"\naddress = \"127.0.0.1:0\"\n",
            "an https listener needs [listener.tls]",
        ),
        (
            "[[listener]]\nname = \"l\"\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n[[listener.sni]]\nnames = [\"a\"]\ncluster = \"c\"\n[[cluster]]\nname = \"c\"\n",
            "only tcp listeners route by SNI",
        ),
        (
            "[[listener]]\nname = \"l\"\nprotocol = \"tcp\"\naddress = \"127.0.0.1:0\"\n",
            "a tcp listener needs a cluster",
        ),
    ];
    for (text, expected) in cases {
        let (output, _, _dir) = check_config(text);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && err.contains(expected),
            "{expected}: {err}"
        );
    }
}
