//! Request counts and durations, kept per worker and merged when
//! `/metrics` is scraped: the request path takes only its own worker's
//! (uncontended) lock, allocates nothing once a series exists, and never
//! formats a label.

use crate::hash::FastMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::worker::PerWorker;

/// Upper bounds of the duration buckets, in seconds: 100 µs doubling up
/// to about 13 s (the buckets the histogram always had).
const BUCKETS: usize = 18;

/// Distinct (listener, route, cluster, status) series a worker keeps;
/// beyond it, requests are counted under `route="other"` so a table of
/// thousands of routes cannot make a scrape unbounded.
pub const MAX_SERIES: usize = 2_000;

/// The labels of one request series; names are shared with the snapshot.
/// Series are keyed by the names' text, so a reload (new name objects)
/// continues the same series.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub listener: Arc<str>,
    pub route: Option<Arc<str>>,
    pub cluster: Option<Arc<str>>,
    pub status: u16,
}

#[derive(Default, Clone)]
struct Histogram {
    /// Requests per bucket, each counted in the first bucket that holds
    /// it; the scrape makes them cumulative.
    buckets: [u64; BUCKETS],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, duration: Duration) {
        if let Some(b) = self.buckets.get_mut(bucket(duration)) {
            *b += 1;
        }
        self.count += 1;
        self.sum += duration.as_secs_f64();
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
    }
}

/// The first bucket whose bound (100 µs × 2^i) holds `duration`;
/// `BUCKETS` or more: only the `+Inf` one.
fn bucket(duration: Duration) -> usize {
    let nanos = duration
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(duration.subsec_nanos()));
    let over = nanos.saturating_sub(1) / 100_000;
    (u64::BITS - over.leading_zeros()) as usize
}

#[derive(Default)]
struct Shard {
    /// Each series' count, with its listener's histogram (an index into
    /// `durations`): a request is one map look-up.
    requests: FastMap<RequestLabels, (u64, usize)>,
    durations: Vec<(Arc<str>, Histogram)>,
}

impl Shard {
    /// The index of `listener`'s histogram, made on its first request.
    fn histogram(&mut self, listener: &Arc<str>) -> usize {
        match self.durations.iter().position(|(l, _)| l == listener) {
            Some(i) => i,
            None => {
                self.durations
                    .push((listener.clone(), Histogram::default()));
                self.durations.len() - 1
            }
        }
    }
}

fn shards() -> &'static PerWorker<Mutex<Shard>> {
    static SHARDS: OnceLock<PerWorker<Mutex<Shard>>> = OnceLock::new();
    SHARDS.get_or_init(PerWorker::default)
}

/// Counts one finished request on the calling worker.
pub fn record(labels: &RequestLabels, duration: Duration) {
    let mut guard = shards().get().lock().unwrap_or_else(|p| p.into_inner());
    let shard = &mut *guard;
    let h = match shard.requests.get_mut(labels) {
        Some((n, h)) => {
            *n += 1;
            *h
        }
        None => {
            let h = shard.histogram(&labels.listener);
            let key = if shard.requests.len() < MAX_SERIES {
                labels.clone()
            } else {
                RequestLabels {
                    route: Some(other_route()),
                    ..labels.clone()
                }
            };
            shard.requests.entry(key).or_insert((0, h)).0 += 1;
            h
        }
    };
    shard.durations[h].1.observe(duration);
}

fn other_route() -> Arc<str> {
    static OTHER: OnceLock<Arc<str>> = OnceLock::new();
    OTHER.get_or_init(|| Arc::from("other")).clone()
}

/// The merged series in Prometheus text format.
pub fn encode(out: &mut String) {
    let mut requests: std::collections::BTreeMap<(String, String, String, u16), u64> =
        Default::default();
    let mut durations: std::collections::BTreeMap<String, Histogram> = Default::default();
    for shard in shards().iter() {
        let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, (n, _)) in &shard.requests {
            let key = (
                labels.listener.to_string(),
                labels.route.as_deref().unwrap_or("").to_string(),
                labels.cluster.as_deref().unwrap_or("").to_string(),
                labels.status,
            );
            *requests.entry(key).or_default() += n;
        }
        for (listener, h) in &shard.durations {
            durations.entry(listener.to_string()).or_default().merge(h);
        }
    }
    let _ = writeln!(
        out,
        "# HELP gateway_requests Requests by listener, route, cluster and status."
    );
    let _ = writeln!(out, "# TYPE gateway_requests counter");
    for ((listener, route, cluster, status), n) in &requests {
        let _ = writeln!(
            out,
            "gateway_requests_total{{listener=\"{}\",route=\"{}\",cluster=\"{}\",status=\"{status}\"}} {n}",
            escape(listener),
            escape(route),
            escape(cluster)
        );
    }
    let _ = writeln!(
        out,
        "# HELP gateway_request_duration_seconds Request duration until the response body ended."
    );
    let _ = writeln!(out, "# TYPE gateway_request_duration_seconds histogram");
    for (listener, h) in &durations {
        let l = escape(listener);
        let mut bound = 0.0001f64;
        let mut below = 0;
        for n in h.buckets {
            below += n;
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_bucket{{le=\"{bound}\",listener=\"{l}\"}} {below}"
            );
            bound *= 2.0;
        }
        let _ = writeln!(
            out,
            "gateway_request_duration_seconds_bucket{{le=\"+Inf\",listener=\"{l}\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "gateway_request_duration_seconds_sum{{listener=\"{l}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "gateway_request_duration_seconds_count{{listener=\"{l}\"}} {}",
            h.count
        );
    }
}

/// Escapes a label value (backslash, quote, newline).
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_falls_in_the_first_bucket_that_holds_it() {
        let us = Duration::from_micros;
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(us(100)), 0);
        assert_eq!(bucket(us(100) + Duration::from_nanos(1)), 1);
        assert_eq!(bucket(us(200)), 1);
        assert_eq!(bucket(us(201)), 2);
        // 1 ms: the bucket `le="0.0016"`.
        assert_eq!(bucket(Duration::from_millis(1)), 4);
        // The last bound is 100 µs × 2^17, about 13.1 s.
        assert_eq!(bucket(us(100 << 17)), BUCKETS - 1);
        assert_eq!(bucket(us(100 << 17) + us(1)), BUCKETS);
        assert!(bucket(Duration::MAX) >= BUCKETS);
    }

    #[test]
    fn counts_merge_by_name_and_buckets_are_cumulative() {
        let web: Arc<str> = Arc::from("merge-test");
        let route: Arc<str> = Arc::from("/r");
        let same_name: Arc<str> = Arc::from("/r");
        for (r, ms) in [(&route, 1), (&same_name, 50)] {
            record(
                &RequestLabels {
                    listener: web.clone(),
                    route: Some(r.clone()),
                    cluster: None,
                    status: 200,
                },
                Duration::from_millis(ms),
            );
        }
        let mut out = String::new();
        encode(&mut out);
        assert!(out.contains(
            "gateway_requests_total{listener=\"merge-test\",route=\"/r\",cluster=\"\",status=\"200\"} 2"
        ));
        assert!(out.contains(
            "gateway_request_duration_seconds_bucket{le=\"0.0016\",listener=\"merge-test\"} 1"
        ));
        assert!(out.contains("gateway_request_duration_seconds_count{listener=\"merge-test\"} 2"));
    }
}
