//! Handles on the request and response a filter is working on.

use crate::abi::MapType;
use crate::body::{BodyPlan, OverLimit};
use crate::host;

/// Property path the gateway reads to pick the upstream cluster (a gateway
/// extension carried over `proxy_set_property`; other hosts ignore it).
pub const UPSTREAM_PROPERTY: [&str; 2] = ["gateway", "upstream"];

/// Property path of the key a `ring_hash` cluster hashes the request on
/// (a gateway extension; it comes before the cluster's `hash_header` and
/// `hash_cookie`).
pub const HASH_KEY_PROPERTY: [&str; 2] = ["gateway", "hash_key"];

/// Property path of the client's address (`ip:port`), standard in proxy-wasm hosts.
pub const CLIENT_ADDRESS_PROPERTY: [&str; 2] = ["source", "address"];

fn header(map: MapType, name: &str) -> Option<String> {
    host::with(|h| h.map_value(map, name))
}

/// The request being filtered. Reads and writes go straight to the host, so
/// later filters and the upstream see every change.
#[derive(Debug)]
pub struct Request {
    /// Set by [`Request::buffer_body`] during the current hook.
    pub(crate) body_plan: Option<BodyPlan>,
}

impl Request {
    pub(crate) fn new() -> Self {
        Request { body_plan: None }
    }

    /// Buffers this request's body, up to `limit` bytes, and hands it whole
    /// to [`crate::Filter::on_request_body`]; beyond `limit`, `over_limit`
    /// decides (pass it through untouched, or answer 413). Call it from
    /// `on_request` (or a callout's continuation); without it the body
    /// streams to the upstream untouched and the body hook does not run.
    ///
    /// The request's `content-length` is removed (the body may change size;
    /// the gateway sets the right one again when it forwards a whole body).
    /// The gateway's own `body_buffer_limit` for the filter caps `limit`.
    pub fn buffer_body(&mut self, limit: usize, over_limit: OverLimit) {
        self.body_plan = Some(BodyPlan::Buffer { limit, over_limit });
    }

    /// The method (`:method`), e.g. `GET`.
    pub fn method(&self) -> String {
        self.header(":method").unwrap_or_default()
    }

    /// The path without the query string, e.g. `/ping` for `/ping?x=1`.
    pub fn path(&self) -> String {
        let full = self.path_and_query();
        match full.split_once('?') {
            Some((path, _)) => path.to_string(),
            None => full,
        }
    }

    /// The query string without the `?`, if there is one.
    pub fn query(&self) -> Option<String> {
        self.path_and_query()
            .split_once('?')
            .map(|(_, q)| q.to_string())
    }

    /// The raw `:path` pseudo-header: path and query.
    pub fn path_and_query(&self) -> String {
        self.header(":path").unwrap_or_default()
    }

    /// The authority (`:authority`, else the `host` header), port included if sent.
    pub fn authority(&self) -> Option<String> {
        self.header(":authority").or_else(|| self.header("host"))
    }

    /// The first value of a header (names are case-insensitive on the host).
    pub fn header(&self, name: &str) -> Option<String> {
        header(MapType::RequestHeaders, name)
    }

