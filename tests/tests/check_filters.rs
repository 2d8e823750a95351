//! Filters validated before they serve: `gateway check` starts every
//! configured and folder module with its configuration, sidecars and main
//! files take the configuration as a native TOML table, and a filter's own
//! rejection message reaches the check, the load error and `/filters`.

use std::path::Path;
use std::process::{Command, Output};

use gateway_tests::{binary, wasm, Gateway, Http1Client, Upstream, WAIT};

const ROUTER_TABLE: &str =
    "# routes for the router\n[config]\n[[config.routes]]\npath = \"/ping\"\ncluster = \"up\"\n";
/// A route without its cluster: the router refuses it.
const ROUTER_REFUSED: &str = "instances = 1\n\n[config]\nroutes = [{ path = \"/ping\" }]\n";

fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
        filters_dir = "filters"
        {extra}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{upstream}"]
        "#
    )
}

/// A folder `filters/` holding the router as `20-router.wasm` with `sidecar`.
fn folder(dir: &Path, sidecar: &str) {
    let folder = dir.join("filters");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::copy(wasm::path("filter-router"), folder.join("20-router.wasm")).expect("copy");
    std::fs::write(folder.join("20-router.toml"), sidecar).expect("sidecar");
}

fn check(dir: &Path, text: &str) -> Output {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).expect("write config");
    Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run gateway check")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_starts_folder_filters_with_their_sidecar_table() {
    let dir = tempfile::tempdir().expect("dir");
    folder(dir.path(), ROUTER_TABLE);
    let output = check(dir.path(), &config("127.0.0.1:9", ""));
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1 filter(s) start"), "{stdout}");
}

#[test]
fn check_fails_when_a_filter_refuses_its_sidecar_configuration() {
    let dir = tempfile::tempdir().expect("dir");
    folder(dir.path(), ROUTER_REFUSED);
    let output = check(dir.path(), &config("127.0.0.1:9", ""));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    // The module, the sidecar line its configuration starts on, the filter's reason.
    assert!(err.contains("20-router.wasm"), "{err}");
    assert!(err.contains("20-router.toml:3"), "{err}");
    assert!(err.contains("missing field `cluster`"), "{err}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("configuration is valid"));
}

#[test]
fn check_names_the_sidecar_line_and_key_of_an_invalid_sidecar() {
    let dir = tempfile::tempdir().expect("dir");
    folder(
        dir.path(),
        "instances = 1\nfailure = \"closed\"\nconfg = \"x\"\n",
    );
    let output = check(dir.path(), &config("127.0.0.1:9", ""));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("unknown field `confg`"), "{err}");
    assert!(
        err.contains("20-router.toml:3:1"),
        "line 3 of the sidecar itself: {err}"
    );
}

#[test]
fn check_names_the_key_of_a_refused_filter_in_the_main_file() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(dir.path().join("filters")).expect("mkdir");
    let router = wasm::path("filter-router");
    let filter = format!(
        "[[listener.filter]]\n        name = \"router\"\n        path = {:?}\n        config = {{ routes = 3 }}",
        router.display().to_string()
    );
    let output = check(dir.path(), &config("127.0.0.1:9", &filter));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("filter `router` (key `listener[0].filter[0]`)"),
        "{err}"
    );
    assert!(err.contains("gateway.toml"), "{err}");
    assert!(
        err.contains("invalid type"),
        "the filter's own reason: {err}"
    );

    // The same filter with a table it accepts passes.
    let filter = filter.replace(
        "config = { routes = 3 }",
        "[listener.filter.config]\n        routes = [{ path = \"/ping\", cluster = \"up\" }]",
    );
    let output = check(dir.path(), &config("127.0.0.1:9", &filter));
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn a_sidecar_table_configures_the_serving_filter() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    folder(dir.path(), ROUTER_TABLE);
    let gateway = Gateway::start_in(dir, &config(&up.addr.to_string(), "")).await;
    let mut client = gateway.http1("web").await;
    let ping = client.get("/ping").await;
    assert_eq!((ping.status.as_u16(), ping.text()), (200, "up".to_string()));
    assert_eq!(
        client.get("/other").await.status.as_u16(),
        404,
        "the router's 404"
    );
}

#[tokio::test]
async fn the_filters_reason_is_in_the_admin_last_error() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    folder(dir.path(), ROUTER_REFUSED);
    let gateway = Gateway::start_in(dir, &config(&up.addr.to_string(), "")).await;
    let mut admin = Http1Client::connect(gateway.admin.expect("admin")).await;
    let filters: serde_json::Value =
        serde_json::from_slice(&admin.get("/filters").await.body).expect("json");
    let listed = &filters["chains"][0]["folder"]["filters"][0];
    assert_eq!(listed["state"], "failed", "{filters}");
    let error = listed["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("proxy_on_configure returned false"),
        "{error}"
    );
    assert!(error.contains("missing field `cluster`"), "{error}");
    assert!(gateway.wait_for_log("missing field `cluster`", WAIT));
}
