//! Tests of endpoint picking: each policy, weights, exclusions and panic.

use super::*;
use crate::upstream::endpoint::Outlier;
use std::time::Duration;

fn weighted(weights: &[u32]) -> Vec<Endpoint> {
    let outlier = Outlier {
        connect_failures: 1,
        ejection: Duration::from_secs(60),
        ..Outlier::default()
    };
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Endpoint::new(format!("127.0.0.1:{}", 1000 + i).into(), w, outlier))
        .collect()
}

fn endpoints(n: usize) -> Vec<Endpoint> {
    weighted(&vec![1; n])
}

fn shares(b: &Balancer, eps: &[Endpoint], picks: usize) -> Vec<usize> {
    let mut counts = vec![0; eps.len()];
    for _ in 0..picks {
        counts[b.pick(eps, None, None).expect("an endpoint")] += 1;
    }
    counts
}

#[test]
fn round_robin_alternates() {
    let eps = endpoints(2);
    let b = Balancer::new(BalancePolicy::RoundRobin);
    let picks: Vec<_> = (0..6).filter_map(|_| b.pick(&eps, None, None)).collect();
    assert_eq!(picks.len(), 6);
    assert!(picks.windows(2).all(|w| w[0] != w[1]), "{picks:?}");
    let shared: Vec<_> = (0..4)
        .filter_map(|_| b.pick_connection(&eps, None))
        .collect();
    assert_eq!(shared, vec![0, 1, 0, 1]);
}

#[test]
fn excluded_endpoint_is_skipped() {
    let eps = endpoints(2);
    let b = Balancer::new(BalancePolicy::RoundRobin);
    for _ in 0..4 {
        assert_eq!(b.pick(&eps, Some(0), None), Some(1));
    }
    assert_eq!(b.pick(&endpoints(1), Some(0), None), None);
}

#[test]
fn least_request_prefers_the_idle_endpoint() {
    let eps = endpoints(2);
    let _busy: Vec<_> = (0..5).map(|_| eps[0].start_request()).collect();
    let b = Balancer::new(BalancePolicy::LeastRequest);
    for _ in 0..10 {
        assert_eq!(b.pick(&eps, None, None), Some(1));
    }
}

#[test]
fn random_covers_every_endpoint_and_none_when_empty() {
    let eps = endpoints(3);
    let b = Balancer::new(BalancePolicy::Random);
    let mut seen = [false; 3];
    for _ in 0..300 {
        if let Some(i) = b.pick(&eps, None, None) {
            seen[i] = true;
        }
    }
    assert_eq!(seen, [true, true, true]);
    assert_eq!(b.pick(&[], None, None), None);
}

#[test]
fn weighted_round_robin_is_exact_and_spread_out() {
    let eps = weighted(&[9, 1]);
    let b = Balancer::for_endpoints(BalancePolicy::RoundRobin, &eps, 0);
    assert_eq!(shares(&b, &eps, 10_000), [9_000, 1_000]);
    // Smooth: the light endpoint never gets two picks in a row.
    let eps = weighted(&[5, 1, 1]);
    let schedule = smooth_schedule(&eps);
    assert_eq!(schedule.len(), 7);
    assert!(
        schedule.windows(2).all(|w| w[0] == 0 || w[0] != w[1]),
        "{schedule:?}"
    );
}

#[test]
fn weights_hold_for_random_and_least_request() {
    for policy in [
        BalancePolicy::Random,
        BalancePolicy::LeastRequest,
        BalancePolicy::RingHash,
    ] {
        let eps = weighted(&[90, 10]);
        let b = Balancer::for_endpoints(policy, &eps, 0);
        let counts = shares(&b, &eps, 10_000);
        assert!(
            (8_700..=9_300).contains(&counts[0]),
            "{policy:?}: {counts:?}"
        );
    }
}

#[test]
fn weighted_picks_skip_ejected_endpoints() {
    let eps = weighted(&[9, 1]);
    assert!(eps[0].record_connect_failure());
    for policy in [
        BalancePolicy::RoundRobin,
        BalancePolicy::Random,
        BalancePolicy::LeastRequest,
    ] {
        let b = Balancer::for_endpoints(policy, &eps, 0);
        assert_eq!(shares(&b, &eps, 100), [0, 100], "{policy:?}");
    }
}

#[test]
fn ring_hash_keeps_a_key_on_its_endpoint_until_it_leaves() {
    let eps = endpoints(4);
    let b = Balancer::for_endpoints(BalancePolicy::RingHash, &eps, 0);
    let key = crate::upstream::ring::hash_key(b"user-42");
    let first = b
        .pick(&eps, None, Some(key))
        .expect("as the test set it up");
    for _ in 0..20 {
        assert_eq!(b.pick(&eps, None, Some(key)), Some(first));
    }
    assert!(eps[first].record_connect_failure());
    let moved = b
        .pick(&eps, None, Some(key))
        .expect("as the test set it up");
    assert_ne!(moved, first);
}

#[test]
fn panic_threshold_sends_traffic_to_every_endpoint() {
    let eps = endpoints(4);
    for ep in &eps[..3] {
        assert!(ep.record_connect_failure());
    }
    let strict = Balancer::for_endpoints(BalancePolicy::RoundRobin, &eps, 0);
    assert_eq!(shares(&strict, &eps, 40), [0, 0, 0, 40]);
    // One healthy of four is 25%, below 50%: health is ignored.
    let panicking = Balancer::for_endpoints(BalancePolicy::RoundRobin, &eps, 50);
    assert!(panicking.in_panic(&eps));
    assert_eq!(shares(&panicking, &eps, 40), [10, 10, 10, 10]);
    assert!(eps[3].record_connect_failure());
    assert_eq!(
        strict.pick(&eps, None, None),
        None,
        "all out, no panic: nothing"
    );
    assert!(panicking.pick(&eps, None, None).is_some());
}
