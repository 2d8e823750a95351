//! Services: modules that run once per gateway process, outside any
//! request (Envoy's `WasmService`). Implement [`Service`] and export it
//! with [`crate::export_service!`].

use crate::callout::{CalloutRequest, CalloutResponse};
use crate::host;
use crate::queue::Queue;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Background work for the gateway: refresh a deny list or a key set over
/// a callout and publish it in [`crate::shared`] data for the filters,
/// drain a [`Queue`] the filters fill, and so on. One value lives as long
/// as the service runs (until it is replaced by a new version, or
/// restarted after a failure).
///
/// Every hook but [`Service::start`] has a default that does nothing.
///
/// ```
/// use gateway_sdk::{service, CalloutRequest, CalloutResponse, Service};
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Config { cluster: String }
///
/// struct Refresh { cluster: String }
///
/// impl Service for Refresh {
///     type Config = Config;
///     fn start(config: &Config) -> Result<Self, String> {
///         Ok(Refresh { cluster: config.cluster.clone() })
///     }
///     fn tick_period(&self) -> Option<Duration> { Some(Duration::from_secs(5)) }
///     fn on_tick(&mut self) {
///         let _ = service::send_callout(&CalloutRequest::get(&self.cluster, "/list"));
///     }
///     fn on_callout(&mut self, _: service::CalloutId, answer: CalloutResponse) {
///         if answer.is_success() {
///             let _ = gateway_sdk::shared::set("list", answer.body(), None);
///         }
///     }
/// }
/// gateway_sdk::export_service!(Refresh);
/// # let mut test = gateway_sdk::testing::ServiceTest::<Refresh>::new(r#"{"cluster": "lists"}"#).unwrap();
/// # test.tick();
/// # test.answer_callout(gateway_sdk::testing::TestResponse::new(200).body("a"));
/// # assert_eq!(test.shared_data("list").as_deref(), Some(&b"a"[..]));
/// ```
pub trait Service: Sized + 'static {
    /// The service's configuration (the plugin configuration, in the formats
    /// of [`crate::config`]); `()` for none. One that does not parse rejects
    /// the start, and the version running before keeps running.
    type Config: DeserializeOwned + 'static;

    /// Checks a parsed configuration beyond its type. Default: accept.
    fn validate_config(config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// Creates the service from its first configuration (when the host
    /// configures the VM, `proxy_on_configure`). `Err` rejects the start with
    /// that message logged.
    fn start(config: &Self::Config) -> Result<Self, String>;

    /// A later configuration for the running service (hosts may configure a
    /// VM again). Default: accept and keep going.
    fn configure(&mut self, config: &Self::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// The timer asked for after each (re)configuration; [`Service::on_tick`]
    /// runs every period. Default: no timer.
    fn tick_period(&self) -> Option<Duration> {
        None
    }

    /// Runs every [`Service::tick_period`].
    fn on_tick(&mut self) {}

    /// The answer to a callout sent with [`send_callout`] (a failed one has
    /// no status: unreachable cluster, timeout).
    fn on_callout(&mut self, id: CalloutId, answer: CalloutResponse) {
        let _ = (id, answer);
    }

    /// Messages arrived in a queue this service registered
    /// ([`Queue::register`]); take them with [`Queue::dequeue`].
    fn on_queue_ready(&mut self, queue: Queue) {
        let _ = queue;
    }

    /// The service is being stopped (a new version took over, or the
    /// gateway shuts down). Default: nothing.
    fn on_stop(&mut self) {}
}

/// Names a callout sent with [`send_callout`], to match its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CalloutId(pub(crate) u32);

/// Sends `request`; its answer arrives in [`Service::on_callout`]. `Err` is
/// the host's ABI status code (for example an unknown cluster).
pub fn send_callout(request: &CalloutRequest) -> Result<CalloutId, u32> {
    let timeout = u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX);
    host::with(|h| h.http_call(&request.cluster, &request.headers, &request.body, timeout))
        .map(CalloutId)
}
