//! `tw-trailers`: works on trailers, as gRPC filters do. In
//! `on_http_request_trailers` it copies the request trailer `x-checksum`
//! into a new request trailer `x-filter-saw` (the upstream sees it); in
//! `on_http_response_trailers` it copies the response trailer
//! `grpc-status` into `x-filter-grpc-status` and removes the trailer
//! `echo-secret` (the client sees both changes).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Trailers))
    }
}

struct Trailers;

impl Context for Trailers {}

impl HttpContext for Trailers {
    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(sum) = self.get_http_request_trailer("x-checksum") {
            self.add_http_request_trailer("x-filter-saw", &sum);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(status) = self.get_http_response_trailer("grpc-status") {
            self.set_http_response_trailer("x-filter-grpc-status", Some(&status));
        }
        self.set_http_response_trailer("echo-secret", None);
        Action::Continue
    }
}
