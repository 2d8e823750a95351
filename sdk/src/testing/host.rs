//! The in-memory host behind `gateway_sdk::testing`.

use crate::abi::{status, BufferType, MapType, MetricKind, StreamType};
use crate::host::{Host, LogLevel};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Shared data as the host keeps it: key -> (value, version).
pub(crate) type SharedStore = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

/// A callout the filter sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentCallout {
    /// Token the host returned for it.
    pub token: u32,
    /// Target cluster.
    pub cluster: String,
    /// Headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Timeout in milliseconds.
    pub timeout_ms: u32,
}

impl SentCallout {
    /// The first value of a header of the callout request.
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

pub(crate) fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// What the host knows about one request (one HTTP context).
#[derive(Default)]
pub(crate) struct StreamState {
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    pub request_trailers: Vec<(String, String)>,
    pub response_trailers: Vec<(String, String)>,
    /// Body bytes the host holds for the filter (what `get_buffer_bytes` reads).
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    /// Body bytes the filter let through, in order.
    pub request_body_out: Vec<u8>,
    pub response_body_out: Vec<u8>,
    /// True once the filter held back a body chunk.
    pub request_body_held: bool,
    pub response_body_held: bool,
    pub callout_headers: Vec<(String, String)>,
    pub callout_body: Vec<u8>,
    pub properties: HashMap<Vec<String>, Vec<u8>>,
    pub local_response: Option<crate::LocalResponse>,
    pub callouts: Vec<SentCallout>,
    pub continued: Vec<StreamType>,
}

/// What the host knows about the loaded filter as a whole.
#[derive(Default)]
pub(crate) struct State {
    pub plugin_config: Vec<u8>,
    pub logs: Vec<(LogLevel, String)>,
    pub metrics: Vec<(MetricKind, String, i64)>,
    pub streams: HashMap<u32, StreamState>,
    /// What `gateway.clusters` lists (`None`: the property is absent).
    pub clusters: Option<Vec<String>>,
}

pub(crate) struct MockHost {
    pub state: RefCell<State>,
    pub shared: RefCell<SharedStore>,
    pub now_nanos: Cell<u64>,
    /// The context hostcalls act on, as a real host tracks it.
    pub current: Cell<u32>,
    pub tick_millis: Cell<Option<u32>>,
    /// State of the seeded generator behind `random_get`.
    pub random_state: Cell<u64>,
    /// Shared queues by id - 1: name and messages.
    pub queues: RefCell<Vec<(String, std::collections::VecDeque<Vec<u8>>)>>,
    /// The lowest level the host keeps (`proxy_get_log_level`).
    pub log_level: Cell<LogLevel>,
    next_token: Cell<u32>,
}

impl MockHost {
    pub fn new() -> Self {
        MockHost {
            state: RefCell::new(State::default()),
            shared: RefCell::new(Rc::new(RefCell::new(HashMap::new()))),
            // 2026-01-01T00:00:00Z: a plausible wall clock for time-based filters.
            now_nanos: Cell::new(1_767_225_600_000_000_000),
            current: Cell::new(0),
            tick_millis: Cell::new(None),
            random_state: Cell::new(0x9e37_79b9_7f4a_7c15),
            queues: RefCell::new(Vec::new()),
            log_level: Cell::new(LogLevel::Trace),
            next_token: Cell::new(1),
        }
    }

    /// The state of the stream of `context`.
    pub fn stream_of(&self, context: u32) -> std::cell::RefMut<'_, StreamState> {
        std::cell::RefMut::map(self.state.borrow_mut(), |s| {
            s.streams.entry(context).or_default()
        })
    }

