//! The body of a downstream request as the rest of the gateway reads it:
//! counted as it streams, and bounded in time. A client that stops sending
//! (between two reads for longer than `body_read_timeout`) or takes longer
//! than `request_read_timeout` for the whole request ends the body with an
//! error the exchange answers with 408.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::body::{Body, BoxError};

/// What the exchange learns from the body while it streams.
#[derive(Debug, Default)]
pub struct BodyProgress {
    pub bytes: AtomicU64,
    /// The client was too slow: the answer is 408.
    pub timed_out: AtomicBool,
}

/// A request body with its byte count and read deadlines.
pub struct RequestBody {
    inner: Body,
    progress: Arc<BodyProgress>,
    idle: Duration,
    /// The whole request must have arrived by then.
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
}

impl RequestBody {
    pub fn new(
        inner: Body,
        progress: Arc<BodyProgress>,
        idle: Duration,
        deadline: Instant,
    ) -> Self {
        let first = (Instant::now() + idle).min(deadline);
        Self {
            inner,
            progress,
            idle,
            deadline,
            timer: Box::pin(tokio::time::sleep_until(first)),
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.progress
                        .bytes
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                let next = (Instant::now() + this.idle).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.progress.timed_out.store(true, Ordering::Relaxed);
                    Poll::Ready(Some(Err(
                        "the client did not send the request body in time".into(),
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
