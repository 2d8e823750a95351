//! Consistent hashing (`balance = "ring_hash"`): the same key reaches the
//! same endpoint, and when one endpoint of N leaves only its keys move; a
//! filter's `gateway.hash_key` comes before the configured header.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/switchable.rs"]
mod switchable;

use std::collections::HashMap;
use std::net::SocketAddr;

use gateway_tests::{wasm, Gateway, Http1Client, Upstream};
use http::Request;
use http_body_util::Full;
use switchable::Switchable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ENDPOINTS: usize = 4;
const KEYS: usize = 400;

fn config(upstreams: &[Switchable]) -> String {
    let addresses: Vec<SocketAddr> = upstreams.iter().map(|u| u.addr).collect();
    config_for(&addresses)
}

fn config_for(addresses: &[SocketAddr]) -> String {
    let endpoints: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
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

/// Sets the property `gateway.hash_key` to the request's `x-tenant`
/// header, when it has one.
const TENANT_KEY: &str = r#"
(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $set (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (if (i32.gt_u (global.get $heap) (i32.const 60000)) (then (global.set $heap (i32.const 4096))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (data (i32.const 0) "x-tenant")
  (data (i32.const 32) "gateway\00hash_key")
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $get (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 200) (i32.const 204)))
      (then (drop (call $set (i32.const 32) (i32.const 16)
                   (i32.load (i32.const 200)) (i32.load (i32.const 204))))))
    (i32.const 0))
)
"#;

#[tokio::test]
async fn a_key_set_by_a_filter_comes_before_the_header() {
    let mut upstreams = Vec::new();
    for name in ["e0", "e1", "e2", "e3"] {
        upstreams.push(Switchable::start(name).await);
    }
    let dir = tempfile::tempdir().expect("dir");
    let module = wasm::wat_to(TENANT_KEY, &dir.path().join("tenant.wasm"));
    let text = config(&upstreams).replace(
        "[[listener.route]]",
        &format!(
            "[[listener.filter]]\nname = \"tenant\"\npath = \"{}\"\n[[listener.route]]",
            module.display()
        ),
    );
    let gateway = Gateway::start_in(dir, &text).await;
    let mut client = gateway.http1("web").await;
    let mut by_tenant: HashMap<&str, Vec<String>> = HashMap::new();
    let mut by_user = Vec::new();
    for k in 0..40 {
        let user = format!("user-{k}");
        for tenant in ["t1", "t2"] {
            let req = Request::get("/")
                .header("x-user", &user)
                .header("x-tenant", tenant)
                .body(Full::default())
                .expect("request");
            let reply = client.send(req).await;
            assert_eq!(reply.status, 200);
            by_tenant.entry(tenant).or_default().push(reply.text());
        }
        by_user.push(with_header(&mut client, "x-user", &user).await.1);
    }
    for (tenant, endpoints) in &by_tenant {
        assert!(
            endpoints.iter().all(|e| *e == endpoints[0]),
            "every user of {tenant} goes where the tenant key says: {endpoints:?}"
        );
    }
    by_user.sort();
    by_user.dedup();
    assert!(
        by_user.len() > 1,
        "without the filter's key, users spread: {by_user:?}"
    );
}

#[tokio::test]
async fn upgrades_follow_the_key_too() {
    let mut upstreams = Vec::new();
    for name in ["e0", "e1", "e2", "e3"] {
        upstreams.push(Upstream::start(name).await);
    }
    let addresses: Vec<SocketAddr> = upstreams.iter().map(|u| u.addr).collect();
    let gateway = Gateway::start(&config_for(&addresses)).await;
    for user in 0..6 {
        for _ in 0..3 {
            let mut stream = gateway.raw("web").await;
            let request = format!(
                "GET /ws HTTP/1.1\r\nHost: x\r\nx-user: user-{user}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.expect("write");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
                stream.read_exact(&mut byte).await.expect("read head");
                head.push(byte[0]);
            }
            assert!(
                head.starts_with(b"HTTP/1.1 101"),
                "{}",
                String::from_utf8_lossy(&head)
            );
        }
    }
    for user in 0..6 {
        let value = format!("user-{user}");
        let reached: Vec<&str> = upstreams
            .iter()
            .filter(|u| {
                u.received().iter().any(|r| {
                    r.headers.get("x-user").and_then(|v| v.to_str().ok()) == Some(value.as_str())
                })
            })
            .map(|u| u.name.as_str())
            .collect();
        assert_eq!(reached.len(), 1, "{value}'s upgrades reached {reached:?}");
    }
}
