//! `filter-ratelimit`: a token bucket per client address (or per value of a
//! header), kept in the host's shared data with compare-and-swap so every
//! instance of the filter agrees; or, with `[global]`, one limit per key for
//! every gateway sharing a Redis cluster ([`global`]). A limited request gets
//! 429 with `Retry-After` and the `RateLimit-*` headers.
//!
//! See README.md for the configuration.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod global;

use gateway_sdk::metrics::Counter;
use gateway_sdk::{
    shared, Decision, Filter, Hooks, LocalResponse, Request, Response, ResponseDecision,
};
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
    /// One limit for every gateway on the same Redis; the bucket above is
    /// then the fallback while Redis is unreachable.
    pub global: Option<GlobalConfig>,
}

/// `global`: the fleet-wide limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalConfig {
    /// The gateway cluster of protocol `redis`.
    pub cluster: String,
    /// Requests per window per key, summed over every gateway.
    pub limit: u64,
    /// Window length in milliseconds (fixed windows).
    pub window_ms: u64,
    /// How often each instance reconciles with Redis.
    pub sync_ms: u64,
    /// Timeout of each Redis command.
    pub timeout_ms: u64,
    /// While Redis is unreachable: `local` (the bucket above) or `deny` (503).
    pub on_unavailable: Unavailable,
    /// Keys tracked per instance; beyond, requests take the unreachable path.
    pub max_keys: usize,
    /// Copied from the filter's `name` (the Redis key namespace).
    #[serde(skip)]
    pub name: String,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            cluster: "redis".into(),
            limit: 100,
            window_ms: 1000,
            sync_ms: 50,
            timeout_ms: 250,
            on_unavailable: Unavailable::Local,
            max_keys: 10_000,
            name: String::new(),
        }
    }
}

/// What the global mode does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unavailable {
    /// Fail open, limited per gateway by the local bucket.
    #[default]
    Local,
    /// Fail closed: 503.
    Deny,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            capacity: 10,
            per_second: 1.0,
            header: None,
            name: "default".to_string(),
            global: None,
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
    /// `RateLimit-*` headers for an admitted request's response.
    admitted: Option<Quota>,
}

/// Where a key stands, for the `RateLimit-*` headers (IETF draft
/// httpapi-ratelimit-headers): limit, what is left, seconds to the reset.
#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: u64,
    remaining: u64,
    reset_secs: u64,
}

impl Quota {
    fn headers(self) -> [(&'static str, String); 3] {
        [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_secs.to_string()),
        ]
    }

    fn too_many(self) -> LocalResponse {
        let mut response = LocalResponse::new(429)
            .header("retry-after", self.reset_secs.max(1).to_string())
            .header("content-type", "text/plain");
        for (name, value) in self.headers() {
            response = response.header(name, value);
        }
        response.body("too many requests\n")
    }
}

fn now_nanos() -> u64 {
    gateway_sdk::time::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
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
        client
    }
}

impl Filter for RateLimit {
    type Config = RateLimitConfig;
    // Only these hooks: the gateway calls nothing else per request.
    const HOOKS: Hooks = Hooks::REQUEST.and(Hooks::RESPONSE);

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

    fn tick_period(config: &RateLimitConfig) -> Option<std::time::Duration> {
        let global = config.global.as_ref()?;
        Some(std::time::Duration::from_millis(global.sync_ms))
    }

    fn on_tick(config: &RateLimitConfig) {
        if let Some(global) = &config.global {
            global::sync(&global_of(config, global), now_nanos() / 1_000_000);
        }
    }

    fn new(config: &Rc<RateLimitConfig>) -> Self {
        RateLimit {
            config: config.clone(),
            admitted: None,
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        // `ip:1.2.3.4` or `header:value`: the Redis key's last part.
        let key = self.key(request);
        let Some(global) = self.config.global.clone() else {
            return self.local(&key);
        };
        let global = global_of(&self.config, &global);
        let now_ms = now_nanos() / 1_000_000;
        match global::decide(&global, &key, now_ms, false) {
            Some(verdict) => self.act(&global, &key, now_ms, verdict),
            // First request of the key here: ask Redis where the fleet is.
            None => global::first_contact(&global, &key, now_ms).then(
                move |this: &mut Self, _, reply| {
                    let now_ms = now_nanos() / 1_000_000;
                    let counted = global::first_reply(&global, &key, now_ms, &reply);
                    match global::decide(&global, &key, now_ms, counted) {
                        Some(verdict) => this.act(&global, &key, now_ms, verdict),
                        None => this.unavailable(&global, &key),
                    }
                },
            ),
        }
    }

    fn on_response(&mut self, response: &mut Response) -> ResponseDecision {
        if let Some(quota) = self.admitted {
            for (name, value) in quota.headers() {
                response.set_header(name, &value);
            }
        }
        ResponseDecision::Continue
    }
}

/// The global settings with the filter's name filled in.
fn global_of(config: &RateLimitConfig, global: &GlobalConfig) -> GlobalConfig {
    GlobalConfig {
        name: config.name.clone(),
        ..global.clone()
    }
}

impl RateLimit {
    /// The local token bucket (the whole limit in local mode, the fallback
    /// while Redis is unreachable in global mode).
    fn local(&mut self, key: &str) -> Decision<Self> {
        let now = now_nanos();
        let full = Bucket {
            tokens: f64::from(self.config.capacity),
            updated_nanos: now,
        };
        let config = &self.config;
        let key = format!("ratelimit/{}/{key}", self.config.name);
        let outcome = shared::update(&key, |stored| {
            let bucket = stored.and_then(Bucket::decode).unwrap_or(full);
            let (bucket, wait) = bucket.take(now, config);
            (bucket.encode(), wait.map(|w| (w, bucket.tokens)))
        });
        match outcome {
            Ok(None) => Decision::Continue,
            Ok(Some((wait, _))) => {
                Counter::new("ratelimit_rejected").increment(1);
                Quota {
                    limit: u64::from(self.config.capacity),
                    remaining: 0,
                    reset_secs: wait,
                }
                .too_many()
                .into()
            }
            // Fail open: a host without shared data must not take the site down.
            Err(error) => {
                gateway_sdk::warn!("shared data unavailable ({error:?}); not limiting");
                Decision::Continue
            }
        }
    }

