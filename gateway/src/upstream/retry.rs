//! A retry policy as the request path uses it: built once from
//! `RetryConfig` when the snapshot is built, asked after each failed try
//! whether another is worth making, and how long to back off first.

use std::time::Duration;

use http::{Method, StatusCode};
use rand::Rng;

use super::balancer::Balancer;
use super::endpoint::Endpoint;
use crate::config::{RetryConfig, RetryOn};

/// How one try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection: nothing was sent.
    ConnectFailure,
    /// The connection closed or reset before a response head.
    Reset,
    /// The per-try timeout passed before a response head.
    Timeout,
    /// The upstream answered with this status.
    Status(StatusCode),
}

impl Failure {
    /// The `reason` label of the retries metric.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::ConnectFailure => "connect_failure",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "status",
        }
    }
}

/// One route's (or cluster's) retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: u32,
    on: Vec<RetryOn>,
    statuses: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
    backoff_base: Duration,
    backoff_max: Duration,
    pub buffer_limit: usize,
    non_idempotent: bool,
}

impl RetryPolicy {
    pub fn new(config: &RetryConfig) -> Self {
        Self {
            attempts: config.attempts.max(1),
            on: config.retry_on.clone(),
            statuses: config.statuses.clone(),
            per_try_timeout: config.per_try_timeout.filter(|t| !t.is_zero()),
            backoff_base: config.backoff_base,
            backoff_max: config.backoff_max.max(config.backoff_base),
            buffer_limit: usize::try_from(config.buffer_limit.as_u64()).unwrap_or(usize::MAX),
            non_idempotent: config.non_idempotent,
        }
    }

    /// Whether the policy retries this kind of failure at all.
    pub fn retries(&self, failure: Failure) -> bool {
        let on = |c| self.on.contains(&c);
        match failure {
            Failure::ConnectFailure => on(RetryOn::ConnectFailure),
            Failure::Reset => on(RetryOn::Reset),
            Failure::Timeout => on(RetryOn::Timeout),
            Failure::Status(s) => self.retries_status(s),
        }
    }

    /// Whether an answer with `status` is retried (the answer is then
    /// dropped and another endpoint asked).
    pub fn retries_status(&self, status: StatusCode) -> bool {
        let gateway_error = matches!(status.as_u16(), 502..=504);
        (gateway_error && self.on.contains(&RetryOn::GatewayError))
            || self.statuses.contains(&status.as_u16())
    }

    /// Whether a request with `method` may be sent again after it was sent
    /// once (given its body can be): idempotent methods (RFC 9110 §9.2.2),
    /// others only when the policy says so.
    pub fn replays(&self, method: &Method) -> bool {
        self.attempts > 1 && (method.is_idempotent() || self.non_idempotent)
    }

    /// Whether a request with `method` should have its body held, so it can
    /// be replayed: only when the policy would retry after sending.
    pub fn holds_body(&self, method: &Method) -> bool {
        self.replays(method)
            && (self.on.iter().any(|c| *c != RetryOn::ConnectFailure) || !self.statuses.is_empty())
    }

