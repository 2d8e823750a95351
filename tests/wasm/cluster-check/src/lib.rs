//! `tw-cluster-check`: reads the gateway's cluster names (property
//! `gateway.clusters`, NUL-separated) in `on_configure` and rejects its
//! configuration when the cluster it names is not among them. Configuration:
//! a cluster name, or empty for no check. Each request is routed to the
//! cluster named by its `x-cluster` header (if any), else to the configured
//! one; responses carry `x-clusters-at-configure` (the names seen at
//! configure time, comma-separated).

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { seen: Rc::from(""), cluster: None })
    });
}}

struct Root {
    seen: Rc<str>,
    cluster: Option<Rc<str>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let wanted = String::from_utf8_lossy(&config).trim().to_string();
        let names: Vec<String> = self
            .get_property(vec!["gateway", "clusters"])
            .unwrap_or_default()
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        self.seen = Rc::from(names.join(","));
        if wanted.is_empty() {
            return true;
        }
        if !names.contains(&wanted) {
            proxy_wasm::hostcalls::log(
                LogLevel::Error,
                &format!("unknown cluster `{wanted}`; configured: {}", names.join(", ")),
            )
            .ok();
            return false;
        }
        self.cluster = Some(Rc::from(wanted));
        true
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Route {
            seen: self.seen.clone(),
            cluster: self.cluster.clone(),
        }))
    }
}

struct Route {
    seen: Rc<str>,
    cluster: Option<Rc<str>>,
}

impl Context for Route {}

impl HttpContext for Route {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let target = self
            .get_http_request_header("x-cluster")
            .or_else(|| self.cluster.as_deref().map(str::to_owned));
        if let Some(cluster) = target {
            self.set_property(vec!["gateway", "upstream"], Some(cluster.as_bytes()));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.set_http_response_header("x-clusters-at-configure", Some(&self.seen));
        Action::Continue
    }
}
