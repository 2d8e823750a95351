//! The SDK's recipes (`sdk/recipes/`) in the real gateway: the JWT check
//! answers 401 with JSON and passes `sub` upstream; the canary router
//! splits clients by the host's randomness (WASI `random_get`) and keeps
//! users and cookie holders on their side.

use std::collections::HashMap;

use bytes::Bytes;
use gateway_tests::{wasm, Gateway, Upstream};
use http::Request;
use http_body_util::Full;

fn get_with(name: &str, value: &str) -> Request<Full<Bytes>> {
    Request::get("/")
        .header(name, value)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// HS256 with secret `test-secret`: `{"sub":"ann","exp":4102444800}` (2100).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbm4iLCJleHAiOjQxMDI0NDQ4MDB9.3oy9zbiaQZahQkCwwgm1u8FOR5185eqER9c2baJZdRQ";

fn config(filter: &str, filter_config: &str, clusters: &[&Upstream]) -> String {
    let mut text = format!(
        r#"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.filter]]
        name = "recipe"
        path = "{}"
        config = '{filter_config}'
        [[listener.route]]
        path_prefix = "/"
        cluster = "{}"
        "#,
        wasm::path(filter).display(),
        clusters[0].name
    );
    for up in clusters {
        text.push_str(&format!(
            "[[cluster]]\nname = \"{}\"\nendpoints = [\"{}\"]\n",
            up.name, up.addr
        ));
    }
    text
}

#[tokio::test]
async fn jwt_recipe_checks_tokens_and_passes_the_subject() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        "recipe-jwt-hs256",
        r#"{"secret": "test-secret"}"#,
        &[&up],
    ))
    .await;
    let mut client = gateway.http1("web").await;

    let denied = client.get("/").await;
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("content-type"), Some("application/json"));
    assert!(denied
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    let body: serde_json::Value = serde_json::from_slice(&denied.body).expect("JSON");
    assert_eq!(body["error"], "invalid_token");

    let forged = format!("{}x", &TOKEN[..TOKEN.len() - 1]);
    let request = get_with("authorization", &format!("Bearer {forged}"));
    assert_eq!(client.send(request).await.status, 401);
    assert!(
        up.received().is_empty(),
        "no bad token reaches the upstream"
    );

    let allowed = client
        .send(get_with("authorization", &format!("Bearer {TOKEN}")))
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let seen = &up.received()[0];
    assert_eq!(
        seen.headers.get("x-jwt-sub").map(|v| v.as_bytes()),
        Some(&b"ann"[..])
    );
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn canary_recipe_splits_and_sticks() {
    let stable = Upstream::start("stable").await;
    let canary = Upstream::start("canary").await;
    let gateway = Gateway::start(&config(
        "recipe-canary",
        r#"{"stable": "stable", "canary": "canary", "percent": 50, "sticky_header": "x-user-id"}"#,
        &[&stable, &canary],
    ))
    .await;
    let mut client = gateway.http1("web").await;

    // New clients: placed at random, so both sides get some of 40.
    let mut sides: HashMap<String, usize> = HashMap::new();
    let mut cookies = Vec::new();
    for _ in 0..40 {
        let reply = client.get("/").await;
        assert_eq!(reply.status, 200);
        *sides.entry(reply.text()).or_default() += 1;
        let cookie = reply.header("set-cookie").expect("placement cookie");
        cookies.push((
            reply.text(),
            cookie.split(';').next().unwrap_or("").to_string(),
        ));
    }
    assert_eq!(sides.len(), 2, "{sides:?}");

    // A cookie holder stays where it was placed.
    for (side, cookie) in cookies.iter().take(5) {
        assert_eq!(&client.send(get_with("cookie", cookie)).await.text(), side);
    }

    // A user identified by header always lands on the same side.
    for user in ["ann", "bob", "cy"] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(client.send(get_with("x-user-id", user)).await.text());
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{user}: {seen:?}");
    }
}
