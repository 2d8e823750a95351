//! Active health checks as users see them: an endpoint leaves the rotation
//! and comes back, checks run once per process and over TLS, health is
//! kept across a reload, shown in `GET /clusters` and the metrics, and
//! `gateway check` names bad keys.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/cluster_config.rs"]
mod cluster_config;
#[path = "support/switchable.rs"]
mod switchable;

use std::time::{Duration, Instant};

use cluster_config::{config, send};
use gateway_tests::{check_config, Gateway};
use switchable::Switchable;

const CHECKED: &str = r#"
[health_check]
method = "HEAD"
host = "health.internal"
interval = "50ms"
timeout = "1s"
unhealthy_threshold = 2
healthy_threshold = 2
path = "/healthz"
expected_statuses = ["200-299"]
"#;

#[tokio::test]
async fn an_endpoint_failing_its_checks_leaves_rotation_and_comes_back() {
    let (a, b) = (Switchable::start("a").await, Switchable::start("b").await);
    let cluster = format!(
        "[[cluster]]\nname = \"c\"\nendpoints = [\"{}\", \"{}\"]\n{}",
        a.addr,
        b.addr,
        CHECKED.replace("[health_check]", "[cluster.health_check]")
    );
    let gateway = Gateway::start(&config(&cluster)).await;
    let admin = gateway.admin.expect("admin");
    let mut client = gateway.http1("web").await;
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());

    a.set_health(503);
    let out = admin::wait_health(admin, "c", &a_addr, "unhealthy").await;
    assert_eq!(out["reason"], "active check: HTTP 503", "{out:#}");
    assert_eq!(a.last_check(), "HEAD health.internal");
    assert!(
        out["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{out:#}"
    );
    let replies = send(&mut client, "/c/x", 20).await;
    assert!(
        replies.iter().all(|r| *r == (200, "b".to_string())),
        "{replies:?}"
    );
    let metrics = admin::metrics(admin).await;
    let gauge = format!("gateway_endpoint_healthy{{cluster=\"c\",endpoint=\"{a_addr}\"}} 0");
    assert!(metrics.contains(&gauge), "{metrics}");

    a.set_health(200);
    let back = admin::wait_health(admin, "c", &a_addr, "healthy").await;
    assert!(back["reason"].is_null(), "{back:#}");
    let replies = send(&mut client, "/c/x", 20).await;
    let to_a = replies.iter().filter(|r| r.1 == "a").count();
    assert_eq!(to_a, 10, "round robin again over both: {replies:?}");
    assert_eq!(
        admin::endpoint(&admin::clusters(admin).await, "c", &b_addr)["health"],
        "healthy"
    );
}

#[tokio::test]
async fn checks_run_once_per_process_not_once_per_worker() {
    let a = Switchable::start("a").await;
    let cluster = format!(
        "[[cluster]]\nname = \"c\"\nendpoints = [\"{}\"]\n[cluster.health_check]\ninterval = \"200ms\"\npath = \"/healthz\"\n",
        a.addr
    );
    let text = config(&cluster).replace("[admin]", "[runtime]\nworkers = 4\n[admin]");
    let gateway = Gateway::start(&text).await;
    let started = Instant::now();
    let deadline = started + gateway_tests::WAIT;
    while a.checks() < 6 {
        assert!(
            Instant::now() < deadline,
            "checks stopped at {}",
            a.checks()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One checker at 200ms makes ~5 checks a second; one per worker
    // would make four times as many.
    let elapsed = started.elapsed().as_secs_f64();
    let rate = a.checks() as f64 / elapsed.max(0.2);
    assert!(rate < 9.0, "{} checks in {elapsed:.2}s", a.checks());
    drop(gateway);
}

#[tokio::test]
async fn a_reload_that_keeps_the_cluster_keeps_its_health() {
    let a = Switchable::start("a").await;
    let b = Switchable::start("b").await;
    let cluster = format!(
        "[[cluster]]\nname = \"c\"\nendpoints = [\"{}\", \"{}\"]\n{}",
        a.addr,
        b.addr,
        CHECKED.replace("[health_check]", "[cluster.health_check]")
    );
    let text = config(&cluster);
    let gateway = Gateway::start(&text).await;
    let admin = gateway.admin.expect("admin");
    let a_addr = a.addr.to_string();
    a.set_health(503);
    let before = admin::wait_health(admin, "c", &a_addr, "unhealthy").await;

    // A new route; the cluster is unchanged.
    gateway.rewrite_config(&text.replace(
        "[[cluster]]",
        "[[listener.route]]\npath_prefix = \"/other\"\ncluster = \"c\"\n[[cluster]]",
    ));
    gateway.hangup();
    assert!(
        gateway.wait_for_log("config reloaded", gateway_tests::WAIT),
        "{:?}",
        gateway.logs()
    );
    let mut client = gateway.http1("web").await;
    let replies = send(&mut client, "/other", 10).await;
    assert!(
        replies.iter().all(|r| *r == (200, "b".to_string())),
        "{replies:?}"
    );
    let after = admin::endpoint(&admin::clusters(admin).await, "c", &a_addr).clone();
    assert_eq!(after["health"], "unhealthy");
    assert_eq!(after["since"], before["since"], "{before:#} {after:#}");
}

#[test]
fn gateway_check_names_the_bad_traffic_keys() {
    let text = config(
        r#"
[[cluster]]
name = "c"
endpoints = ["127.0.0.1:1", { address = "127.0.0.1:2", weight = 0 }]
hash_header = "x-user"
healthy_panic_threshold = 101
[cluster.health_check]
path = "healthz"
expected_statuses = ["200-2xx"]
unhealthy_threshold = 0
"#,
    );
    let (output, path, _dir) = check_config(&text);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "cluster[0].endpoints[1].weight",
        "cluster[0].hash_header",
        "cluster[0].healthy_panic_threshold",
        "cluster[0].health_check.path",
        "cluster[0].health_check.expected_statuses[0]",
        "cluster[0].health_check.unhealthy_threshold",
    ] {
        assert!(stderr.contains(key), "{key} not in:\n{stderr}");
    }
    // Each error points at the line of its key.
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.starts_with(&format!("{needle} =")))
            .map(|i| i + 1)
            .expect("key in the config")
    };
    for (key, written) in [
        ("cluster[0].hash_header", "hash_header"),
        ("cluster[0].health_check.path", "path"),
        (
            "cluster[0].health_check.unhealthy_threshold",
            "unhealthy_threshold",
        ),
    ] {
        let at = format!("(key `{key}`) at {}:{}:", path.display(), line_of(written));
        assert!(stderr.contains(&at), "{at} not in:\n{stderr}");
    }
}

