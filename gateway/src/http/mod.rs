//! HTTP termination: the service, routing, forwarding and the one place
//! errors become statuses.

pub mod body;
