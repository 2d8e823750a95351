//! Recipe: remove fields from JSON response bodies; every other response
//! streams untouched. See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::{Body, Filter, OverLimit, Response, ResponseDecision};
use serde::Deserialize;
use std::rc::Rc;

/// What to remove, and how much JSON to hold at most.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Top-level fields to remove from JSON objects.
    pub remove: Vec<String>,
    /// Largest JSON body buffered for rewriting.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// Beyond `max_bytes`: `pass` (send unchanged) or `reject` (502).
    #[serde(default)]
    pub over_limit: Policy,
}

/// The over-limit policy, as written in the configuration.
#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Send the body unchanged.
    #[default]
    Pass,
    /// Replace the response with 502.
    Reject,
}

fn default_max_bytes() -> usize {
    64 * 1024
}

/// The filter; one per request.
pub struct JsonRewrite {
    config: Rc<Config>,
}

impl Filter for JsonRewrite {
    type Config = Config;

    fn new(config: &Rc<Config>) -> Self {
        JsonRewrite {
            config: config.clone(),
        }
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        let json = response.header("content-type").is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.starts_with("application/json") || t.contains("+json")
        });
        if json {
            let over_limit = match self.config.over_limit {
                Policy::Pass => OverLimit::PassThrough,
                Policy::Reject => OverLimit::Reject,
            };
            response.buffer_body(self.config.max_bytes, over_limit);
        }
        ResponseDecision::Continue
    }

    // Headers are on their way by now (proxy-wasm hosts send them before the
    // body): anything about them is decided in `on_response`.
    fn on_response_body(&mut self, _: &mut Response, body: &mut Body) -> ResponseDecision {
        // Not JSON after all (or not an object): leave it as it came.
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(body.bytes()) else {
            return ResponseDecision::Continue;
        };
        let before = object.len();
        object.retain(|key, _| !self.config.remove.contains(key));
        if object.len() != before {
            if let Ok(rewritten) = serde_json::to_vec(&object) {
                body.replace(rewritten);
            }
        }
        ResponseDecision::Continue
    }
}

gateway_sdk::export_filter!(JsonRewrite);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};

    const CONFIG: &str = r#"{"remove": ["secret"], "max_bytes": 1024}"#;

    fn json(body: &str) -> TestResponse {
        TestResponse::new(200)
            .header("content-type", "application/json")
            .header("content-length", &body.len().to_string())
            .body(body)
            .chunk_size(8)
    }

    #[test]
    fn removes_the_fields_from_json() {
        let mut test = FilterTest::<JsonRewrite>::new(CONFIG).unwrap();
        let mut exchange = test.request(TestRequest::get("/me"));
        exchange.respond(json(r#"{"user":"ann","secret":"hunter2"}"#));
        assert_eq!(exchange.response_body(), br#"{"user":"ann"}"#);
        assert_eq!(exchange.response_header("content-length"), None);
    }

    #[test]
    fn other_responses_stream_untouched() {
        let mut test = FilterTest::<JsonRewrite>::new(CONFIG).unwrap();
        let mut exchange = test.request(TestRequest::get("/big.txt"));
        let text = vec![b't'; 100_000];
        exchange.respond(
            TestResponse::new(200)
                .header("content-type", "text/plain")
                .body(text.clone())
                .chunk_size(4096),
        );
        assert!(!exchange.response_body_held());
        assert_eq!(exchange.response_body(), text);
    }

    #[test]
    fn large_json_passes_through_or_is_rejected() {
        let big = format!(r#"{{"secret":"s","pad":"{}"}}"#, "x".repeat(2000));
        let mut pass = FilterTest::<JsonRewrite>::new(CONFIG).unwrap();
        let mut exchange = pass.request(TestRequest::get("/"));
        exchange.respond(json(&big));
        assert_eq!(exchange.response_status(), Some(200));
        assert_eq!(exchange.response_body(), big.as_bytes());

        let reject = r#"{"remove": ["secret"], "max_bytes": 1024, "over_limit": "reject"}"#;
        let mut reject = FilterTest::<JsonRewrite>::new(reject).unwrap();
        let mut exchange = reject.request(TestRequest::get("/"));
        exchange.respond(json(&big));
        assert_eq!(exchange.response_status(), Some(502));
    }

    #[test]
    fn a_misspelled_key_rejects_the_load() {
        let error = FilterTest::<JsonRewrite>::new(r#"{"remove": [], "max_byte": 1}"#)
            .err()
            .unwrap();
        assert!(error.contains("max_byte"), "{error}");
    }
}
