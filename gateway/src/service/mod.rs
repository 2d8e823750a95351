//! Services: root-only proxy-wasm modules (Envoy's `WasmService`) run once
//! per gateway process, outside any request: `proxy_on_vm_start`,
//! `proxy_on_configure`, ticks, callouts, shared data and queues (scoped by
//! VM id, so a service and the filters sharing its `vm_id` see the same
//! data). They come from `[[service]]` entries and `[wasm] services_dir`;
//! a new version replaces the running one only once it started.
//! docs/services.md is the user's guide.

mod folder;
pub(crate) mod metrics;
mod running;
mod status;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::{Config, ServiceConfig};
use crate::filter::hosting::{FilterCode, FilterHost};
use running::Running;
pub use running::ServiceState;

/// Every module of a services folder with its settings (from its sidecar),
/// or why the sidecar is unusable; for `gateway check`.
pub fn folder_modules(dir: &std::path::Path) -> Vec<(ServiceConfig, Result<(), String>)> {
    folder::modules(dir)
}

/// Every service of the process.
pub struct ServiceSet {
    host: Arc<FilterHost>,
    wanted: Mutex<Wanted>,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// One reconcile at a time (config reloads and folder events).
    reconciling: tokio::sync::Mutex<()>,
    /// Moves on when the folder setting changes, ending the old watcher.
    folder_generation: AtomicU64,
}

#[derive(Default, PartialEq)]
struct Wanted {
    entries: Vec<ServiceConfig>,
    dir: Option<PathBuf>,
    poll: Duration,
}

/// One service name and the version of it that runs.
struct Slot {
    source: &'static str,
    /// Of the newest version tried: module digest and settings.
    fingerprint: String,
    running: Option<Arc<Running>>,
    generation: u64,
    since: SystemTime,
    /// Why the newest version is not the one running.
    pending_error: Option<String>,
    file: PathBuf,
}

/// A service to run: its settings, where they come from, or why they are
/// unusable.
struct Desired {
    config: ServiceConfig,
    source: &'static str,
    problem: Option<String>,
}

impl ServiceSet {
    pub fn new(host: Arc<FilterHost>) -> Arc<ServiceSet> {
        let set = Arc::new(ServiceSet {
            host,
            wanted: Mutex::default(),
            slots: Mutex::default(),
            reconciling: tokio::sync::Mutex::new(()),
            folder_generation: AtomicU64::new(0),
        });
        metrics::register(&set);
        set
    }

    /// Brings the services in line with `config` (at start and on every
    /// reload); unchanged services keep running untouched.
    pub async fn apply(self: &Arc<Self>, config: &Config) {
        let wanted = Wanted {
            entries: config.services.clone(),
            dir: config.wasm.services_dir.clone(),
            poll: config.wasm.services_poll,
        };
        let folder_changed = {
            let mut current = lock(&self.wanted);
            let changed = current.dir != wanted.dir || current.poll != wanted.poll;
            *current = wanted;
            changed
        };
        if folder_changed {
            let generation = self.folder_generation.fetch_add(1, Ordering::Relaxed) + 1;
            let current = lock(&self.wanted);
            if let Some(dir) = current.dir.clone() {
                tokio::spawn(folder::watch(
                    Arc::downgrade(self),
                    dir,
                    current.poll,
                    generation,
                ));
            }
        }
        self.reconcile().await;
    }

    fn folder_generation(&self) -> u64 {
        self.folder_generation.load(Ordering::Relaxed)
    }

    /// What should run: the config's entries, then the folder's modules
    /// (a name already taken is reported and skipped).
    fn desired(&self) -> Vec<Desired> {
        let (entries, dir) = {
            let w = lock(&self.wanted);
            (w.entries.clone(), w.dir.clone())
        };
        let mut out: Vec<Desired> = entries
            .into_iter()
            .map(|config| Desired {
                config,
                source: "config",
                problem: None,
            })
            .collect();
        for (config, problem) in dir.as_deref().map(folder::modules).unwrap_or_default() {
            if out.iter().any(|d| d.config.name == config.name) {
                tracing::error!(service = %config.name, file = %config.path.display(),
                    "a service of this name is already configured; this module is not run");
                continue;
            }
            out.push(Desired {
                config,
                source: "folder",
                problem: problem.err(),
            });
        }
        out
    }

