//! `tw-redis-command`: a filter nobody wrote for this gateway speaking the
//! Redis callout convention with nothing but the official SDK's
//! `dispatch_http_call`. For every request it sends the request header
//! `x-redis-command` (a JSON array, e.g. `["GET","k"]`) as the body of a
//! callout to the cluster named by header `x-redis-cluster` (default
//! `redis`), and answers the request locally with the callout's status and
//! body (a failed callout: 599, empty body).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::time::Duration;

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
        Some(Box::new(RedisCommand))
    }
}

struct RedisCommand;

impl Context for RedisCommand {
    fn on_http_call_response(&mut self, _token: u32, headers: usize, body: usize, _: usize) {
        if headers == 0 {
            self.send_http_response(599, vec![], None);
            return;
        }
        let status = self
            .get_http_call_response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(599);
        let body = self.get_http_call_response_body(0, body).unwrap_or_default();
        self.send_http_response(status, vec![("content-type", "application/json")], Some(&body));
    }
}

impl HttpContext for RedisCommand {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let command = self.get_http_request_header("x-redis-command").unwrap_or_default();
        let cluster = self
            .get_http_request_header("x-redis-cluster")
            .unwrap_or_else(|| "redis".to_string());
        let headers = vec![(":method", "POST"), (":path", "/"), (":authority", "redis")];
        match self.dispatch_http_call(
            &cluster,
            headers,
            Some(command.as_bytes()),
            vec![],
            Duration::from_secs(2),
        ) {
            Ok(_) => Action::Pause,
            Err(_) => {
                self.send_http_response(503, vec![], Some(b"callout dispatch failed"));
                Action::Pause
            }
        }
    }
}
