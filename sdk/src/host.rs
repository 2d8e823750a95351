//! The seam between the SDK and whoever runs the filter: the real proxy-wasm
//! host on wasm32, an in-memory host under `gateway_sdk::testing`.

use crate::abi::{BufferType, MapType, MetricKind, StreamType};
#[cfg(not(target_arch = "wasm32"))]
use std::{cell::RefCell, rc::Rc};

/// Log levels of `proxy_log`, numbered as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace = 0,
    /// Debugging detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the filter handled.
    Warn = 3,
    /// Something failed.
    Error = 4,
    /// The filter cannot go on (panics are logged at this level).
    Critical = 5,
}

/// Every hostcall the SDK uses. Errors are the raw ABI status codes.
pub(crate) trait Host {
    fn log(&self, level: LogLevel, message: &str);
    /// Whether the host keeps lines at `level` (`proxy_get_log_level`), so
    /// the SDK formats only those.
    fn log_enabled(&self, level: LogLevel) -> bool {
        let _ = level;
        true
    }
    fn current_time_nanos(&self) -> u64;
    fn map_pairs(&self, map: MapType) -> Vec<(String, String)>;
    fn map_value(&self, map: MapType, key: &str) -> Option<String>;
    fn map_add(&self, map: MapType, key: &str, value: &str);
    fn map_replace(&self, map: MapType, key: &str, value: &str);
    fn map_remove(&self, map: MapType, key: &str);
    fn buffer(&self, buffer: BufferType, start: usize, max: usize) -> Option<Vec<u8>>;
    fn set_buffer(
        &self,
        buffer: BufferType,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), u32>;
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), u32>;
    /// `headers` in the ABI's map encoding (`abi::encode_map`).
    fn send_local_response(&self, status: u16, headers: &[u8], body: &[u8]) -> Result<(), u32>;
    fn http_call(
        &self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, u32>;
    fn continue_stream(&self, stream: StreamType) -> Result<(), u32>;
    fn shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), u32>;
    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), u32>;
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, u32>;
    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), u32>;
    fn record_metric(&self, id: u32, value: u64) -> Result<(), u32>;
    fn set_effective_context(&self, context_id: u32) -> Result<(), u32>;
    fn set_tick_period(&self, millis: u32) -> Result<(), u32>;
    fn register_queue(&self, name: &str) -> Result<u32, u32>;
    fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<u32, u32>;
    fn enqueue(&self, id: u32, data: &[u8]) -> Result<(), u32>;
    /// `Ok(None)` when the queue is empty.
    fn dequeue(&self, id: u32) -> Result<Option<Vec<u8>>, u32>;
    /// WASI `random_get`: fills `buf`; `Err` is the WASI errno. Only the
    /// testing host has it: on wasm32 `random` calls the import directly, so
    /// a module that never asks for randomness does not import it.
    #[cfg(not(target_arch = "wasm32"))]
    fn random(&self, buf: &mut [u8]) -> Result<(), u32>;
}

// Natively, the host the testing module installed for this thread.
#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Host>>> = const { RefCell::new(None) };
}

/// Installs the host used by this thread (the testing module does this).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn install(host: Rc<dyn Host>) {
    CURRENT.with(|current| *current.borrow_mut() = Some(host));
    crate::metrics::forget_ids();
}

/// Runs `f` against the current host: on wasm32 the module's one host, the
/// real one, with nothing to look up (hostcalls are made several times
/// per request).
#[cfg(target_arch = "wasm32")]
pub(crate) fn with<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    f(&crate::wasm::WasmHost)
}

/// Runs `f` against the current host. The `Rc` is cloned out first so that a
/// hostcall re-entering the SDK never finds the cell borrowed.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn with<R>(f: impl FnOnce(&dyn Host) -> R) -> R {
    let host = CURRENT.with(|current| current.borrow().clone());
    match host {
        Some(host) => f(&*host),
        None => panic!(
            "gateway_sdk: no host on this thread; natively, run filters through gateway_sdk::testing"
        ),
    }
}
