//! A router checks the cluster it routes to when it is loaded, through
//! `gateway_sdk::clusters`, instead of sending every request to a cluster
//! that does not exist.
#![allow(clippy::unwrap_used)]

use gateway_sdk::testing::{FilterTest, TestRequest};
use gateway_sdk::{Decision, Filter, Request};
use serde::Deserialize;
use std::rc::Rc;

#[derive(Deserialize)]
struct Config {
    cluster: String,
}

struct Router {
    config: Rc<Config>,
}

impl Filter for Router {
    type Config = Config;

    fn validate_config(config: &Config) -> Result<(), String> {
        match gateway_sdk::clusters::names() {
            Some(names) if !names.contains(&config.cluster) => Err(format!(
                "unknown cluster `{}` (configured: {})",
                config.cluster,
                names.join(", ")
            )),
            _ => Ok(()),
        }
    }

    fn new(config: &Rc<Config>) -> Self {
        Router {
            config: config.clone(),
        }
    }

    fn on_request(&mut self, request: &mut Request) -> Decision<Self> {
        request.set_upstream(&self.config.cluster);
        Decision::Continue
    }
}

#[test]
fn a_configured_cluster_is_accepted_at_load() {
    let mut test =
        FilterTest::<Router>::with_clusters(r#"cluster = "api""#, &["web", "api"]).unwrap();
    let exchange = test.request(TestRequest::get("/"));
    assert_eq!(exchange.upstream().as_deref(), Some("api"));
    assert_eq!(gateway_sdk::clusters::exists("web"), Some(true));
    assert_eq!(gateway_sdk::clusters::exists("nope"), Some(false));
}

#[test]
fn an_unknown_cluster_rejects_the_load_with_the_filters_reason() {
    let err = FilterTest::<Router>::with_clusters(r#"cluster = "nope""#, &["web", "api"])
        .err()
        .unwrap();
    assert!(
        err.contains("unknown cluster `nope` (configured: web, api)"),
        "{err}"
    );
}

#[test]
fn a_host_without_the_list_skips_the_check() {
    assert!(FilterTest::<Router>::new(r#"cluster = "anything""#).is_ok());
    assert_eq!(gateway_sdk::clusters::names(), None);
}
