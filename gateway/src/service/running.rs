//! One version of a service, running: its compiled code, its one instance
//! (root context only), and the supervisor that restarts the instance with
//! back-off when a guest call traps, overruns its deadline or its memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::config::ServiceConfig;
use crate::filter::hosting::{FilterCode, FilterHost, InstanceCell, ROOT_CONTEXT};

/// An instance that lived this long before failing was healthy: the
/// back-off starts again from its shortest wait.
const STABLE: Duration = Duration::from_secs(60);

/// Where the service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceState {
    Running,
    /// Its instance failed; a new one starts after the back-off.
    Restarting,
    /// Replaced by a newer version or removed.
    Stopped,
}

#[derive(Debug)]
struct Life {
    state: ServiceState,
    restarts: u64,
    last_error: Option<String>,
}

/// A started service version.
pub(crate) struct Running {
    pub config: ServiceConfig,
    pub sha256: String,
    pub size: u64,
    host: Arc<FilterHost>,
    code: Arc<FilterCode>,
    cell: Mutex<Option<Arc<InstanceCell>>>,
    life: Mutex<Life>,
    /// Unix ms of the last tick of an instance that is gone.
    earlier_tick: AtomicU64,
    supervisor: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Running {
    /// Compiles `wasm` and starts its instance: `proxy_on_vm_start` and
    /// `proxy_on_configure` must succeed (blocking: run off the async
    /// workers, on a thread of the control runtime, whose tasks then run
    /// the service's ticks and callouts).
    pub fn start(
        host: &Arc<FilterHost>,
        config: &ServiceConfig,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<Arc<Running>> {
        let code = FilterCode::build(host, &config.as_filter(), wasm, sha256)?;
        let cell = InstanceCell::start(host, &code)?;
        Ok(Arc::new(Running {
            config: config.clone(),
            sha256: sha256.to_string(),
            size: wasm.len() as u64,
            host: host.clone(),
            code,
            cell: Mutex::new(Some(cell)),
            life: Mutex::new(Life {
                state: ServiceState::Running,
                restarts: 0,
                last_error: None,
            }),
            earlier_tick: AtomicU64::new(0),
            supervisor: Mutex::new(None),
        }))
    }

    /// Starts watching the instance (call from the control runtime).
    pub fn supervise(self: &Arc<Self>) {
        let task = tokio::spawn(supervise(Arc::downgrade(self)));
        *lock(&self.supervisor) = Some(task.abort_handle());
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn state(&self) -> ServiceState {
        lock(&self.life).state
    }

    pub fn restarts(&self) -> u64 {
        lock(&self.life).restarts
    }

    pub fn last_error(&self) -> Option<String> {
        lock(&self.life).last_error.clone()
    }

    /// Unix milliseconds of the last completed `proxy_on_tick` (0: none).
    pub fn last_tick(&self) -> u64 {
        let current = lock(&self.cell)
            .as_ref()
            .map_or(0, |c| c.watch.last_tick.load(Ordering::Relaxed));
        current.max(self.earlier_tick.load(Ordering::Relaxed))
    }

    fn cell(&self) -> Option<Arc<InstanceCell>> {
        lock(&self.cell).clone()
    }

    /// Stops the service: no more restarts, then `proxy_on_done` and
    /// `proxy_on_delete` on its root context (blocking: each call is
    /// bounded by the deadline).
    pub fn stop(&self) {
        if let Some(task) = lock(&self.supervisor).take() {
            task.abort();
        }
        lock(&self.life).state = ServiceState::Stopped;
        let Some(cell) = lock(&self.cell).take() else {
            return;
        };
        if let Some(ticker) = lock(&cell.ticker).take() {
            ticker.abort();
        }
        if cell.dead.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut inst = cell.lock();
        let (done, delete) = (inst.cb.done.clone(), inst.cb.delete.clone());
        let root = ROOT_CONTEXT as i32;
        let r = inst.root_call(|i| {
            if let Some(f) = done {
                i.guard(|s| f.call(s, root))?;
            }
            if let Some(f) = delete {
                i.guard(|s| f.call(s, root))?;
            }
            Ok(())
        });
        // What it asked for while stopping (timers, callouts) is dropped.
        let _ = inst.leave();
        match r {
            Ok(()) => {
                tracing::info!(service = %self.config.name, sha256 = %self.sha256, "service stopped")
            }
            Err(fault) => {
                tracing::warn!(service = %self.config.name, "service failed while stopping: {fault}")
            }
        }
    }
}

/// Waits for the instance to fail, then starts a new one after a back-off
/// that doubles (up to 16x `[wasm] failure_backoff`) while it keeps failing.
async fn supervise(me: Weak<Running>) {
    let mut failures: u32 = 0;
    loop {
        let Some(cell) = me.upgrade().and_then(|r| r.cell()) else {
            return;
        };
        let since = Instant::now();
        cell.watch.died.notified().await;
        let mut why = lock(&cell.watch.fault)
            .take()
            .unwrap_or_else(|| "instance failed".into());
        if since.elapsed() >= STABLE {
            failures = 0;
        }
        {
            let Some(running) = me.upgrade() else { return };
            running.earlier_tick.fetch_max(
                cell.watch.last_tick.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
            lock(&running.cell).take();
        }
        drop(cell);
        loop {
            failures = failures.saturating_add(1);
            let Some(running) = me.upgrade() else { return };
            let wait = running.host.config.failure_backoff * (1 << (failures - 1).min(4));
            {
                let mut life = lock(&running.life);
                life.state = ServiceState::Restarting;
                life.last_error = Some(why.clone());
            }
            tracing::error!(service = %running.name(), backoff = ?wait, "service failed, restarting after the back-off: {why}");
            crate::service::metrics::failed(running.name());
            let (host, code) = (running.host.clone(), running.code.clone());
            drop(running);
            tokio::time::sleep(wait).await;
            let started =
                tokio::task::spawn_blocking(move || InstanceCell::start(&host, &code)).await;
            let Some(running) = me.upgrade() else { return };
            if lock(&running.life).state == ServiceState::Stopped {
                return;
            }
            match started {
                Ok(Ok(cell)) => {
                    *lock(&running.cell) = Some(cell);
                    let mut life = lock(&running.life);
                    life.state = ServiceState::Running;
                    life.restarts += 1;
                    tracing::info!(service = %running.name(), restarts = life.restarts, "service restarted");
                    break;
                }
                Ok(Err(e)) => why = format!("restart: {e:#}"),
                Err(e) => why = format!("restart task: {e}"),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
