//! The real host: proxy-wasm ABI v0.2.1 hostcalls imported from module `env`,
//! plus the two exports every module needs (the ABI marker and the allocator
//! the host uses to hand us memory). Compiled on wasm32 only.
#![allow(unsafe_code)]

use crate::abi::{
    lossy_owned, status, with_encoded_map, with_encoded_path, BufferType, MapType, MetricKind,
    StreamType,
};
use crate::host::{Host, LogLevel};
use std::ptr::null_mut;

mod imports;

use imports::*;

/// Marks the module as speaking proxy-wasm ABI v0.2.1.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host allocates guest memory through this to return data to us. The
/// block is a `Box<[u8]>` of exactly `size` bytes, freed again by [`take`].
/// It is not zeroed: the host fills all of it before we read it.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let Ok(layout) = std::alloc::Layout::array::<u8>(size) else {
        return null_mut();
    };
    if size == 0 {
        return std::ptr::NonNull::<u8>::dangling().as_ptr();
    }
    // SAFETY: a non-zero layout; the block becomes the Box<[u8]> `take`
    // rebuilds with this same layout.
    unsafe { std::alloc::alloc(layout) }
}

/// The same allocator under the name Envoy and the official SDK use; hosts
/// look for `malloc` first, then `proxy_on_memory_allocate`.
#[export_name = "malloc"]
pub extern "C" fn malloc(size: usize) -> *mut u8 {
    proxy_on_memory_allocate(size)
}

/// Takes ownership of a block the host filled via `proxy_on_memory_allocate`.
///
/// Safety: `ptr`/`size` must come from `proxy_on_memory_allocate(size)`.
unsafe fn take(ptr: *mut u8, size: usize) -> Vec<u8> {
    if ptr.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: per the contract above, this is the Box<[u8]> we leaked.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, size)) }.into_vec()
}

