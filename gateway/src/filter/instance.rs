//! One live VM instance of a filter: its `Store`, the guest callbacks
//! resolved once, and every call into the guest run under the deadline.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use anyhow::{Context, Result};

use wasmtime::{Store, Trap, TypedFunc, WasmParams, WasmResults};

use super::engine::FilterHost;
use super::exports::typed;
use super::header_map::Name;
use super::pool::FilterCode;
use super::state::{CallAnswer, Effects, Headers, HostState, StreamState, ROOT_CONTEXT};
use crate::upstream::callout::{CalloutError, CalloutResponse};

type F<P, R> = Option<TypedFunc<P, R>>;

/// The guest's callbacks; absent ones are simply not called.
pub(crate) struct Callbacks {
    pub context_create: F<(i32, i32), ()>,
    /// The module creates its HTTP contexts at their first callback: no
    /// `proxy_on_context_create` for them.
    pub lazy_http_contexts: bool,
    /// The module keeps no state for a finished HTTP context that made no
    /// callout: no `proxy_on_delete` for it.
    pub transient_http_contexts: bool,
    pub vm_start: F<(i32, i32), i32>,
    pub configure: F<(i32, i32), i32>,
    pub done: F<i32, i32>,
    pub log: F<i32, ()>,
    pub delete: F<i32, ()>,
    pub tick: F<i32, ()>,
    pub queue_ready: F<(i32, i32), ()>,
    pub request_headers: F<(i32, i32, i32), i32>,
    pub request_body: F<(i32, i32, i32), i32>,
    pub request_trailers: F<(i32, i32), i32>,
    pub response_headers: F<(i32, i32, i32), i32>,
    pub response_body: F<(i32, i32, i32), i32>,
    pub response_trailers: F<(i32, i32), i32>,
    pub http_call_response: F<(i32, i32, i32, i32, i32), ()>,
}

/// Why a guest call produced no answer; the instance is discarded.
#[derive(Debug, Clone)]
pub struct GuestFault(pub String);

impl std::error::Error for GuestFault {}

impl std::fmt::Display for GuestFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) struct FilterInstance {
    pub store: Store<HostState>,
    pub cb: Callbacks,
    pub poisoned: bool,
    /// What the guest logged while it started.
    pub start_log: super::state::StartLog,
    deadline_ticks: u64,
    next_context: u32,
}

/// A shared handle on an instance: the mutex is held only during guest calls.
pub(crate) struct InstanceCell {
    pub inner: Mutex<FilterInstance>,
    pub ticker: Mutex<Option<tokio::task::AbortHandle>>,
    /// Set once the instance failed; it is never called again.
    pub dead: std::sync::atomic::AtomicBool,
    /// What its root tasks report, for whoever supervises it (a service).
    pub watch: CellWatch,
}

/// Root-context events a supervisor waits on: the instance died (and why),
/// and when `proxy_on_tick` last returned.
#[derive(Default)]
pub(crate) struct CellWatch {
    pub died: tokio::sync::Notify,
    pub fault: Mutex<Option<String>>,
    /// Unix milliseconds of the last completed tick (0: none yet).
    pub last_tick: std::sync::atomic::AtomicU64,
}

impl CellWatch {
    /// A root-context call failed: the supervisor (if any) wakes up.
    pub fn died(&self, why: String) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        self.died.notify_one();
    }

    pub fn ticked(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_tick
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for InstanceCell {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.get_mut().ok().and_then(Option::take) {
            t.abort();
        }
    }
}

