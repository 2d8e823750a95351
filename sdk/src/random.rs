//! Random numbers from the host (WASI `random_get`, which proxy-wasm hosts
//! provide: this gateway, Envoy and others), for sampling, canary splits and
//! identifiers. Under `gateway_sdk::testing` the numbers come from a seeded
//! generator, so tests are repeatable
//! ([`crate::testing::FilterTest::seed_random`]).
//!
//! To use the `rand` crate (or anything else built on `getrandom`) on
//! `wasm32-unknown-unknown`, see "Randomness" in the SDK's README: getrandom's
//! custom backend, pointed at [`fill`].

/// Fills `buf` with random bytes from the host. Returns false (and leaves
/// `buf` zeroed) if the host refused.
pub fn fill(buf: &mut [u8]) -> bool {
    if host_fill(buf).is_ok() {
        return true;
    }
    buf.fill(0);
    false
}

#[cfg(target_arch = "wasm32")]
fn host_fill(buf: &mut [u8]) -> Result<(), u32> {
    crate::wasm::random_fill(buf)
}

#[cfg(not(target_arch = "wasm32"))]
fn host_fill(buf: &mut [u8]) -> Result<(), u32> {
    crate::host::with(|h| h.random(buf))
}

/// A random `u64` (0 if the host refused).
pub fn u64() -> u64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// A random `u32` (0 if the host refused).
pub fn u32() -> u32 {
    let mut bytes = [0u8; 4];
    fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// A uniformly distributed number in `0..bound` (0 when `bound` is 0).
pub fn below(bound: u64) -> u64 {
    if bound == 0 {
        return 0;
    }
    // Rejection sampling: drop the top sliver that would bias low numbers.
    let zone = u64::MAX - (u64::MAX % bound);
    for _ in 0..64 {
        let n = u64();
        if n < zone {
            return n % bound;
        }
    }
    u64() % bound
}

/// A uniformly distributed `f64` in `[0, 1)`.
pub fn unit() -> f64 {
    // 53 random bits: every representable step in [0, 1) equally likely.
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// True with probability `p` (clamped to `[0, 1]`), e.g. `chance(0.1)` for a
/// 10% canary.
pub fn chance(p: f64) -> bool {
    unit() < p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FilterTest, TestRequest};
    use crate::{Decision, Filter, Request};

    struct Sampler;
    impl Filter for Sampler {
        type Config = ();
        fn new(_: &std::rc::Rc<()>) -> Self {
            Sampler
        }
        fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
            request.set_header("x-roll", &below(6).to_string());
            request.set_header("x-unit", &unit().to_string());
            Decision::Continue
        }
    }

    fn rolls(seed: u64) -> Vec<String> {
        let mut test = FilterTest::<Sampler>::new("").unwrap();
        test.seed_random(seed);
        (0..50)
            .map(|_| {
                let exchange = test.request(TestRequest::get("/"));
                let unit: f64 = exchange.request_header("x-unit").unwrap().parse().unwrap();
                assert!((0.0..1.0).contains(&unit));
                exchange.request_header("x-roll").unwrap()
            })
            .collect()
    }

    #[test]
    fn numbers_are_in_range_spread_and_repeatable() {
        let first = rolls(7);
        assert_eq!(first, rolls(7), "same seed, same numbers");
        assert_ne!(first, rolls(8));
        for face in 0..6 {
            assert!(first.contains(&face.to_string()), "{face} never rolled");
        }
        assert!(first.iter().all(|r| r.parse::<u64>().unwrap() < 6));
    }
}
