//! Consistent hashing (`balance = "ring_hash"`): the same key reaches the
//! same endpoint, and when one endpoint of N leaves only its keys move.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/switchable.rs"]
mod switchable;

use std::collections::HashMap;

use gateway_tests::{Gateway, Http1Client};
use http::Request;
use http_body_util::Full;
use switchable::Switchable;

const ENDPOINTS: usize = 4;
const KEYS: usize = 400;

fn config(upstreams: &[Switchable]) -> String {
    let endpoints: Vec<String> = upstreams
        .iter()
        .map(|u| format!("\"{}\"", u.addr))
        .collect();
    format!(
        r#"
        [access_log]
        enabled = false
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "sessions"
        [[cluster]]
        name = "sessions"
        balance = "ring_hash"
        hash_header = "x-user"
        hash_cookie = "sid"
        endpoints = [{}]
        [cluster.health_check]
        interval = "50ms"
        path = "/healthz"
        unhealthy_threshold = 1
        "#,
        endpoints.join(", ")
    )
}

async fn with_header(client: &mut Http1Client, name: &str, value: &str) -> (u16, String) {
    let req = Request::get("/")
        .header(name, value)
        .body(Full::default())
        .expect("request");
    let reply = client.send(req).await;
    (reply.status.as_u16(), reply.text())
}

/// Which endpoint each key reaches.
async fn placement(client: &mut Http1Client) -> Vec<String> {
    let mut placed = Vec::new();
    for k in 0..KEYS {
        let (status, name) = with_header(client, "x-user", &format!("user-{k}")).await;
        assert_eq!(status, 200);
        placed.push(name);
    }
    placed
}

#[tokio::test]
async fn the_same_key_reaches_the_same_endpoint_and_one_leaving_moves_about_one_nth() {
    let names = ["e0", "e1", "e2", "e3"];
    let mut upstreams = Vec::new();
    for name in names {
        upstreams.push(Switchable::start(name).await);
    }
    let gateway = Gateway::start(&config(&upstreams)).await;
    let mut client = gateway.http1("web").await;

    let first = placement(&mut client).await;
    assert_eq!(
        placement(&mut client).await,
        first,
        "a key changed endpoint"
    );
    let mut held: HashMap<&str, usize> = HashMap::new();
    for name in &first {
        *held.entry(name).or_default() += 1;
    }
    assert_eq!(
        held.len(),
        ENDPOINTS,
        "keys spread over every endpoint: {held:?}"
    );

    // The cookie is a key as well.
    for k in 0..20 {
        let cookie = format!("theme=dark; sid=s{k}");
        let one = with_header(&mut client, "cookie", &cookie).await;
        assert_eq!(with_header(&mut client, "cookie", &cookie).await, one);
    }

    // e2 fails its health check and leaves the rotation.
    upstreams[2].set_health(503);
    let admin = gateway.admin.expect("admin");
    admin::wait_health(
        admin,
        "sessions",
        &upstreams[2].addr.to_string(),
        "unhealthy",
    )
    .await;
    let after = placement(&mut client).await;
    let moved = first.iter().zip(&after).filter(|(b, a)| b != a).count();
    for (before, now) in first.iter().zip(&after) {
        assert!(before == now || before == "e2", "{before} moved to {now}");
        assert_ne!(now, "e2");
    }
    let share = moved as f64 / KEYS as f64;
    println!(
        "{moved} of {KEYS} keys moved ({:.1}%), e2 held {}",
        share * 100.0,
        held["e2"]
    );
    assert_eq!(moved, held["e2"]);
    assert!(share <= 1.0 / ENDPOINTS as f64 + 0.1, "{share}");
}
