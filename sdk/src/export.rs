//! `export_filter!`: the one line that turns a `Filter` into a proxy-wasm module.

/// Exports a [`Filter`](crate::Filter) type as a proxy-wasm ABI v0.2.1 module.
///
/// On wasm32 this generates the `proxy_on_*` callbacks the host calls and
/// routes them to the SDK's dispatcher; the author writes no `unsafe` code.
/// Natively it only checks that the type is a filter, so the crate still
/// builds and tests with `cargo test` (through [`crate::testing`]).
///
/// ```
/// # use gateway_sdk::{Filter, export_filter};
/// struct Nothing;
/// impl Filter for Nothing {
///     type Config = ();
///     fn new(_: &std::rc::Rc<()>) -> Self { Nothing }
/// }
/// export_filter!(Nothing);
/// ```
#[macro_export]
macro_rules! export_filter {
    ($filter:ty) => {
        const _: () = {
            fn assert_filter<F: $crate::Filter>() {}
            let _ = assert_filter::<$filter>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Runtime = $crate::__private::Runtime<$filter>;
            const HOOKS: $crate::Hooks = $crate::__private::effective::<$filter>();
            // The callbacks this filter needs, for hosts that skip the
            // others (docs/abi.md, "Declared callbacks").
            #[link_section = "gateway.callbacks"]
            #[used]
            static DECLARED_CALLBACKS: [u8; $crate::__private::section_len(HOOKS)] =
                $crate::__private::section(HOOKS);
            ::std::thread_local! {
                static RUNTIME: Runtime = Runtime::new();
            }

            #[no_mangle]
            pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
                RUNTIME.with(|r| r.on_context_create(context_id, root_context_id))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_vm_start(context_id: u32, size: usize) -> u32 {
                RUNTIME.with(|r| r.on_vm_start(context_id, size)) as u32
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_configure(context_id: u32, size: usize) -> u32 {
                RUNTIME.with(|r| r.on_configure(context_id, size)) as u32
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_request_headers(
                context_id: u32,
                headers: usize,
                end_of_stream: u32,
            ) -> u32 {
                RUNTIME.with(|r| r.on_request_headers(context_id, headers, end_of_stream != 0))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_request_body(
                context_id: u32,
                size: usize,
                end_of_stream: u32,
            ) -> u32 {
                RUNTIME.with(|r| r.on_request_body(context_id, size, end_of_stream != 0))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_request_trailers(context_id: u32, trailers: usize) -> u32 {
                RUNTIME.with(|r| r.on_request_trailers(context_id, trailers))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_response_headers(
                context_id: u32,
                headers: usize,
                end_of_stream: u32,
            ) -> u32 {
                RUNTIME.with(|r| r.on_response_headers(context_id, headers, end_of_stream != 0))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_response_body(
                context_id: u32,
                size: usize,
                end_of_stream: u32,
            ) -> u32 {
                RUNTIME.with(|r| r.on_response_body(context_id, size, end_of_stream != 0))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_response_trailers(context_id: u32, trailers: usize) -> u32 {
                RUNTIME.with(|r| r.on_response_trailers(context_id, trailers))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_http_call_response(
                _context_id: u32,
                token: u32,
                headers: usize,
                body_size: usize,
                _trailers: usize,
            ) {
                RUNTIME.with(|r| r.on_http_call_response(token, headers, body_size))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_log(context_id: u32) {
                RUNTIME.with(|r| r.on_log(context_id))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
                RUNTIME.with(|r| r.on_done(context_id)) as u32
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_delete(context_id: u32) {
                RUNTIME.with(|r| r.on_delete(context_id))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_tick(context_id: u32) {
                RUNTIME.with(|r| r.on_tick(context_id))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_queue_ready(_context_id: u32, _queue_id: u32) {}
            #[no_mangle]
            pub extern "C" fn proxy_on_new_connection(_context_id: u32) -> u32 {
                0
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_downstream_data(
                _context_id: u32,
                _size: usize,
                _end_of_stream: u32,
            ) -> u32 {
                0
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_upstream_data(
                _context_id: u32,
                _size: usize,
                _end_of_stream: u32,
            ) -> u32 {
                0
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_downstream_connection_close(_context_id: u32, _peer: u32) {}
            #[no_mangle]
            pub extern "C" fn proxy_on_upstream_connection_close(_context_id: u32, _peer: u32) {}
        };
    };
}
