//! Handles on the request and response a filter is working on.

use crate::abi::{BufferType, MapType};
use crate::host;

/// Property path the gateway reads to pick the upstream cluster (a gateway
/// extension carried over `proxy_set_property`; other hosts ignore it).
pub const UPSTREAM_PROPERTY: [&str; 2] = ["gateway", "upstream"];

/// Property path of the client's address (`ip:port`), standard in proxy-wasm hosts.
pub const CLIENT_ADDRESS_PROPERTY: [&str; 2] = ["source", "address"];

fn header(map: MapType, name: &str) -> Option<String> {
    host::with(|h| h.map_value(map, name))
}

/// The request being filtered. Reads and writes go straight to the host, so
/// later filters and the upstream see every change.
#[derive(Debug)]
pub struct Request {
    _private: (),
}

impl Request {
    pub(crate) fn new() -> Self {
        Request { _private: () }
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
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
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
}

/// The upstream's response being filtered.
#[derive(Debug)]
pub struct Response {
    _private: (),
}

impl Response {
    pub(crate) fn new() -> Self {
        Response { _private: () }
    }

    /// The status code (`:status`), if the host gave a valid one.
    pub fn status(&self) -> Option<u16> {
        self.header(":status")?.parse().ok()
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

/// A whole, buffered request or response body. Changes are written back to the
/// host when the hook returns.
#[derive(Debug, Default)]
pub struct Body {
    bytes: Vec<u8>,
    changed: bool,
}

impl Body {
    pub(crate) fn read(buffer: BufferType, size: usize) -> Self {
        let bytes = host::with(|h| h.buffer(buffer, 0, size)).unwrap_or_default();
        Body {
            bytes,
            changed: false,
        }
    }

    pub(crate) fn write_back(self, buffer: BufferType, old_size: usize) {
        if self.changed {
            let _ = host::with(|h| h.set_buffer(buffer, 0, old_size, &self.bytes));
        }
    }

    /// The body bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The body as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }

    /// Replaces the whole body.
    pub fn replace(&mut self, bytes: impl Into<Vec<u8>>) {
        self.bytes = bytes.into();
        self.changed = true;
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the body is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}
