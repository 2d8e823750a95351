//! Passive health and the cluster-wide answers: ejection on consecutive
//! 5xx and resets, the immediate 503 naming a cluster with no endpoint in
//! rotation, and the panic threshold.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/cluster_config.rs"]
mod cluster_config;
#[path = "support/switchable.rs"]
mod switchable;

use std::time::{Duration, Instant};

use cluster_config::{config, send};
use gateway_tests::Gateway;
use switchable::Switchable;

#[tokio::test]
async fn with_every_endpoint_down_the_answer_is_an_immediate_503_naming_the_cluster() {
    let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
    let tcp = "[cluster.health_check]\nkind = \"tcp\"\ninterval = \"50ms\"\nunhealthy_threshold = 1\nhealthy_threshold = 1\n";
    let clusters = format!(
        "[[cluster]]\nname = \"strict\"\nendpoints = [\"{a}\", \"{b}\"]\nconnect_timeout = \"5s\"\n{tcp}\n\
         [[cluster]]\nname = \"panicky\"\nendpoints = [\"{a}\", \"{b}\"]\nhealthy_panic_threshold = 50\n\
         [cluster.health_check]\ninterval = \"50ms\"\npath = \"/healthz\"\nunhealthy_threshold = 1\nhealthy_threshold = 1\n",
        a = a.addr,
        b = b.addr
    );
    let gateway = Gateway::start(&config(&clusters)).await;
    let admin = gateway.admin.expect("admin");
    let mut client = gateway.http1("web").await;

    // The HTTP checks of `panicky` fail on both, the traffic would not:
    // below the panic threshold every endpoint takes traffic.
    a.set_health(500);
    b.set_health(500);
    admin::wait_health(admin, "panicky", &a.addr.to_string(), "unhealthy").await;
    admin::wait_health(admin, "panicky", &b.addr.to_string(), "unhealthy").await;
    let replies = send(&mut client, "/panicky/x", 10).await;
    assert!(replies.iter().all(|r| r.0 == 200), "{replies:?}");
    let view = admin::clusters(admin).await;
    let panicky = view["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "panicky"))
        .expect("cluster panicky in /clusters");
    assert_eq!(panicky["panic"], true, "{panicky:#}");

    // Both endpoints of `strict` stop listening: its TCP checks fail.
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    drop((a, b));
    admin::wait_health(admin, "strict", &a_addr, "unhealthy").await;
    admin::wait_health(admin, "strict", &b_addr, "unhealthy").await;
    let started = Instant::now();
    let reply = client.get("/strict/x").await;
    assert_eq!(reply.status, 503);
    assert!(reply.text().contains("strict"), "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn consecutive_5xx_eject_an_endpoint_and_the_metrics_count_it() {
    let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
    let cluster = format!(
        "[[cluster]]\nname = \"c\"\nendpoints = [\"{}\", \"{}\"]\neject_after_5xx = 3\nejection_time = \"60s\"\n",
        a.addr, b.addr
    );
    let gateway = Gateway::start(&config(&cluster)).await;
    let admin = gateway.admin.expect("admin");
    let mut client = gateway.http1("web").await;
    a.set_status(500);
    // Round robin: a answers 500 on every other request until it is out.
    let replies = send(&mut client, "/c/x", 6).await;
    assert_eq!(
        replies.iter().filter(|r| r.0 == 500).count(),
        3,
        "{replies:?}"
    );
    let replies = send(&mut client, "/c/x", 10).await;
    assert!(
        replies.iter().all(|r| *r == (200, "b".to_string())),
        "{replies:?}"
    );

    let a_addr = a.addr.to_string();
    let view = admin::clusters(admin).await;
    let entry = admin::endpoint(&view, "c", &a_addr);
    assert_eq!(entry["health"], "ejected", "{entry:#}");
    assert_eq!(entry["reason"], "passive: consecutive 5xx responses");
    assert_eq!(entry["ejections"], 1);
    assert_eq!(entry["failures"], 3);
    let metrics = admin::metrics(admin).await;
    for line in [
        format!("gateway_endpoint_ejections_total{{cluster=\"c\",endpoint=\"{a_addr}\"}} 1"),
        format!("gateway_endpoint_requests_total{{cluster=\"c\",endpoint=\"{a_addr}\"}} 3"),
        format!("gateway_endpoint_failures_total{{cluster=\"c\",endpoint=\"{a_addr}\"}} 3"),
        format!("gateway_endpoint_healthy{{cluster=\"c\",endpoint=\"{a_addr}\"}} 0"),
    ] {
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
}

#[tokio::test]
async fn consecutive_resets_eject_an_endpoint() {
    // An endpoint that reads a request and closes without answering.
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closer_addr = closer.local_addr().expect("address");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let closing = tokio::spawn(async move {
        while let Ok((mut stream, _)) = closer.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf).await;
        }
    });
    let b = Switchable::start("b").await;
    let cluster = format!(
        "[[cluster]]\nname = \"c\"\nendpoints = [\"{closer_addr}\", \"{}\"]\neject_after_resets = 2\nejection_time = \"60s\"\n",
        b.addr
    );
    let gateway = Gateway::start(&config(&cluster)).await;
    let admin = gateway.admin.expect("admin");
    let closer_key = closer_addr.to_string();
    // Requests until the closer is ejected (bounded: round robin sends it
    // about every other one). Each reset GET is retried on b, so every
    // client gets its answer.
    let mut sent = 0;
    loop {
        let view = admin::clusters(admin).await;
        let entry = admin::endpoint(&view, "c", &closer_key).clone();
        if entry["health"] == "ejected" {
            assert_eq!(entry["reason"], "passive: consecutive resets", "{entry:#}");
            break;
        }
        assert!(sent < 50, "not ejected after {sent} requests: {entry:#}");
        let mut client = gateway.http1("web").await;
        let reply = client.get("/c/x").await;
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "b".to_string())
        );
        sent += 1;
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    // Out of rotation: nothing more reaches it.
    for _ in 0..10 {
        let mut client = gateway.http1("web").await;
        assert_eq!(client.get("/c/x").await.status, 200);
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    closing.abort();
}
