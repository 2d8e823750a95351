//! Picking an endpoint: round robin, least request (power of two choices),
//! random and ring hash, all weighted and all skipping endpoints out of
//! rotation (unless the cluster is in panic: too few healthy endpoints).

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;

use super::endpoint::Endpoint;
use super::ring::Ring;
use crate::config::BalancePolicy;
use crate::worker::PerWorker;

/// A weighted round-robin schedule longer than this is not built; the
/// cluster picks by weighted random instead (same shares, less even).
const MAX_SCHEDULE: u64 = 1 << 16;

/// Chooses endpoints for one cluster. Lock-free: requests use a
/// round-robin cursor per worker (workers never contend for one cache
/// line); L4 connections, chosen once each, share one cursor so that
/// successive connections alternate whichever worker accepted them.
#[derive(Debug)]
pub struct Balancer {
    policy: BalancePolicy,
    cursor: PerWorker<AtomicUsize>,
    shared: AtomicUsize,
    /// Whether any endpoint has a weight other than 1.
    weighted: bool,
    /// Weighted round robin: endpoint indices in smooth weighted order
    /// (nginx's), walked by the cursors.
    schedule: Vec<u32>,
    ring: Option<Ring>,
    /// Percent of healthy endpoints below which health is ignored.
    panic_threshold: u32,
}

impl Balancer {
    #[cfg(test)]
    pub fn new(policy: BalancePolicy) -> Self {
        Self::for_endpoints(policy, &[], 0)
    }

    /// A balancer for `endpoints` (their weights and, for ring hash, their
    /// addresses).
    pub fn for_endpoints(
        policy: BalancePolicy,
        endpoints: &[Endpoint],
        panic_threshold: u32,
    ) -> Self {
        let weighted = endpoints.iter().any(|e| e.weight != 1);
        let schedule = if weighted && policy == BalancePolicy::RoundRobin {
            smooth_schedule(endpoints)
        } else {
            Vec::new()
        };
        let ring = (policy == BalancePolicy::RingHash)
            .then(|| Ring::new(endpoints.iter().map(|e| (&*e.address, e.weight))));
        Self {
            policy,
            // Workers start at different endpoints, so the first requests
            // of each do not all land on the first endpoint.
            cursor: PerWorker::new(AtomicUsize::new),
            shared: AtomicUsize::new(0),
            weighted,
            schedule,
            ring,
            panic_threshold,
        }
    }

    /// The index of the endpoint to use, skipping `exclude` (an endpoint
    /// that just failed) and endpoints out of rotation. `key` is the hash
    /// of the request's key, for ring hash (other policies ignore it; ring
    /// hash without a key picks at random). `None`: no endpoint is
    /// available.
    pub fn pick(
        &self,
        endpoints: &[Endpoint],
        exclude: Option<usize>,
        key: Option<u64>,
    ) -> Option<usize> {
        self.pick_with(self.cursor.get(), endpoints, exclude, key)
    }

    /// [`Balancer::pick`] for a whole L4 connection: round robin over one
    /// cursor shared by the workers.
    pub fn pick_connection(&self, endpoints: &[Endpoint], exclude: Option<usize>) -> Option<usize> {
        self.pick_with(&self.shared, endpoints, exclude, None)
    }

    /// Whether too few endpoints are healthy for health to count (Envoy's
    /// panic mode): then every endpoint takes traffic.
    pub fn in_panic(&self, endpoints: &[Endpoint]) -> bool {
        if self.panic_threshold == 0 || endpoints.is_empty() {
            return false;
        }
        let healthy = endpoints.iter().filter(|e| e.is_available()).count();
        healthy * 100 < self.panic_threshold as usize * endpoints.len()
    }

    fn pick_with(
        &self,
        cursor: &AtomicUsize,
        endpoints: &[Endpoint],
        exclude: Option<usize>,
        key: Option<u64>,
    ) -> Option<usize> {
        let n = endpoints.len();
        if n == 0 {
            return None;
        }
        let panic = self.in_panic(endpoints);
        let usable = |i: usize| Some(i) != exclude && (panic || endpoints[i].is_available());
        match self.policy {
            BalancePolicy::RoundRobin if !self.schedule.is_empty() => {
                let len = self.schedule.len();
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                (0..len)
                    .map(|k| self.schedule[(start + k) % len] as usize)
                    .find(|&i| usable(i))
            }
            BalancePolicy::RoundRobin if !self.weighted => {
                let start = cursor.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
            }
            BalancePolicy::RingHash => match (key, &self.ring) {
                (Some(key), Some(ring)) => ring.find(key, usable),
                _ => weighted_random(endpoints, usable),
            },
            // As Envoy: with equal weights, the less busy of two random
            // endpoints; with weights, a random pick on weight / (requests
            // in flight + 1), so idle endpoints follow their weights and
            // busy ones yield.
            BalancePolicy::LeastRequest if self.weighted => {
                let effective = |i: usize| {
                    u64::from(endpoints[i].weight) * 1024 / (endpoints[i].in_flight() as u64 + 1)
                };
                pick_by_weight(n, usable, effective)
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
            // Equal weights: one pass from a random start.
            BalancePolicy::Random if !self.weighted => {
                let start = rand::rng().random_range(0..n);
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
            }
            BalancePolicy::RoundRobin | BalancePolicy::Random => weighted_random(endpoints, usable),
        }
    }
}

/// A usable endpoint chosen at random in proportion to its weight.
fn weighted_random(endpoints: &[Endpoint], usable: impl Fn(usize) -> bool) -> Option<usize> {
    pick_by_weight(endpoints.len(), usable, |i| u64::from(endpoints[i].weight))
}

/// One of `0..n` that is `usable`, at random in proportion to `weight`.
fn pick_by_weight(
    n: usize,
    usable: impl Fn(usize) -> bool,
    weight: impl Fn(usize) -> u64,
) -> Option<usize> {
    let total: u64 = (0..n).filter(|&i| usable(i)).map(&weight).sum();
    if total == 0 {
        return None;
    }
    let mut left = rand::rng().random_range(0..total);
    (0..n).filter(|&i| usable(i)).find(|&i| {
        let w = weight(i);
        if left < w {
            true
        } else {
            left -= w;
            false
        }
    })
}

/// Smooth weighted round robin (nginx): each endpoint appears in
/// proportion to its weight, spread out rather than in runs. Empty when
/// the schedule would be too long.
fn smooth_schedule(endpoints: &[Endpoint]) -> Vec<u32> {
    let divisor = endpoints.iter().fold(0, |g, e| gcd(g, e.weight)).max(1);
    let weights: Vec<i64> = endpoints
        .iter()
        .map(|e| i64::from(e.weight / divisor))
        .collect();
    let total: i64 = weights.iter().sum();
    if total as u64 > MAX_SCHEDULE {
        return Vec::new();
    }
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let best = (0..current.len()).max_by_key(|&i| (current[i], std::cmp::Reverse(i)));
        if let Some(best) = best {
            current[best] -= total;
            schedule.push(best as u32);
        }
    }
    schedule
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
