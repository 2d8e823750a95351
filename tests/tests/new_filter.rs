//! `gateway new-filter`: from nothing to a live filter. The scaffold is
//! written outside this repository, its native tests run, it builds for
//! wasm32, and dropped into a running gateway's folder it changes requests.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use gateway_tests::{binary, Gateway, Upstream, WAIT};

/// The longest a cargo run of the scaffold may take (a cold build compiles
/// serde, serde_json and toml twice: natively and for wasm32).
const CARGO_LIMIT: Duration = Duration::from_secs(900);

/// A target directory kept between runs (next to the tests' wasm builds),
/// so only the first run compiles the SDK's dependencies.
fn scaffold_target_dir() -> PathBuf {
    Path::new(env!("GATEWAY_TEST_WASM_DIR"))
        .ancestors()
        .nth(3)
        .expect("<target>/wasm-filters/wasm32-unknown-unknown/release")
        .join("new-filter-test")
}

/// Runs cargo in `dir` offline (crates from the local registry cache only).
async fn cargo(dir: &Path, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO"));
    command
        .args(args)
        .arg("--offline")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", scaffold_target_dir())
        .kill_on_drop(true);
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        command.env_remove(var);
    }
    let output = tokio::time::timeout(CARGO_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("cargo {args:?} took over {CARGO_LIMIT:?}"))
        .expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test]
async fn a_new_filter_goes_from_scaffold_to_serving() {
    let work = tempfile::tempdir().expect("dir");
    let output = std::process::Command::new(binary())
        .args(["new-filter", "hello-header", "--dir"])
        .arg(work.path())
        .output()
        .expect("run gateway new-filter");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crate_dir = work.path().join("hello-header");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("gateway-sdk = { path = \"../../"),
        "a relative path: {manifest}"
    );
    for setting in [
        "opt-level = \"s\"",
        "lto = true",
        "strip = true",
        "codegen-units = 1",
        "panic = \"abort\"",
    ] {
        assert!(manifest.contains(setting), "{setting} missing: {manifest}");
    }
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).expect("README");
    assert!(readme.contains("cargo build --release --target wasm32-unknown-unknown"));
    assert!(readme.contains("hello_header.wasm"));
    // A second scaffold into the same place is refused, the first left intact.
    let again = std::process::Command::new(binary())
        .args(["new-filter", "hello-header", "--dir"])
        .arg(work.path())
        .output()
        .expect("run gateway new-filter");
    assert_eq!(again.status.code(), Some(1));

    // Its native tests (gateway_sdk::testing) pass.
    let tested = cargo(&crate_dir, &["test"]).await;
    let report = String::from_utf8_lossy(&tested.stdout);
    assert!(
        report.contains("sets_the_header_both_ways ... ok"),
        "{report}"
    );

    // The module builds for wasm32, small.
    cargo(
        &crate_dir,
        &["build", "--release", "--target", "wasm32-unknown-unknown"],
    )
    .await;
    let module = scaffold_target_dir().join("wasm32-unknown-unknown/release/hello_header.wasm");
    let size = std::fs::metadata(&module).expect("the module").len();
    assert!(size < 1024 * 1024, "{size} bytes");

    // Dropped into a running gateway's folder, it serves.
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    let gateway = Gateway::start_in(
        dir,
        &format!(
            r#"
            [[listener]]
            name = "web"
            protocol = "http"
            address = "127.0.0.1:0"
            filters_dir = "filters"
            [[listener.route]]
            path_prefix = "/"
            cluster = "up"
            [[cluster]]
            name = "up"
            endpoints = ["{}"]
            "#,
            up.addr
        ),
    )
    .await;
    let before = gateway.http1("web").await.get("/").await;
    assert_eq!(before.header("x-hello-header"), None);
    std::fs::write(
        folder.join("50-hello-header.toml"),
        "[config]\nvalue = \"from the scaffold\"\n",
    )
    .expect("sidecar");
    std::fs::copy(&module, folder.join(".hello.tmp")).expect("copy");
    std::fs::rename(
        folder.join(".hello.tmp"),
        folder.join("50-hello-header.wasm"),
    )
    .expect("rename");
    assert!(
        gateway.wait_for_log("filter version now serving", WAIT),
        "{:?}",
        gateway.logs()
    );
    let after = gateway.http1("web").await.get("/").await;
    assert_eq!(after.status.as_u16(), 200);
    assert_eq!(after.header("x-hello-header"), Some("from the scaffold"));
    let seen = up.received();
    let last = seen.last().expect("the upstream got the request");
    assert_eq!(
        last.headers
            .get("x-hello-header")
            .and_then(|v| v.to_str().ok()),
        Some("from the scaffold")
    );
}
