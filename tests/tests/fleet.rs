//! A fleet: three gateway processes sharing one `redis-server`, one global
//! limit L for a tenant, load sent unevenly (60/30/10%) at 3×L. The
//! admitted rate summed over the fleet stays within ±5% of L in every
//! 2-second window after the first (each starts late in one of the limit's
//! 1-second windows, so it holds two windows' bursts whole); with Redis
//! stopped every gateway keeps answering (local limits), and 2 s after
//! Redis returns the global limit holds again. Per-window figures are
//! printed (`--nocapture`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_tests::redis::ratelimit_config;
use gateway_tests::{Gateway, Http1Client, RedisServer};

/// The global limit, requests per second for the tenant.
const LIMIT: u64 = 60;
/// Share of the load each gateway gets.
const SPLIT: [f64; 3] = [0.6, 0.3, 0.1];
/// Keep-alive connections per gateway.
const CONNECTIONS: usize = 2;
const WINDOW: f64 = 2.0;

/// (seconds since the start, gateway, status) of every request sent.
type Record = Arc<Mutex<Vec<(f64, usize, u16)>>>;

fn filter_config() -> String {
    // The local bucket (per gateway, used while Redis is unreachable):
    // 20 per second.
    format!(
        r#"{{"capacity": 20, "per_second": 20, "header": "x-tenant", "name": "fleet",
        "global": {{"limit": {LIMIT}, "window_ms": 1000, "sync_ms": 50}}}}"#
    )
}

/// Sends to `gateway` at `rate` requests per second, paced, until `end`.
async fn load(
    mut client: Http1Client,
    index: usize,
    rate: f64,
    t0: Instant,
    end: Instant,
    record: Record,
) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut next = t0;
    while next < end {
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        let request = http::Request::get("/")
            .header("host", "fleet")
            .header("x-tenant", "acme")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let reply = tokio::time::timeout(Duration::from_secs(5), client.send(request)).await;
        let status = reply.map_or(0, |r| r.status.as_u16());
        record
            .lock()
            .expect("record")
            .push(((sent - t0).as_secs_f64(), index, status));
        next += interval;
    }
}

/// How long from now until the limit's window (whole seconds of the
/// system clock, as the filter counts them) is 90% gone, at least `min`.
///
/// The limit is per fixed window, and three times the limit is offered,
/// so each window's admissions come in a burst at its start. The test's
/// 2-second windows start where the limit's windows are quiet: each then
/// holds exactly two bursts, whole. Started anywhere else, a test window
/// would cut a burst in two and count its parts by the client's clock,
/// which a stall on a loaded machine moves across the edge.
fn until_late_in_a_window(min: Duration) -> Duration {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    let into_second = Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
    let late = Duration::from_millis(900);
    let mut wait = if into_second <= late {
        late - into_second
    } else {
        late + Duration::from_secs(1) - into_second
    };
    while wait < min {
        wait += Duration::from_secs(1);
    }
    wait
}

/// Admitted requests per gateway in `[from, to)`, and all sent there.
fn admitted(record: &[(f64, usize, u16)], from: f64, to: f64) -> ([u64; 3], u64) {
    let mut per = [0; 3];
    let mut sent = 0;
    for &(t, g, status) in record {
        if t >= from && t < to {
            sent += 1;
            if status == 200 {
                per[g] += 1;
            }
        }
    }
    (per, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_hold_one_global_limit_through_a_redis_outage() {
    let mut redis = RedisServer::start();
    let config = ratelimit_config(redis.addr, &filter_config(), 1);
    let gateways = [
        Gateway::start(&config).await,
        Gateway::start(&config).await,
        Gateway::start(&config).await,
    ];
    let record: Record = Arc::default();
    let t0 = Instant::now() + until_late_in_a_window(Duration::from_millis(200));
    let (outage, back, end) = (12.0, 16.0, 22.0);
    let end_at = t0 + Duration::from_secs_f64(end);
    let mut tasks = Vec::new();
    for (index, gateway) in gateways.iter().enumerate() {
        let rate = 3.0 * LIMIT as f64 * SPLIT[index] / CONNECTIONS as f64;
        for _ in 0..CONNECTIONS {
            let client = gateway.http1("web").await;
            tasks.push(tokio::spawn(load(
                client,
                index,
                rate,
                t0,
                end_at,
                record.clone(),
            )));
        }
    }
    tokio::time::sleep_until((t0 + Duration::from_secs_f64(outage)).into()).await;
    tokio::task::block_in_place(|| redis.stop());
    tokio::time::sleep_until((t0 + Duration::from_secs_f64(back)).into()).await;
    tokio::task::block_in_place(|| redis.restart());
    for task in tasks {
        task.await.expect("load task");
    }
    let record = record.lock().expect("record").clone();

    let target = LIMIT as f64 * WINDOW;
    let mut failures = Vec::new();
    println!("window      gw1  gw2  gw3  admitted  sent  vs {target}");
    let mut from = 0.0;
    while from + WINDOW <= end {
        let (per, sent) = admitted(&record, from, from + WINDOW);
        let total: u64 = per.iter().sum();
        let deviation = (total as f64 - target) / target * 100.0;
        let phase = if from >= outage && from < back {
            "redis down"
        } else if from >= outage && from < back + 2.0 {
            "redis back"
        } else if from == 0.0 {
            "warm-up"
        } else {
            "checked"
        };
        println!(
            "{from:>4.0}-{:<4.0}s {:>4} {:>4} {:>4}  {total:>8}  {sent:>4}  {deviation:+.1}%  {phase}",
            from + WINDOW,
            per[0],
            per[1],
            per[2]
        );
        if phase == "checked" && deviation.abs() > 5.0 {
            failures.push(format!(
                "{from}-{}s: {total} admitted ({deviation:+.1}%)",
                from + WINDOW
            ));
        }
        if phase == "redis down" && per.contains(&0) {
            failures.push(format!(
                "{from}-{}s: a gateway admitted nothing without Redis",
                from + WINDOW
            ));
        }
        from += WINDOW;
    }
    let errors: Vec<_> = record
        .iter()
        .filter(|(_, _, s)| *s != 200 && *s != 429)
        .collect();
    assert!(
        errors.is_empty(),
        "every request is answered 200 or 429; (second, gateway, status): {errors:?}\n{}",
        gateways
            .iter()
            .flat_map(|g| g.logs())
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
