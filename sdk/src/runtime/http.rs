//! The HTTP callbacks: request and response phases, bodies, callout answers,
//! and how a filter's decisions become hostcalls and `Action`s.

use super::{log, Runtime, Stream};
use crate::abi::{action, with_encoded_map, BufferType, MapType, StreamType};
use crate::body::{Body, BodyPlan, OverLimit};
use crate::callout::CalloutResponse;
use crate::filter::{Decision, Filter, LocalResponse, PreparedResponse, ResponseDecision};
use crate::hooks::Callback;
use crate::host::{self, LogLevel};
use crate::http::{Request, Response};

/// One direction of a message, for the body bookkeeping both share.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

impl Direction {
    fn headers(self) -> MapType {
        match self {
            Direction::Request => MapType::RequestHeaders,
            Direction::Response => MapType::ResponseHeaders,
        }
    }

    fn plan<F>(self, stream: &mut Stream<F>) -> &mut BodyPlan {
        match self {
            Direction::Request => &mut stream.request_body,
            Direction::Response => &mut stream.response_body,
        }
    }

    /// What a rejected over-limit body is answered with.
    fn too_large(self) -> LocalResponse {
        match self {
            Direction::Request => LocalResponse::new(413).body("request body too large\n"),
            Direction::Response => {
                LocalResponse::new(502).body("response body too large for filter\n")
            }
        }
    }
}

/// Records the plan a hook chose (if it chose one). A buffered body may
/// change size, so its `content-length` goes: proxy-wasm hosts send headers
/// before the body, and a stale length would corrupt the message.
fn choose_plan<F>(stream: &mut Stream<F>, dir: Direction, chosen: Option<BodyPlan>) {
    if let Some(plan) = chosen {
        *dir.plan(stream) = plan;
    }
    if matches!(dir.plan(stream), BodyPlan::Buffer { .. }) {
        host::with(|h| h.map_remove(dir.headers(), "content-length"));
    }
}

/// Where a body callback stands: hold the chunk, let it go, or the body is
/// whole and the hook runs.
enum BodyStep {
    Action(u32),
    Whole,
}

/// Applies the stream's plan to one body callback (`size` is everything the
/// host holds so far, as after `StopIterationAndBuffer`).
fn body_step<F>(stream: &mut Stream<F>, dir: Direction, size: usize, eos: bool) -> BodyStep {
    let BodyPlan::Buffer { limit, over_limit } = *dir.plan(stream) else {
        return BodyStep::Action(action::CONTINUE);
    };
    if size > limit {
        return match over_limit {
            OverLimit::PassThrough => {
                // `Continue` releases what the host holds, and the rest streams.
                *dir.plan(stream) = BodyPlan::PassingThrough;
                BodyStep::Action(action::CONTINUE)
            }
            OverLimit::Reject => {
                respond(stream, dir.too_large());
                BodyStep::Action(action::PAUSE)
            }
        };
    }
    if eos {
        BodyStep::Whole
    } else {
        // `StopIterationAndBuffer`: the host keeps the chunk and the next
        // callback sees the whole body so far.
        BodyStep::Action(action::PAUSE)
    }
}

