//! The body of an upstream HTTP/1.1 response, read off the connection as
//! the client takes it; at its end the connection goes back to the pool.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{Http1Conn, Http1Error, ResponseHead};
use crate::http::body::{self, Body, BoxError};

/// Chunk-size lines and trailer lines longer than this are refused.
const MAX_LINE: usize = 8 * 1024;

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Read until the upstream closes; the connection is not reused.
    UntilClose,
}

impl Framing {
    pub(super) fn of(
        status: StatusCode,
        fields: &FramingFields<'_>,
        head_request: bool,
    ) -> Result<Framing, Http1Error> {
        if head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Ok(Framing::Empty);
        }
        // Transfer-Encoding wins over Content-Length; chunked must be last.
        if let Some(te) = fields.transfer_encoding {
            let last = super::list_tokens(te).last();
            return Ok(match last {
                Some(c) if c.eq_ignore_ascii_case(b"chunked") => Framing::Chunked,
                _ => Framing::UntilClose,
            });
        }
        if let Some(reason) = fields.bad_length {
            return Err(Http1Error::Malformed(reason));
        }
        Ok(match fields.content_length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        })
    }
}

/// The fields that delimit a response body, taken as the head is parsed
/// (no look-ups in the header map afterwards).
#[derive(Default)]
pub(super) struct FramingFields<'a> {
    /// The last Transfer-Encoding field.
    transfer_encoding: Option<&'a [u8]>,
    /// Content-Length, once every value agrees.
    content_length: Option<u64>,
    /// Why Content-Length is unusable, if it is.
    bad_length: Option<&'static str>,
}

impl<'a> FramingFields<'a> {
    /// One field of the head, in order.
    pub(super) fn field(&mut self, name: &HeaderName, value: &'a [u8]) {
        if *name == TRANSFER_ENCODING {
            self.transfer_encoding = Some(value);
        } else if *name == CONTENT_LENGTH && self.bad_length.is_none() {
            // `1*DIGIT` (RFC 9112 §6.3), repeated identical values allowed.
            for part in value.split(|&b| b == b',') {
                match decimal(part.trim_ascii()) {
                    None => {
                        self.bad_length = Some("invalid content-length");
                        return;
                    }
                    Some(n) if self.content_length.is_some_and(|l| l != n) => {
                        self.bad_length = Some("conflicting content-length");
                        return;
                    }
                    Some(n) => self.content_length = Some(n),
                }
            }
        }
    }
}

/// The value of a non-empty run of ASCII digits, if it fits in a `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// Where the connection goes once its response has been read whole.
pub(crate) trait Checkin: Send + Unpin + 'static {
    fn checkin(self, conn: Http1Conn);
}

/// The response body for `head`. Small answers arrive with their head:
/// then the body is already complete and the connection is back in the
/// pool before the response is handed on.
/// A streamed body fails once the upstream sends nothing for `idle`
/// (nginx's `proxy_read_timeout`; zero: no limit).
pub(crate) fn response_body<C: Checkin>(
    mut conn: Http1Conn,
    head: &ResponseHead,
    checkin: C,
    idle: Duration,
) -> Body {
    match head.body {
        Framing::Empty => {
            finish(conn, head.keep_alive, checkin);
            body::empty()
        }
        Framing::Length(n) if conn.read.len() as u64 >= n => {
            // A small body is copied out, so the read buffer stays the
            // connection's alone; a large one is handed on without a copy.
            let data = if n <= 4096 {
                let data = Bytes::copy_from_slice(&conn.read[..n as usize]);
                conn.read.advance(n as usize);
                data
            } else {
                conn.read.split_to(n as usize).freeze()
            };
            finish(conn, head.keep_alive, checkin);
            body::full(data)
        }
        framing => body::boxed(ResponseBody {
            conn: Some(conn),
            state: match framing {
                Framing::Length(n) => Decode::Length(n),
                Framing::Chunked => Decode::ChunkSize,
                _ => Decode::UntilClose,
            },
            keep_alive: head.keep_alive,
            checkin: Some(checkin),
            idle,
            timer: None,
            waiting: false,
        }),
    }
}

fn finish<C: Checkin>(mut conn: Http1Conn, keep_alive: bool, checkin: C) {
    // Bytes beyond the response mean the upstream is out of step: close.
    if keep_alive && conn.read.is_empty() {
        conn.finish_exchange();
        checkin.checkin(conn);
    }
}

