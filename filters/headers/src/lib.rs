//! `filter-headers`: adds, sets, removes and renames request and response
//! headers, as configured. Per direction the operations run in the order
//! remove, rename, set, add.
//!
//! See README.md for the configuration.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::{Decision, Filter, Hooks, Request, Response, ResponseDecision};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadersConfig {
    /// Changes to request headers (seen by the upstream).
    pub request: HeaderOps,
    /// Changes to response headers (seen by the client).
    pub response: HeaderOps,
}

/// The changes for one direction.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderOps {
    /// Headers to remove (every value).
    pub remove: Vec<String>,
    /// Old name -> new name; all values move, order of names is alphabetical.
    pub rename: BTreeMap<String, String>,
    /// Headers to set, replacing existing values.
    pub set: BTreeMap<String, String>,
    /// Header values to add, keeping existing ones.
    pub add: BTreeMap<String, String>,
}

/// The few operations both directions support, so the ops run once for both.
trait HeaderMap {
    fn values(&self, name: &str) -> Vec<String>;
    fn remove(&mut self, name: &str);
    fn set(&mut self, name: &str, value: &str);
    fn add(&mut self, name: &str, value: &str);
}

impl HeaderOps {
    fn apply(&self, headers: &mut impl HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (from, to) in &self.rename {
            let values = headers.values(from);
            if values.is_empty() {
                continue;
            }
            headers.remove(from);
            headers.remove(to);
            for value in &values {
                headers.add(to, value);
            }
        }
        for (name, value) in &self.set {
            headers.set(name, value);
        }
        for (name, value) in &self.add {
            headers.add(name, value);
        }
    }
}

fn values_of(pairs: Vec<(String, String)>, name: &str) -> Vec<String> {
    pairs
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

impl HeaderMap for Request {
    fn values(&self, name: &str) -> Vec<String> {
        values_of(self.headers(), name)
    }
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn set(&mut self, name: &str, value: &str) {
        self.set_header(name, value);
    }
    fn add(&mut self, name: &str, value: &str) {
        self.add_header(name, value);
    }
}

impl HeaderMap for Response {
    fn values(&self, name: &str) -> Vec<String> {
        values_of(self.headers(), name)
    }
    fn remove(&mut self, name: &str) {
        self.remove_header(name);
    }
    fn set(&mut self, name: &str, value: &str) {
        self.set_header(name, value);
    }
    fn add(&mut self, name: &str, value: &str) {
        self.add_header(name, value);
    }
}

/// The filter; one per request.
pub struct Headers {
    config: Rc<HeadersConfig>,
}

impl Filter for Headers {
    type Config = HeadersConfig;
    // Only these hooks: the gateway calls nothing else per request.
    const HOOKS: Hooks = Hooks::REQUEST.and(Hooks::RESPONSE);

    fn new(config: &Rc<HeadersConfig>) -> Self {
        Headers {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        self.config.request.apply(request);
        Decision::Continue
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        self.config.response.apply(response);
        ResponseDecision::Continue
    }
}

gateway_sdk::export_filter!(Headers);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};

    const CONFIG: &str = r#"
        [request]
        remove = ["x-internal"]
        rename = { "x-old" = "x-new" }
        set = { "x-forwarded-proto" = "https" }
        add = { "x-gateway" = "1" }

        [response]
        remove = ["server"]
        set = { "cache-control" = "no-store" }
        add = { "x-served-by" = "gateway" }
    "#;

    #[test]
    fn request_headers_change() {
        let mut test = FilterTest::<Headers>::new(CONFIG).unwrap();
        let exchange = test.request(
            TestRequest::get("/")
                .header("x-internal", "secret")
                .header("x-old", "a")
                .header("x-old", "b")
                .header("x-forwarded-proto", "http"),
        );
        assert!(exchange.is_continue());
        assert_eq!(exchange.request_header("x-internal"), None);
        assert_eq!(exchange.request_header("x-old"), None);
        let renamed: Vec<_> = exchange
            .request_headers()
            .into_iter()
            .filter(|(n, _)| n == "x-new")
            .collect();
        assert_eq!(renamed.len(), 2);
        assert_eq!(
            exchange.request_header("x-forwarded-proto").as_deref(),
            Some("https")
        );
        assert_eq!(exchange.request_header("x-gateway").as_deref(), Some("1"));
    }

    #[test]
    fn response_headers_change() {
        let mut test = FilterTest::<Headers>::new(CONFIG).unwrap();
        let mut exchange = test.request(TestRequest::get("/"));
        exchange.respond(
            TestResponse::new(200)
                .header("server", "nginx")
                .header("cache-control", "max-age=60"),
        );
        assert_eq!(exchange.response_header("server"), None);
        assert_eq!(
            exchange.response_header("cache-control").as_deref(),
            Some("no-store")
        );
        assert_eq!(
            exchange.response_header("x-served-by").as_deref(),
            Some("gateway")
        );
    }

    #[test]
    fn empty_config_changes_nothing() {
        let mut test = FilterTest::<Headers>::new("").unwrap();
        let exchange = test.request(TestRequest::get("/").header("a", "b"));
        assert_eq!(exchange.request_header("a").as_deref(), Some("b"));
    }
}
