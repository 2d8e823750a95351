//! The dispatcher behind `export_service!`: turns the root context's
//! proxy-wasm callbacks into calls on one `Service` value. Not part of the
//! public API.

use crate::abi::{BufferType, MapType};
use crate::callout::CalloutResponse;
use crate::host::{self, LogLevel};
use crate::queue::Queue;
use crate::service::{CalloutId, Service};
use std::cell::{Cell, RefCell};

/// What a module that only has a root context says when a host asks it for
/// an HTTP context (it then traps, as the official SDK does).
pub const NOT_A_FILTER: &str =
    "no HTTP context: this module is a service (export_service!); run it as a service, not as a filter";

/// One service inside a module instance.
pub struct ServiceRuntime<S: Service> {
    service: RefCell<Option<S>>,
    root: Cell<u32>,
}

fn log(level: LogLevel, message: &str) {
    host::with(|h| h.log(level, message));
}

impl<S: Service> Default for ServiceRuntime<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Service> ServiceRuntime<S> {
    /// An empty runtime; the service starts on the first configuration.
    pub fn new() -> Self {
        ServiceRuntime {
            service: RefCell::new(None),
            root: Cell::new(0),
        }
    }

    /// `proxy_on_context_create`: only the root context exists.
    pub fn on_context_create(&self, context_id: u32, root_context_id: u32) {
        if root_context_id == 0 {
            self.root.set(context_id);
            return;
        }
        log(LogLevel::Critical, NOT_A_FILTER);
        panic!("{NOT_A_FILTER}");
    }

    /// `proxy_on_vm_start`: installs the panic hook.
    pub fn on_vm_start(&self, _root_context_id: u32, _size: usize) -> bool {
        install_panic_hook();
        true
    }

    /// `proxy_on_configure`: parses the configuration, then starts the
    /// service (or hands a running one its new configuration) and sets its
    /// timer. False rejects the configuration.
    pub fn on_configure(&self, _root_context_id: u32, size: usize) -> bool {
        install_panic_hook();
        let bytes =
            host::with(|h| h.buffer(BufferType::PluginConfiguration, 0, size)).unwrap_or_default();
        let parsed = crate::config::parse_reporting_unknown::<S::Config>(&bytes)
            .and_then(|(config, unknown)| S::validate_config(&config).map(|()| (config, unknown)));
        let (config, unknown) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                log(LogLevel::Error, &format!("configuration rejected: {error}"));
                return false;
            }
        };
        if !unknown.is_empty() {
            log(
                LogLevel::Warn,
                &format!(
                    "configuration keys not used by this service (misspelled?): {}",
                    unknown.join(", ")
                ),
            );
        }
        let mut slot = self.service.borrow_mut();
        let outcome = match slot.as_mut() {
            Some(service) => service.configure(&config),
            None => S::start(&config).map(|service| {
                *slot = Some(service);
            }),
        };
        if let Err(error) = outcome {
            log(LogLevel::Error, &format!("service did not start: {error}"));
            return false;
        }
        let period = slot.as_ref().and_then(Service::tick_period);
        let millis = period.map_or(0, |p| {
            u32::try_from(p.as_millis()).unwrap_or(u32::MAX).max(1)
        });
        if let Err(code) = host::with(|h| h.set_tick_period(millis)) {
            log(
                LogLevel::Warn,
                &format!("host refused a timer (status {code})"),
            );
        }
        true
    }

    fn with_service(&self, hook: impl FnOnce(&mut S)) {
        // A hook never re-enters the runtime; a busy cell would mean it did.
        if let Ok(mut slot) = self.service.try_borrow_mut() {
            if let Some(service) = slot.as_mut() {
                hook(service);
            }
        }
    }

    /// `proxy_on_tick`.
    pub fn on_tick(&self, _root_context_id: u32) {
        self.with_service(S::on_tick);
    }

    /// `proxy_on_http_call_response`.
    pub fn on_http_call_response(&self, token: u32, headers: usize, body_size: usize) {
        let answer = if headers == 0 {
            CalloutResponse::failed()
        } else {
            let headers = host::with(|h| h.map_pairs(MapType::CalloutResponseHeaders));
            let body = host::with(|h| h.buffer(BufferType::CalloutResponseBody, 0, body_size))
                .unwrap_or_default();
            CalloutResponse::new(headers, body)
        };
        self.with_service(|s| s.on_callout(CalloutId(token), answer));
    }

    /// `proxy_on_queue_ready`.
    pub fn on_queue_ready(&self, _root_context_id: u32, queue_id: u32) {
        self.with_service(|s| s.on_queue_ready(Queue(queue_id)));
    }

    /// `proxy_on_done`: the service stops.
    pub fn on_done(&self, context_id: u32) -> bool {
        if context_id == self.root.get() {
            self.with_service(S::on_stop);
        }
        true
    }

    /// `proxy_on_delete`: the service is dropped.
    pub fn on_delete(&self, context_id: u32) {
        if context_id == self.root.get() {
            self.service.borrow_mut().take();
        }
    }
}

/// On wasm32 a panic aborts (traps) and the host contains it (restarting
/// the service); log it first so the operator sees why.
fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    {
        static INSTALLED: std::sync::Once = std::sync::Once::new();
        INSTALLED.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                log(LogLevel::Critical, &format!("service panicked: {info}"));
            }));
        });
    }
}
