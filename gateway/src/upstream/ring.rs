//! Consistent hashing (ring hash, as Envoy's): each endpoint owns points
//! on a ring in proportion to its weight; a key goes to the owner of the
//! first point at or after its hash, skipping endpoints out of rotation,
//! so that when one endpoint of N leaves only its own keys (about 1/N)
//! move.

use std::hash::{Hash, Hasher};

/// Points on the ring in all: enough for an even spread (Envoy's minimum
/// is 1024), bounded so a large cluster's ring stays small.
const MIN_POINTS: usize = 1024;
const MAX_POINTS: usize = 1 << 16;

/// The ring of one cluster, built once with the cluster.
#[derive(Debug)]
pub struct Ring {
    /// (hash, endpoint index), sorted by hash.
    points: Vec<(u64, u32)>,
}

/// The hash of a request key (a header or cookie value, or what a filter
/// set). SipHash with fixed keys: the same in every process of one build.
pub fn hash_key(key: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

impl Ring {
    /// A ring over endpoints given as (address, weight).
    pub fn new<'a>(endpoints: impl Iterator<Item = (&'a str, u32)> + Clone) -> Self {
        let total: u64 = endpoints.clone().map(|(_, w)| u64::from(w.max(1))).sum();
        let count = endpoints.clone().count();
        let size = (MIN_POINTS.max(count * 100)).min(MAX_POINTS) as u64;
        let mut points = Vec::new();
        for (index, (address, weight)) in endpoints.enumerate() {
            let share = (size * u64::from(weight.max(1)))
                .div_ceil(total.max(1))
                .max(1);
            for replica in 0..share {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                (address, replica).hash(&mut hasher);
                points.push((hasher.finish(), index as u32));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The endpoint for `key`: the first point at or after it (wrapping)
    /// whose endpoint is `usable`.
    pub fn find(&self, key: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.points.len();
        let start = self.points.partition_point(|&(h, _)| h < key);
        (0..n)
            .map(|k| self.points[(start + k) % n].1 as usize)
            .find(|&i| usable(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: usize) -> (Vec<String>, Ring) {
        let addresses: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:80")).collect();
        let ring = Ring::new(addresses.iter().map(|a| (a.as_str(), 1)));
        (addresses, ring)
    }

    #[test]
    fn the_same_key_always_reaches_the_same_endpoint() {
        let (_, ring) = ring(5);
        for k in 0..1000u32 {
            let key = hash_key(format!("user-{k}").as_bytes());
            let first = ring.find(key, |_| true);
            assert!(first.is_some());
            assert_eq!(ring.find(key, |_| true), first);
        }
    }

    #[test]
    fn when_one_of_n_leaves_only_its_keys_move() {
        let n = 5;
        let (_, ring) = ring(n);
        let keys: Vec<u64> = (0..10_000u32)
            .map(|k| hash_key(format!("session-{k}").as_bytes()))
            .collect();
        let before: Vec<usize> = keys
            .iter()
            .map(|&k| ring.find(k, |_| true).expect("as the test set it up"))
            .collect();
        let gone = 2;
        let after: Vec<usize> = keys
            .iter()
            .map(|&k| ring.find(k, |i| i != gone).expect("as the test set it up"))
            .collect();
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        // Exactly the keys of the endpoint that left move, nothing else.
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || *b == gone));
        let share = moved as f64 / keys.len() as f64;
        assert!(share < 1.0 / n as f64 * 1.3, "{share} of keys moved");
        // And the spread is even enough: each endpoint holds about 1/N.
        for i in 0..n {
            let held = before.iter().filter(|&&b| b == i).count() as f64 / keys.len() as f64;
            assert!((held - 0.2).abs() < 0.06, "endpoint {i} holds {held}");
        }
    }

    #[test]
    fn weights_set_the_share_of_keys() {
        let addresses = ["a:1", "b:1"];
        let ring = Ring::new(addresses.iter().zip([1, 3]).map(|(a, w)| (*a, w)));
        let to_b = (0..10_000u32)
            .filter(|k| ring.find(hash_key(&k.to_le_bytes()), |_| true) == Some(1))
            .count();
        assert!(
            (6_500..=8_500).contains(&to_b),
            "{to_b} of 10000 to weight 3 of 4"
        );
    }

    #[test]
    fn nothing_usable_is_none() {
        let (_, ring) = ring(3);
        assert_eq!(ring.find(7, |_| false), None);
        assert_eq!(
            Ring::new(std::iter::empty::<(&str, u32)>()).find(7, |_| true),
            None
        );
    }
}
