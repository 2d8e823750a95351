//! Loading, rejecting, linking and caching filters.

use super::*;

#[tokio::test]
async fn rejects_modules_without_the_abi_marker_and_fails_closed() {
    let host = test_host();
    let chain = chain_with(
        &host,
        &module(&Data::new(&[]), "not_an_abi_marker", ""),
        |_| {},
    )
    .await;
    let status = chain.status();
    assert_eq!(status[0].state, "failed");
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("proxy_abi_version"),
        "{status:?}"
    );
    let mut run = chain.start(meta()).expect("non-empty chain");
    let resp = run
        .on_request(request(&[]))
        .await
        .expect_err("fails closed");
    assert_eq!(resp.status(), 503);
    assert!(body_text(resp.into_body()).await.contains("`f`"));

    // Failing open skips the unavailable filter.
    let chain = chain_with(&host, &module(&Data::new(&[]), "nope", ""), |c| {
        c.failure = FailurePolicy::Open
    })
    .await;
    assert!(chain
        .start(meta())
        .expect("run")
        .on_request(request(&[]))
        .await
        .is_ok());
}

#[tokio::test]
async fn rejects_a_configuration_the_filter_refuses() {
    let host = test_host();
    let text = abi(
        &Data::new(&[]),
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    let chain = chain_with(&host, &text, |_| {}).await;
    let status = chain.status();
    assert_eq!(status[0].state, "failed");
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("proxy_on_configure"),
        "{status:?}"
    );
    // The filter's own reason (what it logged while configuring) is in
    // the error, not only the bare "returned false".
    let d = Data::new(&["starting", "limit must be positive"]);
    let text = abi(
        &d,
        &format!(
            r#"(func (export "proxy_on_configure") (param i32 i32) (result i32)
                 (drop (call $log (i32.const 2) {info}))
                 (drop (call $log (i32.const 4) {why}))
                 (i32.const 0))"#,
            info = d.at("starting"),
            why = d.at("limit must be positive")
        ),
    );
    let status = chain_with(&host, &text, |_| {}).await.status();
    let error = status[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("proxy_on_configure returned false")
            && error.ends_with(": limit must be positive"),
        "{error}"
    );
    // Accepted configuration: loads.
    let text = abi(
        &Data::new(&[]),
        r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))"#,
    );
    assert_eq!(
        chain_with(&host, &text, |_| {}).await.status()[0].state,
        "loaded"
    );
}

