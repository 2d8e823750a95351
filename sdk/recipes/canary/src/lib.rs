//! Recipe: weighted canary routing, sticky per user (hash of a header) or
//! per client (a cookie set on the first response). See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::{Decision, Filter, Request, Response, ResponseDecision};
use serde::Deserialize;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cluster for most clients.
    pub stable: String,
    /// Cluster for `percent` % of clients.
    pub canary: String,
    /// Share of clients on the canary, 0 to 100.
    pub percent: u8,
    /// Header identifying a user; placement is a hash of its value.
    #[serde(default)]
    pub sticky_header: Option<String>,
    /// Cookie remembering the placement of clients without that header.
    #[serde(default = "default_cookie")]
    pub cookie: String,
}

fn default_cookie() -> String {
    "canary".into()
}

/// FNV-1a: stable across builds and hosts (std's hasher is seeded).
fn bucket(value: &str) -> u8 {
    let hash = value.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % 100) as u8
}

fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// The filter; one per request.
pub struct Canary {
    config: Rc<Config>,
    /// Set when this request placed a new client: the cookie to send back.
    placed: Option<bool>,
    on_canary: bool,
}

impl Filter for Canary {
    type Config = Config;

    fn validate_config(config: &Config) -> Result<(), String> {
        if config.percent > 100 {
            return Err(format!("percent must be 0-100, not {}", config.percent));
        }
        Ok(())
    }

    fn new(config: &Rc<Config>) -> Self {
        Canary {
            config: config.clone(),
            placed: None,
            on_canary: false,
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let config = &self.config;
        let user = config
            .sticky_header
            .as_deref()
            .and_then(|h| request.header(h));
        let remembered = request
            .header("cookie")
            .and_then(|c| cookie(&c, &config.cookie).map(|v| v == "1"));
        self.on_canary = match (user, remembered) {
            (Some(user), _) => bucket(&user) < config.percent,
            (None, Some(side)) => side,
            (None, None) => {
                let side = gateway_sdk::random::below(100) < u64::from(config.percent);
                self.placed = Some(side);
                side
            }
        };
        let cluster = if self.on_canary {
            &config.canary
        } else {
            &config.stable
        };
        request.set_upstream(cluster);
        Decision::Continue
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        response.set_header("x-canary", if self.on_canary { "1" } else { "0" });
        if let Some(side) = self.placed {
            let value = format!(
                "{}={}; Path=/; Max-Age=86400",
                self.config.cookie,
                u8::from(side)
            );
            response.add_header("set-cookie", &value);
        }
        ResponseDecision::Continue
    }
}

gateway_sdk::export_filter!(Canary);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};

    const CONFIG: &str =
        r#"{"stable": "v1", "canary": "v2", "percent": 10, "sticky_header": "x-user-id"}"#;

    #[test]
    fn about_the_configured_share_goes_to_the_canary() {
        let mut test = FilterTest::<Canary>::new(CONFIG).unwrap();
        test.seed_random(42);
        let canary = (0..2000)
            .filter(|_| test.request(TestRequest::get("/")).upstream().as_deref() == Some("v2"))
            .count();
        assert!(
            (120..=280).contains(&canary),
            "{canary} of 2000 on the canary"
        );
    }

    #[test]
    fn a_user_always_lands_on_the_same_side() {
        let mut test = FilterTest::<Canary>::new(CONFIG).unwrap();
        let mut sides = std::collections::HashSet::new();
        for user in 0..300 {
            let id = format!("user-{user}");
            let first = test
                .request(TestRequest::get("/").header("x-user-id", &id))
                .upstream();
            for _ in 0..3 {
                let again = test.request(TestRequest::get("/").header("x-user-id", &id));
                assert_eq!(again.upstream(), first, "{id} moved");
            }
            sides.insert(first);
        }
        assert_eq!(sides.len(), 2, "300 users all on one side");
    }

    #[test]
    fn a_new_client_gets_a_cookie_that_keeps_it_in_place() {
        let mut test = FilterTest::<Canary>::new(CONFIG).unwrap();
        let mut first = test.request(TestRequest::get("/"));
        first.respond(TestResponse::new(200));
        let set_cookie = first.response_header("set-cookie").unwrap();
        let value = set_cookie.split(';').next().unwrap().to_string();
        let side = first.upstream();
        for _ in 0..20 {
            let mut again =
                test.request(TestRequest::get("/").header("cookie", &format!("a=b; {value}")));
            assert_eq!(again.upstream(), side);
            again.respond(TestResponse::new(200));
            assert_eq!(again.response_header("set-cookie"), None);
        }
    }

    #[test]
    fn percent_over_100_rejects_the_load() {
        let error = FilterTest::<Canary>::new(r#"{"stable": "a", "canary": "b", "percent": 101}"#)
            .err()
            .unwrap();
        assert!(error.contains("percent"), "{error}");
    }
}
