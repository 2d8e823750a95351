//! `tw-callout-auth`: the external-authorization pattern. Configuration (JSON):
//! `{"cluster": "authz", "path": "/check"}` (`cluster` required, `path`
//! defaults to `/check`); on_configure returns false without a cluster. For
//! every request it pauses and makes an HTTP callout `GET <path>` to that
//! cluster (authority = the cluster name, timeout 5 s) carrying the request's
//! `authorization` header (if any) and `x-original-path: <the request's :path>`.
//! When the answer arrives: status 200 resumes the request, which reaches the
//! upstream with `x-auth-checked: 1` added; any other status (or a failed
//! callout) is answered locally with 403 and body `denied by callout`. If the
//! callout cannot be dispatched at all the request gets 503
//! `callout dispatch failed`.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: None })
    });
}}

struct Config {
    cluster: String,
    path: String,
}

struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            proxy_wasm::hostcalls::log(LogLevel::Error, "config must be JSON").ok();
            return false;
        };
        let Some(cluster) = json.get("cluster").and_then(|c| c.as_str()) else {
            proxy_wasm::hostcalls::log(LogLevel::Error, "config needs \"cluster\"").ok();
            return false;
        };
        let path = json
            .get("path")
            .and_then(|p| p.as_str())
            .unwrap_or("/check");
        self.config = Some(Rc::new(Config {
            cluster: cluster.to_string(),
            path: path.to_string(),
        }));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(CalloutAuth {
            config: self.config.clone(),
        }))
    }
}

struct CalloutAuth {
    config: Option<Rc<Config>>,
}

impl Context for CalloutAuth {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        let status = self.get_http_call_response_header(":status");
        if status.as_deref() == Some("200") {
            self.add_http_request_header("x-auth-checked", "1");
            self.resume_http_request();
        } else {
            self.send_http_response(
                403,
                vec![("content-type", "text/plain")],
                Some(b"denied by callout"),
            );
        }
    }
}

impl HttpContext for CalloutAuth {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            self.send_http_response(500, vec![], Some(b"callout-auth not configured"));
            return Action::Pause;
        };
        let original_path = self.get_http_request_header(":path").unwrap_or_default();
        let authorization = self.get_http_request_header("authorization");
        let mut headers = vec![
            (":method", "GET"),
            (":path", config.path.as_str()),
            (":authority", config.cluster.as_str()),
            ("x-original-path", original_path.as_str()),
        ];
        if let Some(authorization) = authorization.as_deref() {
            headers.push(("authorization", authorization));
        }
        match self.dispatch_http_call(
            &config.cluster,
            headers,
            None,
            vec![],
            Duration::from_secs(5),
        ) {
            Ok(_) => Action::Pause,
            Err(_) => {
                self.send_http_response(503, vec![], Some(b"callout dispatch failed"));
                Action::Pause
            }
        }
    }
}
