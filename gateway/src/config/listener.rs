//! `[[listener]]`: where the gateway accepts connections, and what it does
//! with the requests on them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::filter::FilterConfig;
use super::tls::{ListenerTlsConfig, SniRouteConfig, TcpProxyConfig};

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 and HTTP/2 (prior knowledge) in cleartext on one port.
    Http,
    /// HTTP over TLS, HTTP/2 negotiated by ALPN.
    Https,
    /// Plain TCP forwarded to a cluster, balanced per connection.
    Tcp,
}

/// One listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, used in logs, metrics and the address file.
    pub name: String,
    pub protocol: Protocol,
    /// `ip:port`; port 0 picks a free port (reported in the log and the
    /// address file).
    pub address: SocketAddr,
    /// Connections served at once; further clients wait in the backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// HTTP limits and timeouts (`http` and `https` listeners).
    #[serde(default)]
    pub http: HttpLimitsConfig,
    /// The filter chain every request on this listener goes through, in order.
    #[serde(default, rename = "filter")]
    pub filters: Vec<FilterConfig>,
    /// A folder whose `*.wasm` files make a filter chain, in file-name
    /// order, run after `filter`; watched, reloaded on change.
    #[serde(default)]
    pub filters_dir: Option<std::path::PathBuf>,
    /// How often the folder is also polled, for file systems without
    /// change events ("0s": events only).
    #[serde(default = "default_filters_poll", with = "crate::config::duration")]
    pub filters_poll: Duration,
    /// The route table, first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// For `tcp` listeners: the cluster connections are forwarded to.
    #[serde(default)]
    pub cluster: Option<Spanned<String>>,
    /// L4 forwarding settings (`tcp` listeners).
    #[serde(default)]
    pub tcp: TcpProxyConfig,
    /// TLS passthrough by server name (`tcp` listeners); `cluster` is the
    /// default.
    #[serde(default)]
    pub sni: Vec<SniRouteConfig>,
    /// TLS termination (`https` listeners).
    #[serde(default)]
    pub tls: Option<ListenerTlsConfig>,
}

fn default_filters_poll() -> Duration {
    Duration::from_secs(1)
}

fn default_max_connections() -> usize {
    10_000
}

/// `[listener.http]`: limits with safe defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimitsConfig {
    /// Time allowed for a request's headers to arrive. On HTTP/1.1 the
    /// clock starts when the connection is waiting for a request, so it
    /// also bounds how long a keep-alive connection may sit idle.
    #[serde(with = "crate::config::duration")]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// Longest wait between two reads of a request body (nginx's
    /// `client_body_timeout`); over it: 408.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// The whole request (head and body) must have arrived within this
    /// (HAProxy's `timeout http-request`); over it: 408.
    #[serde(with = "humantime_serde")]
    pub request_read_timeout: Duration,
    /// Longest a write to the client may wait for the client to read
    /// (nginx's `send_timeout`); then the connection is closed. 0s: no limit.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// An upgraded connection (WebSocket) with no byte either way for this
    /// long is closed (HAProxy's `timeout tunnel`). 0s: no limit.
    #[serde(with = "humantime_serde")]
    pub tunnel_idle_timeout: Duration,
    /// HTTP/2 PING sent after this long without a frame from the client; a
    /// client that does not answer within `h2_keepalive_timeout` is
    /// disconnected. 0s (the default, as in nginx, HAProxy and Envoy): no
    /// PINGs; a vanished client is still noticed by `tcp_keepalive`, and an
    /// idle one closed by `idle_timeout`. On, hyper takes a lock and reads
    /// the clock for every request of the connection.
    #[serde(with = "humantime_serde")]
    pub h2_keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub h2_keepalive_timeout: Duration,
    /// TCP keepalive probes after this long without traffic, so a peer that
    /// vanished without a FIN or RST is noticed. 0s: off.
    #[serde(with = "humantime_serde")]
    pub tcp_keepalive: Duration,
    /// Normalise request paths before routing (dot segments, merged
    /// slashes, unreserved escapes decoded); routes, filters and the
    /// upstream all see the normal form. Off: paths are used as received.
    pub normalize_path: bool,
    /// Largest request head (request line and headers) in bytes; larger
    /// gets 431. Minimum 8192.
    pub max_header_bytes: usize,
    /// Most request headers; more gets 431.
    pub max_headers: usize,
    /// HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 initial stream window in bytes.
    pub h2_stream_window: u32,
    /// HTTP/2 initial connection window in bytes.
    pub h2_connection_window: u32,
}

impl Default for HttpLimitsConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            request_read_timeout: Duration::from_secs(300),
            send_timeout: Duration::from_secs(60),
            tunnel_idle_timeout: Duration::from_secs(3600),
            h2_keepalive_interval: Duration::ZERO,
            h2_keepalive_timeout: Duration::from_secs(20),
            tcp_keepalive: Duration::from_secs(60),
            normalize_path: true,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            h2_max_concurrent_streams: 100,
            h2_stream_window: 256 * 1024,
            h2_connection_window: 1024 * 1024,
        }
    }
}

/// `[[listener.route]]`: a match and what to do with what matches.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name for logs and metrics; defaults to the match.
    #[serde(default)]
    pub name: Option<String>,
    /// Exact path (without query).
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix, matched on whole segments: `/api` matches `/api` and
    /// `/api/x`, not `/apix`; a prefix ending in `/` matches every path
    /// starting with it, so `/` matches everything.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Host (without port), compared case-insensitively; `*.example.com`
    /// matches every host ending in `.example.com`.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    /// HTTP method.
    #[serde(default)]
    pub method: Option<String>,
    /// Forward to this cluster...
    #[serde(default)]
    pub cluster: Option<Spanned<String>>,
    /// ...or answer directly.
    #[serde(default)]
    pub direct: Option<DirectResponseConfig>,
    /// Overrides the cluster's request timeout for this route.
    #[serde(default, with = "crate::config::duration::option")]
    pub timeout: Option<Duration>,
    /// This route's retry policy, replacing the cluster's `[cluster.retry]`.
    #[serde(default)]
    pub retry: Option<super::RetryConfig>,
    /// Filters run for this route only, after the listener's chain.
    #[serde(default, rename = "filter")]
    pub filters: Vec<FilterConfig>,
}

/// `[listener.route.direct]`: a response the gateway gives itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponseConfig {
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".to_string()
}

impl RouteConfig {
    /// The name used in logs: the configured one or the match.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match (&self.path, &self.path_prefix) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => format!("{p}*"),
            (None, None) => "*".to_string(),
        }
    }
}