enum Decode {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

enum Step {
    Data(Bytes),
    More,
    End,
}

struct ResponseBody<C: Checkin> {
    conn: Option<Http1Conn>,
    state: Decode,
    keep_alive: bool,
    checkin: Option<C>,
    idle: Duration,
    /// Armed once a read has had to wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// A read is waiting and the timer runs for it.
    waiting: bool,
}

impl<C: Checkin> ResponseBody<C> {
    /// Decodes what the read buffer holds.
    fn step(&mut self) -> Result<Step, Http1Error> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(Step::End);
        };
        let read = &mut conn.read;
        loop {
            match &mut self.state {
                Decode::Done => return Ok(Step::End),
                Decode::Length(left) | Decode::ChunkData(left) => {
                    if read.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = (*left).min(read.len() as u64);
                    *left -= take;
                    let data = read.split_to(take as usize).freeze();
                    if *left == 0 {
                        self.state = match self.state {
                            Decode::Length(_) => Decode::Done,
                            _ => Decode::ChunkEnd,
                        };
                    }
                    return Ok(Step::Data(data));
                }
                Decode::UntilClose => {
                    if read.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(read.split().freeze()));
                }
                Decode::ChunkSize => match httparse::parse_chunk_size(read) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        read.advance(used);
                        self.state = if size == 0 {
                            Decode::Trailers
                        } else {
                            Decode::ChunkData(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if read.len() < MAX_LINE => {
                        return Ok(Step::More)
                    }
                    _ => return Err(Http1Error::Malformed("invalid chunk size")),
                },
                Decode::ChunkEnd => {
                    if read.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &read[..2] != b"\r\n" {
                        return Err(Http1Error::Malformed("chunk without its line end"));
                    }
                    read.advance(2);
                    self.state = Decode::ChunkSize;
                }
                Decode::Trailers => match read.windows(2).position(|w| w == b"\r\n") {
                    // Trailer fields are not forwarded over HTTP/1.1.
                    Some(0) => {
                        read.advance(2);
                        self.state = Decode::Done;
                    }
                    Some(end) => read.advance(end + 2),
                    None if read.len() < MAX_LINE => return Ok(Step::More),
                    None => return Err(Http1Error::Malformed("trailer line too long")),
                },
            }
        }
    }

    /// The read must wait: true once it has waited `idle` in all.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.is_zero() {
            return false;
        }
        let deadline = Instant::now() + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.waiting {
            self.waiting = true;
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// The body was read whole: hand the connection back.
    fn end(&mut self) {
        if let (Some(conn), Some(checkin)) = (self.conn.take(), self.checkin.take()) {
            finish(conn, self.keep_alive, checkin);
        }
    }
}

impl<C: Checkin> http_body::Body for ResponseBody<C> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match this.step() {
                Ok(Step::Data(data)) => {
                    if matches!(this.state, Decode::Done) {
                        this.end();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::End) => {
                    this.end();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            conn.read.reserve(16 * 1024);
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.read) {
                Poll::Pending => {
                    if this.idle_expired(cx) {
                        this.conn = None;
                        crate::metrics::timeout("upstream_body_idle");
                        return Poll::Ready(Some(Err(format!(
                            "upstream sent no body data for {:?}",
                            this.idle
                        )
                        .into())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    if matches!(this.state, Decode::UntilClose) {
                        this.state = Decode::Done;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(
                        "upstream closed the connection inside the body".into(),
                    )));
                }
                Poll::Ready(Ok(_)) => this.waiting = false,
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, Decode::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            Decode::Length(left) => SizeHint::with_exact(left),
            Decode::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(status: u16, headers: &[(&str, &str)]) -> Result<Framing, Http1Error> {
        let mut fields = FramingFields::default();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes()).expect("name");
            fields.field(&name, v.as_bytes());
        }
        Framing::of(
            StatusCode::from_u16(status).expect("status"),
            &fields,
            false,
        )
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(
            framing(200, &[("content-length", "5")]).ok(),
            Some(Framing::Length(5))
        );
        assert_eq!(
            framing(200, &[("content-length", "0")]).ok(),
            Some(Framing::Empty)
        );
        assert_eq!(
            framing(204, &[("content-length", "5")]).ok(),
            Some(Framing::Empty)
        );
        assert_eq!(framing(200, &[]).ok(), Some(Framing::UntilClose));
        assert_eq!(
            framing(
                200,
                &[
                    ("transfer-encoding", "gzip, chunked"),
                    ("content-length", "3")
                ]
            )
            .ok(),
            Some(Framing::Chunked)
        );
        assert_eq!(
            framing(200, &[("transfer-encoding", "gzip")]).ok(),
            Some(Framing::UntilClose)
        );
        assert!(framing(200, &[("content-length", "5"), ("content-length", "6")]).is_err());
        assert!(framing(200, &[("content-length", "-1")]).is_err());
        assert_eq!(
            framing(200, &[("content-length", "7, 7")]).ok(),
            Some(Framing::Length(7))
        );
        // Only digits: no sign, no blank value, nothing beyond a u64.
        for bad in ["+5", "", "5 5", "0x10", "18446744073709551616", "7,"] {
            assert!(framing(200, &[("content-length", bad)]).is_err(), "{bad:?}");
        }
        assert_eq!(
            framing(200, &[("content-length", "18446744073709551615")]).ok(),
            Some(Framing::Length(u64::MAX))
        );
        assert_eq!(
            framing(200, &[("transfer-encoding", "gzip, Chunked ")]).ok(),
            Some(Framing::Chunked)
        );
        assert_eq!(
            framing(200, &[("transfer-encoding", "chunked, gzip")]).ok(),
            Some(Framing::UntilClose)
        );
    }
}
