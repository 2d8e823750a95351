//! `tw-local-response`: answers `GET /local` (any method, exact path, query
//! ignored) inside the filter with status 200, body `hello from wasm` and the
//! response header `x-wasm-local: 1`; no upstream is contacted. Every other
//! path continues untouched. No configuration.

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
        Some(Box::new(LocalResponse))
    }
}

struct LocalResponse;

impl Context for LocalResponse {}

impl HttpContext for LocalResponse {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        if path != "/local" {
            return Action::Continue;
        }
        self.send_http_response(
            200,
            vec![("content-type", "text/plain"), ("x-wasm-local", "1")],
            Some(b"hello from wasm"),
        );
        Action::Pause
    }
}
