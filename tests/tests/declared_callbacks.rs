//! Declared callbacks: a filter that declares the hooks it implements (our
//! SDK writes the `gateway.callbacks` section) is called for those only, so
//! response bodies do not stream through a filter that reads request
//! headers; a module without the declaration still gets every callback.

use bytes::Bytes;
use gateway_tests::{wasm, Gateway, Http1Client, Upstream};
use http::Request;
use http_body_util::Full;

/// A filter that stamps the request and traps in every other callback: a
/// host that calls any of those fails the request.
fn stamping_module(declaration: Option<&str>) -> String {
    stamping_module_creating(declaration, "")
}

/// The stamping module with `create` as the body of its
/// `proxy_on_context_create(context, root)`.
fn stamping_module_creating(declaration: Option<&str>, create: &str) -> String {
    let custom = declaration
        .map(|d| format!("(@custom \"gateway.callbacks\" \"{d}\")"))
        .unwrap_or_default();
    format!(
        r#"(module
  {custom}
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (data (i32.const 0) "x-declared")
  (data (i32.const 16) "yes")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32) {create})
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 16) (i32.const 3)))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) unreachable)
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) unreachable)
  (func (export "proxy_on_log") (param i32) unreachable)
  (func (export "proxy_on_done") (param i32) (result i32) unreachable))"#
    )
}

fn config(up: &Upstream, filters: &[(&str, String, Option<&str>)]) -> String {
    let mut blocks = String::new();
    for (name, path, config) in filters {
        blocks.push_str(&format!(
            "[[listener.filter]]\nname = \"{name}\"\npath = {path:?}\n"
        ));
        if let Some(config) = config {
            blocks.push_str(&format!("config = '''{config}'''\n"));
        }
    }
    format!(
        r#"
        [admin]
        address = "127.0.0.1:0"
        [[listener]]
        name = "web"
        protocol = "http"
        address = "127.0.0.1:0"
{blocks}
        [[listener.route]]
        path_prefix = "/"
        cluster = "up"
        [[cluster]]
        name = "up"
        endpoints = ["{}"]
        "#,
        up.addr
    )
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut req = Request::get(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Full::new(Bytes::new())).expect("request")
}

/// A gateway in front of `up` with one filter, `name`, compiled from `wat`
/// into `dir`.
async fn gateway_with_module(
    up: &Upstream,
    dir: &std::path::Path,
    name: &str,
    wat: &str,
) -> Gateway {
    let module = wasm::wat_to(wat, &dir.join(format!("{name}.wasm")));
    Gateway::start(&config(up, &[(name, module.display().to_string(), None)])).await
}

/// The callbacks the admin endpoint says the gateway calls for `filter`.
async fn callbacks(gateway: &Gateway, filter: &str) -> Vec<String> {
    let mut admin = Http1Client::connect(gateway.admin.expect("admin listener")).await;
    let reply = admin.get("/filters").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json: serde_json::Value = serde_json::from_str(&reply.text()).expect("json");
    fn find<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("name").and_then(|n| n.as_str()) == Some(name)
                    && m.contains_key("callbacks")
                {
                    return Some(v);
                }
                m.values().find_map(|x| find(x, name))
            }
            serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, name)),
            _ => None,
        }
    }
    let status = find(&json, filter).unwrap_or_else(|| panic!("{filter} in {json}"));
    status["callbacks"]
        .as_array()
        .expect("callbacks")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn a_filter_declaring_request_headers_is_never_called_for_the_response() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = gateway_with_module(
        &up,
        dir.path(),
        "declared",
        &stamping_module(Some("proxy_on_request_headers\\n")),
    )
    .await;
    let mut client = gateway.http1("web").await;
    for _ in 0..3 {
        let reply = client.get("/download/300000").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.body.len(), 300_000, "the body streamed whole");
    }
    let seen = up.received();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.headers["x-declared"] == "yes"));
    let called = callbacks(&gateway, "declared").await;
    assert!(
        called.iter().any(|c| c == "proxy_on_request_headers"),
        "{called:?}"
    );
    for skipped in [
        "proxy_on_request_body",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_log",
        "proxy_on_done",
    ] {
        assert!(
            !called.iter().any(|c| c == skipped),
            "{skipped} in {called:?}"
        );
    }
}

/// `proxy_on_context_create` traps for an HTTP context (a root id other
/// than 0); a root context is created as usual.
const TRAP_ON_HTTP_CONTEXT: &str = "(if (local.get 1) (then unreachable))";

