//! HTTP termination: the service, routing, forwarding and the one place
//! errors become statuses.

pub mod access_log;
pub(crate) mod attempts;
pub mod body;
pub mod error;
mod exchange;
pub mod forward;
mod grpc;
mod head;
pub mod path;
mod replay;
pub mod request_body;
pub mod route;
pub mod service;
mod tunnel;
