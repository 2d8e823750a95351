//! Fake Redis replies for filters under test: answer a command sent with
//! [`crate::redis`] as a gateway with a Redis cluster would.

use super::{Exchange, FilterTest, SentCallout, TestResponse, ROOT_CONTEXT};
use crate::filter::Filter;
use crate::redis::RedisReply;

fn as_response(reply: &RedisReply) -> TestResponse {
    let (status, body) = reply.to_answer();
    TestResponse::new(status)
        .header("content-type", "application/json")
        .body(body)
}

/// The command a callout carries, as its JSON arguments (`["INCR", "k"]`).
pub fn redis_command(callout: &SentCallout) -> Vec<serde_json::Value> {
    serde_json::from_slice(&callout.body).unwrap_or_default()
}

impl<F: Filter> Exchange<F> {
    /// Answers the request's most recent callout (a Redis command) with `reply`.
    pub fn answer_redis(&mut self, reply: RedisReply) -> &mut Self {
        self.answer_callout(as_response(&reply))
    }
}

impl<F: Filter> FilterTest<F> {
    /// Callouts sent outside any request (from `on_tick`) and not answered yet.
    pub fn detached_callouts(&self) -> Vec<SentCallout> {
        self.host.stream_of(ROOT_CONTEXT).callouts.clone()
    }

    /// Answers the detached callout `token` with a Redis `reply`.
    pub fn answer_redis(&mut self, token: u32, reply: RedisReply) {
        self.answer_detached(token, as_response(&reply));
    }

    /// Answers the detached callout `token`.
    pub fn answer_detached(&mut self, token: u32, answer: TestResponse) {
        crate::host::install(self.host.clone());
        let (headers, body) = (answer.header_list(), answer.body.unwrap_or_default());
        let (count, size) = (headers.len(), body.len());
        {
            let mut root = self.host.stream_of(ROOT_CONTEXT);
            root.callouts.retain(|c| c.token != token);
            root.callout_headers = headers;
            root.callout_body = body;
        }
        self.host.current.set(ROOT_CONTEXT);
        self.runtime.on_http_call_response(token, count, size);
    }
}
