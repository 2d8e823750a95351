//! A request's body through the body callbacks: chunks accumulate while a
//! filter pauses, up to its limit.

use bytes::Bytes;

use super::answers::status_response;
use super::core::{BodyStep, Dir, Phase, RunCore, Step};

impl RunCore {
    pub fn wants_body(&self, dir: Dir) -> bool {
        self.any_active(|w| {
            if dir == Dir::Request {
                w.request_body
            } else {
                w.response_body
            }
        })
    }

    /// Runs the body callbacks over the buffered body plus `chunk`.
    /// Starts at position `from` of the direction's order; `can_wait` says
    /// whether the caller can wait out a pause at the end of the body
    /// (otherwise such a pause counts as CONTINUE).
    pub fn body_step(
        &mut self,
        dir: Dir,
        chunk: &[u8],
        eos: bool,
        from: usize,
        can_wait: bool,
    ) -> BodyStep {
        let Some(stream) = self.stream.as_deref_mut() else {
            return BodyStep::Emit(Bytes::copy_from_slice(chunk));
        };
        let buf = if dir == Dir::Request {
            &mut stream.request_body
        } else {
            &mut stream.response_body
        };
        buf.extend_from_slice(chunk);
        for (pos, i) in self.order(dir).enumerate().skip(from) {
            let len = self.body_len(dir);
            match self.call(i, dir, Phase::Body(len, eos)) {
                Step::Respond(r) => return BodyStep::Fail(r),
                Step::Pause if eos && can_wait => {
                    return BodyStep::PausedAtEnd {
                        filter: i,
                        next: pos + 1,
                    }
                }
                Step::Pause if !eos => {
                    let limit = self.filters[i].config.body_buffer_limit.as_u64() as usize;
                    if self.body_len(dir) > limit {
                        return BodyStep::Fail(match dir {
                            Dir::Request => status_response(
                                http::StatusCode::PAYLOAD_TOO_LARGE,
                                "request body over the filter buffer limit\n",
                            ),
                            Dir::Response => status_response(
                                http::StatusCode::BAD_GATEWAY,
                                "response body over the filter buffer limit\n",
                            ),
                        });
                    }
                    return BodyStep::Hold;
                }
                _ => {}
            }
        }
        let Some(stream) = self.stream.as_deref_mut() else {
            return BodyStep::Emit(Bytes::new());
        };
        let buf = if dir == Dir::Request {
            &mut stream.request_body
        } else {
            &mut stream.response_body
        };
        BodyStep::Emit(buf.split().freeze())
    }

    fn body_len(&self, dir: Dir) -> usize {
        self.stream.as_deref().map_or(0, |s| {
            if dir == Dir::Request {
                s.request_body.len()
            } else {
                s.response_body.len()
            }
        })
    }
}
