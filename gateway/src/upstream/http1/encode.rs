//! Writing an upstream HTTP/1.1 request: the head into a reused buffer,
//! the body framed by what is known of its length.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::Method;
use http_body::Body as _;

use crate::http::body::Body;
use crate::upstream::AddedFields;

/// How the request body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all.
    Empty,
    /// `Content-Length: n`, then exactly n bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Writes the request line and headers of `head` into `out` (cleared
/// first) and says how `body` must be framed. The framing headers are
/// the gateway's own: a `Content-Length` the body no longer matches (a
/// filter changed it) is never forwarded. `TE` is not either: it is kept
/// for HTTP/2 upstreams (gRPC), and this gateway does not carry HTTP/1.1
/// trailers. The head is borrowed: a retry sends the same one again.
/// The fields `added` follow the client's, in place of any of the same
/// name.
pub(crate) fn head(head: &Parts, added: &AddedFields, body: &Body, out: &mut Vec<u8>) -> Framing {
    out.clear();
    let framing = if body.is_end_stream() {
        Framing::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => Framing::Length(n),
            None => Framing::Chunked,
        }
    };
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let target = head.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = &head.headers;
    write_headers(headers, added, out);
    match framing {
        Framing::Empty => {
            // An empty body keeps an explicit zero length where one is
            // expected, so the upstream does not wait for a body.
            if headers.contains_key(header::CONTENT_LENGTH) || expects_body(&head.method) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa(n, &mut [0; 20]));
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    framing
}

fn write_headers(headers: &HeaderMap, added: &AddedFields, out: &mut Vec<u8>) {
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::TE
            || added.replaces(name)
        {
            continue;
        }
        write_field(name, value, out);
    }
    for (name, value) in added.iter() {
        write_field(name, value, out);
    }
}

fn write_field(name: &HeaderName, value: &HeaderValue, out: &mut Vec<u8>) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn expects_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// The decimal digits of `n`, written into `buf`.
pub(crate) fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The line that opens a chunk of `len` bytes.
pub(crate) fn chunk_size_line(len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body;

    use http::Request;

    fn encode(req: Request<Body>) -> (String, Framing) {
        let mut out = Vec::new();
        let (parts, body) = req.into_parts();
        let framing = head(&parts, &AddedFields::default(), &body, &mut out);
        (String::from_utf8(out).expect("ascii"), framing)
    }

    #[test]
    fn added_fields_follow_the_clients_in_place_of_theirs() {
        let req = Request::get("/")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-kept", "1")
            .header("x-forwarded-for", "10.0.0.2")
            .body(body::empty())
            .expect("request");
        let (parts, body) = req.into_parts();
        let mut out = Vec::new();
        head(&parts, &AddedFields::sample(), &body, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "GET / HTTP/1.1\r\nx-kept: 1\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\n\
             x-forwarded-proto: http\r\n\r\n"
        );
    }

    #[test]
    fn get_without_body_has_no_framing_header() {
        let req = Request::get("/a?b=1")
            .header("host", "example.com")
            .body(body::empty())
            .expect("request");
        let (text, framing) = encode(req);
        assert_eq!(framing, Framing::Empty);
        assert_eq!(text, "GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\n\r\n");
    }

    #[test]
    fn te_never_reaches_an_http11_upstream_and_the_head_is_left_as_it_was() {
        let req = Request::get("/grpc")
            .header("te", "trailers")
            .header("x-kept", "1")
            .body(body::empty())
            .expect("request");
        let (parts, body) = req.into_parts();
        let mut out = Vec::new();
        head(&parts, &AddedFields::default(), &body, &mut out);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "GET /grpc HTTP/1.1\r\nx-kept: 1\r\n\r\n"
        );
        // Borrowed: a retry (or an HTTP/2 upstream) still has all of it.
        assert_eq!(
            parts.headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
    }

    #[test]
    fn known_length_replaces_a_stale_content_length() {
        let req = Request::post("/")
            .header("content-length", "999")
            .body(body::full("abc"))
            .expect("request");
        let (text, framing) = encode(req);
        assert_eq!(framing, Framing::Length(3));
        assert_eq!(text, "POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\n");
    }

    #[test]
    fn emptied_post_says_zero() {
        let req = Request::post("/")
            .header("content-length", "5")
            .body(body::empty())
            .expect("request");
        let (text, _) = encode(req);
        assert_eq!(text, "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }

    #[test]
    fn numbers() {
        assert_eq!(itoa(0, &mut [0; 20]), b"0");
        assert_eq!(itoa(1234567, &mut [0; 20]), b"1234567");
        assert_eq!(itoa(u64::MAX, &mut [0; 20]), b"18446744073709551615");
    }
}
