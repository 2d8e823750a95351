//! Weighted endpoints: a 90/10 canary holds its split over 10,000
//! requests for every policy that follows weights.

use std::collections::HashMap;

use gateway_tests::{Gateway, Upstream};

const REQUESTS: usize = 10_000;

/// Sends [`REQUESTS`] from `clients` keep-alive connections at once;
/// returns how many reached (stable, canary).
async fn split(policy: &str, clients: usize) -> (usize, usize) {
    let (stable, canary) = (
        Upstream::start("stable").await,
        Upstream::start("canary").await,
    );
    let gateway = Gateway::start(&format!(
        r#"
        [access_log]
        enabled = false
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "app"
        [[cluster]]
        name = "app"
        balance = "{policy}"
        endpoints = [{{ address = "{}", weight = 90 }}, {{ address = "{}", weight = 10 }}]
        "#,
        stable.addr, canary.addr
    ))
    .await;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut client = gateway.http1("web").await;
        tasks.push(tokio::spawn(async move {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for _ in 0..REQUESTS / clients {
                let reply = client.get("/").await;
                assert_eq!(reply.status, 200);
                *counts.entry(reply.text()).or_default() += 1;
            }
            counts
        }));
    }
    let mut total: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        for (name, n) in task.await.expect("client") {
            *total.entry(name).or_default() += n;
        }
    }
    let (s, c) = (
        total.get("stable").copied().unwrap_or(0),
        total.get("canary").copied().unwrap_or(0),
    );
    assert_eq!(s + c, REQUESTS, "{total:?}");
    assert_eq!(stable.received().len() + canary.received().len(), REQUESTS);
    (s, c)
}

fn assert_canary_share(policy: &str, (stable, canary): (usize, usize)) {
    let share = canary as f64 / REQUESTS as f64;
    println!(
        "{policy}: stable {stable}, canary {canary} ({:.2}%)",
        share * 100.0
    );
    assert!(
        (share - 0.10).abs() <= 0.02,
        "{policy}: canary got {canary} of {REQUESTS}"
    );
}

#[tokio::test]
async fn a_90_10_canary_with_round_robin() {
    assert_canary_share("round_robin", split("round_robin", 8).await);
}

#[tokio::test]
async fn a_90_10_canary_with_random() {
    assert_canary_share("random", split("random", 8).await);
}

/// Least request follows the weights while endpoints are idle; under
/// concurrent load it also weighs requests in flight (as Envoy's), so the
/// canary split is measured with one client at a time.
#[tokio::test]
async fn a_90_10_canary_with_least_request() {
    assert_canary_share("least_request", split("least_request", 1).await);
}
