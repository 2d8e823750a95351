//! Metrics filters define (`proxy_define_metric`), kept for the exporter.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn from_abi(v: i32) -> Option<Self> {
        match v {
            0 => Some(MetricKind::Counter),
            1 => Some(MetricKind::Gauge),
            2 => Some(MetricKind::Histogram),
            _ => None,
        }
    }
}

struct Metric {
    vm_id: String,
    name: String,
    kind: MetricKind,
    /// Counter and gauge value; for a histogram, the sum of samples.
    value: AtomicI64,
    /// Histogram sample count.
    count: AtomicU64,
}

/// One metric as the exporter sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricSnapshot {
    pub filter: String,
    pub name: String,
    pub kind: MetricKind,
    pub value: i64,
    pub count: u64,
}

/// Every metric of every filter in the process; ids are indexes + 1.
#[derive(Default)]
pub struct MetricRegistry {
    metrics: RwLock<Vec<Arc<Metric>>>,
}

/// Most metrics in the process, all filters together.
const MAX_METRICS: usize = 100_000;
/// Most metrics one filter (VM id) may define.
pub const MAX_METRICS_PER_FILTER: usize = 1_000;
/// Longest metric name.
pub const MAX_METRIC_NAME: usize = 256;

use super::abi::status;

impl MetricRegistry {
    /// Defines a metric (the same name and kind returns the same id).
    /// `Err` is the status: a name too long or reused with another kind is
    /// `BAD_ARGUMENT`; a filter (or the process) out of metric slots
    /// `INTERNAL_FAILURE`.
    pub fn define(&self, vm_id: &str, name: &str, kind: MetricKind) -> Result<u32, i32> {
        if name.len() > MAX_METRIC_NAME {
            return Err(status::BAD_ARGUMENT);
        }
        let mut metrics = self.metrics.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = metrics
            .iter()
            .position(|m| m.vm_id == vm_id && m.name == name)
        {
            return if metrics[i].kind == kind {
                Ok(i as u32 + 1)
            } else {
                Err(status::BAD_ARGUMENT)
            };
        }
        let own = metrics.iter().filter(|m| m.vm_id == vm_id).count();
        if metrics.len() >= MAX_METRICS || own >= MAX_METRICS_PER_FILTER {
            return Err(status::INTERNAL_FAILURE);
        }
        metrics.push(Arc::new(Metric {
            vm_id: vm_id.into(),
            name: name.into(),
            kind,
            value: AtomicI64::new(0),
            count: AtomicU64::new(0),
        }));
        Ok(metrics.len() as u32)
    }

    /// A metric of `vm_id`'s: another filter's ids are not found.
    fn metric(&self, vm_id: &str, id: u32) -> Result<Arc<Metric>, i32> {
        let metrics = self.metrics.read().unwrap_or_else(|p| p.into_inner());
        metrics
            .get((id as usize).wrapping_sub(1))
            .filter(|m| m.vm_id == vm_id)
            .cloned()
            .ok_or(status::NOT_FOUND)
    }

    /// Adds `delta` to a counter (positive only) or a gauge, as Envoy;
    /// a histogram cannot be incremented.
    pub fn increment(&self, vm_id: &str, id: u32, delta: i64) -> Result<(), i32> {
        let m = self.metric(vm_id, id)?;
        match m.kind {
            MetricKind::Counter if delta <= 0 => return Err(status::BAD_ARGUMENT),
            MetricKind::Histogram => return Err(status::BAD_ARGUMENT),
            _ => {}
        }
        m.value.fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    /// As Envoy: adds to a counter, sets a gauge, records a histogram sample.
    pub fn record(&self, vm_id: &str, id: u32, value: u64) -> Result<(), i32> {
        let m = self.metric(vm_id, id)?;
        match m.kind {
            MetricKind::Histogram => {
                m.value.fetch_add(value as i64, Ordering::Relaxed);
                m.count.fetch_add(1, Ordering::Relaxed);
            }
            MetricKind::Counter => {
                m.value.fetch_add(value as i64, Ordering::Relaxed);
            }
            MetricKind::Gauge => m.value.store(value as i64, Ordering::Relaxed),
        }
        Ok(())
    }

    /// A counter's or gauge's value; histograms cannot be read back.
    pub fn get(&self, vm_id: &str, id: u32) -> Result<u64, i32> {
        let m = self.metric(vm_id, id)?;
        match m.kind {
            MetricKind::Histogram => Err(status::BAD_ARGUMENT),
            _ => Ok(m.value.load(Ordering::Relaxed) as u64),
        }
    }

    /// Every metric, for the Prometheus exporter.
    pub fn snapshot(&self) -> Vec<MetricSnapshot> {
        let metrics = self.metrics.read().unwrap_or_else(|p| p.into_inner());
        metrics
            .iter()
            .map(|m| MetricSnapshot {
                filter: m.vm_id.clone(),
                name: m.name.clone(),
                kind: m.kind,
                value: m.value.load(Ordering::Relaxed),
                count: m.count.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_calls_follow_envoy_and_are_bounded() {
        let r = MetricRegistry::default();
        let c = r.define("a", "hits", MetricKind::Counter).expect("counter");
        let g = r.define("a", "level", MetricKind::Gauge).expect("gauge");
        let h = r
            .define("a", "lat", MetricKind::Histogram)
            .expect("histogram");
        assert_eq!(r.define("a", "hits", MetricKind::Counter), Ok(c));
        assert_eq!(
            r.define("a", "hits", MetricKind::Gauge),
            Err(status::BAD_ARGUMENT)
        );
        assert_eq!(r.increment("a", c, 0), Err(status::BAD_ARGUMENT));
        assert_eq!(r.increment("a", c, 2), Ok(()));
        assert_eq!(r.record("a", c, 3), Ok(()));
        assert_eq!(r.get("a", c), Ok(5), "record adds to a counter");
        assert_eq!(r.increment("a", g, -4), Ok(()));
        assert_eq!(r.record("a", g, 7), Ok(()));
        assert_eq!(r.get("a", g), Ok(7));
        assert_eq!(r.increment("a", h, 1), Err(status::BAD_ARGUMENT));
        assert_eq!(r.get("a", h), Err(status::BAD_ARGUMENT));
        assert_eq!(r.get("b", c), Err(status::NOT_FOUND), "another filter's id");
        assert_eq!(r.get("a", 999), Err(status::NOT_FOUND));
        let long = "x".repeat(MAX_METRIC_NAME + 1);
        assert_eq!(
            r.define("a", &long, MetricKind::Counter),
            Err(status::BAD_ARGUMENT)
        );
        let defined = (0..MAX_METRICS_PER_FILTER + 10)
            .take_while(|i| r.define("b", &format!("m{i}"), MetricKind::Counter).is_ok())
            .count();
        assert_eq!(defined, MAX_METRICS_PER_FILTER);
        assert!(
            r.define("c", "other", MetricKind::Counter).is_ok(),
            "other filters unaffected"
        );
    }
}