    /// The current stream's state (created empty if the context is unknown).
    pub fn stream(&self) -> std::cell::RefMut<'_, StreamState> {
        let current = self.current.get();
        std::cell::RefMut::map(self.state.borrow_mut(), |s| {
            s.streams.entry(current).or_default()
        })
    }

    fn map(&self, map: MapType) -> std::cell::RefMut<'_, Vec<(String, String)>> {
        std::cell::RefMut::map(self.stream(), |s| match map {
            MapType::RequestHeaders => &mut s.request_headers,
            MapType::ResponseHeaders => &mut s.response_headers,
            MapType::RequestTrailers => &mut s.request_trailers,
            MapType::ResponseTrailers => &mut s.response_trailers,
            MapType::CalloutResponseHeaders => &mut s.callout_headers,
        })
    }
}

impl Host for MockHost {
    fn log(&self, level: LogLevel, message: &str) {
        self.state
            .borrow_mut()
            .logs
            .push((level, message.to_string()));
    }

    fn log_enabled(&self, level: LogLevel) -> bool {
        level >= self.log_level.get()
    }

    fn current_time_nanos(&self) -> u64 {
        self.now_nanos.get()
    }

    fn map_pairs(&self, map: MapType) -> Vec<(String, String)> {
        self.map(map).clone()
    }

    fn map_value(&self, map: MapType, key: &str) -> Option<String> {
        find(&self.map(map), key).map(str::to_string)
    }

    fn map_add(&self, map: MapType, key: &str, value: &str) {
        self.map(map)
            .push((key.to_ascii_lowercase(), value.to_string()));
    }

