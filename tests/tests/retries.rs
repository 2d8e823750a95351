//! Retries as clients and upstreams see them: which failures are tried
//! again and where, per-try timeouts, the retry budget, the stale pooled
//! connection and bad settings. What may be sent twice: `replay.rs`;
//! circuit breakers: `overload.rs`.

use std::time::{Duration, Instant};

use gateway_tests::{
    check_config, one_route_config as config, Fault, FaultyUpstream, Gateway, Http1Client, Scrape,
};

#[tokio::test]
async fn a_503_is_retried_on_another_endpoint_and_the_client_gets_its_answer() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(503));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = [\"gateway_error\"]",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..6 {
        let reply = client.get("/x").await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "b"));
    }
    assert!(a.count() >= 1, "round robin sent some first tries to a");
    assert_eq!(b.count(), 6);
    let metrics = Scrape::of(&gateway).await;
    let retries = metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="status"}"#);
    assert_eq!(retries, a.count() as f64, "{}", metrics.text());
}

#[tokio::test]
async fn chosen_statuses_are_retried_and_others_are_not() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(429));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = []\nstatuses = [429]",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..4 {
        assert_eq!(client.get("/x").await.text(), "b");
    }
    assert!(a.count() >= 1);
    // 503 is not in the list: it reaches the client as the upstream sent it.
    a.set(Fault::Status(503));
    let before = (a.count(), b.count());
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(client.get("/y").await.status.as_u16());
    }
    let to_a = a.count() - before.0;
    assert!(to_a >= 1);
    assert_eq!(seen.iter().filter(|s| **s == 503).count(), to_a);
    assert_eq!(to_a + b.count() - before.1, 4, "nothing was retried");
}

#[tokio::test]
async fn a_try_never_goes_to_an_endpoint_already_tried() {
    let ups = [
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
        FaultyUpstream::start("c").await,
    ];
    for up in &ups {
        up.set(Fault::Status(503));
    }
    let text = config(
        &[&ups[0], &ups[1], &ups[2]],
        "",
        "[cluster.retry]\nattempts = 3\nretry_on = [\"gateway_error\"]\nbackoff_base = \"1ms\"",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..5 {
        // The last try's answer is the client's.
        assert_eq!(client.get("/x").await.status, 503);
    }
    let counts: Vec<usize> = ups.iter().map(FaultyUpstream::count).collect();
    assert_eq!(
        counts,
        vec![5, 5, 5],
        "each request tried each endpoint once"
    );
}

#[tokio::test]
async fn a_per_try_timeout_moves_a_slow_request_to_another_endpoint() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Slow(Duration::from_secs(20)));
    let text = config(
        &[&a, &b],
        "timeout = \"10s\"\n[listener.route.retry]\nper_try_timeout = \"300ms\"",
        "",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..4 {
        let started = Instant::now();
        let reply = client.get("/x").await;
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "b"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(a.count() >= 1);
    let metrics = Scrape::of(&gateway).await;
    let timeouts = metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="timeout"}"#);
    assert_eq!(timeouts, a.count() as f64, "{}", metrics.text());
}

#[tokio::test]
async fn a_spent_retry_budget_lets_the_failure_through_and_is_counted() {
    let (a, b) = (
        FaultyUpstream::start("a").await,
        FaultyUpstream::start("b").await,
    );
    a.set(Fault::Status(503));
    let text = config(
        &[&a, &b],
        "[listener.route.retry]\nretry_on = [\"gateway_error\"]",
        "[cluster.retry_budget]\npercent = 0\nmin_concurrent = 0",
    );
    let gateway = Gateway::start(&text).await;
    let mut client = gateway.http1("web").await;
    let mut answered_503 = 0;
    for _ in 0..6 {
        if client.get("/x").await.status == 503 {
            answered_503 += 1;
        }
    }
    assert!(answered_503 >= 1, "round robin sent some requests to a");
    assert_eq!(answered_503, a.count());
    assert_eq!(a.count() + b.count(), 6, "nothing was retried");
    let metrics = Scrape::of(&gateway).await;
    assert_eq!(
        metrics.value(r#"gateway_cluster_retry_budget_exhausted_total{cluster="c"}"#),
        answered_503 as f64,
        "{}",
        metrics.text()
    );
}

#[tokio::test]
async fn a_stale_pooled_connection_is_replaced_even_without_retries() {
    let up = FaultyUpstream::start("up").await;
    // The upstream closes a kept-alive connection when the next request
    // arrives on it, as a server whose idle timeout just passed.
    up.set(Fault::CloseReused);
    let text = config(&[&up], "", "[cluster.retry]\nattempts = 1");
    let gateway = Gateway::start(&text).await;
    let mut client: Http1Client = gateway.http1("web").await;
    for _ in 0..3 {
        assert_eq!(client.get("/x").await.status, 200);
    }
    // Requests 2 and 3 each met a stale connection, then a new one.
    assert_eq!(up.count(), 5);
    let metrics = Scrape::of(&gateway).await;
    let stale =
        metrics.value(r#"gateway_cluster_retries_total{cluster="c",reason="stale_connection"}"#);
    assert_eq!(stale, 2.0, "{}", metrics.text());
}

#[test]
fn bad_retry_and_breaker_settings_name_file_line_and_key() {
    let up = ["127.0.0.1:1"];
    let base = format!(
        "[[listener]]\nname = \"web\"\nprotocol = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[cluster]]\nname = \"c\"\nendpoints = [\"{}\"]\n",
        up[0]
    );
    for (extra, key, message) in [
        (
            "[cluster.retry]\nattempts = 0\n",
            "attempts",
            "attempts must be from 1 to 10",
        ),
        (
            "[cluster.retry]\nretry_on = [\"often\"]\n",
            "retry_on",
            "unknown variant `often`",
        ),
        (
            "[cluster.retry]\nstatuses = [999]\n",
            "statuses",
            "999 is not an HTTP status",
        ),
        (
            "[cluster.retry_budget]\npercent = 150\n",
            "percent",
            "from 0 to 100",
        ),
        (
            "[cluster.circuit_breaker]\nmax_pending = 0\n",
            "max_pending",
            "at least 1",
        ),
    ] {
        let text = format!("{base}{extra}");
        let (output, path, _dir) = check_config(&text);
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{extra}: accepted");
        assert!(err.contains(message), "{extra}: {err}");
        assert!(err.contains(key), "{extra}: {err}");
        assert!(
            err.contains(&format!("{}:9:", path.display())),
            "{extra}: {err}"
        );
    }
}
