//! proxy-wasm conformance with the reference host (Envoy's): filters
//! written with the official Rust SDK and with the AssemblyScript SDK
//! (`@solo-io/proxy-runtime`, ABI 0.2.0, built here with npm) load with
//! and without a configuration and see what they would see on Envoy:
//! absent headers and properties, empty bodies, properties they set,
//! shared data, metrics, local answers.

use bytes::Bytes;
use gateway_tests::{assemblyscript, wasm, Gateway, Upstream};
use http::Request;
use http_body_util::Full;

/// A listener `web` with one filter, everything routed to `up`.
fn config(up: &Upstream, path: &std::path::Path, root_id: &str, plugin: Option<&str>) -> String {
    let plugin = plugin.map_or(String::new(), |c| format!("config = '{c}'\n"));
    format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"

        [[listener.filter]]
        name = "conformance"
        path = "{}"
        root_id = "{root_id}"
        {plugin}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"

        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        "#,
        path.display(),
        up.addr
    )
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

#[tokio::test]
async fn a_rust_sdk_filter_sees_what_envoy_would_show_it() {
    let up = Upstream::start("up").await;
    let path = wasm::path("tw-conformance");
    for plugin in [None, Some("configured")] {
        let gateway = Gateway::start(&config(&up, &path, "", plugin)).await;
        let mut client = gateway.http1("web").await;
        let reply = client.send(request("GET", "/get", &[], "")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-conformance"), Some("ok"));
        let seen = up.received().pop().expect("forwarded");
        assert_eq!(
            seen.headers.get("x-config").map(|v| v.as_bytes()),
            plugin.map(str::as_bytes),
            "an empty configuration reads as none"
        );
        let reply = client.send(request("POST", "/post", &[], "hello")).await;
        assert_eq!(reply.header("x-conformance"), Some("ok"));
        assert_eq!(reply.header("x-body"), Some("5"));
        let reply = client
            .send(request("POST", "/empty", &[("content-length", "0")], ""))
            .await;
        assert_eq!(reply.header("x-conformance"), Some("ok"));
    }
}

#[tokio::test]
async fn an_assemblyscript_filter_loads_with_and_without_configuration() {
    let up = Upstream::start("up").await;
    let path = assemblyscript::build("conformance");
    for plugin in [None, Some("hello")] {
        let gateway = Gateway::start(&config(&up, &path, "conformance", plugin)).await;
        let mut client = gateway.http1("web").await;
        let headers = [("x-replace-me", "1"), ("x-remove-me", "1")];
        let reply = client.send(request("GET", "/p?q=1", &headers, "")).await;
        assert_eq!(reply.status, 200, "{}: {:#?}", reply.text(), gateway.logs());
        assert_eq!(reply.header("x-as-mark"), Some("seen"));
        let seen = up.received().pop().expect("forwarded");
        let header = |name: &str| {
            seen.headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("?").to_string())
        };
        assert_eq!(header("x-as-path").as_deref(), Some("/p?q=1"));
        assert_eq!(header("x-as-missing").as_deref(), Some("empty"));
        assert_eq!(header("x-replace-me").as_deref(), Some("replaced"));
        assert_eq!(header("x-remove-me"), None);
        assert!(header("x-as-headers").is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 4)));
        if let Some(plugin) = plugin {
            assert_eq!(header("x-as-config").as_deref(), Some(plugin));
        }

        let reply = client.send(request("POST", "/body", &[], "hello")).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-as-body"), Some("5"));

        let before = up.received().len();
        let reply = client.get("/local").await;
        assert_eq!(reply.status, 200, "{}: {:#?}", reply.text(), gateway.logs());
        assert_eq!(reply.text(), "answered by assemblyscript");
        assert_eq!(reply.header("x-as-local"), Some("1"));
        assert_eq!(up.received().len(), before, "answered without the upstream");
    }
}
