//! The gateway library: everything the `gateway` binary runs.

pub mod config;
pub mod filter;
pub mod http;
pub mod upstream;
