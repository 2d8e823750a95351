//! A body-rewriting filter written with the SDK buffers only the responses
//! it asks for: a 2 MiB `text/plain` download streams through it intact,
//! a small JSON response is rewritten (with a correct `content-length`), and
//! a JSON response over the filter's limit follows its over-limit policy.

use gateway_tests::{wasm, Gateway, Upstream};

/// Listener `web` passes over-limit JSON through, `strict` rejects it; both
/// run the JSON rewrite recipe with a 64 KiB limit.
fn config(up: &Upstream) -> String {
    let path = wasm::path("recipe-json-rewrite");
    let listener = |name: &str, policy: &str| {
        format!(
            r#"
            [[listener]]
            name = "{name}"
            protocol = "http"
            address = "127.0.0.1:0"
            [[listener.filter]]
            name = "redact"
            path = "{}"
            config = '{{"remove": ["secret"], "max_bytes": 65536, "over_limit": "{policy}"}}'
            [[listener.route]]
            path_prefix = "/"
            cluster = "up"
            "#,
            path.display()
        )
    };
    format!(
        "{}{}\n[[cluster]]\nname = \"up\"\nendpoints = [\"{}\"]\n",
        listener("web", "pass"),
        listener("strict", "reject"),
        up.addr
    )
}

#[tokio::test]
async fn a_download_streams_past_a_json_rewriting_filter() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up)).await;
    let mut client = gateway.http1("web").await;
    let size = 2 * 1024 * 1024;
    let reply = client.get(&format!("/download/{size}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.body.len(), size);
    assert!(reply.body.iter().all(|b| *b == b'x'));
    // Untouched, so the upstream's own length goes through.
    assert_eq!(reply.header("content-length"), Some("2097152"));
}

#[tokio::test]
async fn small_json_is_rewritten_with_its_new_length() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up)).await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/json/200").await;
    assert_eq!(reply.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON body");
    assert_eq!(body["user"], "ann");
    assert!(body.get("secret").is_none(), "{body}");
    let length = reply.body.len().to_string();
    assert_eq!(reply.header("content-length"), Some(length.as_str()));
    assert!(reply.body.len() < 200);
}

#[tokio::test]
async fn json_over_the_limit_passes_through_or_is_rejected() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up)).await;

    let mut client = gateway.http1("web").await;
    let reply = client.get("/json/100000").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 100_000);
    let body: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON body");
    assert_eq!(body["secret"], "hunter2", "passed through unchanged");

    let mut strict = gateway.http1("strict").await;
    let reply = strict.get("/json/100000").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    // Small JSON is still rewritten on the strict listener.
    let reply = strict.get("/json/300").await;
    assert_eq!(reply.status, 200);
    assert!(!reply.text().contains("hunter2"));
}
