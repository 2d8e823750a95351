//! Turning a downstream request into an upstream one and back: hop-by-hop
//! headers (`TE: trailers` kept, for gRPC), X-Forwarded-*, HTTP/2 to
//! HTTP/1.1 translation, upgrades.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri, Version};

use crate::http::body::Body;
use crate::upstream::{list_tokens, AddedFields};

/// Whether `name` describes one hop and never crosses the gateway:
/// `Connection`, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`,
/// `Upgrade` and any `Proxy-*` header.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || {
            let name = name.as_str();
            name == "keep-alive" || name.starts_with("proxy-")
        }
}

/// Removes hop-by-hop headers, including those `Connection` names and any
/// `Proxy-*` header. One look at the names finds them all: most messages
/// carry none, and then nothing is hashed, removed or allocated; most of
/// the others carry only `Connection: keep-alive` or `close`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut found: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_hop_by_hop(k))
        .cloned()
        .collect();
    if found.is_empty() {
        return;
    }
    // The fields `Connection` names (RFC 9110 §7.6.1), other than the
    // options that name no field.
    if found.contains(&header::CONNECTION) {
        for token in headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| list_tokens(v.as_bytes()))
        {
            if token.is_empty()
                || token.eq_ignore_ascii_case(b"close")
                || token.eq_ignore_ascii_case(b"keep-alive")
            {
                continue;
            }
            if let Some(name) = headers
                .keys()
                .find(|k| k.as_str().as_bytes().eq_ignore_ascii_case(token))
            {
                found.push(name.clone());
            }
        }
    }
    for name in found {
        headers.remove(name);
    }
}

/// The protocol a request asks to switch to (`Upgrade`), HTTP/1.1 only.
pub fn upgrade_protocol(req: &Request<Body>) -> Option<HeaderValue> {
    if req.version() != Version::HTTP_11 {
        return None;
    }
    let asks = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| list_tokens(v.as_bytes()))
        .any(|t| t.eq_ignore_ascii_case(b"upgrade"));
    asks.then(|| req.headers().get(header::UPGRADE).cloned())
        .flatten()
}

/// Who the downstream is, for X-Forwarded-*.
pub struct Forwarded<'a> {
    /// The client's IP, as a header value (built once per connection).
    pub client: &'a HeaderValue,
    pub scheme: &'static str,
    /// The request's authority, as a field value.
    pub host: Option<&'a HeaderValue>,
}

/// Rewrites `req` in place for an HTTP/1.1 upstream; the X-Forwarded-*
/// fields it is to carry are returned beside it (see [`AddedFields`]).
pub fn to_upstream(
    req: &mut Request<Body>,
    forwarded: &Forwarded<'_>,
    upgrade: Option<HeaderValue>,
) -> AddedFields {
    // Origin form for the upstream; a URI already in it is kept as is.
    let authority = match req.uri().authority() {
        None => None,
        Some(a) => {
            let authority = a.as_str().to_owned();
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            *req.uri_mut() = Uri::try_from(path).unwrap_or_else(|_| Uri::from_static("/"));
            Some(authority)
        }
    };
    let from_h2 = req.version() == Version::HTTP_2;
    *req.version_mut() = Version::HTTP_11;

    let headers = req.headers_mut();
    let trailers = upgrade.is_none() && accepts_trailers(headers);
    strip_hop_by_hop(headers);
    if trailers {
        // As Envoy does: of TE, only `trailers` crosses (gRPC needs it on
        // HTTP/2; the HTTP/1.1 upstream path drops it again).
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if from_h2 {
        join_cookies(headers);
    }
    // The request-target's authority wins over a Host header (RFC 9112
    // §3.2.2): the upstream gets the authority routing and filters saw.
    if let Some(value) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
        headers.insert(header::HOST, value);
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    forwarded_fields(headers, forwarded)
}

/// X-Forwarded-For, -Proto and -Host: ours appended to the client's first
/// field of each name, if it sent one (one pass over the fields, no hash).
fn forwarded_fields(headers: &HeaderMap, forwarded: &Forwarded<'_>) -> AddedFields {
    let names = [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST];
    let mut sent: [Option<&HeaderValue>; 3] = [None; 3];
    for (name, value) in headers {
        if let Some(i) = names.iter().position(|n| n == name) {
            sent[i].get_or_insert(value);
        }
    }
    let ours = [
        Some(forwarded.client.clone()),
        Some(HeaderValue::from_static(forwarded.scheme)),
        forwarded.host.cloned(),
    ];
    let mut added = AddedFields::default();
    for ((name, sent), ours) in names.into_iter().zip(sent).zip(ours) {
        if let Some(ours) = ours {
            added.push(name, appended(sent, ours));
        }
    }
    added
}

/// `ours` appended to the comma-separated list `sent`, if there is one.
/// A list that cannot take it (not a valid value joined) stays as sent.
fn appended(sent: Option<&HeaderValue>, ours: HeaderValue) -> HeaderValue {
    let Some(sent) = sent else {
        return ours;
    };
    let mut joined = Vec::with_capacity(sent.len() + 2 + ours.len());
    joined.extend_from_slice(sent.as_bytes());
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(ours.as_bytes());
    HeaderValue::from_bytes(&joined).unwrap_or_else(|_| sent.clone())
}

/// Whether the client said it accepts trailers (`TE: trailers`).
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .flat_map(|v| list_tokens(v.as_bytes()))
        .any(|t| {
            let coding = t
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            coding.eq_ignore_ascii_case(b"trailers")
        })
}

