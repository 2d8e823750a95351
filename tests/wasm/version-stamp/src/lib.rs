//! `tw-version-stamp`: stamps a version string taken from its plugin
//! configuration into the response header `x-filter-version`, for hot-reload
//! tests (load v1, swap the file or its config for v2, watch the header
//! change with no failed request). Configuration: JSON `{"version": "v2"}`,
//! or any other non-empty text used verbatim (trimmed); empty means
//! `unversioned`. Requests are not touched.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { version: Rc::from("unversioned") })
    });
}}

struct Root {
    version: Rc<str>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let version = match json
            .as_ref()
            .and_then(|j| j.get("version"))
            .and_then(|v| v.as_str())
        {
            Some(version) => version.to_string(),
            None => String::from_utf8_lossy(&bytes).trim().to_string(),
        };
        if !version.is_empty() {
            self.version = Rc::from(version);
        }
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(VersionStamp {
            version: self.version.clone(),
        }))
    }
}

struct VersionStamp {
    version: Rc<str>,
}

impl Context for VersionStamp {}

impl HttpContext for VersionStamp {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-filter-version", Some(&self.version));
        Action::Continue
    }
}
