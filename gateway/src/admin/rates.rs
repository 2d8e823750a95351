//! Request and error rates per route, from the exported `gateway_requests_total` counters.
//!
//! The admin reads the counters the way Prometheus does (the text
//! exposition), every few seconds, and keeps a minute of samples: a rate
//! is the difference between now and the oldest sample. Nothing on the
//! request path changes for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::AdminState;
use crate::listener::Shutdown;

/// How often the counters are read, and how far back rates look.
const EVERY: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(60);

/// (listener, route) → counts. An empty route is a request no route took
/// (answered by a filter, or 404).
type Counts = BTreeMap<(String, String), Totals>;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Totals {
    pub requests: u64,
    /// Responses with a 5xx status: the gateway's own failures and the
    /// upstreams'.
    pub errors: u64,
}

/// A minute of counter samples.
#[derive(Default)]
pub(super) struct RateWindow {
    samples: Mutex<VecDeque<(Instant, Counts)>>,
}

/// One route's traffic, as the page shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct RouteTraffic {
    pub listener: String,
    pub route: String,
    pub requests: u64,
    pub errors: u64,
    /// Per second over the last minute (or since the oldest sample);
    /// `None` until there are two samples.
    pub requests_per_second: Option<f64>,
    pub errors_per_second: Option<f64>,
}

impl RateWindow {
    fn record(&self, at: Instant, counts: Counts) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((at, counts));
        while samples
            .front()
            .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            samples.pop_front();
        }
    }

    /// Totals now, with rates against the oldest sample of the window.
    pub(super) fn traffic(&self) -> Vec<RouteTraffic> {
        self.traffic_at(Instant::now(), read_counters())
    }

    fn traffic_at(&self, at: Instant, now: Counts) -> Vec<RouteTraffic> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = samples.front();
        now.into_iter()
            .map(|(key, totals)| {
                let rate = oldest.and_then(|(then, old)| {
                    let seconds = at.saturating_duration_since(*then).as_secs_f64();
                    (seconds >= 1.0).then(|| {
                        let before = old.get(&key).copied().unwrap_or_default();
                        (
                            totals.requests.saturating_sub(before.requests) as f64 / seconds,
                            totals.errors.saturating_sub(before.errors) as f64 / seconds,
                        )
                    })
                });
                let (listener, route) = key;
                RouteTraffic {
                    listener,
                    route,
                    requests: totals.requests,
                    errors: totals.errors,
                    requests_per_second: rate.map(|r| r.0),
                    errors_per_second: rate.map(|r| r.1),
                }
            })
            .collect()
    }
}

/// Samples the counters every few seconds until shutdown.
pub(super) async fn sample(admin: Arc<AdminState>, mut shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => admin.rates.record(Instant::now(), read_counters()),
            () = shutdown.started() => return,
        }
    }
}

fn read_counters() -> Counts {
    parse(&crate::metrics::encode(&[]))
}

/// Sums `gateway_requests_total` samples by listener and route.
fn parse(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("gateway_requests_total{") else {
            continue;
        };
        let Some((labels, value)) = split_labels(rest) else {
            continue;
        };
        let Some(value) = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let label = |name: &str| {
            labels
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let status: u16 = label("status").parse().unwrap_or(0);
        let entry = counts
            .entry((label("listener"), label("route")))
            .or_default();
        entry.requests += value as u64;
        if status >= 500 {
            entry.errors += value as u64;
        }
    }
    counts
}

/// `a="x",b="y\"z"} 3` → ([(a, x), (b, y"z)], " 3").
fn split_labels(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_5xx_are_summed_per_route() {
        let text = "# TYPE gateway_requests counter\n\
            gateway_requests_total{listener=\"web\",route=\"/ping\",cluster=\"c\",status=\"200\"} 7\n\
            gateway_requests_total{listener=\"web\",route=\"/ping\",cluster=\"c\",status=\"503\"} 2\n\
            gateway_requests_total{listener=\"web\",route=\"a\\\"b\",cluster=\"\",status=\"404\"} 1\n\
            gateway_requests_created{listener=\"web\",route=\"/ping\",cluster=\"c\",status=\"200\"} 1.7e9\n\
            gateway_request_errors_total{listener=\"web\",error=\"x\"} 4\n";
        let counts = parse(text);
        assert_eq!(
            counts[&("web".into(), "/ping".into())],
            Totals {
                requests: 9,
                errors: 2
            }
        );
        assert_eq!(
            counts[&("web".into(), "a\"b".into())],
            Totals {
                requests: 1,
                errors: 0
            }
        );
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn rates_compare_with_the_oldest_sample_of_the_minute() {
        let window = RateWindow::default();
        let key = ("web".to_string(), "/".to_string());
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let totals = |requests, errors| Counts::from([(key.clone(), Totals { requests, errors })]);
        let first = window.traffic_at(at(0), totals(5, 0));
        assert_eq!(first[0].requests, 5);
        assert_eq!(first[0].requests_per_second, None, "no sample yet");
        window.record(at(0), totals(0, 0));
        window.record(at(30), totals(20, 0));
        let rates = window.traffic_at(at(10), totals(50, 10));
        assert_eq!(rates[0].requests_per_second, Some(5.0));
        assert_eq!(rates[0].errors_per_second, Some(1.0));
        // A minute later the first sample has left the window.
        window.record(at(70), totals(80, 10));
        let rates = window.traffic_at(at(80), totals(100, 10));
        assert_eq!(rates[0].requests_per_second, Some(80.0 / 50.0));
        assert_eq!(rates[0].errors_per_second, Some(10.0 / 50.0));
    }
}
