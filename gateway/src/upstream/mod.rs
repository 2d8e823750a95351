//! Upstream clusters: endpoints, balancing, health and the client pool.

pub mod callout;
