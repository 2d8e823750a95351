//! Recipe: fixed-window rate limiting per client IP, counted in shared data
//! so every instance agrees. See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::{shared, Decision, Filter, LocalResponse, Request, Response, ResponseDecision};
use serde::Deserialize;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requests allowed per client per window.
    pub limit: u64,
    /// Window length.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
}

fn default_window() -> u64 {
    60
}

/// The filter; one per request.
pub struct RateLimit {
    config: Rc<Config>,
    remaining: Option<u64>,
}

impl Filter for RateLimit {
    type Config = Config;

    fn validate_config(config: &Config) -> Result<(), String> {
        if config.window_seconds == 0 {
            return Err("window_seconds must be above zero".into());
        }
        Ok(())
    }

    fn new(config: &Rc<Config>) -> Self {
        RateLimit {
            config: config.clone(),
            remaining: None,
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let address = request.client_address().unwrap_or_default();
        // `ip:port` or `[v6]:port`: the port changes per connection, drop it.
        let ip = address
            .rsplit_once(':')
            .map_or(address.as_str(), |(ip, _)| ip);
        let now = gateway_sdk::time::unix_seconds();
        let window = now / self.config.window_seconds;
        let key = format!("recipe-rate-limit:{ip}:{window}");
        let count = shared::update(&key, |old| {
            let n = old
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            (n.to_string().into_bytes(), n)
        });
        let Ok(count) = count else {
            // Shared data unavailable: do not take the site down over it.
            gateway_sdk::warn!("rate limit not counted for {ip}");
            return Decision::Continue;
        };
        if count > self.config.limit {
            let retry = (window + 1) * self.config.window_seconds - now;
            return LocalResponse::new(429)
                .header("retry-after", retry.to_string())
                .header("x-ratelimit-remaining", "0")
                .body("too many requests\n")
                .into();
        }
        self.remaining = Some(self.config.limit - count);
        Decision::Continue
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        if let Some(remaining) = self.remaining {
            response.set_header("x-ratelimit-remaining", &remaining.to_string());
        }
        ResponseDecision::Continue
    }
}

gateway_sdk::export_filter!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest, TestResponse};
    use std::time::Duration;

    fn from(ip: &str, port: u16) -> TestRequest {
        TestRequest::get("/").client_address(&format!("{ip}:{port}"))
    }

    #[test]
    fn the_limit_holds_per_client_across_instances() {
        let config = "limit = 3\nwindow_seconds = 60";
        let mut one = FilterTest::<RateLimit>::new(config).unwrap();
        let mut two = FilterTest::<RateLimit>::new(config).unwrap();
        two.share_data_with(&one);
        // Four requests from one client over two instances and two ports.
        assert!(one.request(from("10.0.0.1", 1000)).is_continue());
        assert!(two.request(from("10.0.0.1", 1001)).is_continue());
        let mut third = one.request(from("10.0.0.1", 1002));
        third.respond(TestResponse::new(200));
        assert_eq!(
            third.response_header("x-ratelimit-remaining").as_deref(),
            Some("0")
        );
        let refused = two
            .request(from("10.0.0.1", 1003))
            .local_response()
            .unwrap();
        assert_eq!(refused.status, 429);
        // 2026-01-01T00:00:00Z is a window start: the next one is 60 s away.
        assert!(refused
            .headers
            .contains(&("retry-after".into(), "60".into())));
        // Another client has its own count.
        assert!(one.request(from("10.0.0.2", 1000)).is_continue());
    }

    #[test]
    fn a_new_window_starts_afresh() {
        let mut test =
            FilterTest::<RateLimit>::new(r#"{"limit": 1, "window_seconds": 10}"#).unwrap();
        assert!(test.request(from("10.0.0.1", 1)).is_continue());
        assert_eq!(
            test.request(from("10.0.0.1", 1)).response_status(),
            Some(429)
        );
        test.advance_time(Duration::from_secs(10));
        assert!(test.request(from("10.0.0.1", 1)).is_continue());
    }
}
