//! Recipe: a callout with a JSON body to a policy service decides whether
//! the request goes on. See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::{CalloutRequest, Decision, Filter, LocalResponse, Request};
use serde::Deserialize;
use std::rc::Rc;
use std::time::Duration;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cluster of the policy service.
    pub cluster: String,
    /// Path the question is POSTed to.
    #[serde(default = "default_path")]
    pub path: String,
    /// How long to wait for the answer.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// When the service cannot answer: `deny` (503) or `allow`.
    #[serde(default)]
    pub on_error: OnError,
}

/// What a failed callout means.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Answer 503.
    #[default]
    Deny,
    /// Let the request through.
    Allow,
}

fn default_path() -> String {
    "/decide".into()
}

fn default_timeout() -> u64 {
    500
}

#[derive(Deserialize)]
struct Verdict {
    allow: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// The filter; one per request.
pub struct Policy {
    config: Rc<Config>,
}

impl Filter for Policy {
    type Config = Config;

    fn new(config: &Rc<Config>) -> Self {
        Policy {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let question = serde_json::json!({
            "method": request.method(),
            "path": request.path(),
            "client": request.client_address(),
            "user_agent": request.header("user-agent"),
        });
        CalloutRequest::post(&self.config.cluster, &self.config.path)
            .header("content-type", "application/json")
            .body(question.to_string())
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .then(|this: &mut Policy, request, answer| {
                if !answer.is_success() {
                    gateway_sdk::warn!("policy service failed: {:?}", answer.status());
                    return match this.config.on_error {
                        OnError::Allow => Decision::Continue,
                        OnError::Deny => LocalResponse::json(
                            503,
                            &serde_json::json!({"error": "policy unavailable"}),
                        )
                        .into(),
                    };
                }
                match serde_json::from_slice::<Verdict>(answer.body()) {
                    Ok(Verdict {
                        allow: true,
                        tenant,
                        ..
                    }) => {
                        if let Some(tenant) = tenant {
                            request.set_header("x-tenant", &tenant);
                        }
                        Decision::Continue
                    }
                    Ok(Verdict { reason, .. }) => LocalResponse::json(
                        403,
                        &serde_json::json!({"error": "forbidden", "reason": reason}),
                    )
                    .into(),
                    Err(_) => LocalResponse::json(
                        503,
                        &serde_json::json!({"error": "policy answer unreadable"}),
                    )
                    .into(),
                }
            })
    }
}

gateway_sdk::export_filter!(Policy);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};

    const CONFIG: &str = r#"{"cluster": "policy", "path": "/v1/decide"}"#;

    #[test]
    fn the_question_is_a_json_post() {
        let mut test = FilterTest::<Policy>::new(CONFIG).unwrap();
        let exchange =
            test.request(TestRequest::new("DELETE", "/items/7?x=1").header("user-agent", "t"));
        assert!(exchange.is_paused());
        let callout = &exchange.callouts()[0];
        assert_eq!(callout.cluster, "policy");
        assert_eq!(callout.header(":method"), Some("POST"));
        assert_eq!(callout.header(":path"), Some("/v1/decide"));
        assert_eq!(callout.header("content-type"), Some("application/json"));
        assert_eq!(callout.timeout_ms, 500);
        let body: serde_json::Value = serde_json::from_slice(&callout.body).unwrap();
        assert_eq!(body["method"], "DELETE");
        assert_eq!(body["path"], "/items/7");
        assert_eq!(body["client"], "127.0.0.1:40000");
    }

    #[test]
    fn allow_continues_with_the_tenant() {
        let mut test = FilterTest::<Policy>::new(CONFIG).unwrap();
        let mut exchange = test.request(TestRequest::get("/"));
        exchange
            .answer_callout(TestResponse::new(200).body(r#"{"allow": true, "tenant": "acme"}"#));
        assert!(exchange.is_continue());
        assert_eq!(exchange.request_header("x-tenant").as_deref(), Some("acme"));
    }

    #[test]
    fn deny_is_403_with_the_reason() {
        let mut test = FilterTest::<Policy>::new(CONFIG).unwrap();
        let mut exchange = test.request(TestRequest::get("/"));
        exchange.answer_callout(
            TestResponse::new(200).body(r#"{"allow": false, "reason": "weekend"}"#),
        );
        let answer = exchange.local_response().unwrap();
        assert_eq!(answer.status, 403);
        let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["reason"], "weekend");
    }

    #[test]
    fn a_failed_callout_follows_on_error() {
        let mut deny = FilterTest::<Policy>::new(CONFIG).unwrap();
        let mut exchange = deny.request(TestRequest::get("/"));
        exchange.fail_callout();
        assert_eq!(exchange.local_response().unwrap().status, 503);

        let allow = r#"{"cluster": "policy", "on_error": "allow"}"#;
        let mut allow = FilterTest::<Policy>::new(allow).unwrap();
        let mut exchange = allow.request(TestRequest::get("/"));
        exchange.fail_callout();
        assert!(exchange.is_continue());
    }
}
