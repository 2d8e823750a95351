//! Bodies stream through the gateway: a 200 MiB upload and a 200 MiB
//! download pass while its resident memory grows by less than 64 MiB.

use bytes::Bytes;
use futures_util::stream;
use gateway_tests::{Gateway, Upstream};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;

const SIZE: usize = 200 * 1024 * 1024;
const BOUND_KIB: u64 = 64 * 1024;

fn config(up: &Upstream) -> String {
    format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        request_timeout = "60s"
        "#,
        up.addr
    )
}

#[tokio::test]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up)).await;
    // Warm up so the baseline includes the connection machinery.
    let mut warm = gateway.http1("web").await;
    assert_eq!(warm.get("/warm").await.status, 200);
    let (baseline, _) = gateway.memory_kib();

    // Download: read and discard as it arrives.
    let mut client = gateway.http1("web").await;
    let resp = client
        .send_streaming(gateway_tests_get(&format!("/download/{SIZE}")))
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        received += frame.expect("frame").data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(received, SIZE);

    // Upload: a streamed request body of unknown length (chunked).
    let stream = gateway.raw("web").await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
    let frames = stream::iter(
        (0..SIZE / chunk.len())
            .map(move |_| Ok::<_, std::convert::Infallible>(Frame::data(chunk.clone()))),
    );
    let req = http::Request::post("/upload")
        .header("host", "up")
        .body(StreamBody::new(frames))
        .expect("request");
    let resp = sender.send_request(req).await.expect("upload");
    assert_eq!(resp.status(), 200);
    let count = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(String::from_utf8_lossy(&count), SIZE.to_string());

    let (_, peak) = gateway.memory_kib();
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "gateway resident memory: baseline {baseline} KiB, peak {peak} KiB, growth {growth} KiB"
    );
    assert!(growth < BOUND_KIB, "resident memory grew by {growth} KiB");
}

fn gateway_tests_get(path: &str) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::get(path)
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request")
}
