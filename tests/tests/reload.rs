//! The config file reloads on change and on SIGHUP: good configs take
//! effect without dropping connections, bad ones are reported and the
//! config in force stays.

use gateway_tests::{Gateway, Upstream, WAIT};

fn config(a: &Upstream, b: &Upstream, ping_cluster: &str, extra_listener: bool) -> String {
    let mut text = format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path = "/ping"
        cluster = "{ping_cluster}"
        [[cluster]]
        name = "a"
        endpoints = ["{}"]
        [[cluster]]
        name = "b"
        endpoints = ["{}"]
        "#,
        a.addr, b.addr
    );
    if extra_listener {
        text.push_str(
            r#"
        [[listener]]
        name = "extra"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "b"
        "#,
        );
    }
    text
}

#[tokio::test]
async fn route_change_applies_on_the_open_connection_and_bad_config_is_rejected() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let gateway = Gateway::start(&config(&a, &b, "a", false)).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/ping").await.text(), "a");

    gateway.rewrite_config(&config(&a, &b, "b", false));
    assert!(
        gateway.wait_for_log("config reloaded", WAIT),
        "{:?}",
        gateway.logs()
    );
    // Same keep-alive connection, new route.
    assert_eq!(client.get("/ping").await.text(), "b");
    assert!(!client.is_closed());

    // A bad file: reported with line and key, the config in force stays.
    gateway.rewrite_config(
        &config(&a, &b, "b", false).replace("path = \"/ping\"", "paht = \"/ping\""),
    );
    assert!(gateway.wait_for_log("config reload rejected", WAIT));
    let rejected = gateway
        .logs()
        .into_iter()
        .find(|l| l.contains("config reload rejected"))
        .unwrap_or_default();
    assert!(
        rejected.contains("unknown field `paht`") && rejected.contains("gateway.toml:"),
        "{rejected}"
    );
    assert_eq!(client.get("/ping").await.text(), "b");
}

#[tokio::test]
async fn sighup_reload_starts_and_stops_listeners() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let mut gateway = Gateway::start(&config(&a, &b, "a", false)).await;
    // Write without a file event being the trigger we wait on: SIGHUP.
    std::fs::write(&gateway.config_path, config(&a, &b, "a", true)).expect("write");
    gateway.hangup();
    assert!(gateway.wait_for_log("config reloaded", WAIT));
    assert!(gateway
        .logs()
        .iter()
        .any(|l| l.contains("listening") && l.contains("listener=extra")));
    gateway.read_addresses();
    let mut extra = gateway.http1("extra").await;
    assert_eq!(extra.get("/anything").await.text(), "b");
    let extra_addr = gateway.addr("extra");

    std::fs::write(&gateway.config_path, config(&a, &b, "a", false)).expect("write");
    gateway.hangup();
    assert!(gateway.wait_for_log("listener stopped", WAIT));
    assert!(
        tokio::net::TcpStream::connect(extra_addr).await.is_err(),
        "removed listener no longer accepts"
    );
    let mut web = gateway.http1("web").await;
    assert_eq!(web.get("/ping").await.text(), "a");
}

/// A listener whose every response gets `x-out: STAMP` from a filter, in a
/// gateway sized for exactly one set of filter instances.
fn stamped(up: &Upstream, stamp: &str, route: &str) -> String {
    format!(
        r#"
        [runtime]
        workers = 1
        [wasm]
        max_instances = 1
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "stamp"
        path = "{}"
        config = '{{"response_header": ["x-out", "{stamp}"]}}'
        [[listener.route]]
        path_prefix = "{route}"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        "#,
        gateway_tests::wasm::path("tw-header-mutation").display(),
        up.addr
    )
}

#[tokio::test]
async fn an_unchanged_filter_carries_over_a_reload_within_max_instances() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&stamped(&up, "one", "/")).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/x").await.header("x-out"), Some("one"));

    // A route change: the filter is the same and keeps its instance, so a
    // gateway with room for one instance reloads fine, again and again.
    for round in 0..3 {
        let route = if round % 2 == 0 { "/x" } else { "/" };
        gateway.rewrite_config(&stamped(&up, "one", route));
        assert!(
            gateway.wait_for_log_count("config reloaded", round + 1, WAIT),
            "{:?}",
            gateway.logs()
        );
        let reply = client.get("/x").await;
        assert_eq!(reply.status, 200, "round {round}: {}", reply.text());
        assert_eq!(reply.header("x-out"), Some("one"), "round {round}");
    }
    assert!(
        !gateway.logs().iter().any(|l| l.contains("max_instances")),
        "{:?}",
        gateway.logs()
    );
}

#[tokio::test]
async fn a_changed_filter_config_is_loaded_anew_on_reload() {
    let up = Upstream::start("up").await;
    let mut config = stamped(&up, "one", "/");
    // Room for the new instance while the old one still serves.
    config = config.replace("max_instances = 1", "max_instances = 4");
    let gateway = Gateway::start(&config).await;
    let mut client = gateway.http1("web").await;
    assert_eq!(client.get("/x").await.header("x-out"), Some("one"));
    gateway.rewrite_config(
        &stamped(&up, "two", "/").replace("max_instances = 1", "max_instances = 4"),
    );
    assert!(gateway.wait_for_log("config reloaded", WAIT));
    assert_eq!(client.get("/x").await.header("x-out"), Some("two"));
}