    /// Carries out the global limit's verdict.
    fn act(
        &mut self,
        global: &GlobalConfig,
        key: &str,
        now_ms: u64,
        verdict: global::Verdict,
    ) -> Decision<Self> {
        let (_, left_ms) = global::window_of(global, now_ms);
        let reset_secs = left_ms.div_ceil(1000);
        let quota = |remaining| Quota {
            limit: global.limit,
            remaining,
            reset_secs,
        };
        match verdict {
            global::Verdict::Admit { remaining } => {
                self.admitted = Some(quota(remaining));
                Decision::Continue
            }
            global::Verdict::Reject { remaining } => {
                Counter::new("ratelimit_rejected").increment(1);
                quota(remaining).too_many().into()
            }
            global::Verdict::Unavailable => self.unavailable(global, key),
        }
    }

    /// Redis is unreachable: the configured policy.
    fn unavailable(&mut self, global: &GlobalConfig, key: &str) -> Decision<Self> {
        match global.on_unavailable {
            Unavailable::Local => self.local(key),
            Unavailable::Deny => {
                Counter::new("ratelimit_denied_unavailable").increment(1);
                LocalResponse::new(503)
                    .header("content-type", "text/plain")
                    .body("rate limit unavailable\n")
                    .into()
            }
        }
    }
}

gateway_sdk::export_filter!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::redis::RedisReply;
    use gateway_sdk::testing::{redis_command, FilterTest, TestRequest};
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

    const GLOBAL: &str = r#"{"capacity": 1, "per_second": 0.001,
        "global": {"limit": 3, "window_ms": 60000, "sync_ms": 50}}"#;

    fn totals(admitted: u64, seen: u64) -> RedisReply {
        RedisReply::Value(serde_json::json!([admitted, seen]))
    }

    #[test]
    fn global_mode_asks_redis_once_then_decides_locally() {
        let mut test = FilterTest::<RateLimit>::new(GLOBAL).unwrap();
        assert_eq!(test.tick_period(), Some(Duration::from_millis(50)));
        let mut first = test.request(from("10.0.0.1"));
        assert!(
            first.is_paused(),
            "the first request of a key waits for Redis"
        );
        let command = redis_command(&first.callouts()[0]);
        assert_eq!(command[0], "EVAL");
        first.answer_redis(totals(0, 0));
        assert!(first.is_continue());
        drop(first);
        // The rest of the allowance is decided without Redis.
        let second = test.request(from("10.0.0.1"));
        assert!(second.is_continue() && second.callouts().is_empty());
        drop(second);
        assert!(test.request(from("10.0.0.1")).is_continue());
        let limited = test.request(from("10.0.0.1"));
        let response = limited.local_response().unwrap();
        assert_eq!(response.status, 429);
        for name in [
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
        ] {
            assert!(response.headers.iter().any(|(n, _)| n == name), "{name}");
        }
        drop(limited);
        // The timer reports 3 admitted, 3 seen (the first was counted by its first contact).
        test.tick();
        let sync = test.detached_callouts();
        assert_eq!(sync.len(), 1);
        let args = redis_command(&sync[0]);
        assert_eq!((args[4].as_u64(), args[5].as_u64()), (Some(3), Some(3)));
        // Another gateway took most of the window: nothing left here.
        test.answer_redis(sync[0].token, totals(3, 8));
        assert_eq!(test.request(from("10.0.0.1")).response_status(), Some(429));
    }

    #[test]
    fn unreachable_redis_falls_back_to_the_local_bucket_and_recovers() {
        let mut test = FilterTest::<RateLimit>::new(GLOBAL).unwrap();
        let mut first = test.request(from("10.0.0.2"));
        first.answer_redis(RedisReply::Unavailable("down".into()));
        // Local bucket (capacity 1): this one passes, the next is limited.
        assert!(first.is_continue());
        drop(first);
        assert_eq!(test.request(from("10.0.0.2")).response_status(), Some(429));
        assert!(test.logged("unreachable"));
        // The timer probes with PING; an answer brings the global mode back.
        test.tick();
        let probe = test.detached_callouts();
        assert_eq!(redis_command(&probe[0])[0], "PING");
        test.answer_redis(probe[0].token, RedisReply::Value("PONG".into()));
        assert!(test.logged("global limit again"));
        assert!(test.request(from("10.0.0.2")).is_paused());
    }

    #[test]
    fn fail_closed_answers_503_while_redis_is_unreachable() {
        let config = r#"{"global": {"on_unavailable": "deny"}}"#;
        let mut test = FilterTest::<RateLimit>::new(config).unwrap();
        let mut first = test.request(from("10.0.0.3"));
        first.answer_redis(RedisReply::Unavailable("down".into()));
        assert_eq!(first.response_status(), Some(503));
    }

    #[test]
    fn ip_of_strips_ports() {
        assert_eq!(ip_of("1.2.3.4:80"), "1.2.3.4");
        assert_eq!(ip_of("[::1]:80"), "::1");
        assert_eq!(ip_of("::1"), "::1");
    }
}
