//! The answers the filter host gives on a filter's behalf or instead of it.

use super::state::LocalResponse;
use crate::http::body::{full, Body};

/// The answer when a filter cannot run and fails closed.
pub(crate) fn failure_response(name: &str) -> http::Response<Body> {
    let mut r = http::Response::new(full(format!("filter `{name}` failed\n")));
    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

pub(crate) fn local_response(lr: LocalResponse) -> http::Response<Body> {
    tracing::debug!(status = lr.status, details = %lr.details, "filter answered locally");
    let mut r = http::Response::new(full(lr.body));
    *r.status_mut() =
        http::StatusCode::from_u16(lr.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    // With room for the two fields the server adds over HTTP/2 (`date`
    // and `content-length`): the map is not grown and rehashed for them.
    *r.headers_mut() = lr.headers;
    r
}

pub(crate) fn status_response(
    status: http::StatusCode,
    body: &'static str,
) -> http::Response<Body> {
    let mut r = http::Response::new(full(body));
    *r.status_mut() = status;
    r
}
