//! `tw-tick-counter`: asks for a timer in `on_configure` (period in
//! milliseconds from the plugin configuration, a plain decimal number such as
//! `50`; empty configuration means 100 ms; anything else rejects the load).
//! Each `on_tick` increments the shared-data key `tw-tick-counter/ticks` with
//! compare-and-swap. Every response gets the current count in the header
//! `x-tick-count` (a decimal number; it grows while the filter is loaded).
//! Requests are not touched.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, Status};
use std::time::Duration;

const KEY: &str = "tw-tick-counter/ticks";

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

fn read_ticks(context: &dyn Context) -> (u64, Option<u32>) {
    let (value, cas) = context.get_shared_data(KEY);
    let ticks = value
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    (ticks, cas)
}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let text = text.trim();
        let millis = if text.is_empty() {
            100
        } else {
            match text.parse::<u64>() {
                Ok(ms) if ms > 0 => ms,
                _ => {
                    proxy_wasm::hostcalls::log(
                        LogLevel::Error,
                        "tick period must be a positive integer (ms)",
                    )
                    .ok();
                    return false;
                }
            }
        };
        self.set_tick_period(Duration::from_millis(millis));
        true
    }

    fn on_tick(&mut self) {
        for _ in 0..64 {
            let (ticks, cas) = read_ticks(self);
            match self.set_shared_data(KEY, Some((ticks + 1).to_string().as_bytes()), cas) {
                Err(Status::CasMismatch) => continue,
                _ => return,
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TickCounter))
    }
}

struct TickCounter;

impl Context for TickCounter {}

impl HttpContext for TickCounter {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (ticks, _) = read_ticks(self);
        self.set_http_response_header("x-tick-count", Some(&ticks.to_string()));
        Action::Continue
    }
}
