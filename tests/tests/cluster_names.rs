//! Filters and cluster names: a filter reads the configured clusters
//! (`gateway.clusters`) at configure time and can refuse a name that does
//! not exist; a filter that routes to one anyway is warned about loudly,
//! once per filter and cluster, and counted.

use gateway_tests::{check_config, wasm, Gateway, Http1Client, Upstream, WAIT};

fn config(upstream: &str, filter_config: &str) -> String {
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "picker"
        path = {path:?}
        config = {filter_config:?}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{upstream}"]
        [[cluster]]
        name = "spare"
        endpoints = ["{upstream}"]
        "#,
        path = wasm::path("tw-cluster-check").display().to_string(),
    )
}

#[tokio::test]
async fn a_filter_reads_the_cluster_names_at_configure_time() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up.addr.to_string(), "spare")).await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/x").await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.header("x-clusters-at-configure"), Some("up,spare"));
}

#[test]
fn check_reports_a_filter_refusing_an_unknown_cluster() {
    let (output, _, _dir) = check_config(&config("127.0.0.1:9", "nope"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown cluster `nope`; configured: up, spare"),
        "{stderr}"
    );
}

#[tokio::test]
async fn routing_to_an_unknown_cluster_is_warned_once_and_counted() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up.addr.to_string(), "")).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..3 {
        let req = http::Request::get("/x")
            .header("x-cluster", "nope")
            .body(Default::default())
            .expect("request");
        let reply = client.send(req).await;
        assert_eq!(reply.status.as_u16(), 503);
        assert!(reply.text().contains("no such cluster"), "{}", reply.text());
    }
    let warning = "filter routes requests to cluster `nope`, which is not configured";
    assert!(gateway.wait_for_log(warning, WAIT), "{:?}", gateway.logs());
    let warned: Vec<String> = gateway
        .logs()
        .into_iter()
        .filter(|l| l.contains(warning))
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("picker"),
        "{warned:?}"
    );

    // Every such request is counted; a known cluster is not.
    let reply = client.get("/x").await;
    assert_eq!(reply.status.as_u16(), 200);
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let metrics = admin.get("/metrics").await.text();
    assert!(
        metrics.contains("gateway_filter_unknown_cluster_total{filter=\"picker\"} 3"),
        "{metrics}"
    );
}
