//! The fields of a request head the gateway itself reads (its id, `Host`,
//! whether it is gRPC, whether the client keeps the connection), found in
//! one pass over the head's fields: a map look-up each cost about a
//! hundred instructions, a pass over a few fields less than all of them.

use http::{header, HeaderMap, HeaderValue, Version};

use crate::upstream::ConnectionOptions;

/// Named once: a `&str` name is parsed again at every use.
pub(crate) const X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// What one pass over a request head found.
pub(crate) struct HeadFields {
    /// The client's `x-request-id`, if it sent a sane one (visible ASCII,
    /// 1 to 128 bytes).
    pub request_id: Option<HeaderValue>,
    pub host: Host,
    /// `content-type: application/grpc`, alone or with a `+` or `;` suffix.
    pub grpc: bool,
    /// The client lets an HTTP/1.x connection live after this request
    /// (`Connection`, and the version's default).
    pub keep_alive: bool,
}

/// The request's `Host` fields.
#[derive(Default)]
pub(crate) enum Host {
    #[default]
    Absent,
    One(HeaderValue),
    /// More than one: a bad request.
    Several,
}

impl HeadFields {
    pub fn scan(headers: &HeaderMap, version: Version) -> HeadFields {
        let mut request_id = None;
        let mut host = Host::Absent;
        let mut grpc = false;
        let mut content_type_seen = false;
        let mut connection = ConnectionOptions::default();
        for (name, value) in headers {
            if name == header::HOST {
                host = match host {
                    Host::Absent => Host::One(value.clone()),
                    _ => Host::Several,
                };
            } else if name == header::CONTENT_TYPE && !content_type_seen {
                // The first, as `HeaderMap::get` reads it.
                content_type_seen = true;
                grpc = is_grpc_type(value);
            } else if name == header::CONNECTION {
                connection.read(value.as_bytes());
            } else if name == X_REQUEST_ID && request_id.is_none() {
                request_id = Some(value.clone());
            }
        }
        HeadFields {
            request_id: request_id
                .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok()),
            host,
            grpc,
            keep_alive: connection.keep_alive(version <= Version::HTTP_10),
        }
    }
}

/// Whether a `content-type` value is gRPC's.
pub(crate) fn is_grpc_type(value: &HeaderValue) -> bool {
    value.to_str().ok().is_some_and(|t| {
        t.strip_prefix("application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn one_pass_reads_what_the_map_look_ups_read() {
        let map = head(&[
            ("host", "a.example"),
            ("content-type", "application/grpc+proto"),
            ("content-type", "text/plain"),
            ("x-request-id", "abc"),
            ("x-request-id", "def"),
            ("connection", "keep-alive"),
        ]);
        let f = HeadFields::scan(&map, Version::HTTP_10);
        assert!(matches!(&f.host, Host::One(h) if h == "a.example"));
        assert!(f.grpc, "the first content-type decides");
        assert_eq!(
            f.request_id.as_ref().map(|v| v.as_bytes()),
            Some(&b"abc"[..])
        );
        assert!(f.keep_alive, "HTTP/1.0 with keep-alive");

        let map = head(&[
            ("content-type", "text/plain"),
            ("content-type", "application/grpc"),
            ("host", "a"),
            ("host", "b"),
            ("connection", "upgrade, close"),
            ("x-request-id", ""),
        ]);
        let f = HeadFields::scan(&map, Version::HTTP_11);
        assert!(matches!(f.host, Host::Several));
        assert!(!f.grpc, "a later content-type does not count");
        assert!(f.request_id.is_none(), "an empty id is not kept");
        assert!(!f.keep_alive);

        let f = HeadFields::scan(&HeaderMap::new(), Version::HTTP_10);
        assert!(matches!(f.host, Host::Absent));
        assert!(!f.keep_alive, "HTTP/1.0 closes by default");
        assert!(HeadFields::scan(&HeaderMap::new(), Version::HTTP_11).keep_alive);
        let long = "x".repeat(129);
        let f = HeadFields::scan(&head(&[("x-request-id", &long)]), Version::HTTP_2);
        assert!(f.request_id.is_none(), "over 128 bytes");
    }
}
