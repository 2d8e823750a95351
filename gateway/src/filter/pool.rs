//! One loaded filter: its compiled code, its live instances (in `shared`
//! mode a fixed set per worker, so a request's guest calls never wait on
//! another worker; one per request in `request` mode), and the back-off
//! that takes a filter which keeps failing out of service.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use wasmtime::InstancePre;

use super::engine::FilterHost;
use super::instance::{GuestFault, InstanceCell};
use super::state::{FilterMeta, HostState};
use crate::config::filter::{FilterConfig, Isolation};
use crate::worker::PerWorker;

/// A module ready to instantiate.
pub(crate) struct FilterCode {
    pub meta: Arc<FilterMeta>,
    pub pre: InstancePre<HostState>,
    pub exports: super::exports::ExportIndex,
    /// The stream callbacks it has, read from `exports` once.
    pub wants: super::exports::Wants,
}

impl FilterCode {
    /// Checks `config` and reads its module (size-capped); with the
    /// module's sha256.
    pub(crate) fn read(host: &FilterHost, config: &FilterConfig) -> Result<(Vec<u8>, String)> {
        let problems = config.check();
        anyhow::ensure!(
            problems.is_empty(),
            "invalid configuration: {}",
            problems.join("; ")
        );
        let wasm = read_capped(&config.path, host.config.max_module_size.as_u64())?;
        let sha256 = Sha256::digest(&wasm)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok((wasm, sha256))
    }

    /// Compiles and links module `wasm` of `config` (blocking: run off
    /// the async workers).
    pub(crate) fn build(
        host: &FilterHost,
        config: &FilterConfig,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<Arc<FilterCode>> {
        let pre = host.prepare(wasm, sha256)?;
        let exports =
            super::exports::ExportIndex::new(pre.module(), &super::declared::Declared::read(wasm));
        let code = Arc::new(FilterCode {
            wants: super::exports::Wants::of(&exports),
            meta: Arc::new(FilterMeta {
                vm_id: config.vm_id.clone().unwrap_or_else(|| config.name.clone()),
                root_id: config.root_id.clone().unwrap_or_default(),
                vm_config: Bytes::from(config.vm_config.clone().unwrap_or_default()),
                plugin_config: Bytes::from(config.config.clone().unwrap_or_default()),
                config: config.clone(),
            }),
            exports,
            pre,
        });
        Ok(code)
    }
}

/// What the admin endpoint shows about one filter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FilterStatus {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// RFC 3339.
    pub loaded_at: String,
    /// `"loaded"`, `"failed"` or `"backed-off"`.
    pub state: &'static str,
    pub last_error: Option<String>,
    /// The `proxy_on_*` callbacks the gateway calls: those exported, less
    /// those a `gateway.callbacks` declaration leaves out.
    pub callbacks: Vec<&'static str>,
}

/// Why a module that cannot create HTTP contexts does not filter.
pub(crate) const NO_HTTP_CONTEXT: &str = "no HTTP context: is this a service?";

/// Consecutive failures that take a filter out of service.
const FAILURES_BEFORE_BACKOFF: u32 = 3;

pub(crate) struct LoadedFilter {
    pub config: FilterConfig,
    /// The configured name, shared with the access records of the
    /// requests this filter answers.
    shared_name: Arc<str>,
    pub code: Option<Arc<FilterCode>>,
    host: Arc<FilterHost>,
    sha256: String,
    size: u64,
    loaded_at: SystemTime,
    load_error: Option<String>,
    /// Per worker (and one set for the control side): `instances` slots.
    slots: PerWorker<Vec<ArcSwapOption<InstanceCell>>>,
    next: PerWorker<AtomicUsize>,
    failures: AtomicU32,
    backing_off: AtomicBool,
    backoff: Mutex<(Option<Instant>, u32, Option<String>)>,
    counters: crate::metrics::FilterCounters,
    /// Set when the module cannot create an HTTP context at all (a
    /// service in a filter folder): every request gets the failure policy
    /// without a new instance or a new trap.
    no_http_context: AtomicBool,
}

impl LoadedFilter {
    /// Compiles and starts the filter (blocking: run off the async workers).
    pub fn load(host: &Arc<FilterHost>, config: &FilterConfig) -> LoadedFilter {
        let mut me = LoadedFilter {
            config: config.clone(),
            shared_name: Arc::from(config.name.as_str()),
            code: None,
            host: host.clone(),
            sha256: String::new(),
            size: 0,
            loaded_at: SystemTime::now(),
            load_error: None,
            slots: PerWorker::default(),
            next: PerWorker::default(),
            failures: AtomicU32::new(0),
            backing_off: AtomicBool::new(false),
            backoff: Mutex::new((None, 0, None)),
            counters: crate::metrics::filter_counters(&config.name),
            no_http_context: AtomicBool::new(false),
        };
        if let Err(e) = me.try_load() {
            let reason = format!("{e:#}");
            tracing::error!(filter = %config.name, file = %config.path.display(), "filter failed to load: {reason}");
            me.load_error = Some(reason);
            me.code = None;
            me.slots = PerWorker::default();
        }
        me
    }

