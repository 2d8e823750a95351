//! Endpoints given by host name: `localhost:PORT` is resolved at start and
//! again every `dns_refresh`, shown in `GET /clusters` and counted.

#[path = "support/admin.rs"]
mod admin;

use std::time::{Duration, Instant};

use gateway_tests::{Gateway, Upstream, WAIT};

#[tokio::test]
async fn a_localhost_endpoint_is_resolved_and_re_resolved() {
    let upstream = Upstream::start("named").await;
    let name = format!("localhost:{}", upstream.addr.port());
    let gateway = Gateway::start(&format!(
        r#"
        [access_log]
        enabled = false
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "named"
        [[cluster]]
        name = "named"
        endpoints = ["{name}"]
        dns_refresh = "50ms"
        "#
    ))
    .await;
    let admin = gateway.admin.expect("admin");
    let mut client = gateway.http1("web").await;
    let reply = client.get("/").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "named");

    // Resolved as the cluster starts (off the request path): poll until
    // the admin shows the answer.
    let deadline = Instant::now() + WAIT;
    loop {
        let view = admin::clusters(admin).await;
        let entry = admin::endpoint(&view, "named", &name);
        let resolved: Vec<&str> = entry["resolved"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if !resolved.is_empty() {
            assert!(
                resolved.contains(&upstream.addr.to_string().as_str()),
                "{entry:#}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never resolved: {entry:#}");
        // Pacing of the poll only.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Re-resolved on the interval: the count of good resolutions grows.
    let line = format!("gateway_endpoint_resolutions_total{{endpoint=\"{name}\",result=\"ok\"}} ");
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = admin::metrics(admin).await;
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if count >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{count} resolutions:\n{metrics}");
        // Pacing of the poll only.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
