//! Runnable pieces of the gateway's seed scenario.
//!
//! The crate holds no library code: its binaries are the demo upstreams.
//! `pingpong` (in `src/bin/pingpong.rs`) answers `/ping` with the port it
//! was reached on, which makes per-request (L7) versus per-connection (L4)
//! balancing visible from the client side. `examples/demo.sh` runs the
//! whole scenario.
