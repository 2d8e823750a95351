//! Hot reload from a filter folder: every change to the folder is checked
//! by requests. Waits are on the gateway's log lines, never on sleeps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_tests::{wasm, Gateway, Upstream, WAIT};

const SERVING: &str = "filter version now serving";
const REJECTED: &str = "new version rejected";
const UPDATED: &str = "filter chain updated";

struct Setup {
    gateway: Gateway,
    folder: PathBuf,
    _up: Upstream,
}

/// A gateway whose listener takes its chain from `<tmp>/filters`, after
/// `prepare` put files there.
async fn setup(prepare: impl FnOnce(&Path)) -> Setup {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("dir");
    let folder = dir.path().join("filters");
    std::fs::create_dir(&folder).expect("mkdir");
    prepare(&folder);
    let text = format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
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
    let gateway = Gateway::start_in(dir, &text).await;
    Setup {
        gateway,
        folder,
        _up: up,
    }
}

fn version_module() -> Vec<u8> {
    std::fs::read(wasm::path("tw-version-stamp")).expect("version-stamp module")
}

/// Writes module `name` with version `v` in its sidecar.
fn put(folder: &Path, name: &str, version: &str) {
    std::fs::write(
        folder.join(format!("{name}.toml")),
        format!("config = '{version}'\n"),
    )
    .expect("sidecar");
    std::fs::write(folder.join(format!("{name}.wasm")), version_module()).expect("module");
}

async fn version(gateway: &Gateway) -> (u16, Option<String>) {
    let reply = gateway.http1("web").await.get("/v").await;
    (
        reply.status.as_u16(),
        reply.header("x-filter-version").map(str::to_owned),
    )
}

fn count(gateway: &Gateway, needle: &str) -> usize {
    gateway.logs().iter().filter(|l| l.contains(needle)).count()
}

#[tokio::test]
async fn new_overwritten_renamed_and_deleted_files() {
    let s = setup(|_| {}).await;
    assert_eq!(
        version(&s.gateway).await,
        (200, None),
        "empty folder: no filter"
    );

    // A new file.
    put(&s.folder, "10-a", "a1");
    assert!(s.gateway.wait_for_log_count(SERVING, 1, WAIT));
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("a1"));

    // Overwritten in place (the sidecar carries the new version).
    let updates = count(&s.gateway, UPDATED);
    std::fs::write(s.folder.join("10-a.toml"), "config = 'a2'\n").expect("write");
    assert!(s.gateway.wait_for_log_count(UPDATED, updates + 1, WAIT));
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("a2"));

    // The safe pattern: write x.wasm.tmp, rename to x.wasm.
    let updates = count(&s.gateway, UPDATED);
    std::fs::write(s.folder.join("20-b.toml"), "config = 'b1'\n").expect("write");
    std::fs::write(s.folder.join("20-b.wasm.tmp"), version_module()).expect("write");
    std::fs::rename(s.folder.join("20-b.wasm.tmp"), s.folder.join("20-b.wasm")).expect("rename");
    assert!(s.gateway.wait_for_log_count(UPDATED, updates + 1, WAIT));
    // Response callbacks run in reverse chain order: the first file's
    // header is set last.
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("a2"));

    // Renamed: the order changes.
    let updates = count(&s.gateway, UPDATED);
    std::fs::rename(s.folder.join("20-b.wasm"), s.folder.join("05-b.wasm")).expect("rename");
    std::fs::rename(s.folder.join("20-b.toml"), s.folder.join("05-b.toml")).expect("rename");
    assert!(s.gateway.wait_for_log_count(UPDATED, updates + 1, WAIT));
    assert!(s.gateway.wait_for_log_count("05-b", 1, WAIT));
    let v = version(&s.gateway).await.1;
    assert_eq!(v.as_deref(), Some("b1"), "05-b now runs first");

    // Deleted: the filter leaves the chain.
    let updates = count(&s.gateway, UPDATED);
    std::fs::remove_file(s.folder.join("05-b.wasm")).expect("rm");
    assert!(s.gateway.wait_for_log_count(UPDATED, updates + 1, WAIT));
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("a2"));

    // The admin endpoint shows what is loaded.
    let admin = s.gateway.admin.expect("admin");
    let mut client = gateway_tests::Http1Client::connect(admin).await;
    let filters: serde_json::Value =
        serde_json::from_slice(&client.get("/filters").await.body).expect("json");
    let listed = &filters["chains"][0]["folder"]["filters"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{filters}");
    assert_eq!(listed[0]["file_name"], "10-a.wasm");
    assert_eq!(listed[0]["state"], "loaded");
    assert_eq!(listed[0]["sha256"].as_str().map(str::len), Some(64));
}