#[tokio::test]
async fn checks_of_a_tls_cluster_speak_tls_and_fail_on_a_bad_certificate() {
    use gateway_tests::tls::{Pki, TlsUpstream};
    let pki = Pki::new("internal ca");
    let upstream =
        TlsUpstream::start("secure", &pki.server(&["svc.internal"]), &["http/1.1"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca.cert_pem).expect("write CA");
    let check = "[cluster.health_check]\ninterval = \"50ms\"\nunhealthy_threshold = 1\nhealthy_threshold = 1\n";
    let clusters = format!(
        "[[cluster]]\nname = \"good\"\nendpoints = [\"{a}\"]\n[cluster.tls]\nca = \"ca.pem\"\nsni = \"svc.internal\"\n{check}\n\
         [[cluster]]\nname = \"bad\"\nendpoints = [\"{a}\"]\n[cluster.tls]\nca = \"ca.pem\"\nsni = \"other.internal\"\n{check}",
        a = upstream.addr
    );
    let gateway = Gateway::start_in(dir, &config(&clusters)).await;
    let admin = gateway.admin.expect("admin");
    let address = upstream.addr.to_string();
    let bad = admin::wait_health(admin, "bad", &address, "unhealthy").await;
    assert!(
        bad["reason"]
            .as_str()
            .is_some_and(|r| r.contains("TLS handshake")),
        "{bad:#}"
    );
    // The good cluster's checks reach the upstream over TLS with its SNI,
    // with no traffic at all.
    let deadline = Instant::now() + gateway_tests::WAIT;
    while upstream.seen().len() < 2 {
        assert!(Instant::now() < deadline, "no TLS check arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(upstream
        .seen()
        .iter()
        .all(|(_, sni)| sni.as_deref() == Some("svc.internal")));
    let good = admin::endpoint(&admin::clusters(admin).await, "good", &address).clone();
    assert_eq!(good["health"], "healthy", "{good:#}");
}

#[tokio::test]
async fn checks_speak_http2_when_tls_negotiates_it() {
    use gateway_tests::tls::{Pki, TlsUpstream};
    let pki = Pki::new("internal ca");
    let upstream = TlsUpstream::start("h2", &pki.server(&["svc.internal"]), &["h2"]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("ca.pem"), &pki.ca.cert_pem).expect("write CA");
    let clusters = format!(
        "[[cluster]]\nname = \"h2\"\nendpoints = [\"{}\"]\n[cluster.tls]\nca = \"ca.pem\"\nsni = \"svc.internal\"\nalpn = [\"h2\"]\n\
         [cluster.health_check]\ninterval = \"50ms\"\nunhealthy_threshold = 1\n",
        upstream.addr
    );
    let gateway = Gateway::start_in(dir, &config(&clusters)).await;
    let deadline = Instant::now() + gateway_tests::WAIT;
    while upstream.seen().len() < 3 {
        assert!(Instant::now() < deadline, "no HTTP/2 check arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(upstream
        .seen()
        .iter()
        .all(|(v, _)| *v == http::Version::HTTP_2));
    let admin = gateway.admin.expect("admin");
    let entry = admin::endpoint(
        &admin::clusters(admin).await,
        "h2",
        &upstream.addr.to_string(),
    )
    .clone();
    assert_eq!(entry["health"], "healthy", "{entry:#}");
}