    /// The back-off before retry `retry` (1 for the first): full jitter,
    /// uniformly up to `min(max, base * 2^(retry-1))`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = 1u32 << retry.saturating_sub(1).min(16);
        let ceiling = self.backoff_base.saturating_mul(exp).min(self.backoff_max);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

/// The endpoint for a request's next try: the balancer's pick, skipping
/// ejected endpoints and those the request's earlier tries used (`tried`,
/// in order) while an untried one is available. Round robin moves on with
/// each pick and random and least request draw again; a scan settles it
/// when the draws keep landing on tried endpoints. With every available
/// endpoint tried, any but the last one tried, if there is one.
pub(super) fn next_endpoint(
    balancer: &Balancer,
    endpoints: &[Endpoint],
    tried: &[usize],
    key: Option<u64>,
) -> Option<usize> {
    let last = tried.last().copied();
    if tried.is_empty() {
        return balancer.pick(endpoints, None, key);
    }
    for _ in 0..=endpoints.len() {
        match balancer.pick(endpoints, last, key) {
            Some(i) if !tried.contains(&i) => return Some(i),
            Some(_) => {}
            None => break,
        }
    }
    (0..endpoints.len())
        .find(|i| !tried.contains(i) && endpoints[*i].is_available())
        .or_else(|| balancer.pick(endpoints, last, key))
        .or_else(|| balancer.pick(endpoints, None, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BalancePolicy;
    use crate::upstream::endpoint::Outlier;

    fn endpoints(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| {
                Endpoint::new(
                    format!("127.0.0.1:{}", 1000 + i).into(),
                    1,
                    Outlier {
                        connect_failures: 1,
                        ejection: Duration::from_secs(60),
                        ..Outlier::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_policy_tries_each_endpoint_once_before_any_again() {
        for policy in [
            BalancePolicy::RoundRobin,
            BalancePolicy::Random,
            BalancePolicy::LeastRequest,
        ] {
            let eps = endpoints(4);
            let balancer = Balancer::new(policy);
            for _ in 0..50 {
                let mut tried = Vec::new();
                for _ in 0..4 {
                    let next = next_endpoint(&balancer, &eps, &tried, None).expect("an endpoint");
                    assert!(
                        !tried.contains(&next),
                        "{policy:?}: {next} again after {tried:?}"
                    );
                    tried.push(next);
                }
                let fifth = next_endpoint(&balancer, &eps, &tried, None).expect("a tried one");
                assert_ne!(Some(&fifth), tried.last(), "{policy:?}: the last one again");
            }
        }
    }

    #[test]
    fn ejected_endpoints_are_skipped_and_a_lone_endpoint_is_tried_again() {
        let eps = endpoints(3);
        assert!(eps[1].record_connect_failure(), "ejected after one failure");
        let balancer = Balancer::new(BalancePolicy::RoundRobin);
        let first = next_endpoint(&balancer, &eps, &[], None).expect("first");
        let second = next_endpoint(&balancer, &eps, &[first], None).expect("second");
        assert_ne!(first, 1);
        assert_eq!(second, if first == 0 { 2 } else { 0 });
        let one = endpoints(1);
        assert_eq!(next_endpoint(&balancer, &one, &[0], None), Some(0));
    }

    #[test]
    fn the_default_retries_failed_connects_resets_and_timeouts_not_statuses() {
        let p = RetryPolicy::new(&RetryConfig::default());
        assert!(p.retries(Failure::ConnectFailure));
        assert!(p.retries(Failure::Reset));
        assert!(p.retries(Failure::Timeout));
        assert!(!p.retries(Failure::Status(StatusCode::SERVICE_UNAVAILABLE)));
        assert!(p.replays(&Method::GET) && p.replays(&Method::PUT));
        assert!(!p.replays(&Method::POST));
    }

    #[test]
    fn gateway_errors_and_chosen_statuses_are_retried() {
        let p = RetryPolicy::new(&RetryConfig {
            retry_on: vec![RetryOn::GatewayError],
            statuses: vec![429],
            ..RetryConfig::default()
        });
        for s in [502, 503, 504, 429] {
            assert!(
                p.retries_status(StatusCode::from_u16(s).expect("status")),
                "{s}"
            );
        }
        for s in [500, 501, 404, 200] {
            assert!(
                !p.retries_status(StatusCode::from_u16(s).expect("status")),
                "{s}"
            );
        }
        assert!(!p.retries(Failure::ConnectFailure));
    }

    #[test]
    fn one_attempt_never_replays_and_non_idempotent_is_opt_in() {
        let once = RetryPolicy::new(&RetryConfig {
            attempts: 1,
            ..RetryConfig::default()
        });
        assert!(!once.replays(&Method::GET) && !once.holds_body(&Method::GET));
        let posts = RetryPolicy::new(&RetryConfig {
            non_idempotent: true,
            ..RetryConfig::default()
        });
        assert!(posts.replays(&Method::POST) && posts.holds_body(&Method::POST));
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_the_maximum() {
        let p = RetryPolicy::new(&RetryConfig {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(30),
            ..RetryConfig::default()
        });
        let mut seen = std::collections::HashSet::new();
        for retry in 1..=6 {
            for _ in 0..50 {
                let d = p.backoff(retry);
                let ceiling =
                    Duration::from_millis(10 * (1 << (retry - 1))).min(Duration::from_millis(30));
                assert!(d <= ceiling, "retry {retry}: {d:?} > {ceiling:?}");
                seen.insert(d);
            }
        }
        assert!(seen.len() > 100, "jittered: {} distinct", seen.len());
    }
}
