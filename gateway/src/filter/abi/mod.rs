//! The proxy-wasm ABI v0.2.1 host side: enum values, guest-memory access and
//! the host functions, one file per family.

use wasmtime::Result;
use wasmtime::{Caller, Linker};

use super::state::HostState;

mod buffers;
mod headers;
mod http;
mod misc;
mod shared;
mod stubs;
pub mod wasi;

pub use headers::{decode_pairs, encode_pairs, for_each_pair};
pub use stubs::link_unknown;

/// `proxy_status_t` values (all of them, used or not, for reference).
#[allow(dead_code)]
pub mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const SERIALIZATION_FAILURE: i32 = 3;
    pub const PARSE_FAILURE: i32 = 4;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const EMPTY: i32 = 7;
    pub const CAS_MISMATCH: i32 = 8;
    pub const INTERNAL_FAILURE: i32 = 10;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// `proxy_action_t` values returned by stream callbacks.
#[allow(dead_code)]
pub mod action {
    pub const CONTINUE: i32 = 0;
    pub const PAUSE: i32 = 1;
}

/// `proxy_map_type_t`.
pub mod map_type {
    pub const HTTP_REQUEST_HEADERS: i32 = 0;
    pub const HTTP_REQUEST_TRAILERS: i32 = 1;
    pub const HTTP_RESPONSE_HEADERS: i32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: i32 = 3;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

/// `proxy_buffer_type_t`.
pub mod buffer_type {
    pub const HTTP_REQUEST_BODY: i32 = 0;
    pub const HTTP_RESPONSE_BODY: i32 = 1;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
}

/// `proxy_stream_type_t`.
pub mod stream_type {
    pub const HTTP_REQUEST: i32 = 0;
    pub const HTTP_RESPONSE: i32 = 1;
}

/// A guest-caused problem with a hostcall argument, as the status it returns.
pub type GuestResult<T> = std::result::Result<T, i32>;

/// Adds every proxy-wasm hostcall and the WASI subset to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    misc::add(linker)?;
    headers::add(linker)?;
    buffers::add(linker)?;
    http::add(linker)?;
    shared::add(linker)?;
    stubs::add(linker)?;
    wasi::add(linker, "wasi_snapshot_preview1")?;
    wasi::add(linker, "wasi_unstable")?;
    Ok(())
}

// === guest memory ===

/// Copies `len` bytes at `ptr` out of the guest's memory.
pub(crate) fn read_bytes(
    caller: &Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> GuestResult<Vec<u8>> {
    with_bytes(caller, ptr, len, |b| b.to_vec())
}

/// Runs `f` over `len` bytes at `ptr` of the guest's memory, bounds-checked.
pub(crate) fn with_bytes<R>(
    caller: &Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&[u8]) -> R,
) -> GuestResult<R> {
    let memory = caller.data().memory.ok_or(status::INTERNAL_FAILURE)?;
    guest_range(memory.data(caller), ptr, len).map(f)
}

/// The `len` bytes at `ptr` of a guest's memory `data`, or
/// `INVALID_MEMORY_ACCESS` when they are not all inside it.
pub(crate) fn guest_range(data: &[u8], ptr: i32, len: i32) -> GuestResult<&[u8]> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(status::INVALID_MEMORY_ACCESS)?;
    data.get(start..end).ok_or(status::INVALID_MEMORY_ACCESS)
}

/// Reads a UTF-8 string argument.
pub(crate) fn read_string(
    caller: &Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> GuestResult<String> {
    let bytes = read_bytes(caller, ptr, len)?;
    String::from_utf8(bytes).map_err(|_| status::BAD_ARGUMENT)
}

/// Writes `bytes` at `ptr` of the guest's memory, bounds-checked.
pub(crate) fn write_bytes(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    bytes: &[u8],
) -> GuestResult<()> {
    let memory = caller.data().memory.ok_or(status::INTERNAL_FAILURE)?;
    let data = memory.data_mut(caller);
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(status::INVALID_MEMORY_ACCESS)?;
    data.get_mut(start..end)
        .ok_or(status::INVALID_MEMORY_ACCESS)?
        .copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u32,
) -> GuestResult<()> {
    write_bytes(caller, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the guest: memory from its allocator, the address and
/// size written at `ret_ptr` / `ret_len` (0 and 0 for no bytes, without
/// calling the allocator). As the reference host: no allocator, an
/// allocator answering 0 or an address out of range are
/// `INVALID_MEMORY_ACCESS`. `Err` of the outer result is a trap in the
/// guest's allocator.
pub(crate) fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_len: i32,
) -> Result<i32> {
    // Check the return slots before allocating, so a bad pointer costs nothing.
    if let Err(status) = check_range(caller, ret_ptr, 4).and(check_range(caller, ret_len, 4)) {
        return Ok(status);
    }
    let addr = if bytes.is_empty() {
        0
    } else {
        let Ok(len) = i32::try_from(bytes.len()) else {
            return Ok(status::INVALID_MEMORY_ACCESS);
        };
        // Taken out for the call and put back (a clone of a `TypedFunc`
        // costs a type registration per call); an allocator that calls
        // back into a hostcall returning bytes finds none.
        let Some(alloc) = caller.data_mut().alloc.take() else {
            return Ok(status::INVALID_MEMORY_ACCESS);
        };
        let addr = alloc.call(&mut *caller, len);
        caller.data_mut().alloc = Some(alloc);
        let addr = addr?;
        if addr == 0 {
            return Ok(status::INVALID_MEMORY_ACCESS);
        }
        addr
    };
    let r = write_bytes(caller, addr, bytes)
        .and_then(|()| write_u32(caller, ret_ptr, addr as u32))
        .and_then(|()| write_u32(caller, ret_len, bytes.len() as u32));
    Ok(r.err().unwrap_or(status::OK))
}

fn check_range(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> GuestResult<()> {
    with_bytes(caller, ptr, len, |_| ())
}

/// Folds a guest-argument error into its status.
pub(crate) fn status_of(r: GuestResult<()>) -> i32 {
    r.err().unwrap_or(status::OK)
}
