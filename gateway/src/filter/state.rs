//! What a guest call can see and change: the per-instance host state kept
//! in the wasmtime `Store`, and the per-request stream state moved into it
//! for the length of each call.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use wasmtime::{Memory, StoreLimits, TypedFunc};

use super::engine::HostShared;
use crate::config::filter::FilterConfig;
use crate::hash::FastMap;

pub use super::header_map::Headers;

/// Who the request is from and to; fixed for the request's life.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id (`x-request-id`), shared with the request's header.
    pub id: http::HeaderValue,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// `"http"` or `"https"`.
    pub scheme: &'static str,
    pub tls_version: Option<String>,
    /// A verified client certificate was presented (mTLS).
    pub mtls: bool,
    /// That certificate's subject.
    pub peer_subject: Option<String>,
    /// The server name the client asked for (SNI).
    pub sni: Option<String>,
}

/// One request's state, shared by every filter of its chain.
#[derive(Debug)]
pub struct StreamState {
    pub meta: RequestMeta,
    pub protocol: http::Version,
    pub request_headers: Headers,
    pub request_trailers: Headers,
    pub response_headers: Headers,
    pub response_trailers: Headers,
    /// The body chunk (or buffered body) the current body callback sees.
    pub request_body: BytesMut,
    pub response_body: BytesMut,
    pub upstream: Option<std::sync::Arc<str>>,
    pub response_code: Option<u16>,
    /// Properties filters set for this request (Envoy's filter state):
    /// path and value, readable by every filter of the chain.
    pub properties: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamState {
    /// The state of a request with `meta`, before its headers are read.
    pub fn new(meta: RequestMeta) -> StreamState {
        StreamState {
            meta,
            protocol: http::Version::HTTP_11,
            request_headers: Headers::default(),
            request_trailers: Headers::default(),
            response_headers: Headers::default(),
            response_trailers: Headers::default(),
            request_body: BytesMut::new(),
            response_body: BytesMut::new(),
            upstream: None,
            response_code: None,
            properties: Vec::new(),
        }
    }

    /// Empties the state of a finished request for another one, keeping
    /// the room of its small buffers; `false` (and nothing kept) when a
    /// buffer grew past what is worth keeping. `meta` stays until the
    /// next request's replaces it ([`ChainRun`](super::ChainRun) does so
    /// before any filter runs).
    pub fn clear(&mut self) -> bool {
        const MAX_PAIRS: usize = 64;
        const MAX_BODY: usize = 16 * 1024;
        const MAX_PROPERTIES: usize = 16;
        // Every field named, so one added later cannot be left out here.
        let StreamState {
            meta: _,
            protocol,
            request_headers,
            request_trailers,
            response_headers,
            response_trailers,
            request_body,
            response_body,
            upstream,
            response_code,
            properties,
        } = self;
        let maps = [
            &mut *request_headers,
            &mut *request_trailers,
            &mut *response_headers,
            &mut *response_trailers,
        ];
        if maps.iter().any(|h| h.pairs.capacity() > MAX_PAIRS)
            || request_body.capacity() > MAX_BODY
            || response_body.capacity() > MAX_BODY
            || properties.capacity() > MAX_PROPERTIES
        {
            return false;
        }
        for h in maps {
            h.clear();
        }
        *protocol = http::Version::HTTP_11;
        request_body.clear();
        response_body.clear();
        *upstream = None;
        *response_code = None;
        properties.clear();
        true
    }
}

/// A local answer a filter asked for (`proxy_send_local_response`).
#[derive(Debug, Clone)]
pub struct LocalResponse {
    pub status: u16,
    /// For the debug log line only: empty when debug logging is off.
    pub details: String,
    pub body: Bytes,
    /// Checked when the filter gave them.
    pub headers: http::HeaderMap,
}

/// What a guest asked for during one call, acted on by the caller afterwards.
#[derive(Debug, Default)]
pub struct Effects {
    pub local_response: Option<LocalResponse>,
    pub continue_request: bool,
    pub continue_response: bool,
    pub close: bool,
    pub tick_period: Option<Duration>,
    pub calls: Vec<PendingCall>,
}

/// A `proxy_http_call` not yet sent.
#[derive(Debug)]
pub struct PendingCall {
    pub context_id: u32,
    pub token: u32,
    pub cluster: String,
    pub request: http::Request<Bytes>,
    pub timeout: Duration,
}

/// How a paused HTTP context is woken from another context (a tick, a queue,
/// a callout answered on the root context).
#[derive(Debug, Default)]
pub struct StreamSignal {
    pub effects: Mutex<Effects>,
    pub notify: Notify,
}

/// The data of one wasmtime `Store`: one VM instance of one filter.
pub struct HostState {
    pub filter: Arc<FilterMeta>,
    pub host: Arc<HostShared>,
    pub limits: StoreLimits,
    pub memory: Option<Memory>,
    pub alloc: Option<TypedFunc<i32, i32>>,
    /// Present while a call for a request runs.
    pub stream: Option<Box<StreamState>>,
    /// The HTTP context `stream` belongs to (0 when none).
    pub current: u32,
    /// The context hostcalls act on (`proxy_set_effective_context`).
    pub effective: u32,
    pub effects: Effects,
    /// The live HTTP contexts, each with the signal that wakes it; the
    /// signal is made on first need (a pause, or another context resuming
    /// it), so a request that never pauses allocates none.
    pub signals: FastMap<u32, Option<Arc<StreamSignal>>>,
    pub next_token: u32,
    /// The callout answer `proxy_on_http_call_response` may read.
    pub call_response: Option<CallAnswer>,
    /// Bytes handed to `proxy_on_foreign_function` / `proxy_get_status`.
    pub status: (u32, Vec<u8>),
    /// Schedules `proxy_on_queue_ready` on this instance.
    pub queue_waker: Option<super::shared_data::QueueWaker>,
    /// What the guest logs while the VM starts (`Some` only then), so a
    /// rejected configuration is reported with the filter's own reason.
    pub start_log: Option<StartLog>,
    /// Reused by hostcalls that copy a value out before returning it.
    pub scratch: Vec<u8>,
    /// The encoded fields of the instance's last local answer and the
    /// fields made of them (`proxy_send_local_response`).
    pub last_answer_fields: Option<(Box<[u8]>, http::HeaderMap)>,
    /// The body of the instance's last local answer: the same body again
    /// (a 401's text, request after request) is shared, not copied.
    pub last_answer_body: Option<bytes::Bytes>,
}

/// The guest's log lines during start-up, bounded.
#[derive(Debug, Default, Clone)]
pub struct StartLog {
    /// (proxy-wasm level 0 trace .. 5 critical, message).
    pub lines: Vec<(i32, String)>,
}

impl StartLog {
    const MAX_LINES: usize = 32;
    const MAX_LINE: usize = 1024;

