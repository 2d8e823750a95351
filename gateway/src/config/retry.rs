//! `[cluster.retry]`, `[listener.route.retry]`, `[cluster.retry_budget]` and
//! `[cluster.circuit_breaker]`: when a request is tried again, how many
//! retries a cluster takes at once, and how much load it takes at all.
//!
//! Ranges are checked while the file is read, so a bad value is reported
//! with its line like a type error.

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Deserializer, Serialize};

/// What makes a try fail in a way worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    /// The connection could not be made: nothing was sent.
    ConnectFailure,
    /// The connection closed or reset before a response head.
    Reset,
    /// `per_try_timeout` passed before a response head.
    Timeout,
    /// The upstream answered 502, 503 or 504.
    GatewayError,
}

/// A retry policy: the cluster's default, or a route's own (which replaces
/// the cluster's whole).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Tries in all, the first included; 1 never retries.
    #[serde(deserialize_with = "attempts")]
    pub attempts: u32,
    pub retry_on: Vec<RetryOn>,
    /// Further response statuses that are retried (e.g. 429).
    #[serde(deserialize_with = "statuses")]
    pub statuses: Vec<u16>,
    /// Time for one try's response head; the route's (or cluster's)
    /// request timeout still bounds all tries together. None: each try may
    /// use what is left of it.
    #[serde(with = "crate::config::duration::option")]
    pub per_try_timeout: Option<Duration>,
    /// Back-off before retry n: a random time up to
    /// `min(backoff_max, backoff_base * 2^(n-1))` (full jitter).
    #[serde(with = "crate::config::duration")]
    pub backoff_base: Duration,
    #[serde(with = "crate::config::duration")]
    pub backoff_max: Duration,
    /// Request bodies up to this size are held so they can be sent again;
    /// a larger body streams upstream and its request is not retried once
    /// it has begun.
    pub buffer_limit: ByteSize,
    /// Also retry methods that are not idempotent (POST, PATCH) after
    /// they were sent; a failed connect is always retried.
    pub non_idempotent: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 2,
            retry_on: vec![RetryOn::ConnectFailure, RetryOn::Reset, RetryOn::Timeout],
            statuses: Vec::new(),
            per_try_timeout: None,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            buffer_limit: ByteSize::kib(64),
            non_idempotent: false,
        }
    }
}

/// `[cluster.retry_budget]`: retries in flight at once may be at most
/// `percent` of the cluster's requests in flight, or `min_concurrent`,
/// whichever is more.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetConfig {
    #[serde(deserialize_with = "percent")]
    pub percent: u32,
    pub min_concurrent: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        Self {
            percent: 20,
            min_concurrent: 3,
        }
    }
}

/// `[cluster.circuit_breaker]`: beyond any of these, a request is answered
/// 503 at once, with `x-gateway-overloaded` naming the limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Upstream connections open to the cluster's endpoints.
    #[serde(deserialize_with = "at_least_one")]
    pub max_connections: u32,
    /// Requests waiting for a new connection to open.
    #[serde(deserialize_with = "at_least_one")]
    pub max_pending: u32,
    /// Requests in flight to the cluster.
    #[serde(deserialize_with = "at_least_one")]
    pub max_requests: u32,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending: 1024,
            max_requests: 1024,
        }
    }
}

fn attempts<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if !(1..=10).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "attempts must be from 1 to 10, not {n}"
        )));
    }
    Ok(n)
}

fn statuses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    let statuses = Vec::<u16>::deserialize(d)?;
    if let Some(bad) = statuses.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(serde::de::Error::custom(format!(
            "{bad} is not an HTTP status"
        )));
    }
    Ok(statuses)
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n > 100 {
        return Err(serde::de::Error::custom(format!(
            "percent must be from 0 to 100, not {n}"
        )));
    }
    Ok(n)
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        retry: RetryConfig,
        #[serde(default)]
        breaker: CircuitBreakerConfig,
    }

    #[test]
    fn defaults_fill_what_is_not_written() {
        let h: Holder = toml::from_str("[retry]\nattempts = 3\n").expect("parse");
        assert_eq!(h.retry.attempts, 3);
        assert_eq!(h.retry.retry_on, RetryConfig::default().retry_on);
        assert_eq!(h.breaker.max_requests, 1024);
    }

    #[test]
    fn out_of_range_values_are_refused_at_their_line() {
        for (text, needle) in [
            ("[retry]\nattempts = 0\n", "attempts must be from 1 to 10"),
            (
                "[retry]\nstatuses = [429, 700]\n",
                "700 is not an HTTP status",
            ),
            ("[retry]\nretry_on = [\"sometimes\"]\n", "unknown variant"),
            (
                "[retry]\n[breaker]\nmax_requests = 0\n",
                "must be at least 1",
            ),
        ] {
            let err = toml::from_str::<Holder>(text).expect_err(text);
            assert!(err.to_string().contains(needle), "{text}: {err}");
            let span = err.span().expect("a place in the file");
            let line = text[..span.start].matches('\n').count() + 1;
            assert!(line >= 2, "{text}: reported at line {line}");
        }
    }
}
