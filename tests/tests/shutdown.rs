//! Graceful shutdown: SIGTERM stops accepting, requests in flight finish,
//! the process exits 0.

use std::time::Duration;

use gateway_tests::{Gateway, Upstream};

/// One listener to `up`, with 10 s for requests in flight at shutdown.
fn graceful(up: &Upstream) -> String {
    format!(
        "[runtime]\nshutdown_grace = \"10s\"\n{}",
        gateway_tests::web_to(up.addr, "")
    )
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    let up = Upstream::start("up").await;
    let mut gateway = Gateway::start(&graceful(&up)).await;
    let addr = gateway.addr("web");
    let mut client = gateway.http1("web").await;
    let in_flight = tokio::spawn(async move { client.get("/slow/700").await });
    // Signal once the upstream has the request, so it is truly in flight.
    assert!(
        up.wait_for_requests(1).await,
        "request never reached the upstream"
    );
    gateway.terminate();
    assert!(gateway.wait_for_log("shutting down", Duration::from_secs(5)));
    let reply = in_flight.await.expect("task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "up");
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn sigterm_lets_every_http2_stream_in_flight_finish() {
    // The streams of one HTTP/2 connection run with the connection: a
    // graceful shutdown (GOAWAY) must still let each of them answer.
    let up = Upstream::start("up").await;
    let mut gateway = Gateway::start(&graceful(&up)).await;
    let client = gateway.http2("web").await;
    const STREAMS: usize = 4;
    let in_flight: Vec<_> = (0..STREAMS)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.get("/slow/700").await })
        })
        .collect();
    assert!(
        up.wait_for_requests(STREAMS).await,
        "the streams never all reached the upstream"
    );
    gateway.terminate();
    assert!(gateway.wait_for_log("shutting down", Duration::from_secs(5)));
    for stream in in_flight {
        let reply = stream.await.expect("task");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "up");
    }
    assert_eq!(gateway.wait_exit(Duration::from_secs(10)), Some(0));
}
