//! Run a service natively, in `cargo test`, against the in-memory host:
//! fire its timer, answer its callouts, feed its queues, read the shared
//! data it publishes (and share that data with a [`FilterTest`]).

use super::host::{MockHost, SentCallout};
use super::{FilterTest, TestResponse, ROOT_CONTEXT};
use crate::filter::Filter;
use crate::host::LogLevel;
use crate::service::Service;
use crate::service_runtime::ServiceRuntime;
use std::rc::Rc;
use std::time::Duration;

/// A service started in an in-memory host.
///
/// ```
/// use gateway_sdk::testing::ServiceTest;
/// # use gateway_sdk::Service;
/// # struct Counter(u32);
/// # impl Service for Counter {
/// #     type Config = ();
/// #     fn start(_: &()) -> Result<Self, String> { Ok(Counter(0)) }
/// #     fn tick_period(&self) -> Option<std::time::Duration> { Some(std::time::Duration::from_secs(1)) }
/// #     fn on_tick(&mut self) {
/// #         self.0 += 1;
/// #         let _ = gateway_sdk::shared::set("ticks", self.0.to_string().as_bytes(), None);
/// #     }
/// # }
/// let mut test = ServiceTest::<Counter>::new("").expect("started");
/// assert_eq!(test.tick_period(), Some(std::time::Duration::from_secs(1)));
/// test.tick();
/// test.tick();
/// assert_eq!(test.shared_data("ticks").as_deref(), Some(&b"2"[..]));
/// ```
pub struct ServiceTest<S: Service> {
    runtime: ServiceRuntime<S>,
    host: Rc<MockHost>,
    /// Callouts already answered (by token).
    answered: Vec<u32>,
}

impl<S: Service> ServiceTest<S> {
    /// Starts the service with this configuration (JSON, TOML or empty):
    /// `proxy_on_vm_start`, then `proxy_on_configure`. `Err` carries the log
    /// lines when the configuration or the start is rejected.
    pub fn new(config: &str) -> Result<Self, String> {
        let host = Rc::new(MockHost::new());
        crate::host::install(host.clone());
        host.state.borrow_mut().plugin_config = config.as_bytes().to_vec();
        host.current.set(ROOT_CONTEXT);
        let runtime = ServiceRuntime::<S>::new();
        runtime.on_context_create(ROOT_CONTEXT, 0);
        runtime.on_vm_start(ROOT_CONTEXT, 0);
        let test = ServiceTest {
            runtime,
            host,
            answered: Vec::new(),
        };
        if !test.runtime.on_configure(ROOT_CONTEXT, config.len()) {
            return Err(test.log_text());
        }
        Ok(test)
    }

    fn enter(&self) {
        crate::host::install(self.host.clone());
        self.host.current.set(ROOT_CONTEXT);
    }

    fn log_text(&self) -> String {
        let logs = self.host.state.borrow().logs.clone();
        logs.into_iter()
            .map(|(_, l)| l)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Configures the running service again (as a host may).
    pub fn configure(&mut self, config: &str) -> Result<(), String> {
        self.enter();
        self.host.state.borrow_mut().plugin_config = config.as_bytes().to_vec();
        if self.runtime.on_configure(ROOT_CONTEXT, config.len()) {
            Ok(())
        } else {
            Err(self.log_text())
        }
    }

    /// The timer period the service asked for (`None`: no timer).
    pub fn tick_period(&self) -> Option<Duration> {
        self.host
            .tick_millis
            .get()
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(u64::from(ms)))
    }

    /// Fires the timer once ([`Service::on_tick`]).
    pub fn tick(&mut self) {
        self.enter();
        self.runtime.on_tick(ROOT_CONTEXT);
    }

    /// Moves the host's clock forward.
    pub fn advance_time(&mut self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.host
            .now_nanos
            .set(self.host.now_nanos.get().saturating_add(nanos));
    }

    /// Every callout the service sent, answered or not.
    pub fn callouts(&self) -> Vec<SentCallout> {
        self.host.stream_of(ROOT_CONTEXT).callouts.clone()
    }

    /// Callouts not answered yet, oldest first.
    pub fn pending_callouts(&self) -> Vec<SentCallout> {
        self.callouts()
            .into_iter()
            .filter(|c| !self.answered.contains(&c.token))
            .collect()
    }

    /// Answers the oldest callout not answered yet.
    pub fn answer_callout(&mut self, answer: TestResponse) -> &mut Self {
        self.deliver(answer.header_list(), answer.body.unwrap_or_default())
    }

    /// Makes the oldest callout not answered yet fail (timeout, unreachable).
    pub fn fail_callout(&mut self) -> &mut Self {
        self.deliver(Vec::new(), Vec::new())
    }

    fn deliver(&mut self, headers: Vec<(String, String)>, body: Vec<u8>) -> &mut Self {
        let Some(token) = self.pending_callouts().first().map(|c| c.token) else {
            panic!("the service has no callout waiting for an answer");
        };
        self.answered.push(token);
        let (count, size) = (headers.len(), body.len());
        {
            let mut root = self.host.stream_of(ROOT_CONTEXT);
            root.callout_headers = headers;
            root.callout_body = body;
        }
        self.enter();
        self.runtime.on_http_call_response(token, count, size);
        self
    }

    /// Puts `message` in the queue `name` the service registered and tells
    /// it ([`Service::on_queue_ready`]).
    pub fn enqueue(&mut self, name: &str, message: &[u8]) -> &mut Self {
        let id = {
            let mut queues = self.host.queues.borrow_mut();
            let Some(at) = queues.iter().position(|(n, _)| n == name) else {
                panic!("the service registered no queue {name:?}");
            };
            queues[at].1.push_back(message.to_vec());
            at as u32 + 1
        };
        self.enter();
        self.runtime.on_queue_ready(ROOT_CONTEXT, id);
        self
    }

    /// Asks the service for an HTTP context, as a host running it as a
    /// filter would. It has none: `Err` with what it says (logged at
    /// `Critical` too; on wasm32 the panic traps, which the gateway reports
    /// as "no HTTP context: is this a service?").
    pub fn create_http_context(&mut self) -> Result<(), String> {
        self.enter();
        let runtime = &self.runtime;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.on_context_create(ROOT_CONTEXT + 1, ROOT_CONTEXT)
        }))
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default()
        })
    }

    /// Stops the service (`proxy_on_done`, then `proxy_on_delete`).
    pub fn stop(&mut self) {
        self.enter();
        self.runtime.on_done(ROOT_CONTEXT);
        self.runtime.on_delete(ROOT_CONTEXT);
    }

    /// A shared-data value.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.host.shared.borrow().clone();
        let value = store.borrow().get(key).map(|(v, _)| v.clone());
        value
    }

    /// Makes `filter` see the service's shared data, as a filter with the
    /// service's VM id does in the gateway.
    pub fn share_data_with<F: Filter>(&self, filter: &mut FilterTest<F>) {
        let store = self.host.shared.borrow().clone();
        *filter.host.shared.borrow_mut() = store;
    }

    /// Every line logged so far, oldest first.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.host.state.borrow().logs.clone()
    }

    /// True if some log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs().iter().any(|(_, line)| line.contains(text))
    }
}
