//! The requests and responses a test feeds to a filter.

/// A request to send through a filter under test.
#[derive(Clone, Debug)]
pub struct TestRequest {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) authority: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) client_address: String,
    pub(super) body: Option<Vec<u8>>,
    pub(super) chunk: usize,
    pub(super) trailers: Vec<(String, String)>,
}

impl TestRequest {
    /// A request with `method` for `path` (query included), authority
    /// `example.com`, from client `127.0.0.1:40000`.
    pub fn new(method: &str, path: &str) -> Self {
        TestRequest {
            method: method.to_string(),
            path: path.to_string(),
            authority: "example.com".to_string(),
            headers: Vec::new(),
            client_address: "127.0.0.1:40000".to_string(),
            body: None,
            chunk: usize::MAX,
            trailers: Vec::new(),
        }
    }

    /// A `GET`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A `POST`.
    pub fn post(path: &str) -> Self {
        Self::new("POST", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Adds a trailer, sent after the body (as gRPC clients and some
    /// uploads do): [`crate::Filter::on_request_trailers`] runs.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the authority (`:authority`).
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = authority.to_string();
        self
    }

    /// Sets the client address (`ip:port`) seen in `source.address`.
    pub fn client_address(mut self, address: &str) -> Self {
        self.client_address = address.to_string();
        self
    }

    /// Gives the request a body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Delivers the body in chunks of `bytes` (default: one chunk), as it
    /// arrives from a network.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = bytes;
        self
    }
}

/// An upstream response (or callout answer) to feed to a filter under test.
#[derive(Clone, Debug)]
pub struct TestResponse {
    status: u16,
    headers: Vec<(String, String)>,
    pub(super) body: Option<Vec<u8>>,
    pub(super) chunk: usize,
    pub(super) trailers: Vec<(String, String)>,
}

impl TestResponse {
    /// A response with `status` and no body.
    pub fn new(status: u16) -> Self {
        TestResponse {
            status,
            headers: Vec::new(),
            body: None,
            chunk: usize::MAX,
            trailers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Adds a trailer, sent after the body (gRPC's `grpc-status`):
    /// [`crate::Filter::on_response_trailers`] runs.
    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Gives the response a body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Delivers the body in chunks of `bytes` (default: one chunk), as it
    /// arrives from a network.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk = bytes;
        self
    }

    pub(super) fn header_list(&self) -> Vec<(String, String)> {
        let mut headers = vec![(":status".to_string(), self.status.to_string())];
        headers.extend(self.headers.iter().cloned());
        headers
    }
}
