//! Upstream HTTP/1.1 driven inside the request's own task: the head is
//! written from a reused buffer, the response head parsed with `httparse`
//! and the body streamed by a type that hands the connection back to the
//! worker's pool at its end. No task, channel or lock per request.

mod body;
mod encode;
mod stream;

use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

pub(crate) use self::body::{response_body, Checkin};
pub(crate) use self::encode::Framing;
pub(crate) use self::stream::Stream;
use crate::http::body::Body;

/// Response heads larger than this are refused (502), as are heads with
/// more header fields than `MAX_HEADERS`.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// One HTTP/1.1 connection to an endpoint.
pub struct Http1Conn {
    stream: Stream,
    read: BytesMut,
    write: Vec<u8>,
    /// It carried an exchange before: a failure before the first byte of
    /// the answer may just be the upstream closing it while idle.
    reused: bool,
    /// Counts the connection against its cluster's `max_connections`.
    permit: Option<crate::upstream::breaker::Permit>,
    /// The header names of the last response, as sent and parsed, by
    /// position: an upstream sends the same fields in the same order
    /// response after response, so a name is parsed once per connection.
    names: Vec<(Box<[u8]>, HeaderName)>,
}

/// Positions of the name cache: the first fields of a response.
const CACHED_NAMES: usize = 24;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed before the response")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    #[error("request body: {0}")]
    RequestBody(String),
}

impl Http1Error {
    /// Nothing of the answer arrived on a reused connection: the request
    /// may be sent again on a fresh one if it had no body.
    pub fn is_stale(&self, reused: bool) -> bool {
        reused
            && match self {
                Http1Error::Closed => true,
                Http1Error::Io(e) => e.kind() != std::io::ErrorKind::TimedOut,
                _ => false,
            }
    }
}

/// A response head, its body still on the connection.
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: body::Framing,
    pub keep_alive: bool,
}

impl Http1Conn {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            read: BytesMut::with_capacity(8 * 1024),
            write: Vec::with_capacity(1024),
            reused: false,
            permit: None,
            names: Vec::new(),
        }
    }

    /// Ties a circuit-breaker permit to this connection's life.
    pub(crate) fn hold(&mut self, permit: crate::upstream::breaker::Permit) {
        self.permit = Some(permit);
    }

    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Still open and silent. An idle connection the upstream closed (or,
    /// out of turn, wrote to) must not carry a request.
    pub fn is_reusable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut probe = [0u8; 1];
        let mut buf = tokio::io::ReadBuf::new(&mut probe);
        matches!(
            std::pin::Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Encodes the head of `req` in this connection's buffer; the body
    /// goes with [`Http1Conn::send`].
    pub fn encode(
        &mut self,
        head: &http::request::Parts,
        added: &crate::upstream::AddedFields,
        body: &Body,
    ) -> Framing {
        encode::head(head, added, body, &mut self.write)
    }

    /// Writes the encoded head, then the body as `framing` says.
    pub async fn send(&mut self, framing: Framing, body: Body) -> Result<(), Http1Error> {
        if framing == Framing::Empty {
            self.stream.write_all(&self.write).await?;
            return self.stream.flush().await.map_err(Into::into);
        }
        self.stream.write_all(&self.write).await?;
        let mut body = std::pin::pin!(body);
        let mut sent: u64 = 0;
        let mut line = Vec::with_capacity(16);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Http1Error::RequestBody(e.to_string()))?;
            let Ok(mut data) = frame.into_data() else {
                continue; // trailers are not forwarded over HTTP/1.1
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            if framing == Framing::Chunked {
                encode::chunk_size_line(data.len(), &mut line);
                self.stream.write_all(&line).await?;
                self.stream.write_all_buf(&mut data).await?;
                self.stream.write_all(b"\r\n").await?;
            } else {
                self.stream.write_all_buf(&mut data).await?;
            }
        }
        match framing {
            Framing::Chunked => self.stream.write_all(b"0\r\n\r\n").await?,
            Framing::Length(n) if n != sent => {
                return Err(Http1Error::RequestBody(format!(
                    "{sent} bytes where {n} were announced"
                )))
            }
            _ => {}
        }
        self.stream.flush().await.map_err(Into::into)
    }

    /// Reads the response head (skipping interim 1xx answers).
    /// `head_request`: the request was HEAD, so no body follows.
    pub async fn read_head(&mut self, head_request: bool) -> Result<ResponseHead, Http1Error> {
        loop {
            if let Some(head) = self.parse_head(head_request)? {
                if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
                {
                    continue;
                }
                return Ok(head);
            }
            if self.read.len() >= MAX_HEAD {
                return Err(Http1Error::Malformed("response head too large"));
            }
            self.read.reserve(8 * 1024);
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err(if self.read.is_empty() {
                    Http1Error::Closed
                } else {
                    Http1Error::Malformed("connection closed inside the response head")
                });
            }
        }
    }

    /// Parses a complete head at the start of the read buffer and consumes
    /// it; `None` when more bytes are needed.
    fn parse_head(&mut self, head_request: bool) -> Result<Option<ResponseHead>, Http1Error> {
        if self.read.is_empty() {
            return Ok(None);
        }
        // Uninitialised slots: nothing is written to the unused ones.
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let len =
            match config.parse_response_with_uninit_headers(&mut parsed, &self.read, &mut slots) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Http1Error::Malformed("too many header fields"))
                }
                Err(_) => return Err(Http1Error::Malformed("invalid response head")),
            };
        let status = parsed
            .code
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or(Http1Error::Malformed("invalid status"))?;
        let http10 = parsed.version == Some(0);
        // The values are slices of one copy of the head: one allocation for
        // all of them, and the read buffer stays the connection's alone
        // (no reallocation before the next read).
        let head = bytes::Bytes::copy_from_slice(&self.read[..len]);
        let base = self.read.as_ptr() as usize;
        let mut headers = HeaderMap::with_capacity(parsed.headers.len());
        let mut connection = ConnectionOptions::default();
        let mut fields = body::FramingFields::default();
        for (i, h) in parsed.headers.iter().enumerate() {
            let name = name_at(&mut self.names, i, h.name.as_bytes())?;
            fields.field(&name, h.value);
            // Fields for this hop alone, which the proxy would strip from
            // the response anyway (`forward::strip_hop_by_hop`): a
            // `Connection` that names no other field, and `Keep-Alive`.
            // Most upstreams send one or both on every response; left out
            // here, they cost no insert now and no search and remove later.
            if name == http::header::CONNECTION && connection.read(h.value) {
                continue;
            }
            if name.as_str() == "keep-alive" {
                continue;
            }
            let start = h.value.as_ptr() as usize - base;
            headers.append(name, value_of(head.slice(start..start + h.value.len())));
        }
        let framing = body::Framing::of(status, &fields, head_request)?;
        let keep_alive = connection.keep_alive(http10) && framing != body::Framing::UntilClose;
        self.read.advance(len);
        Ok(Some(ResponseHead {
            status,
            headers,
            body: framing,
            keep_alive,
        }))
    }

    /// The exchange ended cleanly: the connection may carry another.
    pub(crate) fn finish_exchange(&mut self) {
        self.reused = true;
    }
}

