//! `tw-body-rewrite`: buffers the whole response body and replaces it with its
//! ASCII-uppercase version. In `on_http_response_headers` it removes
//! `content-length` (the host must then frame the body itself) and adds
//! `x-body-rewritten: upper`; each non-final body chunk is held back
//! (`Action::Pause`, i.e. keep buffering) and at end of stream the buffered
//! body is rewritten in place. Requests are not touched.
//!
//! With the plugin configuration `append:TEXT` it instead appends TEXT to
//! both the request and the response body at their end and leaves every
//! header alone, `content-length` included, as many filters written for
//! other hosts do: the host must notice the length changed.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { append: None }) });
}}

struct Root {
    append: Option<Vec<u8>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.append = self
            .get_plugin_configuration()
            .and_then(|c| c.strip_prefix(b"append:").map(<[u8]>::to_vec));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        match &self.append {
            Some(text) => Some(Box::new(Append(text.clone()))),
            None => Some(Box::new(BodyRewrite)),
        }
    }
}

struct Append(Vec<u8>);

impl Context for Append {}

impl HttpContext for Append {
    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        self.set_http_request_body(body_size, 0, &self.0);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        self.set_http_response_body(body_size, 0, &self.0);
        Action::Continue
    }
}

struct BodyRewrite;

impl Context for BodyRewrite {}

impl HttpContext for BodyRewrite {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("content-length", None);
        self.set_http_response_header("x-body-rewritten", Some("upper"));
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        if let Some(body) = self.get_http_response_body(0, body_size) {
            self.set_http_response_body(0, body_size, &body.to_ascii_uppercase());
        }
        Action::Continue
    }
}