#[tokio::test]
async fn a_bad_or_half_written_module_never_replaces_a_good_one() {
    let s = setup(|folder| put(folder, "10-a", "good")).await;
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("good"));

    // Not wasm at all.
    std::fs::write(s.folder.join("10-a.wasm"), b"this is not a module").expect("write");
    assert!(s.gateway.wait_for_log_count(REJECTED, 1, WAIT));
    assert_eq!(version(&s.gateway).await, (200, Some("good".into())));

    // Half of a real module, as a slow copy leaves it.
    let module = version_module();
    std::fs::write(s.folder.join("10-a.wasm"), &module[..module.len() / 2]).expect("write");
    assert!(s.gateway.wait_for_log_count(REJECTED, 2, WAIT));
    assert_eq!(version(&s.gateway).await, (200, Some("good".into())));

    // The copy completes: the module serves again (same version).
    let serving = count(&s.gateway, SERVING);
    std::fs::write(s.folder.join("10-a.toml"), "config = 'fixed'\n").expect("write");
    std::fs::write(s.folder.join("10-a.wasm"), &module).expect("write");
    assert!(s.gateway.wait_for_log_count(SERVING, serving + 1, WAIT));
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("fixed"));

    // A sidecar the filter rejects (on_configure false) keeps the old one.
    let rejected = count(&s.gateway, REJECTED);
    std::fs::write(s.folder.join("10-a.toml"), "bogus_key = 1\n").expect("write");
    assert!(s.gateway.wait_for_log_count(REJECTED, rejected + 1, WAIT));
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("fixed"));
}

#[tokio::test]
async fn a_filter_without_a_good_version_follows_its_failure_policy() {
    let s = setup(|folder| {
        std::fs::write(folder.join("10-closed.wasm"), b"garbage").expect("write");
    })
    .await;
    let reply = s.gateway.http1("web").await.get("/x").await;
    assert_eq!(reply.status, 503);
    assert!(reply.text().contains("10-closed"), "{}", reply.text());

    // The same with `failure = "open"`: skipped.
    let updates = count(&s.gateway, UPDATED);
    std::fs::write(s.folder.join("10-closed.toml"), "failure = 'open'\n").expect("write");
    assert!(s.gateway.wait_for_log_count(UPDATED, updates + 1, WAIT));
    assert_eq!(s.gateway.http1("web").await.get("/x").await.status, 200);
}

