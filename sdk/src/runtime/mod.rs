//! The dispatcher behind `export_filter!`: turns proxy-wasm callbacks with
//! context ids into calls on per-request `Filter` values, and their decisions
//! back into hostcalls and `Action`s. Not part of the public API.

mod http;
mod trailers;

use crate::abi::BufferType;
use crate::body::BodyPlan;
use crate::callout::Continuation;
use crate::filter::Filter;
use crate::host::{self, LogLevel};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// One filter's state inside a module instance.
pub struct Runtime<F: Filter> {
    /// Root context id -> its parsed configuration (None until configured).
    roots: RefCell<IdMap<Option<Rc<F::Config>>>>,
    streams: RefCell<IdMap<Rc<RefCell<Stream<F>>>>>,
    /// Callout token -> the HTTP context waiting for it.
    callouts: RefCell<IdMap<u32>>,
    /// The root whose configuration an HTTP context gets when its first
    /// callback creates it (a host that honours the declared
    /// `lazy_http_contexts` has one root per module instance): the root
    /// created last.
    lazy_root: std::cell::Cell<u32>,
}

/// Maps keyed by the ids the host hands out (contexts, callout tokens),
/// touched several times per request: they are hashed by one
/// multiplication instead of SipHash, which showed in the filters'
/// profile. The host chooses the keys, never a client.
type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(*b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: spreads consecutive ids over every bit.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

struct Stream<F> {
    /// None when the filter has no usable configuration: fail closed.
    filter: Option<F>,
    pending: Option<Continuation<F>>,
    answered_locally: bool,
    request_body: BodyPlan,
    response_body: BodyPlan,
}

fn log(level: LogLevel, message: &str) {
    host::with(|h| h.log(level, message));
}

impl<F: Filter> Default for Runtime<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Filter> Runtime<F> {
    /// An empty runtime; contexts arrive through the callbacks.
    pub fn new() -> Self {
        Runtime {
            roots: RefCell::default(),
            streams: RefCell::default(),
            callouts: RefCell::default(),
            lazy_root: std::cell::Cell::new(0),
        }
    }

    /// The HTTP context's state, created here at its first callback when
    /// the host did not call `proxy_on_context_create` for it.
    fn stream(&self, context_id: u32) -> Rc<RefCell<Stream<F>>> {
        if let Some(stream) = self.streams.borrow().get(&context_id) {
            return stream.clone();
        }
        self.create_stream(context_id, self.lazy_root.get())
    }

    /// `proxy_on_context_create`.
    pub fn on_context_create(&self, context_id: u32, root_context_id: u32) {
        if root_context_id == 0 {
            self.roots.borrow_mut().entry(context_id).or_insert(None);
            self.lazy_root.set(context_id);
            return;
        }
        self.create_stream(context_id, root_context_id);
    }

    fn create_stream(&self, context_id: u32, root_context_id: u32) -> Rc<RefCell<Stream<F>>> {
        let stream = Rc::new(RefCell::new(self.new_stream(root_context_id)));
        self.streams.borrow_mut().insert(context_id, stream.clone());
        stream
    }

    /// A request's state with the configuration of `root_context_id`.
    fn new_stream(&self, root_context_id: u32) -> Stream<F> {
        let config = self.roots.borrow().get(&root_context_id).cloned().flatten();
        // A host that skipped on_configure still gets defaults if they parse.
        let config = config.or_else(|| crate::config::parse::<F::Config>(b"").ok().map(Rc::new));
        let filter = config.as_ref().map(F::new);
        Stream {
            filter,
            pending: None,
            answered_locally: false,
            request_body: BodyPlan::from_default(F::REQUEST_BODY_LIMIT),
            response_body: BodyPlan::from_default(F::RESPONSE_BODY_LIMIT),
        }
    }

    /// Runs the request-headers `hook` on the context's state. A filter
    /// whose only hook is the request's headers keeps no state once that
    /// hook has decided, unless a callout is pending: its state then lives
    /// on the stack for the call (no allocation, no map entry), or, made
    /// by `proxy_on_context_create`, leaves the map here. That is what the
    /// section's `transient_http_contexts` promises the host, which then
    /// skips `proxy_on_delete` for such a context (docs/abi.md).
    fn with_request_stream<R>(
        &self,
        context_id: u32,
        hook: impl FnOnce(&mut Stream<F>) -> R,
    ) -> Option<R> {
        let transient = crate::hooks::effective::<F>().is_request_only();
        let existing = self.streams.borrow().get(&context_id).cloned();
        let Some(stream) = existing else {
            let mut stream = self.new_stream(self.lazy_root.get());
            let r = hook(&mut stream);
            if !transient || stream.pending.is_some() {
                self.streams
                    .borrow_mut()
                    .insert(context_id, Rc::new(RefCell::new(stream)));
            }
            return Some(r);
        };
        let mut state = stream.try_borrow_mut().ok()?;
        let r = hook(&mut state);
        let finished = transient && state.pending.is_none();
        drop(state);
        if finished {
            self.streams.borrow_mut().remove(&context_id);
        }
        Some(r)
    }

    /// `proxy_on_vm_start`: installs the panic hook.
    pub fn on_vm_start(&self, _root_context_id: u32, _size: usize) -> bool {
        install_panic_hook();
        true
    }

    /// `proxy_on_configure`: parses the configuration once; false rejects the load.
    pub fn on_configure(&self, root_context_id: u32, size: usize) -> bool {
        install_panic_hook();
        let bytes =
            host::with(|h| h.buffer(BufferType::PluginConfiguration, 0, size)).unwrap_or_default();
        let parsed = crate::config::parse_reporting_unknown::<F::Config>(&bytes)
            .and_then(|(config, unknown)| F::validate_config(&config).map(|()| (config, unknown)));
        match parsed {
            Ok((config, unknown)) => {
                if !unknown.is_empty() {
                    log(
                        LogLevel::Warn,
                        &format!(
                            "configuration keys not used by this filter (misspelled?): {}",
                            unknown.join(", ")
                        ),
                    );
                }
                if let Some(period) = F::tick_period(&config) {
                    let millis = u32::try_from(period.as_millis()).unwrap_or(u32::MAX).max(1);
                    if let Err(code) = host::with(|h| h.set_tick_period(millis)) {
                        log(
                            LogLevel::Warn,
                            &format!("host refused a timer (status {code})"),
                        );
                    }
                }
                self.roots
                    .borrow_mut()
                    .insert(root_context_id, Some(Rc::new(config)));
                true
            }
            Err(error) => {
                log(LogLevel::Error, &format!("configuration rejected: {error}"));
                false
            }
        }
    }

    /// Runs `hook` on the stream's filter; None if the stream is busy.
    fn with_stream<R>(&self, context_id: u32, hook: impl FnOnce(&mut Stream<F>) -> R) -> Option<R> {
        let stream = self.stream(context_id);
        let mut stream = stream.try_borrow_mut().ok()?;
        Some(hook(&mut stream))
    }

    /// `proxy_on_tick`: runs on the root context.
    pub fn on_tick(&self, root_context_id: u32) {
        let config = self.roots.borrow().get(&root_context_id).cloned().flatten();
        if let Some(config) = config {
            F::on_tick(&config);
        }
    }

    /// `proxy_on_log`.
    pub fn on_log(&self, context_id: u32) {
        if !crate::hooks::effective::<F>().calls(crate::hooks::Callback::Log) {
            return;
        }
        self.with_stream(context_id, |stream| {
            if let Some(filter) = stream.filter.as_mut() {
                filter.on_complete();
            }
        });
    }

    /// `proxy_on_done`.
    pub fn on_done(&self, _context_id: u32) -> bool {
        true
    }

    /// `proxy_on_delete`.
    pub fn on_delete(&self, context_id: u32) {
        // A request's context, the usual case, is never also a root.
        if self.streams.borrow_mut().remove(&context_id).is_none() {
            self.roots.borrow_mut().remove(&context_id);
        }
        let mut callouts = self.callouts.borrow_mut();
        if !callouts.is_empty() {
            callouts.retain(|_, waiting| *waiting != context_id);
        }
    }
}

/// On wasm32 a panic aborts (traps) and the host contains it; log it first so
/// the operator sees why.
fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                log(LogLevel::Critical, &format!("filter panicked: {info}"));
            }));
        });
    }
}
