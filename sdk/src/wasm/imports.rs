//! The proxy-wasm ABI v0.2.1 hostcalls, imported from module `env`.
//! Signatures follow the spec; `usize` is the guest's 32-bit pointer size.
#![allow(unsafe_code)]

#[link(wasm_import_module = "env")]
extern "C" {
    pub(super) fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
    pub(super) fn proxy_get_log_level(return_level: *mut u32) -> u32;
    pub(super) fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    pub(super) fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    pub(super) fn proxy_set_buffer_bytes(
        buffer: u32,
        start: usize,
        size: usize,
        data: *const u8,
        data_size: usize,
    ) -> u32;
    pub(super) fn proxy_get_header_map_pairs(
        map: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    pub(super) fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    pub(super) fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    pub(super) fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    pub(super) fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    pub(super) fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    pub(super) fn proxy_set_property(
        path: *const u8,
        path_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    pub(super) fn proxy_send_local_response(
        status_code: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    pub(super) fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        return_token: *mut u32,
    ) -> u32;
    pub(super) fn proxy_continue_stream(stream: u32) -> u32;
    pub(super) fn proxy_get_shared_data(
        key: *const u8,
        key_size: usize,
        return_value: *mut *mut u8,
        return_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    pub(super) fn proxy_set_shared_data(
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    pub(super) fn proxy_define_metric(
        kind: u32,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    pub(super) fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    pub(super) fn proxy_record_metric(id: u32, value: u64) -> u32;
    pub(super) fn proxy_set_effective_context(context_id: u32) -> u32;
    pub(super) fn proxy_set_tick_period_milliseconds(millis: u32) -> u32;
    pub(super) fn proxy_register_shared_queue(
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    pub(super) fn proxy_resolve_shared_queue(
        vm_id: *const u8,
        vm_id_size: usize,
        name: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    pub(super) fn proxy_enqueue_shared_queue(id: u32, data: *const u8, data_size: usize) -> u32;
    pub(super) fn proxy_dequeue_shared_queue(
        id: u32,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
}

// WASI preview 1, which proxy-wasm hosts provide alongside the ABI.
#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// Fills `buf` with random bytes; returns a WASI errno (0 on success).
    pub(super) fn random_get(buf: *mut u8, buf_len: usize) -> u16;
}