/// Cleans an upstream response for the downstream.
pub fn from_upstream<B>(resp: &mut Response<B>, upgraded: bool) {
    let upgrade = upgraded
        .then(|| resp.headers().get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(resp.headers_mut());
    if let Some(protocol) = upgrade {
        let headers = resp.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// HTTP/2 may split `cookie` into several fields; HTTP/1.1 wants one
/// (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if cookies.len() > 1 {
        if let Ok(v) = HeaderValue::from_str(&cookies.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body;
    use std::net::SocketAddr;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn a_connection_option_naming_no_field_removes_only_connection() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("close"));
        h.append(
            header::CONNECTION,
            HeaderValue::from_static("Upgrade, , X-Listed"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-listed", HeaderValue::from_static("1"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("4"));
        h.insert("x-close", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "x-close"]);

        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn h2_request_becomes_origin_form_h11_with_host_and_forwarded_headers() {
        let mut req = Request::builder()
            .version(Version::HTTP_2)
            .uri("http://example.com:8000/a?b=1")
            .header("x-forwarded-for", "10.0.0.1")
            .header(header::COOKIE, "a=1")
            .header(header::COOKIE, "b=2")
            .body(body::empty())
            .expect("request");
        let client: SocketAddr = "127.0.0.7:5000".parse().expect("addr");
        let client = crate::http::service::forwarded_for(client);
        let added = to_upstream(
            &mut req,
            &Forwarded {
                client: &client,
                scheme: "http",
                host: Some(&HeaderValue::from_static("example.com:8000")),
            },
            None,
        );
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri(), "/a?b=1");
        let h = req.headers();
        assert_eq!(h["host"], "example.com:8000");
        assert_eq!(h["cookie"], "a=1; b=2");
        let added = |name| added.get(name).map(|v| v.to_str().expect("ascii"));
        assert_eq!(added("x-forwarded-for"), Some("10.0.0.1, 127.0.0.7"));
        assert_eq!(added("x-forwarded-proto"), Some("http"));
        assert_eq!(added("x-forwarded-host"), Some("example.com:8000"));
    }

    #[test]
    fn forwarded_fields_append_to_the_clients_first_field_of_each_name() {
        let client = HeaderValue::from_static("127.0.0.9");
        let fields = |sent: &[(&'static str, &'static str)], host: Option<&'static str>| {
            let host = host.map(HeaderValue::from_static);
            let mut h = HeaderMap::new();
            for (name, value) in sent {
                h.append(*name, HeaderValue::from_static(value));
            }
            let f = Forwarded {
                client: &client,
                scheme: "https",
                host: host.as_ref(),
            };
            let added = forwarded_fields(&h, &f);
            added
                .iter()
                .map(|(n, v)| format!("{n}: {}", v.to_str().expect("ascii")))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(&[], None),
            ["x-forwarded-for: 127.0.0.9", "x-forwarded-proto: https"]
        );
        assert_eq!(
            fields(
                &[
                    ("x-forwarded-proto", "http"),
                    ("x-forwarded-for", "10.0.0.1"),
                    ("x-forwarded-for", "10.0.0.2"),
                    ("x-forwarded-host", "a.example"),
                ],
                Some("b.example")
            ),
            [
                "x-forwarded-for: 10.0.0.1, 127.0.0.9",
                "x-forwarded-proto: http, https",
                "x-forwarded-host: a.example, b.example"
            ]
        );
    }

    #[test]
    fn of_te_only_trailers_crosses_and_not_on_an_upgrade() {
        let forwarded = |req: &mut Request<Body>, upgrade| {
            let client = HeaderValue::from_static("127.0.0.1");
            let f = Forwarded {
                client: &client,
                scheme: "http",
                host: None,
            };
            to_upstream(req, &f, upgrade);
        };
        let request = |te: &str| {
            Request::builder()
                .uri("/svc/Method")
                .header(header::TE, te)
                .body(body::empty())
                .expect("request")
        };
        let mut grpc = request("gzip, trailers");
        forwarded(&mut grpc, None);
        assert_eq!(grpc.headers()[header::TE], "trailers");
        let mut gzip = request("gzip");
        forwarded(&mut gzip, None);
        assert!(!gzip.headers().contains_key(header::TE));
        let mut ws = request("trailers");
        forwarded(&mut ws, Some(HeaderValue::from_static("websocket")));
        assert!(!ws.headers().contains_key(header::TE));
    }
}