#[tokio::test]
async fn a_module_creating_its_http_contexts_itself_is_not_asked_to() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let module = stamping_module_creating(
        Some("proxy_on_request_headers\\nlazy_http_contexts\\n"),
        TRAP_ON_HTTP_CONTEXT,
    );
    let gateway = gateway_with_module(&up, dir.path(), "lazy", &module).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..3 {
        let reply = client.get("/ping").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let seen = up.received();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.headers["x-declared"] == "yes"));
}

#[tokio::test]
async fn without_the_option_every_http_context_is_created_by_the_host() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let module =
        stamping_module_creating(Some("proxy_on_request_headers\\n"), TRAP_ON_HTTP_CONTEXT);
    let gateway = gateway_with_module(&up, dir.path(), "eager", &module).await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/ping").await;
    // The host called proxy_on_context_create, which trapped: the filter
    // fails closed and nothing goes upstream.
    assert!(
        reply.status.is_server_error(),
        "{} {}",
        reply.status,
        reply.text()
    );
    assert!(up.received().is_empty());
}

#[tokio::test]
async fn a_module_without_the_declaration_still_gets_every_callback() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = gateway_with_module(&up, dir.path(), "undeclared", &stamping_module(None)).await;
    let mut client = gateway.http1("web").await;
    let reply = client.get("/download/300000").await;
    // The response callback traps: the filter fails closed.
    assert!(
        reply.status.is_server_error(),
        "{} {}",
        reply.status,
        reply.text()
    );
    assert_eq!(
        up.received().len(),
        1,
        "the request phase ran and went upstream"
    );
    let called = callbacks(&gateway, "undeclared").await;
    for exported in [
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_log",
        "proxy_on_done",
    ] {
        assert!(
            called.iter().any(|c| c == exported),
            "{exported} not in {called:?}"
        );
    }
}

#[tokio::test]
async fn sdk_filters_declare_their_hooks_and_official_sdk_filters_get_every_callback() {
    let up = Upstream::start("up").await;
    let gateway = Gateway::start(&config(
        &up,
        &[
            (
                "auth",
                wasm::path("filter-auth").display().to_string(),
                Some("schemes = [\"Bearer\"]\ntokens = [\"t0ken\"]"),
            ),
            (
                "mutate",
                wasm::path("tw-header-mutation").display().to_string(),
                Some(r#"{"response_header": ["x-out", "stamped"]}"#),
            ),
        ],
    ))
    .await;
    let mut client = gateway.http1("web").await;
    let denied = client.send(get("/download/10", &[])).await;
    assert_eq!(denied.status, 401);
    let allowed = client
        .send(get(
            "/download/300000",
            &[("authorization", "Bearer t0ken")],
        ))
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.body.len(), 300_000);
    assert_eq!(allowed.header("x-out"), Some("stamped"));
    assert_eq!(
        up.received().len(),
        1,
        "only the allowed request went upstream"
    );

    let auth = callbacks(&gateway, "auth").await;
    assert!(
        auth.iter().any(|c| c == "proxy_on_request_headers"),
        "{auth:?}"
    );
    for skipped in [
        "proxy_on_request_body",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_response_trailers",
        "proxy_on_log",
        "proxy_on_done",
    ] {
        assert!(!auth.iter().any(|c| c == skipped), "{skipped} in {auth:?}");
    }
    let mutate = callbacks(&gateway, "mutate").await;
    for exported in [
        "proxy_on_request_headers",
        "proxy_on_response_headers",
        "proxy_on_response_body",
        "proxy_on_log",
    ] {
        assert!(
            mutate.iter().any(|c| c == exported),
            "{exported} not in {mutate:?}"
        );
    }
}

/// A filter with only `proxy_on_log` (no response callbacks) that logs the
/// `:status` it reads from the response headers there.
const LOG_ONLY: &str = r#"(module
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) ":status")
  (data (i32.const 1000) "on_log saw status ")
  (func (export "proxy_abi_version_0_2_1"))
  ;; Every block is put right after the prefix at 1000: the value read last
  ;; is logged after it.
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1018))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_log") (param i32)
    (if (i32.eqz (call $get (i32.const 2) (i32.const 0) (i32.const 7) (i32.const 64) (i32.const 68)))
      (then
        (drop (call $log (i32.const 3) (i32.const 1000)
          (i32.add (i32.const 18) (i32.load (i32.const 68))))))))
  (func (export "proxy_on_delete") (param i32)))"#;

