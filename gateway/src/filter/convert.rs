//! Between `http` types and the header maps filters see: pseudo-headers in,
//! changes applied back out.

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::state::Headers;

/// Request headers with `:method`, `:path`, `:authority`, `:scheme` first;
/// `host` becomes `:authority`, as Envoy presents it.
pub fn request_headers(parts: &http::request::Parts, scheme: &str) -> Headers {
    let mut pairs = Vec::with_capacity(parts.headers.len() + 4);
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().as_bytes().to_vec())
        .or_else(|| parts.headers.get(HOST).map(|h| h.as_bytes().to_vec()))
        .unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    pairs.push((
        ":method".to_string(),
        parts.method.as_str().as_bytes().to_vec(),
    ));
    pairs.push((":path".to_string(), path.as_bytes().to_vec()));
    pairs.push((":authority".to_string(), authority));
    pairs.push((
        ":scheme".to_string(),
        // The listener's scheme: a client cannot claim `https` over
        // cleartext by writing it into the request-target.
        scheme.as_bytes().to_vec(),
    ));
    for (k, v) in parts.headers.iter().filter(|(k, _)| *k != HOST) {
        pairs.push((k.as_str().to_string(), v.as_bytes().to_vec()));
    }
    Headers {
        pairs,
        dirty: false,
    }
}

/// Response headers with `:status` first.
pub fn response_headers(parts: &http::response::Parts) -> Headers {
    super::instance::headers_of(Some(parts.status), &parts.headers)
}

fn header_map(h: &Headers) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(h.pairs.len());
    for (k, v) in h.pairs.iter().filter(|(k, _)| !k.starts_with(':')) {
        // Hostcalls validated names and values; anything else is dropped.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Applies changed request headers: pseudo-headers to method and URI.
pub fn apply_request(h: &Headers, parts: &mut http::request::Parts) {
    if !h.dirty {
        return;
    }
    if let Some(m) = h
        .get(":method")
        .and_then(|m| http::Method::from_bytes(m).ok())
    {
        parts.method = m;
    }
    let authority = h
        .get(":authority")
        .filter(|a| !a.is_empty())
        .map(<[u8]>::to_vec);
    let mut uri = http::uri::Parts::default();
    if let Some(p) = h
        .get(":path")
        .and_then(|p| http::uri::PathAndQuery::try_from(p).ok())
    {
        uri.path_and_query = Some(p);
    } else {
        uri.path_and_query = parts.uri.path_and_query().cloned();
    }
    // Absolute-form stays absolute (HTTP/2); origin-form carries the
    // authority in Host.
    if parts.uri.authority().is_some() {
        uri.scheme = parts.uri.scheme().cloned();
        uri.authority = authority
            .as_deref()
            .and_then(|a| http::uri::Authority::try_from(a).ok())
            .or(parts.uri.authority().cloned());
    }
    if let Ok(u) = http::Uri::from_parts(uri) {
        parts.uri = u;
    }
    let mut headers = header_map(h);
    if parts.version < http::Version::HTTP_2 || parts.uri.authority().is_none() {
        if let Some(a) = authority.and_then(|a| HeaderValue::from_bytes(&a).ok()) {
            headers.insert(HOST, a);
        }
    }
    parts.headers = headers;
}

/// Applies changed response headers, `:status` included.
pub fn apply_response(h: &Headers, parts: &mut http::response::Parts) {
    if !h.dirty {
        return;
    }
    if let Some(s) = h
        .get(":status")
        .and_then(|s| http::StatusCode::from_bytes(s).ok())
    {
        parts.status = s;
    }
    parts.headers = header_map(h);
}

/// Trailers as a header map for the body's last frame.
pub fn trailers_map(h: &Headers) -> HeaderMap {
    header_map(h)
}