    /// Starts what is new or changed, stops what is gone.
    pub async fn reconcile(&self) {
        let _one = self.reconciling.lock().await;
        let desired = self.desired();
        for d in &desired {
            self.converge(d).await;
        }
        let gone: Vec<Slot> = {
            let mut slots = lock(&self.slots);
            let names: Vec<String> = slots
                .keys()
                .filter(|n| !desired.iter().any(|d| &d.config.name == *n))
                .cloned()
                .collect();
            names.iter().filter_map(|n| slots.remove(n)).collect()
        };
        for slot in gone {
            if let Some(old) = slot.running {
                tracing::info!(service = %old.name(), "service removed");
                stop(old).await;
            }
        }
    }

    /// Runs the newest version of one service if it changed: started
    /// first, then swapped in, then the old one stopped. A version that
    /// does not start is reported; the one running keeps running.
    async fn converge(&self, d: &Desired) {
        let name = d.config.name.clone();
        let settings = serde_json::to_string(&d.config).unwrap_or_default();
        let (host, config) = (self.host.clone(), d.config.clone());
        let read = match &d.problem {
            Some(why) => Err(why.clone()),
            None => tokio::task::spawn_blocking(move || {
                FilterCode::read(&host, &config.as_filter()).map_err(|e| format!("{e:#}"))
            })
            .await
            .unwrap_or_else(|e| Err(format!("read task failed: {e}"))),
        };
        let fingerprint = match &read {
            Ok((_, sha)) => format!("{sha}\n{settings}"),
            Err(why) => format!("error: {why}\n{settings}"),
        };
        if lock(&self.slots)
            .get(&name)
            .is_some_and(|s| s.fingerprint == fingerprint)
        {
            return;
        }
        let started = match read {
            Ok((wasm, sha)) => {
                let (host, config) = (self.host.clone(), d.config.clone());
                tokio::task::spawn_blocking(move || {
                    Running::start(&host, &config, &wasm, &sha).map_err(|e| format!("{e:#}"))
                })
                .await
                .unwrap_or_else(|e| Err(format!("start task failed: {e}")))
            }
            Err(why) => Err(why),
        };
        let old = {
            let mut slots = lock(&self.slots);
            let generation = slots.get(&name).map_or(0, |s| s.generation) + 1;
            let slot = slots.entry(name.clone()).or_insert_with(|| Slot {
                source: d.source,
                fingerprint: String::new(),
                running: None,
                generation: 0,
                since: SystemTime::now(),
                pending_error: None,
                file: d.config.path.clone(),
            });
            slot.fingerprint = fingerprint;
            slot.source = d.source;
            slot.file = d.config.path.clone();
            match started {
                Ok(running) => {
                    running.supervise();
                    tracing::info!(service = %name, sha256 = %running.sha256, generation,
                        "service version now running");
                    slot.generation = generation;
                    slot.since = SystemTime::now();
                    slot.pending_error = None;
                    metrics::reloaded(&name, true);
                    slot.running.replace(running)
                }
                Err(why) => {
                    metrics::reloaded(&name, false);
                    if slot.running.is_some() {
                        tracing::error!(service = %name, "new version rejected, the previous version keeps running: {why}");
                    } else {
                        tracing::error!(service = %name, file = %d.config.path.display(), "service failed to start: {why}");
                    }
                    slot.pending_error = Some(why);
                    None
                }
            }
        };
        if let Some(old) = old {
            stop(old).await;
        }
    }

    /// Stops every service (at shutdown).
    pub async fn stop_all(&self) {
        let _one = self.reconciling.lock().await;
        let all: Vec<Slot> = std::mem::take(&mut *lock(&self.slots))
            .into_values()
            .collect();
        for slot in all {
            if let Some(running) = slot.running {
                stop(running).await;
            }
        }
    }

    /// What `/services` shows.
    pub fn status(&self) -> serde_json::Value {
        let dir = lock(&self.wanted).dir.clone();
        let services: Vec<serde_json::Value> = lock(&self.slots)
            .iter()
            .map(|(name, slot)| status::of(name, slot))
            .collect();
        serde_json::json!({
            "dir": dir.map(|d| d.display().to_string()),
            "services": services,
        })
    }

    /// The running versions, for the metrics.
    pub(crate) fn running(&self) -> Vec<Arc<Running>> {
        lock(&self.slots)
            .values()
            .filter_map(|s| s.running.clone())
            .collect()
    }

    /// Services of which no version ever started, for the metrics.
    pub(crate) fn never_started(&self) -> Vec<String> {
        lock(&self.slots)
            .iter()
            .filter(|(_, s)| s.running.is_none())
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// Stops `running` off the async threads (its guest calls are bounded by
/// its deadline).
async fn stop(running: Arc<Running>) {
    let _ = tokio::task::spawn_blocking(move || running.stop()).await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