    fn try_load(&mut self) -> Result<()> {
        let (wasm, sha256) = FilterCode::read(&self.host, &self.config)?;
        self.size = wasm.len() as u64;
        self.sha256 = sha256;
        let code = FilterCode::build(&self.host, &self.config, &wasm, &self.sha256)?;
        // Start the instances now: a filter whose VM does not start is
        // reported at load, not on the first request.
        let first = InstanceCell::start(&self.host, &code)?;
        self.slots = match self.config.isolation {
            Isolation::Shared => {
                // Every worker's instances start now; the control side's
                // (callouts of tests and tools, never the request path) on
                // first need.
                let mut first = Some(first);
                let mut slots = Vec::new();
                for worker in 0..=crate::worker::count() {
                    let mut own = Vec::with_capacity(self.config.instances);
                    for _ in 0..self.config.instances {
                        let cell = match first.take() {
                            Some(cell) => Some(cell),
                            None if worker < crate::worker::count() => {
                                Some(InstanceCell::start(&self.host, &code)?)
                            }
                            None => None,
                        };
                        own.push(ArcSwapOption::from(cell));
                    }
                    slots.push(own);
                }
                let mut slots = slots.into_iter();
                PerWorker::new(|_| slots.next().unwrap_or_default())
            }
            Isolation::Request => PerWorker::default(),
        };
        self.code = Some(code);
        tracing::info!(filter = %self.config.name, sha256 = %self.sha256, "filter loaded");
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// [`name`](Self::name), shared.
    pub fn shared_name(&self) -> &Arc<str> {
        &self.shared_name
    }

    /// An instance for one request; `Err` names why the filter cannot serve.
    pub fn acquire(&self) -> Result<Arc<InstanceCell>, String> {
        let Some(code) = &self.code else {
            return Err(format!(
                "not loaded: {}",
                self.load_error.as_deref().unwrap_or("unknown")
            ));
        };
        if self.no_http_context.load(Ordering::Relaxed) {
            return Err(NO_HTTP_CONTEXT.to_string());
        }
        if self.backing_off.load(Ordering::Relaxed) {
            self.check_backoff()?;
        }
        let slots = self.slots.get();
        if slots.is_empty() {
            return InstanceCell::start(&self.host, code).map_err(|e| self.start_failed(e));
        }
        let slot = &slots[self.next.get().fetch_add(1, Ordering::Relaxed) % slots.len()];
        if let Some(cell) = slot.load_full() {
            if !cell.dead.load(Ordering::Relaxed) {
                return Ok(cell);
            }
        }
        // A discarded instance is replaced on first need.
        let cell = InstanceCell::start(&self.host, code).map_err(|e| self.start_failed(e))?;
        slot.store(Some(cell.clone()));
        Ok(cell)
    }

    fn check_backoff(&self) -> Result<(), String> {
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        match b.0 {
            Some(until) if Instant::now() < until => Err(format!(
                "out of service after repeated failures: {}",
                b.2.as_deref().unwrap_or("")
            )),
            _ => {
                b.0 = None;
                self.backing_off.store(false, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// An instance did not start. A full instance pool is a matter of load,
    /// not of the filter: it does not count towards the back-off.
    fn start_failed(&self, e: anyhow::Error) -> String {
        let reason = format!("{e:#}");
        if reason.contains("maximum concurrent limit") {
            tracing::warn!(filter = %self.config.name, "no free instance slot ([wasm] max_instances): {reason}");
            return reason;
        }
        self.failed(reason)
    }

    /// Records a failure (start or guest fault); returns the reason.
    fn failed(&self, reason: String) -> String {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let mut b = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        b.2 = Some(reason.clone());
        if n >= FAILURES_BEFORE_BACKOFF {
            if b.0.is_none() {
                b.1 = (b.1 + 1).min(5);
                let wait = self.host.config.failure_backoff * (1 << (b.1 - 1));
                b.0 = Some(Instant::now() + wait);
                self.backing_off.store(true, Ordering::Relaxed);
                self.failures.store(0, Ordering::Relaxed);
                // Logged once per back-off, not once per request.
                tracing::error!(filter = %self.config.name, backoff = ?wait, "filter keeps failing, taken out of service: {reason}");
            }
        } else {
            tracing::warn!(filter = %self.config.name, "filter instance failed: {reason}");
        }
        reason
    }

    /// A guest call failed: the instance is discarded (its slot refilled on
    /// next need) and the failure counted once per trap. The other requests
    /// bound to that instance fail at their next call with it; they report
    /// the same fault again, which is not counted: a handful of trapping
    /// requests must not look like a filter that keeps failing.
    pub fn fault(&self, cell: &Arc<InstanceCell>, fault: &GuestFault) {
        if cell.dead.swap(true, Ordering::Relaxed) {
            tracing::debug!(filter = %self.config.name, "request bound to a discarded instance: {}", fault.0);
            return;
        }
        for slot in self.slots.iter().flatten() {
            let current = slot.load();
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, cell)) {
                slot.store(None);
            }
        }
        self.counters.fault(&fault.0);
        if self.config.isolation == Isolation::Request {
            // The instance was this request's alone: the fault is the
            // request's (often its input's), not the filter's. Backing the
            // filter off would let a few bad requests take it away from
            // everyone, so only the counter and the last error record it.
            self.backoff.lock().unwrap_or_else(|p| p.into_inner()).2 = Some(fault.0.clone());
            tracing::debug!(filter = %self.config.name, "request instance failed: {}", fault.0);
            return;
        }
        self.failed(fault.0.clone());
    }

    /// The first HTTP context a fresh instance was asked for trapped: the
    /// module has no HTTP context to give (the official Rust SDK panics
    /// "missing ContextType on root_context"), most likely a service put
    /// in a filter folder. Reported once; the failure policy applies from
    /// now on without another instance or trap.
    pub fn no_http_context(&self, cell: &Arc<InstanceCell>, fault: &GuestFault) {
        cell.dead.store(true, Ordering::Relaxed);
        self.counters.fault(&fault.0);
        if self.no_http_context.swap(true, Ordering::Relaxed) {
            return;
        }
        let reason = format!("{NO_HTTP_CONTEXT} ({})", fault.0);
        tracing::error!(filter = %self.config.name, file = %self.config.path.display(), policy = ?self.config.failure,
            "{reason}; a module that only has a root context runs as a service: move it to [wasm] services_dir or a [[service]] entry (docs/services.md)");
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).2 = Some(reason);
    }

    /// A request went through this filter without fault.
    pub fn succeeded(&self) {
        self.counters.ok.inc();
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
            self.backoff.lock().unwrap_or_else(|p| p.into_inner()).1 = 0;
        }
    }

    pub fn status(&self) -> FilterStatus {
        let backed_off = self.backing_off.load(Ordering::Relaxed);
        let last_error = match self.load_error.clone() {
            Some(e) => Some(e),
            None => self
                .backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .2
                .clone(),
        };
        FilterStatus {
            name: self.config.name.clone(),
            file: self.config.path.display().to_string(),
            sha256: self.sha256.clone(),
            size: self.size,
            loaded_at: humantime::format_rfc3339_seconds(self.loaded_at).to_string(),
            state: match (&self.code, backed_off) {
                (None, _) => "failed",
                (Some(_), _) if self.no_http_context.load(Ordering::Relaxed) => "failed",
                (Some(_), true) => "backed-off",
                (Some(_), false) => "loaded",
            },
            last_error,
            callbacks: self
                .code
                .as_ref()
                .map(|c| c.exports.callbacks())
                .unwrap_or_default(),
        }
    }
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= cap,
        "{} is {} bytes, over max_module_size ({cap})",
        path.display(),
        meta.len()
    );
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

impl LoadedFilter {
    pub fn host(&self) -> &Arc<FilterHost> {
        &self.host
    }

