//! The gateway library: everything the `gateway` binary runs.

pub mod http;
pub mod upstream;
