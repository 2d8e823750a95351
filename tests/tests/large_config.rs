//! Large configurations: a 10,000-route table reloads under load without
//! a failed request, and the new table is in force within a second.

use std::time::{Duration, Instant};

use gateway_tests::{Gateway, Upstream, WAIT};

/// Routes before the one the load uses.
const ROUTES: usize = 10_000;
/// Client connections, each sending one request after the other, at most
/// one per `PACE`: steady load that leaves the reload some CPU on a small
/// machine, as a gateway in service has.
const CLIENTS: usize = 4;
const PACE: Duration = Duration::from_millis(2);
/// Requests per client at most, so the load is bounded in count as well
/// as in time.
const MAX_REQUESTS: usize = 20_000;
/// Requests each client sends once it has seen the new table, then stops.
const AFTER_RELOAD: usize = 50;

/// A listener whose `/probe` route (the last of `ROUTES + 1`) goes to
/// `probe_cluster`; the others mix exact paths, prefixes, exact hosts and
/// wildcard hosts, as a large gateway's table does.
fn config(a: &Upstream, b: &Upstream, probe_cluster: &str) -> String {
    let mut text = String::from(
        r#"
        [access_log]
        enabled = false
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        "#,
    );
    for i in 0..ROUTES {
        let cluster = if i % 2 == 0 { "a" } else { "b" };
        let matcher = match i % 4 {
            0 => format!("path = \"/svc/{i}/items\""),
            1 => format!("path_prefix = \"/api/v{i}\""),
            2 => format!("path_prefix = \"/\"\nhost = \"h{i}.example.com\""),
            _ => format!("path_prefix = \"/x/\"\nhost = \"*.w{i}.example.com\""),
        };
        text.push_str(&format!(
            "[[listener.route]]\n{matcher}\ncluster = \"{cluster}\"\n"
        ));
    }
    text.push_str(&format!(
        r#"
        [[listener.route]]
        path = "/probe"
        cluster = "{probe_cluster}"
        [[cluster]]
        name = "a"
        endpoints = ["{}"]
        [[cluster]]
        name = "b"
        endpoints = ["{}"]
        "#,
        a.addr, b.addr
    ));
    text
}

/// What one client saw: requests sent (in all, and since it first got
/// `b`), when it first got `b`, and the answers that were not a 200 from
/// the expected upstream.
struct Seen {
    sent: usize,
    since_b: usize,
    first_b: Option<Instant>,
    failures: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_route_reload_under_load_fails_no_request_and_applies_within_a_second() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gateway = Gateway::start(&config(&a, &b, "a")).await;

    // The table works before the reload: a route from the middle of it.
    let mut check = gateway.http1("web").await;
    let by_host = http::Request::get("/anything")
        .header("host", "h4002.example.com")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    assert_eq!(check.send(by_host).await.text(), "a");
    assert_eq!(check.get("/api/v4001/x").await.text(), "b");
    assert_eq!(check.get("/api/v4001x").await.status, 404);
    assert_eq!(check.get("/probe").await.text(), "a");

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = gateway.http1("web").await;
        clients.push(tokio::spawn(async move {
            let mut seen = Seen {
                sent: 0,
                since_b: 0,
                first_b: None,
                failures: Vec::new(),
            };
            let started = Instant::now();
            let mut pace = tokio::time::interval(PACE);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while seen.since_b < AFTER_RELOAD
                && seen.sent < MAX_REQUESTS
                && started.elapsed() < WAIT
            {
                pace.tick().await;
                let reply = client.get("/probe").await;
                seen.sent += 1;
                let body = reply.text();
                // Once a connection saw the new table, it never sees the
                // old one again.
                let expected_ok = match (body.as_str(), seen.first_b) {
                    ("a", None) => true,
                    ("b", None) => {
                        seen.first_b = Some(Instant::now());
                        true
                    }
                    ("b", Some(_)) => true,
                    _ => false,
                };
                if seen.first_b.is_some() {
                    seen.since_b += 1;
                }
                if reply.status != 200 || !expected_ok {
                    seen.failures.push(format!("{} {body}", reply.status));
                }
            }
            seen
        }));
    }

    // Some load on the old table first.
    let a_before = a.received().len();
    assert!(
        a.wait_for_requests(a_before + 100).await,
        "no load reached the old table"
    );
    let reloaded_at = Instant::now();
    gateway.rewrite_config(&config(&a, &b, "b"));
    assert!(
        gateway.log_count_reaches("config reloaded", 1, WAIT).await,
        "{:?}",
        gateway.logs()
    );

    let (mut total, mut slowest) = (0, Duration::ZERO);
    for client in clients {
        let seen = client.await.expect("client task");
        total += seen.sent;
        assert!(seen.failures.is_empty(), "failed: {:?}", seen.failures);
        let first_b = seen
            .first_b
            .expect("every connection reached the new table");
        let took = first_b.saturating_duration_since(reloaded_at);
        assert!(
            took < Duration::from_secs(1),
            "the new table took {took:?} to be in force"
        );
        slowest = slowest.max(took);
    }
    eprintln!("{total} requests, none failed; the new table in force after {slowest:?}");
    assert!(
        total > 2 * CLIENTS * AFTER_RELOAD,
        "only {total} requests were sent"
    );
}
