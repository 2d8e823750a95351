//! `filter-denylist-sync`: a service (it runs once per gateway, not per
//! request) that fetches a deny list from an upstream every `period_ms` and
//! publishes it in shared data under `key`, where `filter-denylist` reads
//! it. Give both the same `vm_id` in the gateway's configuration so they
//! share the data.
//!
//! The list is text, one client IP address per line; blank lines and lines
//! starting with `#` are ignored. A failed fetch (no answer, not 200) keeps
//! the list published before. See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::service::{self, CalloutId};
use gateway_sdk::{shared, CalloutRequest, CalloutResponse, LogLevel, Service};
use serde::Deserialize;
use std::time::Duration;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The cluster serving the list.
    pub cluster: String,
    /// Its path.
    #[serde(default = "default_path")]
    pub path: String,
    /// How often to fetch it, in milliseconds.
    #[serde(default = "default_period")]
    pub period_ms: u64,
    /// The shared-data key the list is published under.
    #[serde(default = "default_key")]
    pub key: String,
}

fn default_path() -> String {
    "/denylist".into()
}
fn default_period() -> u64 {
    5000
}
fn default_key() -> String {
    "denylist".into()
}

/// The running service.
pub struct DenylistSync {
    config: SyncConfig,
    /// The fetch in flight, if any (one at a time).
    in_flight: Option<CalloutId>,
    /// What was published last, to log changes only.
    published: Option<String>,
}

/// The list as published: one address per line, trimmed, comments and
/// blank lines dropped.
pub fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

impl DenylistSync {
    fn fetch(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        let request = CalloutRequest::get(&self.config.cluster, &self.config.path)
            .timeout(Duration::from_millis(self.config.period_ms.max(100)));
        match service::send_callout(&request) {
            Ok(id) => self.in_flight = Some(id),
            Err(code) => gateway_sdk::log::log(
                LogLevel::Warn,
                &format!("cannot fetch the deny list (status {code})"),
            ),
        }
    }
}

impl Service for DenylistSync {
    type Config = SyncConfig;

    fn validate_config(config: &SyncConfig) -> Result<(), String> {
        if config.period_ms == 0 {
            return Err("period_ms must be above zero".into());
        }
        Ok(())
    }

    fn start(config: &SyncConfig) -> Result<Self, String> {
        let mut me = DenylistSync {
            config: SyncConfig {
                cluster: config.cluster.clone(),
                path: config.path.clone(),
                period_ms: config.period_ms,
                key: config.key.clone(),
            },
            in_flight: None,
            published: None,
        };
        // The first fetch now, not one period after start.
        me.fetch();
        Ok(me)
    }

    fn tick_period(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.config.period_ms))
    }

    fn on_tick(&mut self) {
        self.fetch();
    }

    fn on_callout(&mut self, id: CalloutId, answer: CalloutResponse) {
        if self.in_flight != Some(id) {
            return;
        }
        self.in_flight = None;
        if answer.status() != Some(200) {
            gateway_sdk::log::log(
                LogLevel::Warn,
                &format!(
                    "deny list fetch failed ({}); keeping the previous list",
                    answer
                        .status()
                        .map_or("no answer".into(), |s| s.to_string())
                ),
            );
            return;
        }
        let list = normalize(&String::from_utf8_lossy(answer.body()));
        if self.published.as_deref() == Some(list.as_str()) {
            return;
        }
        match shared::set(&self.config.key, list.as_bytes(), None) {
            Ok(()) => {
                let n = list.lines().count();
                gateway_sdk::log::log(LogLevel::Info, &format!("deny list updated: {n} clients"));
                self.published = Some(list);
            }
            Err(e) => gateway_sdk::log::log(
                LogLevel::Warn,
                &format!("cannot publish the deny list: {e:?}"),
            ),
        }
    }
}

gateway_sdk::export_service!(DenylistSync);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{ServiceTest, TestResponse};

    #[test]
    fn fetches_at_start_and_every_period_and_publishes_the_list() {
        let mut test =
            ServiceTest::<DenylistSync>::new(r#"{"cluster": "lists", "period_ms": 200}"#).unwrap();
        assert_eq!(test.tick_period(), Some(Duration::from_millis(200)));
        let sent = test.pending_callouts();
        assert_eq!(sent.len(), 1, "one fetch at start");
        assert_eq!(sent[0].cluster, "lists");
        assert_eq!(sent[0].header(":path"), Some("/denylist"));
        // No second fetch while one is in flight.
        test.tick();
        assert_eq!(test.callouts().len(), 1);
        test.answer_callout(TestResponse::new(200).body("# bad\n10.0.0.1\n\n 10.0.0.2 \n"));
        assert_eq!(test.shared_data("denylist").unwrap(), b"10.0.0.1\n10.0.0.2");
        assert!(test.logged("deny list updated: 2 clients"));
        test.tick();
        test.answer_callout(TestResponse::new(200).body(""));
        assert_eq!(test.shared_data("denylist").unwrap(), b"");
    }

    #[test]
    fn a_failed_fetch_keeps_the_previous_list() {
        let mut test = ServiceTest::<DenylistSync>::new(r#"{"cluster": "lists"}"#).unwrap();
        test.answer_callout(TestResponse::new(200).body("10.0.0.1"));
        test.tick();
        test.fail_callout();
        test.tick();
        test.answer_callout(TestResponse::new(503).body("down"));
        assert_eq!(test.shared_data("denylist").unwrap(), b"10.0.0.1");
        assert!(test.logged("keeping the previous list"));
    }

    #[test]
    fn the_filter_follows_the_list_the_service_publishes() {
        use gateway_sdk::testing::{FilterTest, TestRequest};
        let mut service = ServiceTest::<DenylistSync>::new(r#"{"cluster": "lists"}"#).unwrap();
        let mut filter = FilterTest::<filter_denylist::Denylist>::new("").unwrap();
        service.share_data_with(&mut filter);
        let client = || TestRequest::get("/").client_address("10.0.0.7:1234");
        assert!(filter.request(client()).is_continue());
        service.answer_callout(TestResponse::new(200).body("10.0.0.7\n"));
        let denied = filter.request(client());
        assert_eq!(denied.local_response().unwrap().status, 403);
        service.tick();
        service.answer_callout(TestResponse::new(200).body("10.0.0.8\n"));
        assert!(filter.request(client()).is_continue());
    }

    #[test]
    fn a_zero_period_is_refused() {
        let err = ServiceTest::<DenylistSync>::new(r#"{"cluster": "l", "period_ms": 0}"#)
            .err()
            .unwrap();
        assert!(err.contains("period_ms"), "{err}");
    }
}
