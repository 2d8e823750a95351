//! Picking an endpoint: round robin, least request (power of two choices)
//! and random, all skipping ejected endpoints.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::endpoint::Endpoint;
use crate::config::BalancePolicy;
use crate::worker::PerWorker;

/// Chooses endpoints for one cluster. Lock-free: requests use a
/// round-robin cursor per worker (workers never contend for one cache
/// line); L4 connections, chosen once each, share one cursor so that
/// successive connections alternate whichever worker accepted them.
#[derive(Debug)]
pub struct Balancer {
    policy: BalancePolicy,
    cursor: PerWorker<AtomicUsize>,
    shared: AtomicUsize,
}

impl Balancer {
    pub fn new(policy: BalancePolicy) -> Self {
        Self {
            policy,
            // Workers start at different endpoints, so the first requests
            // of each do not all land on the first endpoint.
            cursor: PerWorker::new(AtomicUsize::new),
            shared: AtomicUsize::new(0),
        }
    }

    /// The index of the endpoint to use, skipping `exclude` (an endpoint
    /// that just failed) and ejected endpoints. `None`: no endpoint is
    /// available.
    pub fn pick(&self, endpoints: &[Endpoint], exclude: Option<usize>) -> Option<usize> {
        self.pick_with(self.cursor.get(), endpoints, exclude)
    }

    /// [`Balancer::pick`] for a whole L4 connection: round robin over one
    /// cursor shared by the workers.
    pub fn pick_connection(&self, endpoints: &[Endpoint], exclude: Option<usize>) -> Option<usize> {
        self.pick_with(&self.shared, endpoints, exclude)
    }

    fn pick_with(
        &self,
        cursor: &AtomicUsize,
        endpoints: &[Endpoint],
        exclude: Option<usize>,
    ) -> Option<usize> {
        let n = endpoints.len();
        let usable = |i: usize| Some(i) != exclude && endpoints[i].is_available();
        match self.policy {
            BalancePolicy::RoundRobin => {
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
            }
            BalancePolicy::Random => {
                if n == 0 {
                    return None;
                }
                let start = rand::rng().random_range(0..n);
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
            }
            BalancePolicy::LeastRequest => {
                let candidates: Vec<usize> = (0..n).filter(|&i| usable(i)).collect();
                match candidates.len() {
                    0 => None,
                    1 => Some(candidates[0]),
                    len => {
                        let mut rng = rand::rng();
                        let a = candidates[rng.random_range(0..len)];
                        let mut b = candidates[rng.random_range(0..len - 1)];
                        if b == a {
                            b = candidates[len - 1];
                        }
                        let (la, lb) = (endpoints[a].in_flight(), endpoints[b].in_flight());
                        Some(if lb < la { b } else { a })
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn endpoints(n: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|i| {
                Endpoint::new(
                    format!("127.0.0.1:{}", 1000 + i).into(),
                    3,
                    Duration::from_secs(5),
                )
            })
            .collect()
    }

    #[test]
    fn round_robin_alternates() {
        let eps = endpoints(2);
        let b = Balancer::new(BalancePolicy::RoundRobin);
        let picks: Vec<_> = (0..6).filter_map(|_| b.pick(&eps, None)).collect();
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
            assert_eq!(b.pick(&eps, Some(0)), Some(1));
        }
        assert_eq!(b.pick(&endpoints(1), Some(0)), None);
    }

    #[test]
    fn least_request_prefers_the_idle_endpoint() {
        let eps = endpoints(2);
        let _busy: Vec<_> = (0..5).map(|_| eps[0].start_request()).collect();
        let b = Balancer::new(BalancePolicy::LeastRequest);
        for _ in 0..10 {
            assert_eq!(b.pick(&eps, None), Some(1));
        }
    }

    #[test]
    fn random_covers_every_endpoint_and_none_when_empty() {
        let eps = endpoints(3);
        let b = Balancer::new(BalancePolicy::Random);
        let mut seen = [false; 3];
        for _ in 0..300 {
            if let Some(i) = b.pick(&eps, None) {
                seen[i] = true;
            }
        }
        assert_eq!(seen, [true, true, true]);
        assert_eq!(b.pick(&[], None), None);
    }
}