impl<F: Filter> Runtime<F> {
    /// `proxy_on_request_headers`.
    pub fn on_request_headers(
        &self,
        context_id: u32,
        _headers: usize,
        _end_of_stream: bool,
    ) -> u32 {
        if !crate::hooks::effective::<F>().calls(Callback::RequestHeaders) {
            return action::CONTINUE;
        }
        self.with_request_stream(context_id, |stream| {
            let Some(filter) = stream.filter.as_mut() else {
                respond(
                    stream,
                    LocalResponse::new(500).body("filter has no valid configuration"),
                );
                return action::PAUSE;
            };
            let mut request = Request::new();
            let decision = filter.on_request(&mut request);
            choose_plan(stream, Direction::Request, request.body_plan);
            self.apply(context_id, stream, decision)
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_request_body`.
    pub fn on_request_body(&self, context_id: u32, size: usize, end_of_stream: bool) -> u32 {
        if !crate::hooks::effective::<F>().calls(Callback::RequestBody) {
            return action::CONTINUE;
        }
        self.with_stream(context_id, |stream| {
            if stream.answered_locally || stream.filter.is_none() {
                return action::PAUSE;
            }
            if let BodyStep::Action(action) =
                body_step(stream, Direction::Request, size, end_of_stream)
            {
                return action;
            }
            let mut body = Body::read(BufferType::RequestBody, size);
            let Some(filter) = stream.filter.as_mut() else {
                return action::PAUSE;
            };
            let decision = filter.on_request_body(&mut Request::new(), &mut body);
            body.write_back(BufferType::RequestBody, size);
            self.apply(context_id, stream, decision)
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_response_headers`.
    pub fn on_response_headers(
        &self,
        context_id: u32,
        _headers: usize,
        _end_of_stream: bool,
    ) -> u32 {
        if !crate::hooks::effective::<F>().calls(Callback::ResponseHeaders) {
            return action::CONTINUE;
        }
        self.with_stream(context_id, |stream| {
            if stream.answered_locally {
                return action::CONTINUE;
            }
            let Some(filter) = stream.filter.as_mut() else {
                return action::CONTINUE;
            };
            let mut response = Response::new();
            let decision = filter.on_response(&mut response);
            choose_plan(stream, Direction::Response, response.body_plan);
            apply_response(stream, decision)
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_response_body`.
    pub fn on_response_body(&self, context_id: u32, size: usize, end_of_stream: bool) -> u32 {
        if !crate::hooks::effective::<F>().calls(Callback::ResponseBody) {
            return action::CONTINUE;
        }
        self.with_stream(context_id, |stream| {
            if stream.answered_locally {
                return action::CONTINUE;
            }
            if let BodyStep::Action(action) =
                body_step(stream, Direction::Response, size, end_of_stream)
            {
                return action;
            }
            let mut body = Body::read(BufferType::ResponseBody, size);
            let Some(filter) = stream.filter.as_mut() else {
                return action::CONTINUE;
            };
            let decision = filter.on_response_body(&mut Response::new(), &mut body);
            body.write_back(BufferType::ResponseBody, size);
            apply_response(stream, decision)
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_http_call_response`.
    pub fn on_http_call_response(&self, token: u32, headers: usize, body_size: usize) {
        let Some(context_id) = self.callouts.borrow_mut().remove(&token) else {
            // A callout sent outside any request (`redis::RedisCommand::send`).
            if let Some(on_answer) = crate::callout::take_detached(token) {
                on_answer(read_answer(headers, body_size));
            }
            return;
        };
        let _ = host::with(|h| h.set_effective_context(context_id));
        let answer = read_answer(headers, body_size);
        self.with_stream(context_id, |stream| {
            let (Some(then), Some(filter)) = (stream.pending.take(), stream.filter.as_mut()) else {
                return;
            };
            let mut request = Request::new();
            let decision = then(filter, &mut request, answer);
            choose_plan(stream, Direction::Request, request.body_plan);
            if self.apply(context_id, stream, decision) == action::CONTINUE {
                let _ = host::with(|h| h.continue_stream(StreamType::Request));
            }
        });
    }

    /// Carries out a request-phase decision; returns the `Action` for the host.
    pub(super) fn apply(
        &self,
        context_id: u32,
        stream: &mut Stream<F>,
        decision: Decision<F>,
    ) -> u32 {
        let mut decision = decision;
        // Bounded: a continuation that keeps failing to dispatch callouts
        // cannot spin forever.
        for _ in 0..8 {
            match decision {
                Decision::Continue => return action::CONTINUE,
                Decision::Respond(response) => {
                    respond(stream, response);
                    return action::PAUSE;
                }
                Decision::RespondPrepared(response) => {
                    respond_prepared(stream, &response);
                    return action::PAUSE;
                }
                Decision::Callout(callout) => {
                    let request = &callout.request;
                    let timeout = u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX);
                    let sent = host::with(|h| {
                        h.http_call(&request.cluster, &request.headers, &request.body, timeout)
                    });
                    match sent {
                        Ok(token) => {
                            self.callouts.borrow_mut().insert(token, context_id);
                            stream.pending = Some(callout.then);
                            return action::PAUSE;
                        }
                        Err(code) => {
                            log(
                                LogLevel::Warn,
                                &format!(
                                    "callout to cluster {:?} not sent (status {code})",
                                    request.cluster
                                ),
                            );
                            let Some(filter) = stream.filter.as_mut() else {
                                return action::PAUSE;
                            };
                            decision = (callout.then)(
                                filter,
                                &mut Request::new(),
                                CalloutResponse::failed(),
                            );
                        }
                    }
                }
            }
        }
        respond(
            stream,
            LocalResponse::new(500).body("filter callouts kept failing"),
        );
        action::PAUSE
    }
}

/// A callout's answer as the host holds it (no headers: it failed).
fn read_answer(headers: usize, body_size: usize) -> CalloutResponse {
    if headers == 0 {
        return CalloutResponse::failed();
    }
    let headers = host::with(|h| h.map_pairs(MapType::CalloutResponseHeaders));
    let body =
        host::with(|h| h.buffer(BufferType::CalloutResponseBody, 0, body_size)).unwrap_or_default();
    CalloutResponse::new(headers, body)
}

fn respond<F>(stream: &mut Stream<F>, response: LocalResponse) {
    let sent = with_encoded_map(&response.headers, |headers| {
        host::with(|h| h.send_local_response(response.status, headers, &response.body))
    });
    answered(stream, response.status, sent);
}

fn respond_prepared<F>(stream: &mut Stream<F>, response: &PreparedResponse) {
    let (status, headers, body) = response.parts();
    let sent = host::with(|h| h.send_local_response(status, headers, body));
    answered(stream, status, sent);
}

fn answered<F>(stream: &mut Stream<F>, status: u16, sent: Result<(), u32>) {
    stream.answered_locally = true;
    if let Err(code) = sent {
        log(
            LogLevel::Error,
            &format!("local response {status} refused (status {code})"),
        );
    }
}

pub(super) fn apply_response<F>(stream: &mut Stream<F>, decision: ResponseDecision) -> u32 {
    match decision {
        ResponseDecision::Continue => action::CONTINUE,
        ResponseDecision::Respond(response) => {
            respond(stream, response);
            action::PAUSE
        }
        ResponseDecision::RespondPrepared(response) => {
            respond_prepared(stream, &response);
            action::PAUSE
        }
    }
}