/// The header name sent as `raw` at position `i` of a response head: the
/// one parsed at that position of the connection's last response if it was
/// sent the same way, else parsed (and remembered).
fn name_at(
    names: &mut Vec<(Box<[u8]>, HeaderName)>,
    i: usize,
    raw: &[u8],
) -> Result<HeaderName, Http1Error> {
    if let Some((seen, name)) = names.get(i) {
        if **seen == *raw {
            return Ok(name.clone());
        }
    }
    let name =
        HeaderName::from_bytes(raw).map_err(|_| Http1Error::Malformed("invalid header name"))?;
    let entry = (Box::from(raw), name.clone());
    if i < names.len() {
        names[i] = entry;
    } else if i == names.len() && i < CACHED_NAMES {
        names.push(entry);
    }
    Ok(name)
}

/// A field value httparse accepted, as a `HeaderValue`, without checking
/// its bytes a second time (about 100 instructions a field).
fn value_of(parsed: bytes::Bytes) -> HeaderValue {
    // SAFETY: not a memory-safety matter: `HeaderValue` promises bytes that
    // are a tab, 0x20-0x7e or 0x80-0xff (no other control byte, no DEL).
    // httparse accepts exactly those in a field value and fails the head
    // on any other (`tests::what_httparse_accepts_in_a_value_is_a_header_value`
    // checks all 256 bytes), and `parsed` is such a value, unchanged.
    unsafe { HeaderValue::from_maybe_shared_unchecked(parsed) }
}

/// HTTP/1.1 stays open unless `Connection: close`; HTTP/1.0 only with
/// `Connection: keep-alive`. The same rule for either side of the gateway.
pub(crate) fn keep_alive(headers: &HeaderMap, http10: bool) -> bool {
    let mut options = ConnectionOptions::default();
    for value in headers.get_all(http::header::CONNECTION) {
        options.read(value.as_bytes());
    }
    options.keep_alive(http10)
}

/// The elements of a comma-separated field value (`Connection`, `TE`),
/// trimmed, empty ones included. A value that is not visible ASCII
/// (`HeaderValue::to_str`'s rule) has none. Bytes, not `str`: these lists
/// are read several times per request, and `str` splitting and Unicode
/// trimming cost hundreds of instructions for one short token.
pub(crate) fn list_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let visible = value.iter().all(|&b| b == b'\t' || (32..127).contains(&b));
    value
        .split(|&b| b == b',')
        .filter(move |_| visible)
        .map(<[u8]>::trim_ascii)
}