    /// Whether the module compiled and its VM started.
    pub fn is_loaded(&self) -> bool {
        self.code.is_some()
    }

    /// Whether the file still holds the module this was loaded from
    /// (blocking: reads and hashes it).
    pub fn module_unchanged(&self) -> bool {
        FilterCode::read(&self.host, &self.config).is_ok_and(|(_, sha256)| sha256 == self.sha256)
    }

    /// The sha256 of the module bytes it was loaded from (empty if it
    /// could not be read).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// A filter that could not even be attempted (its load task died).
    pub fn unavailable(
        host: &Arc<FilterHost>,
        config: &FilterConfig,
        reason: String,
    ) -> LoadedFilter {
        tracing::error!(filter = %config.name, "filter failed to load: {reason}");
        LoadedFilter {
            config: config.clone(),
            shared_name: Arc::from(config.name.as_str()),
            code: None,
            host: host.clone(),
            sha256: String::new(),
            size: 0,
            loaded_at: SystemTime::now(),
            load_error: Some(reason),
            slots: PerWorker::default(),
            next: PerWorker::default(),
            failures: AtomicU32::new(0),
            backing_off: AtomicBool::new(false),
            backoff: Mutex::new((None, 0, None)),
            counters: crate::metrics::filter_counters(&config.name),
            no_http_context: AtomicBool::new(false),
        }
    }
}