impl FilterInstance {
    /// Instantiates and starts the VM: `_initialize`/`_start`, the root
    /// context, `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn start(
        host: &FilterHost,
        code: &FilterCode,
        waker: Option<super::shared_data::QueueWaker>,
    ) -> Result<Self> {
        let cfg = &code.meta.config;
        let limit = cfg
            .memory_limit
            .as_u64()
            .min(host.config.max_memory.as_u64()) as usize;
        let mut state = HostState::new(code.meta.clone(), host.shared.clone(), limit);
        state.queue_waker = waker;
        state.start_log = Some(Default::default());
        let mut store = Store::new(&host.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let ticks =
            (cfg.deadline.as_nanos() / host.config.epoch_tick.as_nanos().max(1)).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        let inst = code
            .pre
            .instantiate(&mut store)
            .map_err(|e| describe(e, "instantiating"))?;
        let memory = code
            .exports
            .get("memory")
            .and_then(|e| inst.get_module_export(&mut store, e))
            .and_then(|e| e.into_memory())
            .context("module exports no memory")?;
        store.data_mut().memory = Some(memory);
        let alloc = match typed::<i32, i32>(
            &inst,
            &mut store,
            &code.exports,
            "proxy_on_memory_allocate",
        )? {
            Some(f) => Some(f),
            None => typed::<i32, i32>(&inst, &mut store, &code.exports, "malloc")?,
        };
        store.data_mut().alloc = alloc;
        let cb = Callbacks {
            context_create: typed(&inst, &mut store, &code.exports, "proxy_on_context_create")?,
            lazy_http_contexts: code.exports.lazy_http_contexts(),
            transient_http_contexts: code.exports.transient_http_contexts(),
            vm_start: typed(&inst, &mut store, &code.exports, "proxy_on_vm_start")?,
            configure: typed(&inst, &mut store, &code.exports, "proxy_on_configure")?,
            done: typed(&inst, &mut store, &code.exports, "proxy_on_done")?,
            log: typed(&inst, &mut store, &code.exports, "proxy_on_log")?,
            delete: typed(&inst, &mut store, &code.exports, "proxy_on_delete")?,
            tick: typed(&inst, &mut store, &code.exports, "proxy_on_tick")?,
            queue_ready: typed(&inst, &mut store, &code.exports, "proxy_on_queue_ready")?,
            request_headers: typed(&inst, &mut store, &code.exports, "proxy_on_request_headers")?,
            request_body: typed(&inst, &mut store, &code.exports, "proxy_on_request_body")?,
            request_trailers: typed(
                &inst,
                &mut store,
                &code.exports,
                "proxy_on_request_trailers",
            )?,
            response_headers: typed(
                &inst,
                &mut store,
                &code.exports,
                "proxy_on_response_headers",
            )?,
            response_body: typed(&inst, &mut store, &code.exports, "proxy_on_response_body")?,
            response_trailers: typed(
                &inst,
                &mut store,
                &code.exports,
                "proxy_on_response_trailers",
            )?,
            http_call_response: typed(
                &inst,
                &mut store,
                &code.exports,
                "proxy_on_http_call_response",
            )?,
        };
        let mut me = FilterInstance {
            store,
            cb,
            poisoned: false,
            start_log: Default::default(),
            deadline_ticks: ticks,
            next_context: ROOT_CONTEXT + 1,
        };
        // `_initialize` (then `main` if exported), else `_start`.
        if let Some(f) = typed::<(), ()>(&inst, &mut me.store, &code.exports, "_initialize")? {
            me.guard(|s| f.call(s, ()))
                .map_err(|e| anyhow::anyhow!("_initialize: {e}"))?;
            if let Some(main) =
                typed::<(i32, i32), i32>(&inst, &mut me.store, &code.exports, "main")
                    .ok()
                    .flatten()
            {
                me.guard(|s| main.call(s, (0, 0)))
                    .map_err(|e| anyhow::anyhow!("main: {e}"))?;
            }
        } else if let Some(f) = typed::<(), ()>(&inst, &mut me.store, &code.exports, "_start")? {
            me.guard(|s| f.call(s, ()))
                .map_err(|e| anyhow::anyhow!("_start: {e}"))?;
        }
        me.root_call(|i| {
            i.callback(|cb| cb.context_create.as_ref(), (ROOT_CONTEXT as i32, 0))
                .map(drop)
        })?;
        let (vm_len, plugin_len) = (
            code.meta.vm_config.len() as i32,
            code.meta.plugin_config.len() as i32,
        );
        let started =
            me.root_call(|i| i.callback(|cb| cb.vm_start.as_ref(), (ROOT_CONTEXT as i32, vm_len)));
        if let Some(started) = started.transpose() {
            me.check_start_step(started, "proxy_on_vm_start")?;
        }
        let configured = me.root_call(|i| {
            i.callback(
                |cb| cb.configure.as_ref(),
                (ROOT_CONTEXT as i32, plugin_len),
            )
        });
        if let Some(configured) = configured.transpose() {
            me.check_start_step(configured, "proxy_on_configure")?;
        }
        me.start_log = me.store.data_mut().start_log.take().unwrap_or_default();
        Ok(me)
    }

    /// The outcome of a start-up callback: a trap or a false return fails
    /// the start, with what the filter logged as the reason.
    fn check_start_step(&mut self, outcome: Result<i32, GuestFault>, callback: &str) -> Result<()> {
        let said = self
            .store
            .data()
            .start_log
            .as_ref()
            .and_then(super::state::StartLog::reason);
        match (outcome, said) {
            (Ok(0), Some(said)) => anyhow::bail!("{callback} returned false: {said}"),
            (Ok(0), None) => {
                anyhow::bail!("{callback} returned false (the filter logged no reason)")
            }
            (Ok(_), _) => Ok(()),
            (Err(fault), Some(said)) => {
                anyhow::bail!("{callback}: {fault} (the filter logged: {said})")
            }
            (Err(fault), None) => anyhow::bail!("{callback}: {fault}"),
        }
    }

    /// Runs one guest call under the deadline; any error poisons the instance.
    pub fn guard<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, GuestFault> {
        guarded(&mut self.store, &mut self.poisoned, self.deadline_ticks, f)
    }

    /// Calls the callback `pick` selects under the deadline; `Ok(None)`
    /// when the module does not export it. The callback is borrowed, not
    /// cloned: a `TypedFunc` clone registers its type again on every call.
    pub fn callback<P: WasmParams, R: WasmResults>(
        &mut self,
        pick: impl FnOnce(&Callbacks) -> Option<&TypedFunc<P, R>>,
        params: P,
    ) -> Result<Option<R>, GuestFault> {
        let FilterInstance {
            store,
            cb,
            poisoned,
            deadline_ticks,
            ..
        } = self;
        match pick(cb) {
            Some(f) => guarded(store, poisoned, *deadline_ticks, |s| f.call(s, params)).map(Some),
            None => Ok(None),
        }
    }

    /// A call on the root context (no request attached).
    pub fn root_call<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, GuestFault>,
    ) -> Result<R, GuestFault> {
        let st = self.store.data_mut();
        st.current = 0;
        st.effective = ROOT_CONTEXT;
        f(self)
    }

    pub fn next_context(&mut self) -> u32 {
        let id = self.next_context;
        // Context ids stay above the root's and never wrap into it.
        self.next_context = self.next_context.checked_add(1).unwrap_or(ROOT_CONTEXT + 1);
        id
    }

    /// Attaches a request's state for the calls that follow.
    pub fn enter(&mut self, ctx: u32, stream: Option<Box<StreamState>>) {
        let st = self.store.data_mut();
        st.stream = stream;
        st.current = ctx;
        st.effective = ctx;
    }

    /// Detaches the request's state and takes what the guest asked for.
    pub fn leave(&mut self) -> (Option<Box<StreamState>>, Effects) {
        let st = self.store.data_mut();
        st.current = 0;
        st.effective = ROOT_CONTEXT;
        (st.stream.take(), std::mem::take(&mut st.effects))
    }
}

