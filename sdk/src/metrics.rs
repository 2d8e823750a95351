//! Metrics defined on the host (`proxy_define_metric` and friends).
//!
//! Handles are cheap: `Counter::new("auth_denied")` defines the metric on first
//! use and remembers its id per thread, so it is fine to call in every request.
//! A host that does not implement metrics makes every operation a no-op.

use crate::abi::MetricKind;
use crate::host;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    /// Ids by name, one map per kind: looked up without allocating, as
    /// filters often name their metric on every request.
    static IDS: RefCell<[HashMap<String, Option<u32>>; 3]> = RefCell::default();
}

/// Forgets cached ids (a test installed a fresh host on this thread).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn forget_ids() {
    IDS.with(|ids| ids.borrow_mut().iter_mut().for_each(HashMap::clear));
}

fn id(kind: MetricKind, name: &str) -> Option<u32> {
    let k = kind as usize;
    if let Some(id) = IDS.with(|ids| ids.borrow()[k].get(name).copied()) {
        return id;
    }
    let id = host::with(|h| h.define_metric(kind, name)).ok();
    IDS.with(|ids| ids.borrow_mut()[k].insert(name.to_string(), id));
    id
}

/// A monotonically increasing count.
#[derive(Clone, Debug)]
pub struct Counter(Option<u32>);

impl Counter {
    /// The counter called `name` (defined on first use).
    pub fn new(name: &str) -> Self {
        Counter(id(MetricKind::Counter, name))
    }

    /// Adds `n`.
    pub fn increment(&self, n: u64) {
        if let Some(id) = self.0 {
            let _ = host::with(|h| h.increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX)));
        }
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug)]
pub struct Gauge(Option<u32>);

impl Gauge {
    /// The gauge called `name` (defined on first use).
    pub fn new(name: &str) -> Self {
        Gauge(id(MetricKind::Gauge, name))
    }

    /// Sets the value.
    pub fn set(&self, value: u64) {
        if let Some(id) = self.0 {
            let _ = host::with(|h| h.record_metric(id, value));
        }
    }

    /// Adds `delta` (may be negative).
    pub fn add(&self, delta: i64) {
        if let Some(id) = self.0 {
            let _ = host::with(|h| h.increment_metric(id, delta));
        }
    }
}

/// A distribution of observed values.
#[derive(Clone, Debug)]
pub struct Histogram(Option<u32>);

impl Histogram {
    /// The histogram called `name` (defined on first use).
    pub fn new(name: &str) -> Self {
        Histogram(id(MetricKind::Histogram, name))
    }

    /// Records one observation.
    pub fn record(&self, value: u64) {
        if let Some(id) = self.0 {
            let _ = host::with(|h| h.record_metric(id, value));
        }
    }
}