#[tokio::test]
async fn a_folder_swapped_through_a_symlink_like_a_kubernetes_volume() {
    let s = setup(|folder| {
        let v1 = folder.join("..2026_11_25_v1");
        std::fs::create_dir(&v1).expect("mkdir");
        put(&v1, "10-a", "k1");
        std::os::unix::fs::symlink("..2026_11_25_v1", folder.join("..data")).expect("symlink");
        std::os::unix::fs::symlink("..data/10-a.wasm", folder.join("10-a.wasm")).expect("symlink");
        std::os::unix::fs::symlink("..data/10-a.toml", folder.join("10-a.toml")).expect("symlink");
    })
    .await;
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("k1"));
    // The kubelet's swap: a new timestamped dir, `..data_tmp` pointing to
    // it, renamed over `..data`.
    let v2 = s.folder.join("..2026_11_25_v2");
    std::fs::create_dir(&v2).expect("mkdir");
    put(&v2, "10-a", "k2");
    let serving = count(&s.gateway, SERVING);
    std::os::unix::fs::symlink("..2026_11_25_v2", s.folder.join("..data_tmp")).expect("symlink");
    std::fs::rename(s.folder.join("..data_tmp"), s.folder.join("..data")).expect("rename");
    assert!(s.gateway.wait_for_log_count(SERVING, serving + 1, WAIT));
    assert_eq!(version(&s.gateway).await.1.as_deref(), Some("k2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_replacements_under_load_lose_no_request() {
    let s = setup(|folder| put(folder, "10-v", "v0")).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for h2 in [false, true] {
        let (stop, addr) = (stop.clone(), s.gateway.addr("web"));
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<(u16, Vec<String>)> = Vec::new();
            let mut h1 = gateway_tests::Http1Client::connect(addr).await;
            let mut h2c = gateway_tests::Http2Client::connect(addr).await;
            let started = std::time::Instant::now();
            // Until the replacements are over; bounded in case they hang.
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(180)
                && seen.len() < 200_000
            {
                let reply = if h2 {
                    h2c.get("/load").await
                } else {
                    h1.get("/load").await
                };
                let versions = reply
                    .headers
                    .get_all("x-filter-version")
                    .iter()
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .collect();
                seen.push((reply.status.as_u16(), versions));
            }
            (seen, started.elapsed())
        }));
    }
    let started = std::time::Instant::now();
    let module = version_module();
    for i in 1..=100u32 {
        if i % 10 == 5 {
            // A broken file in between: rejected, never served.
            let rejected = count(&s.gateway, REJECTED);
            std::fs::write(s.folder.join("10-v.wasm.tmp"), format!("broken {i}")).expect("write");
            std::fs::rename(s.folder.join("10-v.wasm.tmp"), s.folder.join("10-v.wasm"))
                .expect("rename");
            assert!(
                s.gateway
                    .log_count_reaches(REJECTED, rejected + 1, WAIT)
                    .await,
                "broken {i} not rejected"
            );
        }
        let serving = count(&s.gateway, SERVING);
        std::fs::write(s.folder.join("10-v.toml.tmp"), format!("config = 'v{i}'\n"))
            .expect("write");
        std::fs::rename(s.folder.join("10-v.toml.tmp"), s.folder.join("10-v.toml"))
            .expect("rename");
        std::fs::write(s.folder.join("10-v.wasm.tmp"), &module).expect("write");
        std::fs::rename(s.folder.join("10-v.wasm.tmp"), s.folder.join("10-v.wasm"))
            .expect("rename");
        assert!(
            s.gateway
                .log_count_reaches(SERVING, serving + 1, WAIT)
                .await,
            "v{i} never served"
        );
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (seen, elapsed) = client.await.expect("client");
        total += seen.len();
        let mut last = 0u32;
        for (status, versions) in &seen {
            assert_eq!(*status, 200, "a request failed during reloads");
            assert_eq!(
                versions.len(),
                1,
                "exactly one version per response: {versions:?}"
            );
            let v: u32 = versions[0]
                .trim_start_matches('v')
                .parse()
                .expect("a good version, never a broken one");
            assert!(v >= last, "versions only move forward: {last} then {v}");
            last = v;
        }
        // The load was real: more requests than replacements on each
        // client (its rate is for the benchmarks, not this test).
        let rate = seen.len() as f64 / elapsed.as_secs_f64();
        assert!(
            seen.len() >= 200,
            "client sent only {} requests ({rate:.0}/s)",
            seen.len()
        );
        assert_eq!(last, 100, "the client ended on the last version");
    }
    eprintln!(
        "{total} requests over {took:?} while the module was replaced 100 times (10 broken files)"
    );
}
