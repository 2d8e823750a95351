//! The trailer callbacks. Trailers end a message, so a body the filter
//! buffers (and which therefore never saw `end_of_stream`) is complete
//! here: its hook runs first, then the trailers hook.

use super::Runtime;
use crate::abi::{action, BufferType};
use crate::body::{Body, BodyPlan};
use crate::filter::Filter;
use crate::hooks::Callback;
use crate::http::{Request, Response};
use crate::trailers::Trailers;

impl<F: Filter> Runtime<F> {
    /// `proxy_on_request_trailers`.
    pub fn on_request_trailers(&self, context_id: u32, _trailers: usize) -> u32 {
        if !crate::hooks::effective::<F>().calls(Callback::RequestTrailers) {
            return action::CONTINUE;
        }
        self.with_stream(context_id, |stream| {
            if stream.answered_locally {
                return action::PAUSE;
            }
            if buffering(stream.request_body) {
                stream.request_body = BodyPlan::PassingThrough;
                let mut body = Body::read(BufferType::RequestBody, usize::MAX);
                let held = body.len();
                let Some(filter) = stream.filter.as_mut() else {
                    return action::PAUSE;
                };
                let decision = filter.on_request_body(&mut Request::new(), &mut body);
                body.write_back(BufferType::RequestBody, held);
                if self.apply(context_id, stream, decision) != action::CONTINUE {
                    return action::PAUSE;
                }
            }
            let Some(filter) = stream.filter.as_mut() else {
                return action::PAUSE;
            };
            filter.on_request_trailers(&mut Trailers::request());
            action::CONTINUE
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_response_trailers`.
    pub fn on_response_trailers(&self, context_id: u32, _trailers: usize) -> u32 {
        if !crate::hooks::effective::<F>().calls(Callback::ResponseTrailers) {
            return action::CONTINUE;
        }
        self.with_stream(context_id, |stream| {
            if stream.answered_locally {
                return action::CONTINUE;
            }
            if buffering(stream.response_body) {
                stream.response_body = BodyPlan::PassingThrough;
                let mut body = Body::read(BufferType::ResponseBody, usize::MAX);
                let held = body.len();
                let Some(filter) = stream.filter.as_mut() else {
                    return action::CONTINUE;
                };
                let decision = filter.on_response_body(&mut Response::new(), &mut body);
                body.write_back(BufferType::ResponseBody, held);
                if super::http::apply_response(stream, decision) != action::CONTINUE {
                    return action::PAUSE;
                }
            }
            let Some(filter) = stream.filter.as_mut() else {
                return action::CONTINUE;
            };
            filter.on_response_trailers(&mut Trailers::response());
            action::CONTINUE
        })
        .unwrap_or(action::CONTINUE)
    }
}

/// Whether a body is being held for its hook (not streamed, not given up).
fn buffering(plan: BodyPlan) -> bool {
    matches!(plan, BodyPlan::Buffer { .. })
}
