//! Hostile input on the filter-host side of the edge: configuration values
//! that would overflow, filter folders holding what they should not. Each
//! is refused with its place named, and what served keeps serving.

use std::path::Path;

use gateway_tests::{check_config, wasm, Gateway, Upstream, WAIT};

const GOOD: &str = r#"
[[listener]]
name = "web"
protocol = "http"
address = "127.0.0.1:0"

[[listener.route]]
path_prefix = "/"
cluster = "c"

[[cluster]]
name = "c"
endpoints = ["127.0.0.1:8080"]
connect_timeout = "250ms"
"#;

#[test]
fn an_overflowing_duration_in_the_config_is_refused_with_its_place() {
    let text = GOOD.replace("\"250ms\"", "\"500000000000y\"");
    let (output, path, _dir) = check_config(&text);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("longer than the maximum"), "{err}");
    assert!(err.contains(&format!("{}:14:19", path.display())), "{err}");
    assert!(err.contains("connect_timeout"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A gateway whose listener takes its chain from `<tmp>/filters`, after
/// `prepare` put files there.
async fn folder_gateway(up: &Upstream, prepare: impl FnOnce(&Path)) -> Gateway {
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    prepare(&folder);
    let text = format!(
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
    );
    Gateway::start_in(dir, &text).await
}

fn put_version(folder: &Path, sidecar: &str) {
    std::fs::write(folder.join("10-v.toml"), sidecar).expect("sidecar");
    let module = std::fs::read(wasm::path("tw-version-stamp")).expect("module");
    std::fs::write(folder.join("10-v.wasm"), module).expect("module");
}

#[tokio::test]
async fn an_overflowing_duration_in_a_sidecar_is_refused_with_its_place() {
    let up = Upstream::start("up").await;
    let gateway = folder_gateway(&up, |f| put_version(f, "config = 'good'\n")).await;
    let folder = gateway.path().join("filters");
    let version = || async {
        let reply = gateway.http1("web").await.get("/").await;
        reply.header("x-filter-version").map(str::to_owned)
    };
    assert_eq!(version().await.as_deref(), Some("good"));
    // A callout pause would be bounded by it: `Instant + 500 billion years`.
    std::fs::write(
        folder.join("10-v.toml"),
        "config = 'bad'\nmax_callout_timeout = \"500000000000y\"\n",
    )
    .expect("sidecar");
    assert!(
        gateway.wait_for_log("new version rejected", WAIT),
        "{:#?}",
        gateway.logs()
    );
    let line = gateway
        .logs()
        .into_iter()
        .find(|l| l.contains("new version rejected"))
        .unwrap_or_default();
    assert!(line.contains("10-v.toml:2:"), "{line}");
    assert!(line.contains("max_callout_timeout"), "{line}");
    assert!(line.contains("longer than the maximum"), "{line}");
    assert_eq!(
        version().await.as_deref(),
        Some("good"),
        "the old version serves"
    );
}

#[tokio::test]
async fn a_module_over_the_size_cap_is_not_read_into_memory() {
    let up = Upstream::start("up").await;
    let gateway = folder_gateway(&up, |f| put_version(f, "config = 'good'\n")).await;
    let folder = gateway.path().join("filters");
    // 1 GiB, sparse: reading it whole would take a GiB of the gateway's memory.
    let huge = std::fs::File::create(folder.join("20-huge.wasm")).expect("create");
    huge.set_len(1 << 30).expect("grow");
    drop(huge);
    assert!(
        gateway.wait_for_log("over max_module_size", WAIT),
        "{:#?}",
        gateway.logs()
    );
    assert!(gateway.wait_for_log_count("filter chain updated", 2, WAIT));
    let (_, peak_kib) = gateway.memory_kib();
    assert!(peak_kib < 256 << 10, "peak resident memory {peak_kib} KiB");
    let reply = gateway.http1("web").await.get("/").await;
    // The oversized filter is in the chain as unavailable (failure closed).
    assert_eq!(reply.status, 503);
}