/// Calls a hostcall that returns a buffer through two out-pointers.
fn returned(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Vec<u8>, u32> {
    let mut ptr: *mut u8 = null_mut();
    let mut size: usize = 0;
    match call(&mut ptr, &mut size) {
        // SAFETY: on OK the host allocated the block through our allocator.
        status::OK => Ok(unsafe { take(ptr, size) }),
        code => Err(code),
    }
}

fn ok(code: u32) -> Result<(), u32> {
    if code == status::OK {
        Ok(())
    } else {
        Err(code)
    }
}

/// The proxy-wasm host the module runs in.
pub(crate) struct WasmHost;

impl Host for WasmHost {
    fn log(&self, level: LogLevel, message: &str) {
        // SAFETY: pointer and length describe a live &str.
        unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
    }

    fn log_enabled(&self, level: LogLevel) -> bool {
        let mut lowest = 0u32;
        // SAFETY: `lowest` is a valid out-pointer.
        let status = unsafe { proxy_get_log_level(&mut lowest) };
        // A host that cannot say gets every line, as before.
        status != status::OK || level as u32 >= lowest
    }

    fn current_time_nanos(&self) -> u64 {
        let mut now = 0u64;
        // SAFETY: `now` is a valid out-pointer.
        unsafe { proxy_get_current_time_nanoseconds(&mut now) };
        now
    }

    fn map_pairs(&self, map: MapType) -> Vec<(String, String)> {
        // SAFETY: out-pointers are valid locals.
        returned(|p, s| unsafe { proxy_get_header_map_pairs(map as u32, p, s) })
            .map(|bytes| crate::abi::decode_map(&bytes))
            .unwrap_or_default()
    }

    fn map_value(&self, map: MapType, key: &str) -> Option<String> {
        // SAFETY: key is a live &str; out-pointers are valid locals.
        returned(|p, s| unsafe {
            proxy_get_header_map_value(map as u32, key.as_ptr(), key.len(), p, s)
        })
        .ok()
        .map(lossy_owned)
    }

    fn map_add(&self, map: MapType, key: &str, value: &str) {
        // SAFETY: key and value are live &strs.
        unsafe {
            proxy_add_header_map_value(
                map as u32,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        };
    }

    fn map_replace(&self, map: MapType, key: &str, value: &str) {
        // SAFETY: key and value are live &strs.
        unsafe {
            proxy_replace_header_map_value(
                map as u32,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        };
    }

    fn map_remove(&self, map: MapType, key: &str) {
        // SAFETY: key is a live &str.
        unsafe { proxy_remove_header_map_value(map as u32, key.as_ptr(), key.len()) };
    }

    fn buffer(&self, buffer: BufferType, start: usize, max: usize) -> Option<Vec<u8>> {
        // SAFETY: out-pointers are valid locals.
        returned(|p, s| unsafe { proxy_get_buffer_bytes(buffer as u32, start, max, p, s) }).ok()
    }

    fn set_buffer(
        &self,
        buffer: BufferType,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), u32> {
        // SAFETY: data is a live slice.
        ok(
            unsafe {
                proxy_set_buffer_bytes(buffer as u32, start, size, data.as_ptr(), data.len())
            },
        )
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        with_encoded_path(path, |path| {
            // SAFETY: path is a live buffer; out-pointers are valid locals.
            returned(|p, s| unsafe { proxy_get_property(path.as_ptr(), path.len(), p, s) }).ok()
        })
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), u32> {
        with_encoded_path(path, |path| {
            // SAFETY: both buffers are live.
            ok(unsafe {
                proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len())
            })
        })
    }

    fn send_local_response(&self, status: u16, headers: &[u8], body: &[u8]) -> Result<(), u32> {
        let details = b"gateway_sdk";
        // SAFETY: all buffers are live for the call; -1 means "not gRPC".
        ok(unsafe {
            proxy_send_local_response(
                u32::from(status),
                details.as_ptr(),
                details.len(),
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        })
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, u32> {
        // No trailers: an empty map is its zero count.
        let trailers = [0u8; 4];
        let mut token = 0u32;
        let code = with_encoded_map(headers, |headers| {
            // SAFETY: all buffers are live for the call; token is a valid out-pointer.
            unsafe {
                proxy_http_call(
                    cluster.as_ptr(),
                    cluster.len(),
                    headers.as_ptr(),
                    headers.len(),
                    body.as_ptr(),
                    body.len(),
                    trailers.as_ptr(),
                    trailers.len(),
                    timeout_ms,
                    &mut token,
                )
            }
        });
        ok(code).map(|()| token)
    }

    fn continue_stream(&self, stream: StreamType) -> Result<(), u32> {
        // SAFETY: plain value call.
        ok(unsafe { proxy_continue_stream(stream as u32) })
    }

    fn shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), u32> {
        let mut cas = 0u32;
        // SAFETY: key is live; out-pointers are valid locals.
        let value = returned(|p, s| unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), p, s, &mut cas)
        });
        match value {
            Ok(value) => Ok((Some(value), cas)),
            Err(status::NOT_FOUND) => Ok((None, 0)),
            Err(code) => Err(code),
        }
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), u32> {
        // SAFETY: both buffers are live.
        ok(unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
        })
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, u32> {
        let mut id = 0u32;
        // SAFETY: name is live; id is a valid out-pointer.
        ok(unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) })
            .map(|()| id)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), u32> {
        // SAFETY: plain value call.
        ok(unsafe { proxy_increment_metric(id, delta) })
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), u32> {
        // SAFETY: plain value call.
        ok(unsafe { proxy_record_metric(id, value) })
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), u32> {
        // SAFETY: plain value call.
        ok(unsafe { proxy_set_effective_context(context_id) })
    }

    fn set_tick_period(&self, millis: u32) -> Result<(), u32> {
        // SAFETY: plain value call.
        ok(unsafe { proxy_set_tick_period_milliseconds(millis) })
    }

    fn register_queue(&self, name: &str) -> Result<u32, u32> {
        let mut id = 0u32;
        // SAFETY: name is live; id is a valid out-pointer.
        ok(unsafe { proxy_register_shared_queue(name.as_ptr(), name.len(), &mut id) }).map(|()| id)
    }

    fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<u32, u32> {
        let mut id = 0u32;
        // SAFETY: both strings are live; id is a valid out-pointer.
        ok(unsafe {
            proxy_resolve_shared_queue(
                vm_id.as_ptr(),
                vm_id.len(),
                name.as_ptr(),
                name.len(),
                &mut id,
            )
        })
        .map(|()| id)
    }

    fn enqueue(&self, id: u32, data: &[u8]) -> Result<(), u32> {
        // SAFETY: data is live for the call.
        ok(unsafe { proxy_enqueue_shared_queue(id, data.as_ptr(), data.len()) })
    }

    fn dequeue(&self, id: u32) -> Result<Option<Vec<u8>>, u32> {
        // SAFETY: out-pointers are valid locals.
        match returned(|p, s| unsafe { proxy_dequeue_shared_queue(id, p, s) }) {
            Ok(message) => Ok(Some(message)),
            Err(status::EMPTY) => Ok(None),
            Err(code) => Err(code),
        }
    }
}

/// WASI `random_get` into `buf`; `Err` is the WASI errno. A free function
/// (not a `Host` method) so that the import is linked only into modules
/// that use `gateway_sdk::random`: hosts without WASI still load the rest.
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<(), u32> {
    // Hosts cap one call (this gateway at 64 KiB): ask in small pieces.
    for piece in buf.chunks_mut(4096) {
        // SAFETY: piece is a live, writable slice of piece.len() bytes.
        match unsafe { imports::random_get(piece.as_mut_ptr(), piece.len()) } {
            0 => {}
            errno => return Err(u32::from(errno)),
        }
    }
    Ok(())
}
