//! Bodies through the chain: the body callbacks run as frames stream, and a
//! filter that pauses on the body makes it buffer (up to its limit).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use super::convert;
use super::core::{BodyStep, Dir, Phase, RunCore, Step};
use super::instance::headers_of;
use crate::http::body::{Body, BoxError};

type Item = Result<Frame<Bytes>, BoxError>;

fn lock(core: &Mutex<RunCore>) -> std::sync::MutexGuard<'_, RunCore> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the trailer callbacks; yields the held body and the trailers.
// `Err` is the answer to send, as in the chain's public API.
#[allow(clippy::result_large_err)]
fn trailers_step(
    core: &Mutex<RunCore>,
    dir: Dir,
    trailers: http::HeaderMap,
) -> Result<Vec<Item>, http::Response<Body>> {
    let mut core = lock(core);
    let headers = headers_of(None, &trailers);
    let n = headers.pairs.len();
    if let Some(s) = core.stream.as_deref_mut() {
        *(if dir == Dir::Request {
            &mut s.request_trailers
        } else {
            &mut s.response_trailers
        }) = headers;
    }
    for i in core.order(dir) {
        if let Step::Respond(r) = core.call(i, dir, Phase::Trailers(n)) {
            return Err(r);
        }
    }
    let mut out = Vec::new();
    if let Some(s) = core.stream.as_deref_mut() {
        let (held, t) = match dir {
            Dir::Request => (&mut s.request_body, &s.request_trailers),
            Dir::Response => (&mut s.response_body, &s.response_trailers),
        };
        if !held.is_empty() {
            out.push(Ok(Frame::data(held.split().freeze())));
        }
        let map = if t.dirty {
            convert::trailers_map(t)
        } else {
            trailers
        };
        out.push(Ok(Frame::trailers(map)));
    }
    Ok(out)
}

/// Where reading the body ahead of forwarding stopped.
pub(crate) enum Driven {
    /// Frames ready to send, and the rest of the body to stream (if any).
    Done(VecDeque<Item>, Option<Body>),
    /// A filter paused at the end of the body: wait for it, then resume the
    /// walk at `next`.
    PausedAtEnd {
        filter: usize,
        next: usize,
        ready: VecDeque<Item>,
    },
}

/// Reads the body here until every filter lets a chunk through, so that a
/// filter buffering the whole body can still answer (or hit the limit:
/// 413 for a request, 502 for a response).
pub(crate) async fn drive_body(
    core: &Arc<Mutex<RunCore>>,
    mut body: Body,
    dir: Dir,
) -> Result<Driven, http::Response<Body>> {
    let mut ready = VecDeque::new();
    loop {
        let (data, eos) = match body.frame().await {
            None => (Bytes::new(), true),
            Some(Err(e)) => {
                ready.push_back(Err(e));
                return Ok(Driven::Done(ready, None));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let eos = body.is_end_stream();
                    (data, eos)
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        ready.extend(trailers_step(core, dir, trailers)?);
                        return Ok(Driven::Done(ready, None));
                    }
                    continue;
                }
            },
        };
        let step = lock(core).body_step(dir, &data, eos, 0, true);
        match step {
            BodyStep::Emit(b) => {
                if !b.is_empty() {
                    ready.push_back(Ok(Frame::data(b)));
                }
                return Ok(Driven::Done(ready, (!eos).then_some(body)));
            }
            BodyStep::Hold => {}
            BodyStep::Fail(r) => return Err(r),
            BodyStep::PausedAtEnd { filter, next } => {
                return Ok(Driven::PausedAtEnd {
                    filter,
                    next,
                    ready,
                })
            }
        }
    }
}

/// Resumes the body walk after a pause at the end of the body.
#[allow(clippy::result_large_err)] // `Err` is the answer, as in the public API
pub(crate) fn resume_body(
    core: &Mutex<RunCore>,
    dir: Dir,
    next: usize,
    mut ready: VecDeque<Item>,
) -> Result<Driven, http::Response<Body>> {
    match lock(core).body_step(dir, &[], true, next, true) {
        BodyStep::Emit(b) => {
            if !b.is_empty() {
                ready.push_back(Ok(Frame::data(b)));
            }
            Ok(Driven::Done(ready, None))
        }
        BodyStep::Hold => Ok(Driven::Done(ready, None)),
        BodyStep::Fail(r) => Err(r),
        BodyStep::PausedAtEnd { filter, next } => Ok(Driven::PausedAtEnd {
            filter,
            next,
            ready,
        }),
    }
}

/// The rest of a body, with the body callbacks run frame by frame.
pub(crate) struct FilteredBody {
    core: Arc<Mutex<RunCore>>,
    dir: Dir,
    ready: VecDeque<Item>,
    rest: Option<Body>,
}

impl FilteredBody {
    pub fn body(
        core: Arc<Mutex<RunCore>>,
        dir: Dir,
        ready: VecDeque<Item>,
        rest: Option<Body>,
    ) -> Body {
        if rest.is_none() && ready.len() == 1 {
            // The common case of a body read whole: no wrapper needed.
            if let Some(Ok(frame)) = ready.into_iter().next() {
                return match frame.into_data() {
                    Ok(data) => crate::http::body::full(data),
                    Err(frame) => FilteredBody {
                        core,
                        dir,
                        ready: VecDeque::from([Ok(frame)]),
                        rest: None,
                    }
                    .boxed_unsync(),
                };
            }
            return crate::http::body::empty();
        }
        FilteredBody {
            core,
            dir,
            ready,
            rest,
        }
        .boxed_unsync()
    }
}

fn refused() -> BoxError {
    "body refused by a filter".into()
}

impl http_body::Body for FilteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = self.get_mut();
        loop {
            if !lock(&this.core).calls.is_empty() {
                lock(&this.core).detach_calls();
            }
            if let Some(item) = this.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            let Some(inner) = this.rest.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(Pin::new(&mut *inner).poll_frame(cx)) {
                None => {
                    this.rest = None;
                    match lock(&this.core).body_step(this.dir, &[], true, 0, false) {
                        BodyStep::Emit(b) if !b.is_empty() => {
                            this.ready.push_back(Ok(Frame::data(b)))
                        }
                        BodyStep::Fail(_) => this.ready.push_back(Err(refused())),
                        _ => {}
                    }
                }
                Some(Err(e)) => {
                    this.rest = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let eos = inner.is_end_stream();
                        if eos {
                            this.rest = None;
                        }
                        match lock(&this.core).body_step(this.dir, &data, eos, 0, false) {
                            BodyStep::Emit(b) => this.ready.push_back(Ok(Frame::data(b))),
                            // Never asked for (`can_wait` is false).
                            BodyStep::Hold | BodyStep::PausedAtEnd { .. } => {}
                            BodyStep::Fail(_) => {
                                this.rest = None;
                                this.ready.push_back(Err(refused()));
                            }
                        }
                    }
                    Err(frame) => {
                        this.rest = None;
                        if let Ok(trailers) = frame.into_trailers() {
                            match trailers_step(&this.core, this.dir, trailers) {
                                Ok(items) => this.ready.extend(items),
                                Err(_) => this.ready.push_back(Err(refused())),
                            }
                        }
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.ready.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        // Filters may change the body's length.
        SizeHint::default()
    }
}
