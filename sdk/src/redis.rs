//! Redis commands through a cluster of protocol `redis`, over the ordinary
//! callout (`proxy_http_call`): the body is the command as a JSON array, the
//! answer's status says how it went and its body is the reply as JSON.
//!
//! ```
//! use gateway_sdk::{redis, Decision, Filter, Request};
//! # use std::rc::Rc;
//! struct Visits;
//! impl Filter for Visits {
//!     type Config = ();
//!     fn new(_: &Rc<()>) -> Self { Visits }
//!     fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
//!         let page = request.path();
//!         redis::command("INCR", [format!("visits:{page}")])
//!             .cluster("sessions")
//!             .then(|_this, request, reply| {
//!                 if let Some(count) = reply.as_i64() {
//!                     request.set_header("x-visits", &count.to_string());
//!                 }
//!                 Decision::Continue
//!             })
//!     }
//! }
//! ```
//!
//! The convention, for filters written with any proxy-wasm SDK: request
//! body `["INCRBY", "hits", 1]` (strings and numbers; `{"base64": "..."}`
//! for binary); answer status 200 with the reply as JSON, 422 with
//! `{"error": "..."}` when Redis answered an error, 400 for a malformed
//! command, 503 when Redis gave no answer (unreachable, TLS or `AUTH`
//! failed), 504 on timeout.

use crate::callout::{CalloutRequest, CalloutResponse};
use crate::filter::Decision;
use crate::http::Request;
use serde_json::Value;
use std::time::Duration;

/// The cluster a command goes to unless [`RedisCommand::cluster`] says.
pub const DEFAULT_CLUSTER: &str = "redis";

/// A command waiting to be sent; made by [`command`].
#[derive(Clone, Debug, PartialEq)]
pub struct RedisCommand {
    cluster: String,
    args: Vec<Value>,
    timeout: Duration,
}

/// `name` with `args` (strings, numbers: anything that converts to a JSON
/// value), for the cluster `redis` with a 1 second timeout.
pub fn command<A: Into<Value>>(name: &str, args: impl IntoIterator<Item = A>) -> RedisCommand {
    let mut all = vec![Value::from(name)];
    all.extend(args.into_iter().map(Into::into));
    RedisCommand {
        cluster: DEFAULT_CLUSTER.to_string(),
        args: all,
        timeout: Duration::from_secs(1),
    }
}

impl RedisCommand {
    /// Sends to this cluster instead of `redis`.
    pub fn cluster(mut self, cluster: &str) -> Self {
        self.cluster = cluster.to_string();
        self
    }

    /// Sets how long the host waits for the reply.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The callout that carries this command.
    pub fn callout(&self) -> CalloutRequest {
        CalloutRequest::post(&self.cluster, "/")
            .header("content-type", "application/json")
            .body(Value::Array(self.args.clone()).to_string())
            .timeout(self.timeout)
    }

    /// Sends the command and holds the request until `then` decides with
    /// the reply.
    pub fn then<F>(
        self,
        then: impl FnOnce(&mut F, &mut Request, RedisReply) -> Decision<F> + 'static,
    ) -> Decision<F> {
        self.callout()
            .then(move |filter, request, answer| then(filter, request, RedisReply::from(answer)))
    }

    /// Sends the command without holding any request (from
    /// [`crate::Filter::on_tick`] for example); `on_reply` runs when the
    /// reply arrives. `false` if the host refused to send it (then
    /// `on_reply` never runs).
    pub fn send(self, on_reply: impl FnOnce(RedisReply) + 'static) -> bool {
        crate::callout::send_detached(self.callout(), move |answer| {
            on_reply(RedisReply::from(answer))
        })
    }
}

/// A command's outcome.
#[derive(Clone, Debug, PartialEq)]
pub enum RedisReply {
    /// Redis answered; the reply as JSON (`null` for nil).
    Value(Value),
    /// Redis answered with an error (`ERR ...`, `WRONGTYPE ...`).
    Error(String),
    /// No answer: Redis unreachable, timeout, unknown cluster, bad command.
    Unavailable(String),
}

impl RedisReply {
    /// The reply, if Redis answered without error.
    pub fn value(&self) -> Option<&Value> {
        match self {
            RedisReply::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The reply as an integer (`INCR`, `TTL`...; numeric strings too).
    pub fn as_i64(&self) -> Option<i64> {
        match self.value()? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// True when no answer came (Redis unreachable or too slow).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RedisReply::Unavailable(_))
    }

    /// The callout answer a host following the convention sends for this
    /// reply (what [`crate::testing`] delivers).
    pub fn to_answer(&self) -> (u16, Vec<u8>) {
        let error = |status, why: &str| {
            (
                status,
                serde_json::json!({ "error": why }).to_string().into_bytes(),
            )
        };
        match self {
            RedisReply::Value(v) => (200, v.to_string().into_bytes()),
            RedisReply::Error(e) => error(422, e),
            RedisReply::Unavailable(e) => error(503, e),
        }
    }
}

impl From<CalloutResponse> for RedisReply {
    fn from(answer: CalloutResponse) -> Self {
        let body: Option<Value> = serde_json::from_slice(answer.body()).ok();
        let error = || {
            body.as_ref()
                .and_then(|b| b.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match answer.status() {
            Some(200) => RedisReply::Value(body.clone().unwrap_or(Value::Null)),
            Some(422) => RedisReply::Error(error()),
            Some(status) => RedisReply::Unavailable(format!("status {status}: {}", error())),
            None => RedisReply::Unavailable("callout failed".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_json_arrays() {
        let callout = command("INCRBY", [Value::from("hits"), Value::from(3)]).callout();
        assert_eq!(callout.cluster, "redis");
        assert_eq!(callout.body, br#"["INCRBY","hits",3]"#);
    }

    #[test]
    fn answers_become_replies() {
        for reply in [
            RedisReply::Value(serde_json::json!(7)),
            RedisReply::Error("ERR no".into()),
        ] {
            let (status, body) = reply.to_answer();
            let answer = CalloutResponse::new(vec![(":status".into(), status.to_string())], body);
            assert_eq!(RedisReply::from(answer), reply);
        }
        assert!(RedisReply::from(CalloutResponse::failed()).is_unavailable());
        assert_eq!(RedisReply::Value(Value::from("12")).as_i64(), Some(12));
    }
}
