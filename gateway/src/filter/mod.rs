//! The filter host: proxy-wasm (ABI v0.2.1, also 0.2.0) modules run in
//! wasmtime, one chain of filters per listener or route.
//!
//! The HTTP core loads a [`FilterChain`] off the request path, then for
//! each request calls [`FilterChain::start`], [`ChainRun::on_request`],
//! [`ChainRun::on_response`] and [`ChainRun::finish`]. What the guest can
//! do is documented in `docs/abi.md`.

mod abi;
mod answers;
mod body;
mod body_walk;
mod cache;
mod chain;
mod clusters;
mod convert;
mod core;
mod declared;
mod engine;
mod exports;
mod folder;
mod header_map;
mod instance;
mod loading;
mod metrics;
mod pool;
mod probe;
mod properties;
mod shared_data;
mod state;
mod tasks;

#[cfg(test)]
mod tests;

/// What services (`crate::service`) reuse to run a module outside any
/// chain: the same engine, code, instances, limits and folder reading.
pub(crate) mod hosting {
    pub(crate) use super::engine::FilterHost;
    pub(crate) use super::folder::{
        is_module, listing, read_capped, sidecar_config, Capped, MAX_SIDECAR,
    };
    pub(crate) use super::instance::InstanceCell;
    pub(crate) use super::pool::FilterCode;
    pub(crate) use super::state::ROOT_CONTEXT;
}

pub use abi::{decode_pairs, encode_pairs};
pub use chain::{ChainRun, FilterChain};
pub use engine::FilterHost;
pub use folder::{modules as folder_modules, FilterFolder};
pub use instance::GuestFault;
pub use loading::LoadedSet;
pub use metrics::{MetricKind, MetricSnapshot};
pub use pool::FilterStatus;
pub use probe::{inspect, FilterReport, ImportReport, LogLine, MemoryReport};
pub use state::RequestMeta;

/// A callout's outcome as the filter host sees it.
pub(crate) type CalloutResult =
    Result<crate::upstream::callout::CalloutResponse, crate::upstream::callout::CalloutError>;