fn guarded<R>(
    store: &mut Store<HostState>,
    poisoned: &mut bool,
    deadline_ticks: u64,
    f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, GuestFault> {
    if *poisoned {
        return Err(GuestFault(
            "instance was discarded after an earlier failure".into(),
        ));
    }
    store.set_epoch_deadline(deadline_ticks);
    f(store).map_err(|e| {
        *poisoned = true;
        GuestFault(describe(e, "guest call").to_string())
    })
}

/// Names the reason of a guest failure: deadline, stack, memory, trap.
fn describe(e: wasmtime::Error, what: &str) -> anyhow::Error {
    let reason = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "deadline exceeded".to_string(),
        Some(Trap::StackOverflow) => "wasm stack overflow".to_string(),
        Some(t) => format!("trap: {t}"),
        None => format!("{e:#}"),
    };
    anyhow::anyhow!("{what}: {reason}")
}

impl InstanceCell {
    /// Starts an instance whose queue waker and ticker point back at its cell.
    pub fn start(host: &Arc<FilterHost>, code: &Arc<FilterCode>) -> Result<Arc<Self>> {
        let slot: Arc<OnceLock<Weak<InstanceCell>>> = Arc::new(OnceLock::new());
        let waker = super::tasks::queue_waker(host.clone(), slot.clone());
        let mut inst = FilterInstance::start(host, code, Some(waker))?;
        let (_, effects) = inst.leave();
        let cell = Arc::new(InstanceCell {
            inner: Mutex::new(inst),
            ticker: Mutex::new(None),
            dead: Default::default(),
            watch: CellWatch::default(),
        });
        let _ = slot.set(Arc::downgrade(&cell));
        super::tasks::apply_root_effects(host, &cell, effects);
        Ok(cell)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, FilterInstance> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FilterInstance {
    /// Hands a callout's answer to `proxy_on_http_call_response` on the
    /// context already entered (a request's, or the root's).
    pub fn deliver_call(
        &mut self,
        _ctx: u32,
        token: u32,
        result: Result<CalloutResponse, CalloutError>,
    ) -> Result<(), GuestFault> {
        if self.cb.http_call_response.is_none() {
            return Ok(());
        }
        let answer = match result {
            Ok(r) => {
                self.store.data_mut().status = (0, Vec::new());
                CallAnswer {
                    headers: headers_of(Some(r.status), &r.headers),
                    body: r.body,
                    trailers: headers_of(None, &r.trailers),
                }
            }
            Err(e) => {
                self.store.data_mut().status = (14, e.to_string().into_bytes());
                tracing::debug!(filter = %self.store.data().filter.config.name, "callout failed: {e}");
                CallAnswer::default()
            }
        };
        let sizes = (
            answer.headers.pairs.len() as i32,
            answer.body.len() as i32,
            answer.trailers.pairs.len() as i32,
        );
        // As the reference host, the answer goes to the root context (the
        // calling context is the SDK's to find from the token, and to
        // select with proxy_set_effective_context); the request's state
        // stays attached for when it does.
        let st = self.store.data_mut();
        st.call_response = Some(answer);
        st.effective = ROOT_CONTEXT;
        let root = ROOT_CONTEXT as i32;
        let r = self
            .callback(
                |cb| cb.http_call_response.as_ref(),
                (root, token as i32, sizes.0, sizes.1, sizes.2),
            )
            .map(drop);
        self.store.data_mut().call_response = None;
        r
    }
}

/// `:status` as a header value; the common codes without an allocation.
fn status_value(s: http::StatusCode) -> http::HeaderValue {
    let common = match s.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => {
            return http::HeaderValue::from_str(s.as_str())
                .unwrap_or(http::HeaderValue::from_static(""))
        }
    };
    http::HeaderValue::from_static(common)
}

/// A header map as pairs, `:status` first when given.
pub(crate) fn headers_of(status: Option<http::StatusCode>, map: &http::HeaderMap) -> Headers {
    let mut pairs = Vec::with_capacity(map.len() + 1);
    if let Some(s) = status {
        pairs.push((Name::Pseudo(":status"), status_value(s)));
    }
    pairs.extend(
        map.iter()
            .map(|(k, v)| (Name::Header(k.clone()), v.clone())),
    );
    Headers::of_pairs(pairs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_values_spell_every_code() {
        for code in 100..=999u16 {
            let status = http::StatusCode::from_u16(code).expect("valid code");
            assert_eq!(
                super::status_value(status).as_bytes(),
                status.as_str().as_bytes()
            );
        }
    }
}