/// Every hostcall the official Rust SDK 0.2.x imports, with its wasm
/// signature (`usize`/`bool`/pointers are i32, u64/i64 are i64), the ABI
/// 0.2.0 leftovers and the WASI subset: all must link.
const SDK_IMPORTS: &[(&str, &str, &str, &str)] = &[
    ("env", "proxy_log", "i32 i32 i32", "i32"),
    ("env", "proxy_get_log_level", "i32", "i32"),
    ("env", "proxy_get_current_time_nanoseconds", "i32", "i32"),
    ("env", "proxy_set_tick_period_milliseconds", "i32", "i32"),
    (
        "env",
        "proxy_get_buffer_bytes",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_set_buffer_bytes",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_get_buffer_status", "i32 i32 i32", "i32"),
    ("env", "proxy_get_header_map_pairs", "i32 i32 i32", "i32"),
    ("env", "proxy_set_header_map_pairs", "i32 i32 i32", "i32"),
    (
        "env",
        "proxy_get_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_remove_header_map_value", "i32 i32 i32", "i32"),
    (
        "env",
        "proxy_replace_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_add_header_map_value",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_get_header_map_size", "i32 i32", "i32"),
    ("env", "proxy_get_property", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_set_property", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_get_shared_data", "i32 i32 i32 i32 i32", "i32"),
    ("env", "proxy_set_shared_data", "i32 i32 i32 i32 i32", "i32"),
    ("env", "proxy_register_shared_queue", "i32 i32 i32", "i32"),
    (
        "env",
        "proxy_resolve_shared_queue",
        "i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_dequeue_shared_queue", "i32 i32 i32", "i32"),
    ("env", "proxy_enqueue_shared_queue", "i32 i32 i32", "i32"),
    ("env", "proxy_continue_stream", "i32", "i32"),
    ("env", "proxy_close_stream", "i32", "i32"),
    ("env", "proxy_continue_request", "", "i32"),
    ("env", "proxy_continue_response", "", "i32"),
    ("env", "proxy_clear_route_cache", "", "i32"),
    (
        "env",
        "proxy_send_local_response",
        "i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_http_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_dispatch_http_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_grpc_call",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    (
        "env",
        "proxy_grpc_stream",
        "i32 i32 i32 i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_grpc_send", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_grpc_cancel", "i32", "i32"),
    ("env", "proxy_grpc_close", "i32", "i32"),
    ("env", "proxy_get_status", "i32 i32 i32", "i32"),
    ("env", "proxy_set_effective_context", "i32", "i32"),
    (
        "env",
        "proxy_call_foreign_function",
        "i32 i32 i32 i32 i32 i32",
        "i32",
    ),
    ("env", "proxy_done", "", "i32"),
    ("env", "proxy_define_metric", "i32 i32 i32 i32", "i32"),
    ("env", "proxy_get_metric", "i32 i32", "i32"),
    ("env", "proxy_record_metric", "i32 i64", "i32"),
    ("env", "proxy_increment_metric", "i32 i64", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_write",
        "i32 i32 i32 i32",
        "i32",
    ),
    (
        "wasi_snapshot_preview1",
        "fd_read",
        "i32 i32 i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_close", "i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "fd_seek",
        "i32 i64 i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "fd_fdstat_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "clock_time_get",
        "i32 i64 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "random_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "environ_get", "i32 i32", "i32"),
    (
        "wasi_snapshot_preview1",
        "environ_sizes_get",
        "i32 i32",
        "i32",
    ),
    ("wasi_snapshot_preview1", "args_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "args_sizes_get", "i32 i32", "i32"),
    ("wasi_snapshot_preview1", "proc_exit", "i32", ""),
    ("wasi_snapshot_preview1", "sched_yield", "", "i32"),
    ("wasi_unstable", "fd_write", "i32 i32 i32 i32", "i32"),
    ("wasi_unstable", "proc_exit", "i32", ""),
    // Unknown to this host: linked as a stub answering UNIMPLEMENTED.
    ("env", "proxy_some_future_hostcall", "i32", "i32"),
];

#[tokio::test]
async fn every_sdk_import_links_and_unknown_ones_are_stubbed() {
    let host = test_host();
    let imports: String = SDK_IMPORTS
        .iter()
        .enumerate()
        .map(|(i, (m, n, p, r))| {
            let params = if p.is_empty() {
                String::new()
            } else {
                format!("(param {p})")
            };
            let result = if r.is_empty() {
                String::new()
            } else {
                format!("(result {r})")
            };
            format!("(import \"{m}\" \"{n}\" (func $i{i} {params} {result}))\n")
        })
        .collect();
    let last = SDK_IMPORTS.len() - 1;
    let text = format!(
        r#"(module {imports}
          (memory (export "memory") 1)
          (func (export "malloc") (param i32) (result i32) (i32.const 1024))
          (func (export "proxy_abi_version_0_2_0"))
          (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
            ;; the unknown hostcall answers UNIMPLEMENTED (12)
            (i32.eq (call $i{last} (i32.const 0)) (i32.const 12))))"#
    );
    let chain = chain_with(&host, &text, |_| {}).await;
    assert_eq!(chain.status()[0].state, "loaded", "{:?}", chain.status());
}

#[tokio::test]
async fn compiled_code_is_cached_in_the_gateways_own_directory() {
    let cache = std::env::temp_dir().join(format!("gateway-filter-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let cfg = FilterHostConfig {
        cache_dir: Some(cache.clone()),
        max_instances: 16,
        ..FilterHostConfig::default()
    };
    let host = FilterHost::new(&cfg, Arc::new(Callouts)).expect("host");
    let text = header_filter();
    let path = write_module(&text);
    let filters = [FilterConfig::new("cached", &path)];
    assert_eq!(
        FilterChain::load(&host, &filters).await.status()[0].state,
        "loaded"
    );
    let entries = || {
        std::fs::read_dir(&cache)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(entries(), 1, "one compiled entry in the cache");
    // Loading again comes from the cache and still works.
    let chain = FilterChain::load(&host, &filters).await;
    let mut run = chain.start(meta()).expect("run");
    let req = run
        .on_request(request(&[("x-in", "cached")]))
        .await
        .expect("forwarded");
    assert_eq!(
        req.headers().get("x-seen").map(|v| v.as_bytes()),
        Some(&b"cached"[..])
    );
    assert_eq!(entries(), 1);
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test]
async fn a_full_instance_pool_answers_per_policy_without_backing_off() {
    let cfg = FilterHostConfig {
        cache_dir: None,
        max_instances: 2,
        ..FilterHostConfig::default()
    };
    let host = FilterHost::new(&cfg, Arc::new(Callouts)).expect("host");
    let chain = chain_with(&host, &header_filter(), |c| {
        c.isolation = Isolation::Request
    })
    .await;
    // Two requests in flight hold both slots; the third finds none.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut run = chain.start(meta()).expect("run");
        assert!(run.on_request(request(&[])).await.is_ok());
        held.push(run);
    }
    for _ in 0..4 {
        let mut run = chain.start(meta()).expect("run");
        assert_eq!(
            run.on_request(request(&[]))
                .await
                .expect_err("no slot")
                .status(),
            503
        );
    }
    assert_eq!(
        chain.status()[0].state,
        "loaded",
        "load is not a filter failure"
    );
    drop(held);
    let mut run = chain.start(meta()).expect("run");
    assert!(run.on_request(request(&[])).await.is_ok(), "slots freed");
}

/// The core runs chains inside hyper services: everything must be `Send`.
#[allow(dead_code)]
fn chain_types_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FilterChain>();
    send_sync::<FilterHost>();
    let chain = FilterChain::empty();
    if let Some(mut run) = chain.start(meta()) {
        send(&run.on_request(request(&[])));
        send(&run.on_response(http::Response::new(full(""))));
        send(&run);
    }
}
