//! One request in flight through a filter under test.

use super::body;
use super::host::{self, find, MockHost, SentCallout};
use super::{TestResponse, ROOT_CONTEXT};
use crate::abi::{action, StreamType};
use crate::filter::{Filter, LocalResponse};
use crate::runtime::Runtime;
use std::cell::Cell;
use std::rc::Rc;

/// One request in flight through the filter, and what the filter did to it.
pub struct Exchange<F: Filter> {
    pub(super) runtime: Rc<Runtime<F>>,
    pub(super) host: Rc<MockHost>,
    pub(super) context: u32,
    pub(super) paused: Cell<bool>,
}

impl<F: Filter> Exchange<F> {
    /// Points the host at this request's context, as a real host does before
    /// each callback.
    pub(super) fn enter(&self) {
        crate::host::install(self.host.clone());
        self.host.current.set(self.context);
    }

    fn stream(&self) -> std::cell::RefMut<'_, host::StreamState> {
        self.enter();
        self.host.stream()
    }

    /// The response the filter answered with, if it answered locally.
    pub fn local_response(&self) -> Option<LocalResponse> {
        self.stream().local_response.clone()
    }

    /// True if the request goes on upstream: not answered, not held.
    pub fn is_continue(&self) -> bool {
        self.local_response().is_none() && !self.paused.get()
    }

    /// True if the filter holds the request (waiting for a callout).
    pub fn is_paused(&self) -> bool {
        self.local_response().is_none() && self.paused.get()
    }

    /// A request header as the upstream would see it.
    pub fn request_header(&self, name: &str) -> Option<String> {
        find(&self.stream().request_headers, name).map(str::to_string)
    }

    /// All request headers as the upstream would see them.
    pub fn request_headers(&self) -> Vec<(String, String)> {
        self.stream().request_headers.clone()
    }

    /// The request body as the upstream would see it.
    pub fn request_body(&self) -> Vec<u8> {
        let stream = self.stream();
        [stream.request_body_out.as_slice(), &stream.request_body].concat()
    }

    /// True if the filter held back any part of the request body (asked the
    /// host to buffer it) instead of letting it stream.
    pub fn request_body_held(&self) -> bool {
        self.stream().request_body_held
    }

    /// The cluster the filter chose (`gateway.upstream` property), if any.
    pub fn upstream(&self) -> Option<String> {
        let key = vec!["gateway".to_string(), "upstream".to_string()];
        self.stream()
            .properties
            .get(&key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The consistent-hashing key the filter set (`gateway.hash_key`
    /// property), if any.
    pub fn hash_key(&self) -> Option<String> {
        let key = vec!["gateway".to_string(), "hash_key".to_string()];
        self.stream()
            .properties
            .get(&key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Callouts the filter sent during this request.
    pub fn callouts(&self) -> Vec<SentCallout> {
        self.stream().callouts.clone()
    }

    /// Delivers the answer to the most recent callout.
    pub fn answer_callout(&mut self, answer: TestResponse) -> &mut Self {
        self.deliver_callout(answer.header_list(), answer.body.unwrap_or_default())
    }

    /// Makes the most recent callout fail (timeout, unreachable cluster).
    pub fn fail_callout(&mut self) -> &mut Self {
        self.deliver_callout(Vec::new(), Vec::new())
    }

    fn deliver_callout(&mut self, headers: Vec<(String, String)>, body: Vec<u8>) -> &mut Self {
        let Some(token) = self.stream().callouts.last().map(|c| c.token) else {
            panic!("the filter sent no callout");
        };
        let (count, size) = (headers.len(), body.len());
        {
            let mut stream = self.stream();
            stream.callout_headers = headers;
            stream.callout_body = body;
            stream.continued.clear();
        }
        // Hosts deliver callout answers on the root context; the SDK must
        // switch to the request's context itself.
        self.host.current.set(ROOT_CONTEXT);
        self.runtime.on_http_call_response(token, count, size);
        let resumed = self.stream().continued.contains(&StreamType::Request);
        self.paused.set(!resumed);
        self
    }

    /// Sends an upstream response back through the filter.
    pub fn respond(&mut self, response: TestResponse) -> &mut Self {
        self.stream().response_headers = response.header_list();
        let has_body = response.body.is_some();
        let has_trailers = !response.trailers.is_empty();
        self.enter();
        let action = self
            .runtime
            .on_response_headers(self.context, 1, !has_body && !has_trailers);
        if let (Some(body), true) = (response.body, action == action::CONTINUE) {
            // Hosts send the headers on before the body: changes made in
            // the body hook do not reach the client.
            let sent = self.stream().response_headers.clone();
            self.enter();
            let (runtime, context) = (&self.runtime, self.context);
            body::feed(
                &self.host,
                body::Side::Response,
                &body,
                response.chunk,
                has_trailers,
                |size, eos| runtime.on_response_body(context, size, eos),
            );
            self.stream().response_headers = sent;
        }
        if has_trailers && action == action::CONTINUE && self.local_response().is_none() {
            self.stream().response_trailers = response.trailers;
            self.trailers(body::Side::Response);
        }
        self
    }

    /// Runs the trailers hook of `side`; the body the host still holds
    /// (a buffered one) is released with them, as a host sends it on.
    pub(super) fn trailers(&self, side: body::Side) {
        self.enter();
        let action = match side {
            body::Side::Request => self.runtime.on_request_trailers(self.context, 1),
            body::Side::Response => self.runtime.on_response_trailers(self.context, 1),
        };
        if action == action::CONTINUE && self.local_response().is_none() {
            body::release(&self.host, side);
        }
    }

    /// A request trailer as the upstream would see it.
    pub fn request_trailer(&self, name: &str) -> Option<String> {
        find(&self.stream().request_trailers, name).map(str::to_string)
    }

    /// All request trailers as the upstream would see them.
    pub fn request_trailers(&self) -> Vec<(String, String)> {
        self.stream().request_trailers.clone()
    }

    /// A response trailer as the client would see it.
    pub fn response_trailer(&self, name: &str) -> Option<String> {
        find(&self.stream().response_trailers, name).map(str::to_string)
    }

    /// All response trailers as the client would see them.
    pub fn response_trailers(&self) -> Vec<(String, String)> {
        self.stream().response_trailers.clone()
    }

    /// The response status the client would see (a local response wins).
    pub fn response_status(&self) -> Option<u16> {
        if let Some(local) = self.local_response() {
            return Some(local.status);
        }
        find(&self.stream().response_headers, ":status")?
            .parse()
            .ok()
    }

    /// A response header the client would see (from the upstream response).
    pub fn response_header(&self, name: &str) -> Option<String> {
        find(&self.stream().response_headers, name).map(str::to_string)
    }

    /// The response body the client would see (from the upstream response).
    pub fn response_body(&self) -> Vec<u8> {
        let stream = self.stream();
        [stream.response_body_out.as_slice(), &stream.response_body].concat()
    }

    /// True if the filter held back any part of the response body (asked the
    /// host to buffer it) instead of letting it stream.
    pub fn response_body_held(&self) -> bool {
        self.stream().response_body_held
    }
}

impl<F: Filter> Drop for Exchange<F> {
    fn drop(&mut self) {
        self.enter();
        self.runtime.on_log(self.context);
        self.runtime.on_done(self.context);
        self.runtime.on_delete(self.context);
    }
}
