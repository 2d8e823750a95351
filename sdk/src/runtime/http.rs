//! The HTTP callbacks: request and response phases, bodies, callout answers,
//! and how a filter's decisions become hostcalls and `Action`s.

use super::{log, Runtime, Stream};
use crate::abi::{action, BufferType, MapType, StreamType};
use crate::callout::CalloutResponse;
use crate::filter::{Decision, Filter, LocalResponse, ResponseDecision};
use crate::host::{self, LogLevel};
use crate::http::{Body, Request, Response};

impl<F: Filter> Runtime<F> {
    /// `proxy_on_request_headers`.
    pub fn on_request_headers(
        &self,
        context_id: u32,
        _headers: usize,
        _end_of_stream: bool,
    ) -> u32 {
        self.with_stream(context_id, |stream| {
            let Some(filter) = stream.filter.as_mut() else {
                respond(
                    stream,
                    LocalResponse::new(500).body("filter has no valid configuration"),
                );
                return action::PAUSE;
            };
            if F::REQUEST_BODY_LIMIT.is_some() {
                host::with(|h| h.map_remove(MapType::RequestHeaders, "content-length"));
            }
            let decision = filter.on_request(&mut Request::new());
            self.apply(context_id, stream, decision)
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_request_body`.
    pub fn on_request_body(&self, context_id: u32, size: usize, end_of_stream: bool) -> u32 {
        let Some(limit) = F::REQUEST_BODY_LIMIT else {
            return action::CONTINUE;
        };
        self.with_stream(context_id, |stream| {
            if stream.answered_locally || stream.filter.is_none() {
                return action::PAUSE;
            }
            if size > limit {
                respond(
                    stream,
                    LocalResponse::new(413).body("request body too large"),
                );
                return action::PAUSE;
            }
            if !end_of_stream {
                return action::PAUSE;
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
        self.with_stream(context_id, |stream| {
            if stream.answered_locally {
                return action::CONTINUE;
            }
            let Some(filter) = stream.filter.as_mut() else {
                return action::CONTINUE;
            };
            if F::RESPONSE_BODY_LIMIT.is_some() {
                host::with(|h| h.map_remove(MapType::ResponseHeaders, "content-length"));
            }
            let decision = filter.on_response(&mut Response::new());
            apply_response(stream, decision)
        })
        .unwrap_or(action::CONTINUE)
    }

    /// `proxy_on_response_body`.
    pub fn on_response_body(&self, context_id: u32, size: usize, end_of_stream: bool) -> u32 {
        let Some(limit) = F::RESPONSE_BODY_LIMIT else {
            return action::CONTINUE;
        };
        self.with_stream(context_id, |stream| {
            if stream.answered_locally {
                return action::CONTINUE;
            }
            if size > limit {
                respond(
                    stream,
                    LocalResponse::new(502).body("response body too large for filter"),
                );
                return action::PAUSE;
            }
            if !end_of_stream {
                return action::PAUSE;
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
            return;
        };
        let _ = host::with(|h| h.set_effective_context(context_id));
        let answer = if headers == 0 {
            CalloutResponse::failed()
        } else {
            let headers = host::with(|h| h.map_pairs(MapType::CalloutResponseHeaders));
            let body = host::with(|h| h.buffer(BufferType::CalloutResponseBody, 0, body_size))
                .unwrap_or_default();
            CalloutResponse::new(headers, body)
        };
        self.with_stream(context_id, |stream| {
            let (Some(then), Some(filter)) = (stream.pending.take(), stream.filter.as_mut()) else {
                return;
            };
            let decision = then(filter, &mut Request::new(), answer);
            if self.apply(context_id, stream, decision) == action::CONTINUE {
                let _ = host::with(|h| h.continue_stream(StreamType::Request));
            }
        });
    }

    /// Carries out a request-phase decision; returns the `Action` for the host.
    fn apply(&self, context_id: u32, stream: &mut Stream<F>, decision: Decision<F>) -> u32 {
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

fn respond(stream: &mut Stream<impl Sized>, response: LocalResponse) {
    stream.answered_locally = true;
    let sent =
        host::with(|h| h.send_local_response(response.status, &response.headers, &response.body));
    if let Err(code) = sent {
        log(
            LogLevel::Error,
            &format!("local response {} refused (status {code})", response.status),
        );
    }
}

fn apply_response<F>(stream: &mut Stream<F>, decision: ResponseDecision) -> u32 {
    match decision {
        ResponseDecision::Continue => action::CONTINUE,
        ResponseDecision::Respond(response) => {
            respond(stream, response);
            action::PAUSE
        }
    }
}
