//! `filter-denylist`: answers 403 to clients whose IP address is on the
//! deny list in shared data (`key`, one address per line), which the
//! service `filter-denylist-sync` keeps up to date. Give both the same
//! `vm_id`. No list yet: every client passes. See README.md.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use gateway_sdk::metrics::Counter;
use gateway_sdk::{shared, Decision, Filter, Hooks, Request};
use serde::Deserialize;
use std::rc::Rc;

/// Configuration (JSON or TOML).
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DenylistConfig {
    /// The shared-data key the list is read from.
    pub key: String,
}

impl Default for DenylistConfig {
    fn default() -> Self {
        DenylistConfig {
            key: "denylist".into(),
        }
    }
}

/// The filter; one per request.
pub struct Denylist {
    config: Rc<DenylistConfig>,
}

/// The IP of `ip:port` (`[v6]:port` too).
fn ip_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Filter for Denylist {
    type Config = DenylistConfig;
    // Only these hooks: the gateway calls nothing else per request.
    const HOOKS: Hooks = Hooks::REQUEST;

    fn new(config: &Rc<DenylistConfig>) -> Self {
        Denylist {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        let Some((list, _)) = shared::get(&self.config.key) else {
            return Decision::Continue;
        };
        let Some(client) = request.client_address() else {
            return Decision::Continue;
        };
        let ip = ip_of(&client);
        let listed = String::from_utf8_lossy(&list)
            .lines()
            .any(|line| line.trim() == ip);
        if listed {
            Counter::new("denylist_denied").increment(1);
            return Decision::respond(403, "forbidden\n");
        }
        Decision::Continue
    }
}

gateway_sdk::export_filter!(Denylist);

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_sdk::testing::{FilterTest, TestRequest};

    #[test]
    fn listed_clients_get_403_and_others_pass() {
        let mut test = FilterTest::<Denylist>::new("").unwrap();
        let from = |ip: &str| TestRequest::get("/").client_address(&format!("{ip}:4000"));
        assert!(test.request(from("10.0.0.1")).is_continue(), "no list yet");
        shared::set("denylist", b"10.0.0.1\n::1", None).unwrap();
        let denied = test.request(from("10.0.0.1"));
        assert_eq!(denied.local_response().unwrap().status, 403);
        assert_eq!(test.metric("denylist_denied"), Some(1));
        assert!(test.request(from("10.0.0.2")).is_continue());
        let v6 = test.request(TestRequest::get("/").client_address("[::1]:4000"));
        assert_eq!(v6.local_response().unwrap().status, 403);
    }
}