    /// All headers, pseudo-headers (`:path`, ...) included, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        host::with(|h| h.map_pairs(MapType::RequestHeaders))
    }

    /// The client's address (`ip:port`), from the `source.address` property.
    pub fn client_address(&self) -> Option<String> {
        self.property(&CLIENT_ADDRESS_PROPERTY)
            .map(crate::abi::lossy_owned)
    }

    /// Any host property, by path segments (e.g. `["request", "id"]`).
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        host::with(|h| h.property(path))
    }

    /// Adds a header value (keeps existing values of the same name).
    pub fn add_header(&mut self, name: &str, value: &str) {
        host::with(|h| h.map_add(MapType::RequestHeaders, name, value));
    }

    /// Sets a header, replacing any existing values.
    pub fn set_header(&mut self, name: &str, value: &str) {
        host::with(|h| h.map_replace(MapType::RequestHeaders, name, value));
    }

    /// Removes every value of a header.
    pub fn remove_header(&mut self, name: &str) {
        host::with(|h| h.map_remove(MapType::RequestHeaders, name));
    }

    /// Rewrites the path (and query) sent upstream: sets `:path`.
    pub fn set_path(&mut self, path_and_query: &str) {
        self.set_header(":path", path_and_query);
    }

    /// Routes the request to the named upstream cluster (sets the
    /// [`UPSTREAM_PROPERTY`]). Returns false if the host refused.
    pub fn set_upstream(&mut self, cluster: &str) -> bool {
        host::with(|h| h.set_property(&UPSTREAM_PROPERTY, cluster.as_bytes())).is_ok()
    }

    /// Sets the key a `balance = "ring_hash"` cluster hashes this request
    /// on (the [`HASH_KEY_PROPERTY`]): requests with the same key reach the
    /// same endpoint. Returns false if the host refused.
    pub fn set_hash_key(&mut self, key: &str) -> bool {
        host::with(|h| h.set_property(&HASH_KEY_PROPERTY, key.as_bytes())).is_ok()
    }
}

/// The upstream's response being filtered.
#[derive(Debug)]
pub struct Response {
    /// Set by [`Response::buffer_body`] during the current hook.
    pub(crate) body_plan: Option<BodyPlan>,
}

impl Response {
    pub(crate) fn new() -> Self {
        Response { body_plan: None }
    }

    /// Buffers this response's body, up to `limit` bytes, and hands it whole
    /// to [`crate::Filter::on_response_body`]; beyond `limit`, `over_limit`
    /// decides (pass it through untouched, or replace the response with
    /// 502). Call it from `on_response`, typically after looking at
    /// `content-type`; without it the body streams to the client untouched.
    ///
    /// ```
    /// # use gateway_sdk::{OverLimit, Response, ResponseDecision};
    /// # fn on_response(response: &mut Response) -> ResponseDecision {
    /// if response.header("content-type").is_some_and(|t| t.starts_with("application/json")) {
    ///     response.buffer_body(256 * 1024, OverLimit::PassThrough);
    /// }
    /// ResponseDecision::Continue
    /// # }
    /// ```
    ///
    /// The response's `content-length` is removed (the body may change size;
    /// the gateway sets the right one again when it sends a whole body).
    /// The gateway's own `body_buffer_limit` for the filter caps `limit`.
    pub fn buffer_body(&mut self, limit: usize, over_limit: OverLimit) {
        self.body_plan = Some(BodyPlan::Buffer { limit, over_limit });
    }

    /// The status code (`:status`), if the host gave a valid one.
    pub fn status(&self) -> Option<u16> {
        self.header(":status")?.parse().ok()
    }

    /// Changes the status code the client sees (sets `:status`).
    pub fn set_status(&mut self, status: u16) {
        self.set_header(":status", &status.to_string());
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        header(MapType::ResponseHeaders, name)
    }

    /// A header of the request this response answers (hosts keep request
    /// headers readable in the response phase).
    pub fn request_header(&self, name: &str) -> Option<String> {
        header(MapType::RequestHeaders, name)
    }

    /// All headers, `:status` included, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        host::with(|h| h.map_pairs(MapType::ResponseHeaders))
    }

    /// Adds a header value.
    pub fn add_header(&mut self, name: &str, value: &str) {
        host::with(|h| h.map_add(MapType::ResponseHeaders, name, value));
    }

    /// Sets a header, replacing any existing values.
    pub fn set_header(&mut self, name: &str, value: &str) {
        host::with(|h| h.map_replace(MapType::ResponseHeaders, name, value));
    }

    /// Removes every value of a header.
    pub fn remove_header(&mut self, name: &str) {
        host::with(|h| h.map_remove(MapType::ResponseHeaders, name));
    }
}
