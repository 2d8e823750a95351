//! Between `http` types and the header maps filters see: pseudo-headers in,
//! changes applied back out.

use http::header::HOST;
use http::{HeaderMap, HeaderValue};

use super::header_map::Name;
use super::state::Headers;

/// Request headers with `:method`, `:path`, `:authority`, `:scheme` first;
/// `host` becomes `:authority`, as Envoy presents it (the copy a filter's
/// lent fields become, `Headers::lend`).
#[cfg(test)]
pub fn request_headers<B>(req: &http::Request<B>, scheme: &'static str) -> Headers {
    let mut h = Headers::default();
    super::header_map::fill_request_pairs(
        &mut h.pairs,
        req.method(),
        req.uri(),
        req.headers(),
        scheme,
    );
    h
}

/// Response headers with `:status` first.
pub fn response_headers<B>(resp: &http::Response<B>) -> Headers {
    super::instance::headers_of(Some(resp.status()), resp.headers())
}

fn header_map(h: &Headers) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(h.pairs.len());
    for (k, v) in &h.pairs {
        match k {
            Name::Header(name) => {
                map.append(name.clone(), v.clone());
            }
            // Pseudo-headers are not headers; other names never validated.
            Name::Pseudo(_) | Name::Other(_) => {}
        }
    }
    map
}

/// Applies changed request headers: pseudo-headers to method and URI.
pub fn apply_request<B>(h: &Headers, req: &mut http::Request<B>) {
    if !h.dirty {
        return;
    }
    if let Some(m) = h
        .get(":method")
        .and_then(|m| http::Method::from_bytes(m).ok())
    {
        *req.method_mut() = m;
    }
    let authority = h
        .get(":authority")
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec);
    let old = req.uri();
    let mut uri = http::uri::Parts::default();
    if let Some(p) = h
        .get(":path")
        .and_then(|p| http::uri::PathAndQuery::try_from(p).ok())
    {
        uri.path_and_query = Some(p);
    } else {
        uri.path_and_query = old.path_and_query().cloned();
    }
    // Absolute-form stays absolute (HTTP/2); origin-form carries the
    // authority in Host.
    if old.authority().is_some() {
        uri.scheme = old.scheme().cloned();
        uri.authority = authority
            .as_deref()
            .and_then(|a| http::uri::Authority::try_from(a).ok())
            .or(old.authority().cloned());
    }
    if let Ok(u) = http::Uri::from_parts(uri) {
        *req.uri_mut() = u;
    }
    let mut headers = header_map(h);
    if req.version() < http::Version::HTTP_2 || req.uri().authority().is_none() {
        if let Some(a) = authority.and_then(|a| HeaderValue::from_bytes(&a).ok()) {
            headers.insert(HOST, a);
        }
    }
    *req.headers_mut() = headers;
}

/// Applies changed response headers, `:status` included.
pub fn apply_response<B>(h: &Headers, resp: &mut http::Response<B>) {
    if !h.dirty {
        return;
    }
    if let Some(s) = h
        .get(":status")
        .and_then(|s| http::StatusCode::from_bytes(s).ok())
    {
        *resp.status_mut() = s;
    }
    *resp.headers_mut() = header_map(h);
}

/// Trailers as a header map for the body's last frame.
pub fn trailers_map(h: &Headers) -> HeaderMap {
    header_map(h)
}