    /// Keeps the line; when full, the oldest line below warning gives way
    /// (else the oldest), so the reason logged last is never the one lost.
    pub fn push(&mut self, level: i32, message: &str) {
        if self.lines.len() >= Self::MAX_LINES {
            let chatter = self.lines.iter().position(|(l, _)| *l < 3).unwrap_or(0);
            self.lines.remove(chatter);
        }
        let mut end = message.len().min(Self::MAX_LINE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        self.lines.push((level, message[..end].to_string()));
    }

    /// The lines that explain a failure: warnings and errors, or every
    /// line when there are none.
    pub fn reason(&self) -> Option<String> {
        let serious: Vec<&str> = self
            .lines
            .iter()
            .filter(|(level, _)| *level >= 3)
            .map(|(_, m)| m.as_str())
            .collect();
        let lines = if serious.is_empty() {
            self.lines.iter().map(|(_, m)| m.as_str()).collect()
        } else {
            serious
        };
        (!lines.is_empty()).then(|| lines.join("; "))
    }
}

/// What every instance of a filter shares: its identity and configuration.
#[derive(Debug)]
pub struct FilterMeta {
    pub config: FilterConfig,
    pub vm_id: String,
    pub root_id: String,
    pub vm_config: Bytes,
    pub plugin_config: Bytes,
}

/// The root context of every instance.
pub const ROOT_CONTEXT: u32 = 1;

/// A callout's answer as the guest reads it.
#[derive(Debug, Default)]
pub struct CallAnswer {
    pub headers: Headers,
    pub body: Bytes,
    pub trailers: Headers,
}

impl HostState {
    pub fn new(filter: Arc<FilterMeta>, host: Arc<HostShared>, memory_limit: usize) -> Self {
        HostState {
            filter,
            host,
            limits: wasmtime::StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .instances(1)
                .trap_on_grow_failure(true)
                .build(),
            memory: None,
            alloc: None,
            stream: None,
            current: 0,
            effective: ROOT_CONTEXT,
            effects: Effects::default(),
            signals: FastMap::default(),
            next_token: 0,
            call_response: None,
            status: (0, Vec::new()),
            queue_waker: None,
            start_log: None,
            scratch: Vec::new(),
            last_answer_fields: None,
            last_answer_body: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::StartLog;

    #[test]
    fn a_chatty_start_keeps_its_last_reason() {
        let mut log = StartLog::default();
        for i in 0..100 {
            log.push(2, &format!("loading part {i}"));
        }
        log.push(4, "limit must be positive");
        assert_eq!(log.lines.len(), StartLog::MAX_LINES);
        assert_eq!(log.reason().as_deref(), Some("limit must be positive"));
    }

    #[test]
    fn without_warnings_every_line_is_the_reason_and_lines_are_cut_on_a_char() {
        let mut log = StartLog::default();
        assert_eq!(log.reason(), None);
        log.push(2, "a");
        log.push(1, &"é".repeat(1000));
        let reason = log.reason().expect("a reason");
        assert!(reason.starts_with("a; é"));
        assert!(log.lines[1].1.len() <= StartLog::MAX_LINE);
    }
}