    fn map_replace(&self, map: MapType, key: &str, value: &str) {
        let mut headers = self.map(map);
        match headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(key))
        {
            Some(at) => {
                headers[at].1 = value.to_string();
                let mut seen = 0;
                headers.retain(|(n, _)| {
                    let same = n.eq_ignore_ascii_case(key);
                    seen += usize::from(same);
                    !same || seen == 1
                });
            }
            None => headers.push((key.to_ascii_lowercase(), value.to_string())),
        }
    }

    fn map_remove(&self, map: MapType, key: &str) {
        self.map(map).retain(|(n, _)| !n.eq_ignore_ascii_case(key));
    }

    fn buffer(&self, buffer: BufferType, start: usize, max: usize) -> Option<Vec<u8>> {
        let bytes = match buffer {
            BufferType::RequestBody => self.stream().request_body.clone(),
            BufferType::ResponseBody => self.stream().response_body.clone(),
            BufferType::CalloutResponseBody => self.stream().callout_body.clone(),
            BufferType::PluginConfiguration => self.state.borrow().plugin_config.clone(),
        };
        let end = start.saturating_add(max).min(bytes.len());
        bytes.get(start..end).map(<[u8]>::to_vec)
    }

    fn set_buffer(
        &self,
        buffer: BufferType,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), u32> {
        let mut state = self.stream();
        let bytes = match buffer {
            BufferType::RequestBody => &mut state.request_body,
            BufferType::ResponseBody => &mut state.response_body,
            _ => return Err(status::NOT_FOUND),
        };
        let end = start.saturating_add(size).min(bytes.len());
        if start > bytes.len() {
            return Err(2);
        }
        bytes.splice(start..end, data.iter().copied());
        Ok(())
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        if path == crate::clusters::CLUSTERS_PROPERTY {
            if let Some(names) = &self.state.borrow().clusters {
                return Some(names.join("\0").into_bytes());
            }
        }
        let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        self.stream().properties.get(&key).cloned()
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), u32> {
        let key = path.iter().map(|s| s.to_string()).collect();
        self.stream().properties.insert(key, value.to_vec());
        Ok(())
    }

    fn send_local_response(&self, status: u16, headers: &[u8], body: &[u8]) -> Result<(), u32> {
        self.stream().local_response = Some(crate::LocalResponse {
            status,
            headers: crate::abi::decode_map(headers),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn http_call(
        &self,
        cluster: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, u32> {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        self.stream().callouts.push(SentCallout {
            token,
            cluster: cluster.to_string(),
            headers: headers.to_vec(),
            body: body.to_vec(),
            timeout_ms,
        });
        Ok(token)
    }

    fn continue_stream(&self, stream: StreamType) -> Result<(), u32> {
        self.stream().continued.push(stream);
        Ok(())
    }

    fn shared_data(&self, key: &str) -> Result<(Option<Vec<u8>>, u32), u32> {
        let store = self.shared.borrow().clone();
        let store = store.borrow();
        Ok(match store.get(key) {
            Some((value, cas)) => (Some(value.clone()), *cas),
            None => (None, 0),
        })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), u32> {
        let store = self.shared.borrow().clone();
        let mut store = store.borrow_mut();
        let entry = store
            .entry(key.to_string())
            .or_insert_with(|| (Vec::new(), 0));
        // As in Envoy: CAS 0 writes unconditionally, anything else must match.
        if cas != 0 && cas != entry.1 {
            return Err(status::CAS_MISMATCH);
        }
        *entry = (value.to_vec(), entry.1 + 1);
        Ok(())
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, u32> {
        let mut state = self.state.borrow_mut();
        if let Some(at) = state
            .metrics
            .iter()
            .position(|(k, n, _)| *k == kind && n == name)
        {
            return Ok(at as u32);
        }
        state.metrics.push((kind, name.to_string(), 0));
        Ok(state.metrics.len() as u32 - 1)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> Result<(), u32> {
        let mut state = self.state.borrow_mut();
        let metric = state
            .metrics
            .get_mut(id as usize)
            .ok_or(status::NOT_FOUND)?;
        metric.2 += delta;
        Ok(())
    }

    fn record_metric(&self, id: u32, value: u64) -> Result<(), u32> {
        let mut state = self.state.borrow_mut();
        let metric = state
            .metrics
            .get_mut(id as usize)
            .ok_or(status::NOT_FOUND)?;
        metric.2 = i64::try_from(value).unwrap_or(i64::MAX);
        Ok(())
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), u32> {
        self.current.set(context_id);
        Ok(())
    }

    fn set_tick_period(&self, millis: u32) -> Result<(), u32> {
        self.tick_millis.set(Some(millis));
        Ok(())
    }

    fn register_queue(&self, name: &str) -> Result<u32, u32> {
        let mut queues = self.queues.borrow_mut();
        if let Some(at) = queues.iter().position(|(n, _)| n == name) {
            return Ok(at as u32 + 1);
        }
        queues.push((name.to_string(), Default::default()));
        Ok(queues.len() as u32)
    }

    fn resolve_queue(&self, _vm_id: &str, name: &str) -> Result<u32, u32> {
        let queues = self.queues.borrow();
        match queues.iter().position(|(n, _)| n == name) {
            Some(at) => Ok(at as u32 + 1),
            None => Err(status::NOT_FOUND),
        }
    }

    fn enqueue(&self, id: u32, data: &[u8]) -> Result<(), u32> {
        let mut queues = self.queues.borrow_mut();
        let (_, queue) = queues
            .get_mut((id as usize).wrapping_sub(1))
            .ok_or(status::NOT_FOUND)?;
        queue.push_back(data.to_vec());
        Ok(())
    }

    fn dequeue(&self, id: u32) -> Result<Option<Vec<u8>>, u32> {
        let mut queues = self.queues.borrow_mut();
        let (_, queue) = queues
            .get_mut((id as usize).wrapping_sub(1))
            .ok_or(status::NOT_FOUND)?;
        Ok(queue.pop_front())
    }

    fn random(&self, buf: &mut [u8]) -> Result<(), u32> {
        // SplitMix64: tiny, seedable, and good enough for tests.
        for piece in buf.chunks_mut(8) {
            let state = self.random_state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            self.random_state.set(state);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            piece.copy_from_slice(&z.to_le_bytes()[..piece.len()]);
        }
        Ok(())
    }
}
