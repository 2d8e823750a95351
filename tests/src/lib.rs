//! The integration-test harness: start the real gateway binary on port 0
//! with a generated config, real upstream servers that record what they
//! received, and small HTTP/1.1 and HTTP/2 clients.
//!
//! ```no_run
//! # async fn demo() {
//! use gateway_tests::{Gateway, Upstream};
//! let upstream = Upstream::start("a").await;
//! let gateway = Gateway::start(&format!(r#"
//!     [[listener]]
//!     name = "web"
//!     protocol = "http"
//!     address = "127.0.0.1:0"
//!     [[listener.route]]
//!     path_prefix = "/"
//!     cluster = "c"
//!     [[cluster]]
//!     name = "c"
//!     endpoints = ["{}"]
//! "#, upstream.addr)).await;
//! let mut client = gateway.http1("web").await;
//! assert_eq!(client.get("/").await.text(), "a");
//! # }
//! ```

pub mod assemblyscript;
mod client;
pub mod collector;
mod faulty;
mod gateway;
pub mod grpc;
mod metrics;
pub mod redis;
pub mod tls;
mod upstream;
pub mod wasm;

pub use client::{Http1Client, Http2Client, Reply};
pub use faulty::{one_route_config, Fault, FaultyUpstream, Got};
pub use gateway::{binary, check_config, Gateway};
pub use metrics::Scrape;
pub use redis::RedisServer;
pub use upstream::{Received, Upstream};

/// How long any single wait in a test may take before it fails.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A config with one `http` listener `web` (with `http`, lines of its
/// `[listener.http]` table) routing everything to cluster `up` at
/// `upstream`.
pub fn web_to(upstream: std::net::SocketAddr, http: &str) -> String {
    format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [listener.http]
        {http}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{upstream}"]
        "#
    )
}
