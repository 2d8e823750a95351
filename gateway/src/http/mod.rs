//! HTTP termination: the service, routing, forwarding and the one place
//! errors become statuses.

pub mod access_log;
pub mod body;
pub mod error;
mod exchange;
pub mod forward;
pub mod path;
pub mod request_body;
pub mod route;
pub mod service;
mod tunnel;
