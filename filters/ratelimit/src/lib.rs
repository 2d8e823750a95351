//! `filter-ratelimit`: a token bucket per client address (or per value of a
//! header), kept in the host's shared data with compare-and-swap so every
//! instance of the filter agrees. An empty bucket answers 429 with
//! `Retry-After` (whole seconds until a token is back).
//!
//! See README.md for the configuration.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::metrics::Counter;
use gateway_sdk::{shared, Decision, Filter, LocalResponse, Request};
use serde::Deserialize;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Bucket size: the burst a key may send at once.
    pub capacity: u32,
    /// Tokens added back per second (may be fractional, must be > 0).
    pub per_second: f64,
    /// Key requests by this header's value instead of the client address;
    /// requests without the header fall back to the client address.
    pub header: Option<String>,
    /// Namespace of the buckets in shared data, so two rate-limit filters
    /// with different limits do not share buckets.
    pub name: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            capacity: 10,
            per_second: 1.0,
            header: None,
            name: "default".to_string(),
        }
    }
}

/// A bucket as stored in shared data: `"<tokens> <last refill, ns since epoch>"`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    tokens: f64,
    updated_nanos: u64,
}

impl Bucket {
    fn decode(bytes: &[u8]) -> Option<Bucket> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (tokens, updated) = text.split_once(' ')?;
        Some(Bucket {
            tokens: tokens.parse().ok()?,
            updated_nanos: updated.parse().ok()?,
        })
    }

    fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.tokens, self.updated_nanos).into_bytes()
    }

    /// Refills for the time elapsed, then takes a token if there is one.
    /// Returns the new bucket and, when empty, the seconds until a token is back.
    fn take(self, now_nanos: u64, config: &RateLimitConfig) -> (Bucket, Option<u64>) {
        let elapsed = now_nanos.saturating_sub(self.updated_nanos) as f64 / 1e9;
        let tokens = (self.tokens + elapsed * config.per_second).min(f64::from(config.capacity));
        let updated_nanos = now_nanos.max(self.updated_nanos);
        if tokens >= 1.0 {
            (
                Bucket {
                    tokens: tokens - 1.0,
                    updated_nanos,
                },
                None,
            )
        } else {
            let wait = ((1.0 - tokens) / config.per_second).ceil().max(1.0) as u64;
            (
                Bucket {
                    tokens,
                    updated_nanos,
                },
                Some(wait),
            )
        }
    }
}

/// Strips the port from `ip:port` / `[v6]:port`.
fn ip_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split_once(']').map_or(address, |(ip, _)| ip);
    }
    match address.rsplit_once(':') {
        Some((ip, port)) if !ip.contains(':') && port.parse::<u16>().is_ok() => ip,
        _ => address,
    }
}

/// The filter; one per request.
pub struct RateLimit {
    config: Rc<RateLimitConfig>,
}

impl RateLimit {
    fn key(&self, request: &Request) -> String {
        let by_header = self
            .config
            .header
            .as_deref()
            .and_then(|h| request.header(h));
        let client = match by_header {
            Some(value) => format!("header:{value}"),
            None => format!(
                "ip:{}",
                ip_of(&request.client_address().unwrap_or_default())
            ),
        };
        format!("ratelimit/{}/{client}", self.config.name)
    }
}

impl Filter for RateLimit {
    type Config = RateLimitConfig;

    fn validate_config(config: &RateLimitConfig) -> Result<(), String> {
        if config.per_second.is_finite() && config.per_second > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "per_second must be a positive number, not {}",
                config.per_second
            ))
        }
    }

    fn new(config: &Rc<RateLimitConfig>) -> Self {
        RateLimit {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let key = self.key(request);
        let now = gateway_sdk::time::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let full = Bucket {
            tokens: f64::from(self.config.capacity),
            updated_nanos: now,
        };
        let config = &self.config;
        let outcome = shared::update(&key, |stored| {
            let bucket = stored.and_then(Bucket::decode).unwrap_or(full);
            let (bucket, wait) = bucket.take(now, config);
            (bucket.encode(), wait)
        });
        match outcome {
            Ok(None) => Decision::Continue,
            Ok(Some(wait)) => {
                Counter::new("ratelimit_rejected").increment(1);
                LocalResponse::new(429)
                    .header("retry-after", wait.to_string())
                    .header("content-type", "text/plain")
                    .body("too many requests\n")
                    .into()
            }
            // Fail open: a host without shared data must not take the site down.
            Err(error) => {
                gateway_sdk::warn!("shared data unavailable ({error:?}); not limiting");
                Decision::Continue
            }
        }
    }
}

gateway_sdk::export_filter!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest};
    use std::time::Duration;

    fn from(ip: &str) -> TestRequest {
        TestRequest::get("/").client_address(&format!("{ip}:5000"))
    }

    #[test]
    fn empties_then_refills() {
        let mut test =
            FilterTest::<RateLimit>::new(r#"{"capacity": 2, "per_second": 0.5}"#).unwrap();
        assert!(test.request(from("10.0.0.1")).is_continue());
        assert!(test.request(from("10.0.0.1")).is_continue());
        let limited = test.request(from("10.0.0.1"));
        let response = limited.local_response().unwrap();
        assert_eq!(response.status, 429);
        assert!(response
            .headers
            .contains(&("retry-after".to_string(), "2".to_string())));
        drop(limited);
        // Another client has its own bucket.
        assert!(test.request(from("10.0.0.2")).is_continue());
        test.advance_time(Duration::from_secs(2));
        assert!(test.request(from("10.0.0.1")).is_continue());
        assert_eq!(test.metric("ratelimit_rejected"), Some(1));
    }

    #[test]
    fn instances_share_buckets() {
        let config = "capacity = 1\nper_second = 1";
        let mut first = FilterTest::<RateLimit>::new(config).unwrap();
        let mut second = FilterTest::<RateLimit>::new(config).unwrap();
        second.share_data_with(&first);
        assert!(first.request(from("10.0.0.9")).is_continue());
        assert_eq!(
            second
                .request(from("10.0.0.9"))
                .local_response()
                .unwrap()
                .status,
            429
        );
    }

    #[test]
    fn keyed_by_header() {
        let mut test =
            FilterTest::<RateLimit>::new(r#"{"capacity": 1, "header": "x-api-key"}"#).unwrap();
        assert!(test
            .request(from("1.1.1.1").header("x-api-key", "a"))
            .is_continue());
        assert!(test
            .request(from("1.1.1.1").header("x-api-key", "b"))
            .is_continue());
        assert_eq!(
            test.request(from("2.2.2.2").header("x-api-key", "a"))
                .response_status(),
            Some(429)
        );
        assert!(test.shared_data("ratelimit/default/header:a").is_some());
    }

    #[test]
    fn non_positive_rate_is_rejected_at_load() {
        let error = FilterTest::<RateLimit>::new(r#"{"per_second": 0}"#)
            .err()
            .unwrap();
        assert!(error.contains("per_second"), "{error}");
    }

    #[test]
    fn ip_of_strips_ports() {
        assert_eq!(ip_of("1.2.3.4:80"), "1.2.3.4");
        assert_eq!(ip_of("[::1]:80"), "::1");
        assert_eq!(ip_of("::1"), "::1");
    }
}
