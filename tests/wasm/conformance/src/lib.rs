//! `tw-conformance`: exercises the hostcalls the official Rust SDK exposes
//! and checks each answer against what Envoy (the reference host) gives:
//! absent headers and properties are `None`, a property the filter sets
//! reads back, a CAS on a new key is ignored, metrics behave as Envoy's,
//! an empty body reads as nothing, the request's headers read the same
//! in the response phase. The response gets `x-conformance: ok`,
//! or `x-conformance: <the checks that differ>`. No configuration (an
//! empty one must load); with a configuration, `x-config` echoes it.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

struct Root {
    config: Option<String>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        self.config = self
            .get_plugin_configuration()
            .map(|c| String::from_utf8_lossy(&c).into_owned());
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Conformance {
            config: self.config.clone(),
            failed: Vec::new(),
            body: None,
            request_headers: Vec::new(),
        }))
    }
}

struct Conformance {
    config: Option<String>,
    failed: Vec<&'static str>,
    body: Option<usize>,
    /// The request's headers as the request phase saw them.
    request_headers: Vec<(String, String)>,
}

impl Conformance {
    fn check(&mut self, name: &'static str, ok: bool) {
        if !ok {
            self.failed.push(name);
        }
    }
}

impl Context for Conformance {}

impl HttpContext for Conformance {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let missing = self.get_http_request_header("x-missing");
        self.check("missing-header", missing.is_none());
        let tls = self.get_property(vec!["connection", "tls_version"]);
        self.check("tls-on-cleartext", tls.is_none());
        let path = self.get_property(vec!["request", "path"]);
        let header_path = self.get_http_request_header(":path");
        self.check(
            "request-path",
            path.is_some() && path.map(|p| String::from_utf8_lossy(&p).into_owned()) == header_path,
        );
        let port = self.get_property(vec!["source", "port"]);
        self.check("source-port-int64", port.map(|p| p.len()) == Some(8));
        let mtls = self.get_property(vec!["connection", "mtls"]);
        self.check("mtls-bool", mtls == Some(vec![0]));
        self.set_property(vec!["conformance", "mark"], Some(b"rust"));
        let mark = self.get_property(vec!["conformance", "mark"]);
        self.check("property-reads-back", mark.as_deref() == Some(&b"rust"[..]));
        let absent = self.get_property(vec!["conformance", "absent"]);
        self.check("absent-property", absent.is_none());

        let (value, cas) = self.get_shared_data("tw-conformance/absent");
        self.check("absent-shared-data", value.is_none() && cas.is_none());
        let id = self
            .get_property(vec!["request", "id"])
            .map(|i| String::from_utf8_lossy(&i).into_owned())
            .unwrap_or_default();
        let key = format!("tw-conformance/{id}");
        let fresh = self.set_shared_data(&key, Some(b"1"), Some(12345));
        self.check("cas-on-new-key", fresh.is_ok());
        let (value, cas) = self.get_shared_data(&key);
        self.check(
            "shared-data-reads-back",
            value.as_deref() == Some(&b"1"[..]) && cas.is_some(),
        );
        let stale = self.set_shared_data(&key, Some(b"2"), cas.map(|c| c.wrapping_add(1)));
        self.check("cas-mismatch", stale == Err(Status::CasMismatch));

        match hostcalls::define_metric(MetricType::Counter, "tw_conformance_requests") {
            Ok(counter) => {
                self.check(
                    "counter-zero",
                    hostcalls::increment_metric(counter, 0) == Err(Status::BadArgument),
                );
                let before = hostcalls::get_metric(counter).unwrap_or(0);
                let _ = hostcalls::increment_metric(counter, 1);
                let _ = hostcalls::record_metric(counter, 2);
                self.check(
                    "counter-adds",
                    hostcalls::get_metric(counter) == Ok(before + 3),
                );
            }
            Err(_) => self.check("define-counter", false),
        }
        match hostcalls::define_metric(MetricType::Histogram, "tw_conformance_sizes") {
            Ok(histogram) => {
                self.check(
                    "histogram-record",
                    hostcalls::record_metric(histogram, 7).is_ok(),
                );
                self.check(
                    "histogram-unreadable",
                    hostcalls::get_metric(histogram) == Err(Status::BadArgument),
                );
            }
            Err(_) => self.check("define-histogram", false),
        }
        if let Some(config) = self.config.clone() {
            self.add_http_request_header("x-config", &config);
        }
        // As they go on: the response phase must read the same.
        self.request_headers = self.get_http_request_headers();
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size);
        self.check("body-size", body.as_ref().map_or(0, Vec::len) == body_size);
        self.body = Some(body_size);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let missing = self.get_http_response_header("x-missing");
        self.check("missing-response-header", missing.is_none());
        let request_headers = self.get_http_request_headers();
        self.check(
            "request-headers-in-response",
            !request_headers.is_empty() && request_headers == self.request_headers,
        );
        let path = self.get_http_request_header(":path");
        self.check("request-path-in-response", path.is_some_and(|p| p.starts_with('/')));
        let code = self.get_property(vec!["response", "code"]);
        self.check("response-code-int64", code.map(|c| c.len()) == Some(8));
        let verdict = if self.failed.is_empty() {
            "ok".to_string()
        } else {
            self.failed.join(",")
        };
        self.set_http_response_header("x-conformance", Some(&verdict));
        let body = self
            .body
            .map_or_else(|| "unseen".to_string(), |b| b.to_string());
        self.set_http_response_header("x-body", Some(&body));
        Action::Continue
    }
}