#[tokio::test]
async fn a_filter_without_response_callbacks_still_reads_the_response_in_its_log_callback() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let module = wasm::wat_to(LOG_ONLY, &dir.path().join("log-only.wasm"));
    let gateway = Gateway::start(&config(
        &up,
        &[("log-only", module.display().to_string(), None)],
    ))
    .await;
    let mut client = gateway.http1("web").await;
    // The upstream's /check answers 403 without a bearer token.
    let reply = client.get("/check").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        gateway.wait_for_log("on_log saw status 403", gateway_tests::WAIT),
        "{:?}",
        gateway.logs()
    );
    let called = callbacks(&gateway, "log-only").await;
    assert!(called.iter().any(|c| c == "proxy_on_log"), "{called:?}");
    assert!(
        !called.iter().any(|c| c == "proxy_on_response_headers"),
        "{called:?}"
    );
}

/// A module that stamps `x-deleted: yes` on a request once
/// `proxy_on_delete` has run for any earlier context of its instance (`no`
/// before that). With `call_out`, each request first asks the `up` cluster
/// for `/check` and goes on when the answer arrives.
fn deletion_marking_module(declaration: &str, call_out: bool) -> String {
    let request_headers_end = if call_out {
        r#"(drop (call $http_call (i32.const 200) (i32.const 2) (i32.const 100) (i32.const 67)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 5000) (i32.const 300)))
    (i32.const 1)"#
    } else {
        "(i32.const 0)"
    };
    format!(
        r#"(module
  (@custom "gateway.callbacks" "{declaration}")
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (memory (export "memory") 1)
  (global $deleted (mut i32) (i32.const 0))
  (data (i32.const 0) "x-deleted")
  (data (i32.const 16) "yes")
  (data (i32.const 20) "no")
  ;; The callout's headers, in the ABI's map encoding.
  (data (i32.const 100) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\06\00\00\00\0a\00\00\00\02\00\00\00:method\00GET\00:path\00/check\00:authority\00up\00")
  (data (i32.const 200) "up")
  {exports}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $add (i32.const 0) (i32.const 0) (i32.const 9)
      (select (i32.const 16) (i32.const 20) (global.get $deleted))
      (select (i32.const 3) (i32.const 2) (global.get $deleted))))
    {request_headers_end})
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_delete") (param i32)
    (global.set $deleted (i32.const 1))))"#,
        exports = wasm::WAT_BUMP_HOST_EXPORTS,
    )
}

/// What the upstream saw in `x-deleted` on the requests for `path`, in order.
fn deleted_marks(up: &Upstream, path: &str) -> Vec<String> {
    up.received()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| {
            r.headers
                .get("x-deleted")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// `requests` GETs of `/ping` on one connection through a gateway whose
/// one filter is `module`; the upstream that saw them.
async fn marks_after(module: &str, requests: usize) -> Upstream {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = gateway_with_module(&up, dir.path(), "marking", module).await;
    let mut client = gateway.http1("web").await;
    for _ in 0..requests {
        let reply = client.get("/ping").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    up
}

const TRANSIENT: &str =
    "proxy_on_request_headers\\nlazy_http_contexts\\ntransient_http_contexts\\n";

#[tokio::test]
async fn a_transient_context_that_only_reads_request_headers_is_not_deleted() {
    let up = marks_after(&deletion_marking_module(TRANSIENT, false), 3).await;
    assert_eq!(deleted_marks(&up, "/ping"), ["no", "no", "no"]);
}

#[tokio::test]
async fn without_the_transient_option_every_context_is_deleted() {
    let module = deletion_marking_module("proxy_on_request_headers\\nlazy_http_contexts\\n", false);
    let up = marks_after(&module, 3).await;
    // The same instance serves the connection's requests: from the second
    // on, it has seen the first one deleted.
    assert_eq!(deleted_marks(&up, "/ping"), ["no", "yes", "yes"]);
}

#[tokio::test]
async fn a_transient_context_that_called_out_is_still_deleted() {
    let up = marks_after(&deletion_marking_module(TRANSIENT, true), 2).await;
    assert_eq!(
        deleted_marks(&up, "/check").len(),
        2,
        "one callout per request"
    );
    assert_eq!(deleted_marks(&up, "/ping"), ["no", "yes"]);
}

#[tokio::test]
async fn the_transient_option_does_not_hold_with_a_later_callback() {
    // proxy_on_log may still need the context: the option is ignored.
    let module = deletion_marking_module(&format!("proxy_on_log\\n{TRANSIENT}"), false).replace(
        "(func (export \"proxy_on_delete\")",
        "(func (export \"proxy_on_log\") (param i32))\n  (func (export \"proxy_on_delete\")",
    );
    let up = marks_after(&module, 2).await;
    assert_eq!(deleted_marks(&up, "/ping"), ["no", "yes"]);
}
