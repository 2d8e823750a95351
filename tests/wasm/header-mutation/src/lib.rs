//! `tw-header-mutation`: reads its plugin configuration once in
//! `on_configure` (JSON, all keys optional:
//! `{"request_header": ["x-wasm-request", "added"], "response_header": ["x-wasm-response", "added"]}`)
//! and rejects the load (on_configure returns false) when the configuration is
//! present but not such JSON. On every request it adds the configured request
//! header (default `x-wasm-request: added`) and removes the request header
//! `x-remove-me`, so the upstream sees the change; on every response it adds the
//! configured response header (default `x-wasm-response: added`) and removes
//! the response header `x-upstream-secret`, so the client sees the change.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { headers: Rc::new(Headers::default()) })
    });
}}

struct Headers {
    request: (String, String),
    response: (String, String),
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            request: ("x-wasm-request".into(), "added".into()),
            response: ("x-wasm-response".into(), "added".into()),
        }
    }
}

fn pair(value: &serde_json::Value) -> Option<(String, String)> {
    let array = value.as_array()?;
    match array.as_slice() {
        [name, value] => Some((name.as_str()?.to_string(), value.as_str()?.to_string())),
        _ => None,
    }
}

struct Root {
    headers: Rc<Headers>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = self.get_plugin_configuration() else {
            return true;
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return true;
        }
        let json: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(json) => json,
            Err(error) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("bad config: {error}")).ok();
                return false;
            }
        };
        let mut headers = Headers::default();
        if let Some(value) = json.get("request_header") {
            match pair(value) {
                Some(p) => headers.request = p,
                None => return false,
            }
        }
        if let Some(value) = json.get("response_header") {
            match pair(value) {
                Some(p) => headers.response = p,
                None => return false,
            }
        }
        self.headers = Rc::new(headers);
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HeaderMutation {
            headers: self.headers.clone(),
        }))
    }
}

struct HeaderMutation {
    headers: Rc<Headers>,
}

impl Context for HeaderMutation {}

impl HttpContext for HeaderMutation {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (name, value) = &self.headers.request;
        self.add_http_request_header(name, value);
        self.remove_http_request_header("x-remove-me");
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (name, value) = &self.headers.response;
        self.add_http_response_header(name, value);
        self.remove_http_response_header("x-upstream-secret");
        Action::Continue
    }
}
