//! `tw-queue-pair`: one module, two roles chosen by the plugin
//! configuration, to test shared queues between a service and filters.
//!
//! - `service`: registers the queue `events` of its VM id; on
//!   `on_queue_ready` drains it, adds the number of messages to the
//!   shared-data key `events/seen` and logs "drained N events: <last>".
//! - `filter`: for each request, resolves the queue `events` of the VM id
//!   `events-vm` and enqueues the request path; every response gets the
//!   header `x-events-seen` with the value of `events/seen` (absent: 0).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { service: false }) });
}}

const SEEN: &str = "events/seen";

fn seen(context: &dyn Context) -> (u64, Option<u32>) {
    let (value, cas) = context.get_shared_data(SEEN);
    let n = value
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (n, cas)
}

struct Root {
    service: bool,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        self.service = config == b"service";
        if self.service {
            self.register_shared_queue("events");
        }
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        let mut drained = 0;
        let mut last = String::new();
        while let Ok(Some(message)) = self.dequeue_shared_queue(queue_id) {
            drained += 1;
            last = String::from_utf8_lossy(&message).into_owned();
        }
        if drained == 0 {
            return;
        }
        for _ in 0..64 {
            let (n, cas) = seen(self);
            let next = (n + drained).to_string();
            if self.set_shared_data(SEEN, Some(next.as_bytes()), cas).is_ok() {
                break;
            }
        }
        proxy_wasm::hostcalls::log(LogLevel::Info, &format!("drained {drained} events: {last}")).ok();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request;

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if let Some(queue) = self.resolve_shared_queue("events-vm", "events") {
            self.enqueue_shared_queue(queue, Some(path.as_bytes())).ok();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let (n, _) = seen(self);
        self.set_http_response_header("x-events-seen", Some(&n.to_string()));
        Action::Continue
    }
}
