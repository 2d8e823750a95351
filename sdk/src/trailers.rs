//! Trailers: the header fields some messages carry after their body
//! (gRPC's `grpc-status` and `grpc-message`, checksums of uploads).

use crate::abi::MapType;
use crate::host;

/// The trailers of the request or the response being filtered, handed to
/// [`crate::Filter::on_request_trailers`] and
/// [`crate::Filter::on_response_trailers`]. Reads and writes go straight
/// to the host, so the upstream (request) or the client (response) sees
/// every change.
///
/// ```
/// # use gateway_sdk::Trailers;
/// # fn on_response_trailers(trailers: &mut Trailers) {
/// if trailers.get("grpc-status").as_deref() == Some("13") {
///     trailers.set("grpc-message", "internal error");
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Trailers {
    map: MapType,
}

impl Trailers {
    pub(crate) fn request() -> Self {
        Trailers {
            map: MapType::RequestTrailers,
        }
    }

    pub(crate) fn response() -> Self {
        Trailers {
            map: MapType::ResponseTrailers,
        }
    }

    /// The first value of a trailer (names are case-insensitive).
    pub fn get(&self, name: &str) -> Option<String> {
        host::with(|h| h.map_value(self.map, name))
    }

    /// Every trailer, in order.
    pub fn all(&self) -> Vec<(String, String)> {
        host::with(|h| h.map_pairs(self.map))
    }

    /// Adds a trailer value (keeps existing values of the same name).
    pub fn add(&mut self, name: &str, value: &str) {
        host::with(|h| h.map_add(self.map, name, value));
    }

    /// Sets a trailer, replacing any existing values.
    pub fn set(&mut self, name: &str, value: &str) {
        host::with(|h| h.map_replace(self.map, name, value));
    }

    /// Removes every value of a trailer.
    pub fn remove(&mut self, name: &str) {
        host::with(|h| h.map_remove(self.map, name));
    }
}
