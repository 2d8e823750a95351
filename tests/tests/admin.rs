//! The admin listener as an operator uses it: the token, probes that stay
//! open, the readiness drain, the log level at runtime, and the limits that
//! keep silent clients from locking operators out.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use gateway_tests::{check_config, Gateway, Http1Client, Reply, Upstream, WAIT};
use http::Request;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-admin-token";

fn config(upstream: &Upstream, admin: &str) -> String {
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        {admin}
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        "#,
        upstream.addr
    )
}

fn request(method: &str, path: &str, authorization: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

async fn with_token(admin: &mut Http1Client, method: &str, path: &str) -> Reply {
    admin
        .send(request(method, path, Some(&format!("Bearer {TOKEN}"))))
        .await
}

#[tokio::test]
async fn probes_are_open_and_everything_else_needs_the_token() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, &format!("token = \"{TOKEN}\""))).await;
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;

    assert_eq!(admin.get("/healthz").await.status, 200);
    assert_eq!(admin.get("/ready").await.status, 200);
    for path in [
        "/",
        "/config",
        "/filters",
        "/metrics",
        "/overview",
        "/logging",
    ] {
        let reply = admin.get(path).await;
        assert_eq!(reply.status, 401, "{path} without a token");
        let challenges: Vec<_> = reply.headers.get_all("www-authenticate").iter().collect();
        assert_eq!(challenges.len(), 2, "{path}: {challenges:?}");
        let wrong = admin.send(request("GET", path, Some("Bearer nope"))).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
    }
    assert_eq!(
        admin.send(request("POST", "/drain", None)).await.status,
        401
    );
    assert_eq!(
        admin.get("/ready").await.status,
        200,
        "an unauthorized drain did nothing"
    );

    let config = with_token(&mut admin, "GET", "/config").await;
    assert_eq!(config.status, 200);
    assert!(
        !config.text().contains(TOKEN),
        "the token is redacted: {}",
        config.text()
    );
    // A browser's login prompt: any user name, the token as password.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("ops:{TOKEN}"))
    );
    assert_eq!(
        admin.send(request("GET", "/", Some(&basic))).await.status,
        200
    );
}

#[tokio::test]
async fn drain_turns_ready_to_503_while_traffic_is_still_served() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, "")).await;
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let mut web = gateway.http1("web").await;

    assert_eq!(
        admin.get("/drain").await.status,
        405,
        "draining takes a POST"
    );
    let drain = admin.send(request("POST", "/drain", None)).await;
    assert_eq!(drain.status, 200);
    let ready = admin.get("/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (503, "draining\n")
    );
    assert_eq!(
        admin.get("/healthz").await.status,
        200,
        "alive, only not ready"
    );
    assert_eq!(
        web.get("/x").await.text(),
        "up",
        "requests that still arrive are served"
    );
    assert!(gateway.wait_for_log("draining", WAIT));

    // A page on another site cannot drain or undrain a token-less admin.
    let mut cross = request("DELETE", "/drain", None);
    cross.headers_mut().insert(
        "origin",
        "https://attacker.example".parse().expect("origin"),
    );
    assert_eq!(admin.send(cross).await.status, 403);
    assert_eq!(admin.get("/ready").await.status, 503);

    assert_eq!(
        admin.send(request("DELETE", "/drain", None)).await.status,
        200
    );
    assert_eq!(admin.get("/ready").await.status, 200);
}

#[tokio::test]
async fn the_log_level_changes_at_runtime() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(&up, "")).await;
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;

    let info = admin
        .send(request("POST", "/logging?level=info", None))
        .await;
    assert_eq!(
        (info.status.as_u16(), info.text().as_str()),
        (200, "info\n")
    );
    assert_eq!(admin.get("/healthz").await.status, 200);
    // Admin requests are logged at debug: nothing yet.
    assert!(!gateway.logs().iter().any(|l| l.contains("admin request")));

    let bad = admin
        .send(request("POST", "/logging?level=loud%3D%3D", None))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(
        admin.send(request("POST", "/logging", None)).await.status,
        400
    );

    let debug = admin
        .send(request(
            "POST",
            "/logging?level=gateway%3Ddebug%2Cinfo",
            None,
        ))
        .await;
    assert_eq!(debug.status, 200, "{}", debug.text());
    assert_eq!(admin.get("/logging").await.text(), "gateway=debug,info\n");
    assert_eq!(admin.get("/healthz").await.status, 200);
    assert!(
        gateway.wait_for_log("admin request", WAIT),
        "debug lines appear once the level is debug"
    );
}

#[tokio::test]
async fn admin_connections_are_capped_and_silent_ones_are_cut() {
    let up = Upstream::start("up").await;
    let limits = "max_connections = 1\nheader_read_timeout = \"3s\"";
    let gateway = Gateway::start(&config(&up, limits)).await;
    let addr = gateway.admin.expect("admin");

    // The only admin connection, idle after one request.
    let mut first = Http1Client::connect(addr).await;
    assert_eq!(first.get("/healthz").await.status, 200);
    // A second client waits in the backlog while the first holds the slot.
    let mut second = TcpStream::connect(addr).await.expect("connect");
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
    assert!(early.is_err(), "served beyond max_connections: {early:?}");
    // The idle first connection is cut by the header deadline, which
    // frees the slot for the second.
    assert!(
        first.wait_closed(WAIT).await,
        "idle admin connection kept open"
    );
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, second.read_to_end(&mut answer))
        .await
        .expect("second client answered once the slot was free")
        .expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // A client that never finishes its request head is cut too.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(b"GET /config HTTP/1.1\r\nhost: adm")
        .await
        .expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "half a request head held the connection");
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[test]
fn a_public_admin_address_without_a_token_is_a_config_error() {
    let text = "[admin]\naddress = \"0.0.0.0:9901\"\n";
    let (output, path, _dir) = check_config(text);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin.address"), "{stderr}");
    assert!(stderr.contains("token"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");

    let with_token = format!("{text}token_file = \"admin.token\"\n");
    let (output, _, _dir) = check_config(&with_token);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the token file is missing");
    assert!(stderr.contains("admin.token_file"), "{stderr}");
}
