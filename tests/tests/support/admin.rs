//! Reading the admin's `GET /clusters` and `GET /metrics`, and waiting in
//! a bounded poll for what they show.

// Each test file uses some of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_tests::{Http1Client, WAIT};
use serde_json::Value;

/// `GET /clusters` as JSON.
pub async fn clusters(admin: SocketAddr) -> Value {
    let reply = Http1Client::connect(admin).await.get("/clusters").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    serde_json::from_str(&reply.text()).expect("clusters JSON")
}

/// `GET /metrics` as text.
pub async fn metrics(admin: SocketAddr) -> String {
    Http1Client::connect(admin)
        .await
        .get("/metrics")
        .await
        .text()
}

/// The entry of endpoint `address` of cluster `cluster`.
pub fn endpoint<'a>(view: &'a Value, cluster: &str, address: &str) -> &'a Value {
    view["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == cluster))
        .and_then(|c| c["endpoints"].as_array())
        .and_then(|es| es.iter().find(|e| e["address"] == address))
        .unwrap_or_else(|| panic!("no endpoint {address} in cluster {cluster}: {view:#}"))
}

/// Polls `/clusters` until endpoint `address` of `cluster` has `health`;
/// fails after [`WAIT`]. Returns the endpoint's entry.
pub async fn wait_health(admin: SocketAddr, cluster: &str, address: &str, health: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let view = clusters(admin).await;
        let entry = endpoint(&view, cluster, address);
        if entry["health"] == health {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{address} never became {health}: {entry:#}"
        );
        // Pacing of the poll only; the loop ends on what the admin shows.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
