//! `tw-shared-counter`: counts requests across every instance of the filter
//! (and every worker VM) with the host's shared data: on each request it
//! increments the key `tw-shared-counter/requests` (a decimal string) with a
//! compare-and-swap retry loop, remembers the value it wrote, and stamps it
//! into the response header `x-request-count` (so N sequential requests see
//! 1..=N, and concurrent ones see distinct values). No configuration.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};

const KEY: &str = "tw-shared-counter/requests";

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
        Some(Box::new(SharedCounter { count: None }))
    }
}

struct SharedCounter {
    count: Option<u64>,
}

impl SharedCounter {
    /// CAS loop, bounded so a misbehaving host cannot spin us forever.
    fn increment(&self) -> Option<u64> {
        for _ in 0..64 {
            let (value, cas) = self.get_shared_data(KEY);
            let current = value
                .and_then(|v| String::from_utf8(v).ok())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let next = current + 1;
            match self.set_shared_data(KEY, Some(next.to_string().as_bytes()), cas) {
                Ok(()) => return Some(next),
                Err(Status::CasMismatch) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

impl Context for SharedCounter {}

impl HttpContext for SharedCounter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.count = self.increment();
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let value = self
            .count
            .map_or_else(|| "error".to_string(), |c| c.to_string());
        self.set_http_response_header("x-request-count", Some(&value));
        Action::Continue
    }
}
