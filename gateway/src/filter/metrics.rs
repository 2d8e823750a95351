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

impl MetricRegistry {
    /// Defines a metric (the same name and kind returns the same id).
    pub fn define(&self, vm_id: &str, name: &str, kind: MetricKind) -> Option<u32> {
        let mut metrics = self.metrics.write().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = metrics
            .iter()
            .position(|m| m.vm_id == vm_id && m.name == name)
        {
            return (metrics[i].kind == kind).then_some(i as u32 + 1);
        }
        if metrics.len() >= 100_000 {
            return None;
        }
        metrics.push(Arc::new(Metric {
            vm_id: vm_id.into(),
            name: name.into(),
            kind,
            value: AtomicI64::new(0),
            count: AtomicU64::new(0),
        }));
        Some(metrics.len() as u32)
    }

    fn metric(&self, id: u32) -> Option<Arc<Metric>> {
        let metrics = self.metrics.read().unwrap_or_else(|p| p.into_inner());
        metrics.get((id as usize).wrapping_sub(1)).cloned()
    }

    /// Adds `delta` to a counter or gauge (counters never go down).
    pub fn increment(&self, id: u32, delta: i64) -> Result<(), ()> {
        let m = self.metric(id).ok_or(())?;
        match m.kind {
            MetricKind::Counter if delta < 0 => return Err(()),
            MetricKind::Histogram => return Err(()),
            _ => {}
        }
        m.value.fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    /// Sets a gauge or counter, or records a histogram sample.
    pub fn record(&self, id: u32, value: u64) -> Result<(), ()> {
        let m = self.metric(id).ok_or(())?;
        match m.kind {
            MetricKind::Histogram => {
                m.value.fetch_add(value as i64, Ordering::Relaxed);
                m.count.fetch_add(1, Ordering::Relaxed);
            }
            _ => m.value.store(value as i64, Ordering::Relaxed),
        }
        Ok(())
    }

    pub fn get(&self, id: u32) -> Option<u64> {
        let m = self.metric(id)?;
        Some(match m.kind {
            MetricKind::Histogram => m.count.load(Ordering::Relaxed),
            _ => m.value.load(Ordering::Relaxed) as u64,
        })
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