/// The `close` and `keep-alive` options of `Connection` fields.
#[derive(Default)]
pub(crate) struct ConnectionOptions {
    close: bool,
    keep: bool,
}

impl ConnectionOptions {
    /// One field's value, a comma-separated list of options; a value that
    /// is not visible ASCII (`HeaderValue::to_str`'s rule) names none.
    /// Bytes, not `str`: this runs up to three times per request. Whether
    /// the value names only options (`close`, `keep-alive`), no other
    /// field (RFC 9110 §7.6.1).
    pub(crate) fn read(&mut self, value: &[u8]) -> bool {
        // The values nearly every peer sends, whole: no list to walk.
        if value.eq_ignore_ascii_case(b"keep-alive") {
            self.keep = true;
            return true;
        }
        if value.eq_ignore_ascii_case(b"close") {
            self.close = true;
            return true;
        }
        let mut options_only = true;
        for token in list_tokens(value) {
            let close = token.eq_ignore_ascii_case(b"close");
            let keep = token.eq_ignore_ascii_case(b"keep-alive");
            self.close |= close;
            self.keep |= keep;
            options_only &= close || keep || token.is_empty();
        }
        options_only
    }

    /// Whether the connection lives on: no `close`, and `keep-alive` for HTTP/1.0.
    pub(crate) fn keep_alive(&self, http10: bool) -> bool {
        !self.close && (!http10 || self.keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_names_follow_what_each_response_sends() {
        let mut names = Vec::new();
        let mut parse = |sent: &[&str]| -> Vec<String> {
            sent.iter()
                .enumerate()
                .map(|(i, raw)| {
                    name_at(&mut names, i, raw.as_bytes())
                        .expect("valid name")
                        .as_str()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(parse(&["Server", "X-Up"]), ["server", "x-up"]);
        // The same fields again, then reordered, renamed and re-cased.
        assert_eq!(parse(&["Server", "X-Up"]), ["server", "x-up"]);
        assert_eq!(parse(&["X-Up", "Server"]), ["x-up", "server"]);
        assert_eq!(
            parse(&["x-up", "Date", "X-More"]),
            ["x-up", "date", "x-more"]
        );
        assert!(name_at(&mut names, 0, b"bad name").is_err());
        // Only the first positions are remembered.
        for i in 0..CACHED_NAMES + 8 {
            let raw = format!("x-f{i}");
            assert_eq!(
                name_at(&mut names, i, raw.as_bytes())
                    .expect("name")
                    .as_str(),
                raw
            );
        }
        assert_eq!(names.len(), CACHED_NAMES);
    }

    #[test]
    fn a_connection_value_names_only_options_or_other_fields() {
        let options_only = |v: &[u8]| ConnectionOptions::default().read(v);
        assert!(options_only(b"keep-alive"));
        assert!(options_only(b"Close"));
        assert!(options_only(b" keep-alive , close,"));
        assert!(options_only(b""));
        // Not visible ASCII: names nothing at all.
        assert!(options_only(b"x-hop\xff"));
        assert!(!options_only(b"keep-alive, x-hop"));
        assert!(!options_only(b"upgrade"));
    }

    #[test]
    fn what_httparse_accepts_in_a_value_is_a_header_value() {
        let mut accepted = 0;
        for b in 0..=255u8 {
            let mut raw = b"HTTP/1.1 200 OK\r\nx-field: a".to_vec();
            raw.extend_from_slice(&[b, b'a']);
            raw.extend_from_slice(b"\r\n\r\n");
            let mut slots = [httparse::EMPTY_HEADER; 4];
            let mut parsed = httparse::Response::new(&mut slots);
            if let Ok(httparse::Status::Complete(_)) =
                httparse::ParserConfig::default().parse_response(&mut parsed, &raw)
            {
                let value = parsed.headers[0].value;
                assert!(
                    HeaderValue::from_bytes(value).is_ok(),
                    "httparse accepts byte {b:#04x} in a value, HeaderValue does not"
                );
                accepted += 1;
            }
        }
        // A tab, 0x20-0x7e and 0x80-0xff; every other byte fails the head.
        assert_eq!(accepted, 1 + 95 + 128);
    }

    #[test]
    fn connection_options_decide_keep_alive() {
        let map = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(http::header::CONNECTION, HeaderValue::from_static(v));
            }
            h
        };
        assert!(keep_alive(&map(&[]), false));
        assert!(!keep_alive(&map(&[]), true));
        assert!(keep_alive(&map(&["Keep-Alive"]), true));
        assert!(!keep_alive(&map(&["keep-alive", " Close "]), false));
        assert!(!keep_alive(&map(&["upgrade", "close"]), false));
        let mut odd = HeaderMap::new();
        odd.append(
            http::header::CONNECTION,
            HeaderValue::from_bytes(b"close\xff").expect("obs-text value"),
        );
        assert!(
            keep_alive(&odd, false),
            "a value that is not visible ASCII names no option"
        );
    }
}
