//! `gateway filter inspect FILE.wasm`: the real bundled and test modules
//! loaded in the real filter host, reported as text and JSON, started with
//! a configuration the filter accepts or refuses.

use std::process::{Command, Output};

use gateway_tests::{binary, wasm};

fn inspect(args: &[&str]) -> Output {
    Command::new(binary())
        .args(["filter", "inspect"])
        .args(args)
        .output()
        .expect("run gateway filter inspect")
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn a_module_that_accepts_its_configuration_is_reported_whole() {
    let router = wasm::path("filter-router");
    let file = router.to_str().expect("utf-8 path");
    let output = inspect(&[
        file,
        "--config",
        "[[routes]]\npath = \"/ping\"\ncluster = \"c\"\n",
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    assert_eq!(report["abi_version"], "0.2.1");
    assert_eq!(report["vm_start"], "ok");
    assert_eq!(report["configure"], "ok");
    assert!(report["error"].is_null());
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64));
    let callbacks: Vec<&str> = report["callbacks"]
        .as_array()
        .expect("callbacks")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    for callback in [
        "proxy_on_configure",
        "proxy_on_request_headers",
        "proxy_on_context_create",
    ] {
        assert!(
            callbacks.contains(&callback),
            "{callback} missing from {callbacks:?}"
        );
    }
    let imports = report["imports"].as_array().expect("imports");
    assert!(imports
        .iter()
        .any(|i| i["name"] == "proxy_log" && i["implemented"] == true));
    let pages = report["memory"]["initial_pages"]
        .as_u64()
        .expect("initial pages");
    assert!(pages >= 1, "{report}");
    assert_eq!(
        report["memory"]["limit_pages"], 1024,
        "64 MiB default memory_limit"
    );

    // The text report says the same for a reader.
    let text = inspect(&[file, "--config", "{\"routes\": []}"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("abi        proxy-wasm 0.2.1"), "{text}");
    assert!(text.contains("configure  ok"), "{text}");
    assert!(text.contains("result     ok"), "{text}");
}

#[test]
fn a_refused_configuration_fails_with_the_filters_own_reason() {
    let router = wasm::path("filter-router");
    let file = router.to_str().expect("utf-8 path");
    // A route without its cluster: the router's config type refuses it.
    let output = inspect(&[
        file,
        "--config",
        r#"{"routes": [{"path": "/ping"}]}"#,
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(report["vm_start"], "ok");
    assert_eq!(report["configure"], "failed");
    let error = report["error"].as_str().expect("an error");
    assert!(
        error.contains("proxy_on_configure returned false"),
        "{error}"
    );
    assert!(
        error.contains("missing field `cluster`"),
        "the filter's reason: {error}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing field `cluster`"), "{stderr}");

    // The configuration may come from a file.
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("router.toml");
    std::fs::write(&config, "routes = 3\n").expect("write");
    let output = inspect(&[file, "--config", config.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("configure  failed"), "{text}");
    assert!(text.contains("invalid type"), "{text}");
}

#[test]
fn unimplemented_imports_and_foreign_modules_are_named() {
    let dir = tempfile::tempdir().expect("dir");
    let module = wasm::wat_to(
        r#"(module
             (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
             (import "env" "proxy_frobnicate" (func (param i32) (result i32)))
             (memory (export "memory") 2 4)
             (func (export "proxy_abi_version_0_2_0"))
             (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024)))"#,
        &dir.path().join("old.wasm"),
    );
    let output = inspect(&[module.to_str().expect("utf-8"), "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    assert_eq!(report["abi_version"], "0.2.0");
    assert_eq!(report["memory"]["initial_pages"], 2);
    assert_eq!(report["memory"]["max_pages"], 4);
    assert_eq!(report["vm_start"], "not implemented");
    let missing: Vec<&str> = report["imports"]
        .as_array()
        .expect("imports")
        .iter()
        .filter(|i| i["implemented"] == false)
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(missing, ["proxy_frobnicate"]);

    // A wasm module that is no proxy-wasm filter: exit 1, saying so.
    let plain = wasm::wat_to(
        r#"(module (memory (export "memory") 1) (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#,
        &dir.path().join("plain.wasm"),
    );
    let output = inspect(&[plain.to_str().expect("utf-8"), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert!(report["abi_version"].is_null());
    assert_eq!(report["exports"], serde_json::json!(["memory", "add"]));
    assert!(report["error"]
        .as_str()
        .unwrap_or("")
        .contains("not a proxy-wasm 0.2.x module"));

    // Not a file at all.
    let output = inspect(&[dir.path().join("missing.wasm").to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
}
