//! The admin page in a real browser (headless Chromium): what an operator
//! sees after the page's script ran, and with JavaScript off.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use bytes::Bytes;
use gateway_tests::{wasm, Gateway, Http1Client, Upstream, WAIT};
use http::Request;
use http_body_util::Full;

/// A folder module whose name carries markup: it fails to load, and the
/// page must show its name and error as text.
const HOSTILE_STEM: &str = "20-<b>bold";

fn authorized(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("authorization", "Bearer x")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// An address nothing listens on: connects to it are refused.
fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

async fn gateway(live: &Upstream, dead: SocketAddr) -> Gateway {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::copy(wasm::path("filter-auth"), folder.join("10-auth.wasm")).expect("auth");
    std::fs::write(folder.join("10-auth.toml"), "config = '{}'\n").expect("sidecar");
    std::fs::write(folder.join(format!("{HOSTILE_STEM}.wasm")), "not wasm").expect("bad");
    std::fs::write(
        folder.join(format!("{HOSTILE_STEM}.toml")),
        "failure = \"open\"\n",
    )
    .expect("sidecar");
    let text = format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "edge-web"
        protocol = "http"
        address = "127.0.0.1:0"
        filters_dir = "filters"
        [[listener.route]]
        name = "ping"
        path = "/ping"
        cluster = "pair"
        [[cluster]]
        name = "pair"
        endpoints = ["{}", "{dead}"]
        eject_after_failures = 1
        ejection_time = "5m"
        "#,
        live.addr
    );
    Gateway::start_in(dir, &text).await
}

/// What Chromium renders at `url` once the page settled: its DOM after
/// the page's script ran.
async fn chromium_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let mut command = chromium(profile.path());
    command.args(["--virtual-time-budget=8000", "--dump-dom", url]);
    let output = run(command).await;
    String::from_utf8_lossy(&output).into_owned()
}

fn chromium(profile: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("chromium");
    command
        // CI runs as root, where Chromium's sandbox cannot start; the page
        // is our own, on loopback.
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run(mut command: tokio::process::Command) -> Vec<u8> {
    let child = command
        .spawn()
        .expect("run chromium (.ci/run installs it: apt-get install chromium)");
    let output = tokio::time::timeout(WAIT * 2, child.wait_with_output())
        .await
        .expect("chromium finished in time")
        .expect("chromium output");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[tokio::test]
async fn the_admin_page_shows_listeners_filters_and_endpoint_health_in_a_browser() {
    let live = Upstream::start("pong").await;
    let dead = dead_address();
    let gateway = gateway(&live, dead).await;
    let admin = gateway.admin.expect("admin");

    // Traffic: round robin sends some connects to the dead endpoint, which
    // is ejected after its first failure (the request is retried on the
    // live one).
    let mut web = gateway.http1("edge-web").await;
    for _ in 0..4 {
        assert_eq!(web.send(authorized("/ping")).await.text(), "pong");
    }
    assert_eq!(web.get("/ping").await.status, 401);

    // What the page must show, from the JSON endpoints.
    let mut client = Http1Client::connect(admin).await;
    let filters: serde_json::Value =
        serde_json::from_slice(&client.get("/filters").await.body).expect("json");
    let listed = filters["chains"][0]["folder"]["filters"]
        .as_array()
        .expect("filters")
        .clone();
    let auth = listed
        .iter()
        .find(|f| f["name"] == "10-auth")
        .expect("auth listed");
    let digest = auth["sha256"].as_str().expect("digest").to_string();
    assert_eq!(digest.len(), 64);
    assert!(listed
        .iter()
        .any(|f| f["name"] == HOSTILE_STEM && f["state"] == "failed"));

    let url = format!("http://{admin}/");
    let dom = chromium_dom(&url).await;
    // The script ran and refreshed the content in place.
    assert!(dom.contains(r#"id="live" data-state="on""#), "{dom}");
    assert!(dom.contains("live: refreshed"), "{dom}");
    let bound = gateway.addr("edge-web").to_string();
    for needle in [
        "<b>edge-web</b>",
        &format!("<td>http</td><td>{bound}</td>"),
        "↳ ping",
        "cluster pair",
        &digest,
        &format!(
            "{}</td><td><span class=\"healthy\">healthy</span>",
            live.addr
        ),
        &format!("{dead}</td><td><span class=\"ejected\">ejected</span>"),
        r#"<span id="readiness" class="ready">ready</span>"#,
    ] {
        assert!(dom.contains(needle), "the page lacks {needle}:\n{dom}");
    }
    // Traffic per route: four proxied /ping requests on route "ping".
    assert!(
        dom.contains("<td>edge-web</td><td>ping</td><td>4</td>"),
        "{dom}"
    );
    // The hostile file name is text, not markup.
    assert!(dom.contains("20-&lt;b&gt;bold"), "{dom}");
    assert!(!dom.contains("20-<b>bold"), "{dom}");

    // With JavaScript off the content is there as served: the page is
    // rendered by the gateway, the script only refreshes it. (Headless
    // Chromium cannot dump the DOM with scripts disabled, so this reads
    // the served HTML.)
    let served = client.get("/").await;
    assert_eq!(
        served.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let served = served.text();
    assert!(
        served.contains(r#"id="live" data-state="static""#),
        "{served}"
    );
    for needle in [
        "<b>edge-web</b>",
        digest.as_str(),
        "ejected",
        "healthy",
        "20-&lt;b&gt;bold",
    ] {
        assert!(served.contains(needle), "the served page lacks {needle}");
    }

    // A picture of it, for the README when asked (GATEWAY_ADMIN_SCREENSHOT=docs/admin.png).
    let profile = tempfile::tempdir().expect("profile");
    let shot = profile.path().join("admin.png");
    let mut command = chromium(profile.path());
    command
        .args([
            "--window-size=1100,760",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url);
    run(command).await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    if let Some(target) = std::env::var_os("GATEWAY_ADMIN_SCREENSHOT") {
        std::fs::write(target, &png).expect("write the screenshot");
    }
}
