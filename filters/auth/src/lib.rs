//! `filter-auth`: rejects requests without acceptable credentials with 401
//! before any upstream sees them.
//!
//! - No `Authorization` header: 401 with `WWW-Authenticate`.
//! - `schemes` (optional): only these schemes (case-insensitive) pass; empty
//!   means any scheme.
//! - `tokens` (optional): a static API-key check; the credentials after the
//!   scheme must equal one of them, compared in constant time.
//!
//! See README.md for the configuration.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::metrics::Counter;
use gateway_sdk::{Decision, Filter, Hooks, LocalResponse, PreparedResponse, Request};
use serde::Deserialize;
use std::cell::OnceCell;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted schemes, e.g. `["Basic", "Bearer"]`; empty accepts any.
    pub schemes: Vec<String>,
    /// Accepted credentials (the part after the scheme); empty accepts any.
    pub tokens: Vec<String>,
    /// Realm announced in `WWW-Authenticate`.
    pub realm: String,
    /// The 401 (encoded once) and the denial counter, made on the first
    /// denial and kept with the configuration.
    #[serde(skip)]
    denial: OnceCell<(PreparedResponse, Counter)>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            schemes: Vec::new(),
            tokens: Vec::new(),
            realm: "gateway".to_string(),
            denial: OnceCell::new(),
        }
    }
}

/// The filter; one per request.
pub struct Auth {
    config: Rc<AuthConfig>,
}

impl Auth {
    fn deny(&self, reason: &str) -> Decision<Self> {
        let config = &self.config;
        let (response, denied) = config.denial.get_or_init(|| {
            let scheme = config.schemes.first().map_or("Basic", String::as_str);
            let response = LocalResponse::new(401)
                .header(
                    "www-authenticate",
                    format!("{scheme} realm=\"{}\"", config.realm),
                )
                .header("content-type", "text/plain")
                .body("unauthorized\n")
                .prepare();
            (response, Counter::new("auth_denied"))
        });
        denied.increment(1);
        gateway_sdk::debug!("denied: {reason}");
        response.into()
    }
}

/// Compares without an early exit, so timing does not reveal how much of a
/// token matched. Lengths are not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl Filter for Auth {
    type Config = AuthConfig;
    // Only these hooks: the gateway calls nothing else per request.
    const HOOKS: Hooks = Hooks::REQUEST;

    fn new(config: &Rc<AuthConfig>) -> Self {
        Auth {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let Some(value) = request.header("authorization") else {
            return self.deny("no Authorization header");
        };
        let value = value.trim();
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.is_empty() {
            return self.deny("empty Authorization header");
        }
        let schemes = &self.config.schemes;
        if !schemes.is_empty() && !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            return self.deny("scheme not accepted");
        }
        let tokens = &self.config.tokens;
        if !tokens.is_empty() {
            let credentials = credentials.trim().as_bytes();
            // Check every token (no short-circuit) so timing does not tell which matched.
            let matched = tokens.iter().fold(false, |ok, t| {
                constant_time_eq(t.as_bytes(), credentials) | ok
            });
            if !matched {
                return self.deny("unknown token");
            }
        }
        Decision::Continue
    }
}

gateway_sdk::export_filter!(Auth);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest};

    #[test]
    fn missing_authorization_gets_401_with_challenge() {
        let mut test = FilterTest::<Auth>::new("").unwrap();
        let exchange = test.request(TestRequest::get("/ping"));
        let response = exchange.local_response().unwrap();
        assert_eq!(response.status, 401);
        assert!(response
            .headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.starts_with("Basic")));
    }

    #[test]
    fn any_scheme_passes_by_default() {
        let mut test = FilterTest::<Auth>::new("").unwrap();
        assert!(test
            .request(TestRequest::get("/ping").header("authorization", "Basic x"))
            .is_continue());
        assert!(test
            .request(TestRequest::get("/").header("authorization", "Token abc"))
            .is_continue());
    }

    #[test]
    fn schemes_restrict() {
        let mut test = FilterTest::<Auth>::new(r#"{"schemes": ["Bearer"]}"#).unwrap();
        let denied = test.request(TestRequest::get("/").header("authorization", "Basic x"));
        let response = denied.local_response().unwrap();
        assert!(response
            .headers
            .iter()
            .any(|(_, v)| v.starts_with("Bearer realm")));
        drop(denied);
        assert!(test
            .request(TestRequest::get("/").header("authorization", "bearer t"))
            .is_continue());
    }

    #[test]
    fn tokens_are_checked() {
        let mut test =
            FilterTest::<Auth>::new("schemes = [\"Bearer\"]\ntokens = [\"s3cret\", \"other\"]")
                .unwrap();
        assert!(test
            .request(TestRequest::get("/").header("authorization", "Bearer s3cret"))
            .is_continue());
        let denied = test.request(TestRequest::get("/").header("authorization", "Bearer s3cre"));
        assert_eq!(denied.local_response().unwrap().status, 401);
        drop(denied);
        assert_eq!(test.metric("auth_denied"), Some(1));
    }

    #[test]
    fn bad_config_is_rejected_at_load() {
        let error = FilterTest::<Auth>::new(r#"{"schemes": "Basic"}"#)
            .err()
            .unwrap();
        assert!(error.contains("configuration rejected"), "{error}");
        assert!(FilterTest::<Auth>::new(r#"{"unknown": 1}"#).is_err());
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
