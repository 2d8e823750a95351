//! A request body made ready for more than one try: held whole when it
//! fits the retry policy's buffer, else streamed once, with the bytes read
//! while finding out put back in front.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{self, Body, BoxError};

/// The body of a request about to be sent upstream.
pub enum ReplayBody {
    /// The whole body (maybe empty): every try sends a copy.
    Held(Bytes),
    /// Too large to hold: sent by the first try that gets a connection,
    /// after which the request can no longer be retried.
    Streaming(Option<Body>),
}

impl ReplayBody {
    /// Reads up to `limit` bytes of `body` to see whether it ends there.
    /// `limit` 0 holds only an empty body.
    pub async fn prepare(mut body: Body, limit: usize) -> Result<ReplayBody, BoxError> {
        if body.is_end_stream() {
            return Ok(ReplayBody::Held(Bytes::new()));
        }
        if limit == 0 {
            return Ok(ReplayBody::Streaming(Some(body)));
        }
        let hint = body.size_hint();
        if hint.lower() > limit as u64 {
            return Ok(ReplayBody::Streaming(Some(body)));
        }
        let mut read: VecDeque<Frame<Bytes>> = VecDeque::new();
        let mut total = 0usize;
        while total <= limit {
            let Some(frame) = body.frame().await else {
                let mut whole = BytesMut::with_capacity(total);
                for frame in read {
                    if let Ok(data) = frame.into_data() {
                        whole.extend_from_slice(&data);
                    }
                }
                return Ok(ReplayBody::Held(whole.freeze()));
            };
            let frame = frame?;
            match frame.data_ref() {
                Some(data) => total += data.len(),
                // Trailers are only kept by streaming the body.
                None => {
                    read.push_back(frame);
                    break;
                }
            }
            read.push_back(frame);
        }
        let rest = Prefixed {
            read,
            rest: body,
            hint,
        };
        Ok(ReplayBody::Streaming(Some(body::boxed(rest))))
    }

    /// The body for the next try; `None` once a streamed body was sent.
    pub fn next(&mut self) -> Option<Body> {
        match self {
            ReplayBody::Held(bytes) if bytes.is_empty() => Some(body::empty()),
            ReplayBody::Held(bytes) => Some(body::full(bytes.clone())),
            ReplayBody::Streaming(body) => body.take(),
        }
    }

    /// Whether a try can still send the body (a streamed one only until
    /// the first try that got a connection took it).
    pub fn can_send(&self) -> bool {
        !matches!(self, ReplayBody::Streaming(None))
    }

    /// Whether another try can send the body again.
    pub fn is_held(&self) -> bool {
        matches!(self, ReplayBody::Held(_))
    }
}

/// Frames already read, then the rest of the body; the length announced
/// is the original body's.
struct Prefixed {
    read: VecDeque<Frame<Bytes>>,
    rest: Body,
    hint: SizeHint,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&'static str]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        body::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    #[tokio::test]
    async fn a_body_under_the_limit_is_held_and_replayed_whole() {
        let mut held = ReplayBody::prepare(chunked(&["ab", "cd"]), 8)
            .await
            .expect("prepare");
        assert!(held.is_held());
        for _ in 0..2 {
            let body = held.next().expect("a copy per try");
            let bytes = body.collect().await.expect("read").to_bytes();
            assert_eq!(&bytes[..], b"abcd");
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_streams_once_with_nothing_lost() {
        let mut streaming = ReplayBody::prepare(chunked(&["abc", "def", "ghi"]), 4)
            .await
            .expect("prepare");
        assert!(!streaming.is_held());
        let body = streaming.next().expect("the first try gets it");
        assert!(streaming.next().is_none(), "and no other");
        let bytes = body.collect().await.expect("read").to_bytes();
        assert_eq!(&bytes[..], b"abcdefghi");
    }

    #[tokio::test]
    async fn an_empty_body_is_held_without_reading() {
        let mut empty = ReplayBody::prepare(body::empty(), 0)
            .await
            .expect("prepare");
        assert!(empty.is_held());
        assert!(empty.next().expect("body").is_end_stream());
    }
}
