//! `export_service!`: the one line that turns a `Service` into a proxy-wasm module.

/// Exports a [`Service`](crate::Service) type as a proxy-wasm ABI v0.2.1
/// module with a root context only: the host runs it once, as a service.
///
/// On wasm32 this generates the root-context callbacks (`proxy_on_vm_start`,
/// `proxy_on_configure`, `proxy_on_tick`, `proxy_on_http_call_response`,
/// `proxy_on_queue_ready`, `proxy_on_done`, `proxy_on_delete`); asked for an
/// HTTP context, the module logs why it has none and traps. Natively it only
/// checks that the type is a service, so the crate still builds and tests
/// with `cargo test` (through [`crate::testing::ServiceTest`]).
///
/// ```
/// # use gateway_sdk::{Service, export_service};
/// struct Idle;
/// impl Service for Idle {
///     type Config = ();
///     fn start(_: &()) -> Result<Self, String> { Ok(Idle) }
/// }
/// export_service!(Idle);
/// ```
#[macro_export]
macro_rules! export_service {
    ($service:ty) => {
        const _: () = {
            fn assert_service<S: $crate::Service>() {}
            let _ = assert_service::<$service>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type Runtime = $crate::__private::ServiceRuntime<$service>;
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
            pub extern "C" fn proxy_on_tick(context_id: u32) {
                RUNTIME.with(|r| r.on_tick(context_id))
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
            pub extern "C" fn proxy_on_queue_ready(context_id: u32, queue_id: u32) {
                RUNTIME.with(|r| r.on_queue_ready(context_id, queue_id))
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_done(context_id: u32) -> u32 {
                RUNTIME.with(|r| r.on_done(context_id)) as u32
            }
            #[no_mangle]
            pub extern "C" fn proxy_on_delete(context_id: u32) {
                RUNTIME.with(|r| r.on_delete(context_id))
            }
        };
    };
}
