//! Write gateway filters in plain Rust.
//!
//! A filter is a type implementing [`Filter`]; [`export_filter!`] turns it into
//! a WebAssembly module speaking the proxy-wasm ABI v0.2.1 (the ABI of Envoy),
//! so it loads in this gateway and in any proxy-wasm host. Contexts, ids and
//! pause/resume bookkeeping stay inside the SDK. This one answers `/ping` and
//! sends everything else to the `backend` cluster:
//!
//! ```
//! use gateway_sdk::{Decision, Filter, Request};
//! use std::rc::Rc;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { cluster: String }
//!
//! struct Ping { config: Rc<Config> }
//!
//! impl Filter for Ping {
//!     type Config = Config;
//!     fn new(config: &Rc<Config>) -> Self { Ping { config: config.clone() } }
//!     fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
//!         if request.path() == "/ping" {
//!             return Decision::respond(200, "pong");
//!         }
//!         request.set_upstream(&self.config.cluster);
//!         Decision::Continue
//!     }
//! }
//! gateway_sdk::export_filter!(Ping);
//! # let mut test = gateway_sdk::testing::FilterTest::<Ping>::new(r#"{"cluster": "backend"}"#).unwrap();
//! # assert_eq!(test.request(gateway_sdk::testing::TestRequest::get("/ping")).local_response().unwrap().status, 200);
//! ```
//!
//! Work outside requests (refreshing a deny list for the filters, draining a
//! queue they fill) is a [`Service`], exported with [`export_service!`]: the
//! gateway runs it once per process (see `docs/services.md`).
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown` and
//! drop the `.wasm` into the gateway's filter folder (see the README). Test it
//! natively with [`testing`].
//!
//! What the SDK puts on the wire, for hosts and reviewers:
//! - the module exports `proxy_abi_version_0_2_1`, `proxy_on_memory_allocate`
//!   and the `proxy_on_*` HTTP callbacks, and imports hostcalls from `env`
//!   (and WASI `random_get` only when [`random`] is used);
//! - [`Request::set_upstream`] sets the property `gateway.upstream`
//!   (path `["gateway", "upstream"]`, segments joined by NUL on the wire);
//! - [`Request::set_hash_key`] sets the property `gateway.hash_key`
//!   (path `["gateway", "hash_key"]`), the key of consistent hashing;
//! - [`Request::client_address`] reads the standard property `source.address`;
//! - the plugin configuration is parsed once in `proxy_on_configure`
//!   ([`config`] describes the formats); an invalid one returns false.
//! - a panic is logged at `Critical` through `proxy_log`, then traps (wasm32
//!   aborts on panic), which the host contains.
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![deny(unsafe_code)]

// Some wire constants are only used by the wasm32 host.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod abi;
mod body;
mod callout;
pub mod clusters;
pub mod config;
mod export;
mod filter;
mod hooks;
mod host;
mod http;
pub mod log;
pub mod metrics;
pub mod queue;
pub mod random;
#[cfg(feature = "json")]
pub mod redis;
mod runtime;
pub mod service;
mod service_export;
mod service_runtime;
pub mod shared;
// Registered as the global allocator on wasm32 only; tested everywhere.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod small_blocks;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;
mod trailers;
#[cfg(target_arch = "wasm32")]
mod wasm;

/// Small blocks from per-size free lists in front of the standard allocator
/// (see the `allocator` feature).
#[cfg(all(
    target_arch = "wasm32",
    feature = "allocator",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: small_blocks::SmallBlocks = small_blocks::SmallBlocks::new();

pub use body::{Body, OverLimit};
pub use callout::{Callout, CalloutRequest, CalloutResponse};
pub use filter::{Decision, Filter, LocalResponse, PreparedResponse, ResponseDecision};
pub use hooks::Hooks;
pub use http::{Request, Response, CLIENT_ADDRESS_PROPERTY, HASH_KEY_PROPERTY, UPSTREAM_PROPERTY};
pub use log::LogLevel;
pub use queue::Queue;
pub use service::Service;
pub use trailers::Trailers;

/// Used by [`export_filter!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::hooks::{effective, section, section_len};
    pub use crate::runtime::Runtime;
    pub use crate::service_runtime::ServiceRuntime;
}

// The README's Rust blocks compile as doctests, so its example cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
